"""Carrying out what the saga machine answers, in process: ``drive`` synchronously, ``adrive``
awaiting. Each operation is a call (an action or an undo, wrapped once with its faults and
key when it was handed over), a wait on the clock, or a person's answer (nobody is there in
process: "leave"); how it went is told back to the machine, which decides the rest. This is
the one loop, twice: the sync and async twins of ``Run``'s with-blocks and ``Saga.run``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from .calls import PLAIN, call_timed, checked
from .clock import Clock
from .faults import untraced
from .machine import Machine
from .operations import Ask, Op, RunStep, RunUndo, Wait

NO_ARGS: tuple[Any, ...] = ()


class Driver:
    """What a run holds to carry out operations; ``Run`` fills it in."""

    m: Machine
    clock: Clock
    monotonic: Callable[[], float]
    started: float
    actions: dict[str, Callable[..., Any]]
    undos: dict[str, Callable[..., Any]]
    results: dict[str, Any]
    args: tuple[Any, ...] = NO_ARGS  # what each action is called with (Saga: the state)
    stateless: Collection[str] = ()  # steps whose undo is called without the state (by name)
    tracer: Callable[[], Mapping[str, Any]] | None = None
    error: BaseException | None = None  # the last step error (a with-block raises it)
    raise_after: BaseException | None = None  # a Ctrl-C to re-raise when the rollback is done

    def snap(self) -> None:
        """Snapshot the state (a traced run)."""

    def kept(self) -> bool:
        """Does a journal keep what an interruption leaves, for ``recover``?"""
        return False

    def tick(self) -> None:
        """Stamp the time of what is about to be told to the machine."""
        self.m.now = self.monotonic() - self.started

    def drive(self, op: Op) -> Op:
        """Carry out the machine's operations until it hands control back (synchronously).

        An Exception from a call is the machine's to judge; a KeyboardInterrupt or
        SystemExit is ``interrupted`` (what is left is pending), and re-raised at the end.
        """
        m = self.m
        while True:
            kind = type(op)
            if kind is RunStep:
                step = op.step  # type: ignore[union-attr]
                try:
                    result = self.actions[step](*self.args)
                    if result is not None and type(result) not in PLAIN:
                        checked(result, "action", step)
                except BaseException as exc:
                    op = self.step_raised(exc)
                    continue
                self.results[step] = result
                m.now = self.monotonic() - self.started
                if self.tracer is not None:
                    self.snap()
                op = m.step_ok()
            elif kind is RunUndo:
                step, _, timeout = op  # type: ignore[misc]
                args = NO_ARGS if step in self.stateless else self.args
                try:
                    if timeout is None:
                        result = self.undos[step](*args)
                        if result is not None and type(result) not in PLAIN:
                            checked(result, "undo", step)
                    else:
                        call_timed(self.undos[step], args, timeout, "undo", step)
                except BaseException as exc:
                    op = self.undo_raised(exc)
                    continue
                self.called()
                op = m.undo_ok()
            elif kind is Wait:
                try:
                    self.clock.sleep(op.seconds)  # type: ignore[union-attr]
                except BaseException as exc:  # Ctrl-C while waiting to retry
                    op = self.wait_raised(exc)
                    continue
                self.tick()
                op = m.resume()
            elif kind is Ask:
                op = m.answer("leave")  # in process, nobody is there to answer: halted
            else:
                return op

    async def adrive(self, op: Op) -> Op:
        """``drive``, awaiting what the calls return and sleeping on the clock; a timed-out
        undo is cancelled."""
        import asyncio  # only async users pay for importing asyncio

        m = self.m
        while True:
            kind = type(op)
            if kind is RunStep:
                step = op.step  # type: ignore[union-attr]
                try:
                    result = self.actions[step](*self.args)
                    if result is not None and hasattr(result, "__await__"):
                        result = await result
                    elif result is not None:
                        checked(result, "action", step)
                except BaseException as exc:  # CancelledError too
                    op = self.step_raised(exc)
                    continue
                self.results[step] = result
                self.called()
                op = m.step_ok()
            elif kind is RunUndo:
                step, _, timeout = op  # type: ignore[misc]
                try:
                    result = self.undos[step](*(NO_ARGS if step in self.stateless else self.args))
                    if result is not None and hasattr(result, "__await__"):
                        await (result if timeout is None else asyncio.wait_for(result, timeout))
                except BaseException as exc:
                    op = self.undo_raised(exc)
                    continue
                self.called()
                op = m.undo_ok()
            elif kind is Wait:
                try:
                    await self.clock.asleep(op.seconds)  # type: ignore[union-attr]
                except BaseException as exc:
                    op = self.wait_raised(exc)
                    continue
                self.tick()
                op = m.resume()
            elif kind is Ask:
                op = m.answer("leave")
            else:
                return op

    def step_raised(self, exc: BaseException) -> Op:
        self.called()
        if isinstance(exc, Exception):
            self.error = untraced(exc)
            return self.m.step_failed(exc)
        self.error = self.raise_after = exc  # Ctrl-C: the step failed for good, no retry
        return self.m.interrupted(exc)

    def undo_raised(self, exc: BaseException) -> Op:
        self.called()
        if isinstance(exc, Exception):
            return self.m.undo_failed(untraced(exc))
        self.raise_after = exc  # Ctrl-C: what is left is pending
        return self.m.interrupted(exc, self.kept())

    def wait_raised(self, exc: BaseException) -> Op:
        self.tick()
        self.error = self.raise_after = exc
        return self.m.interrupted(exc, self.kept())

    def called(self) -> None:
        """A call returned or raised: stamp the time; a traced state may have changed."""
        self.m.now = self.monotonic() - self.started
        if self.tracer is not None:
            self.snap()
