"""A branch of ``arun`` (``_graph_drive.adrive_graph``): its step's loop carried out in its
own asyncio task (``acarry``), its retry wait (``_wait``), and what carries a Ctrl-C or a
failure out of that task to the driver (``Escaped``, ``Broke``)."""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any

from . import _program_end
from ._drive import Call
from ._forward import forwarded
from ._results import awaitable, awaited, checked, with_end
from ._shutdown import branch_cut, tasks_of
from .verdicts import cut_by

if TYPE_CHECKING:
    from ._run import Run
    from .schedule import GraphMachine, GraphOp


async def acarry(
    run: Run, loop: Generator[Call | float, Any, GraphOp], begun: dict[str, bool]
) -> GraphOp:
    """Carry out one step's loop, awaiting what its calls return. A Ctrl-C before its first
    call (as the loop hands it over) is carried out ``Escaped`` not ``called``: the step was
    never run (attack62 F3: reported leaked, left to a person by recover). ``begun`` marks
    its step's action called, in the same instant (read by its branch: a Ctrl-C at this
    function's entry, before its ``try``, finds its step not begun)."""
    import asyncio  # (bound as it begins: at Python's shutdown an import fails)

    called = False  # (only a later attempt's call follows one: a Ctrl-C before it, cut short)
    me = asyncio.current_task()  # (a GeneratorExit while it runs is an observer's: ``closed``)
    try:
        todo = next(loop)
        while True:
            try:
                if isinstance(todo, Call):
                    if _program_end.ENDED:  # (the program ending: no attempt begins on a
                        await _program_end.gate(run)  # daemon's loop, attack310 F2, F5)
                    fn, args, role, name, _ = todo
                    called = begun[name] = True
                    done = fn(*args)
                    if awaitable(done):  # kept as it returns, (no instant between: a Ctrl-C
                        run.results[name] = done = await awaited(done, role, name)  # after it
                        # finds it returned, ``returned_cut``; to its end: attack86 F1)
                    else:
                        run.results[name] = done = checked(done, role, name)
                else:
                    await _wait(run, todo)
                    if _program_end.ENDED:  # (before the next attempt is written: 311 F1)
                        await _program_end.gate(run)
                    done = None
            except BaseException as exc:  # a branch is arun's own task: a cancel of it is
                if not called:  # (a Ctrl-C before its action was called: never run)
                    raise
                if not isinstance(todo, Call) and forwarded(run, exc):  # (an observer's
                    continue  # cancel of this task, as it waits: arun's, made again)
                todo = loop.throw(with_end(branch_cut(run, exc), exc))  # (its work's end)
                continue
            todo = loop.send(done)
    except StopIteration as over:
        return over.value  # type: ignore[no-any-return]
    except (KeyboardInterrupt, SystemExit, GeneratorExit) as exc:  # outside the step's call:
        if type(exc) is GeneratorExit and closed(asyncio, me):  # asyncio would end the loop
            raise  # with it; adrive_graph fails it
        raise Escaped(exc, called) from None
    finally:  # closed now, not by the gc later, where a Ctrl-C is dropped (attack54 F4)
        loop.close()


def closed(asyncio: Any, me: Any) -> bool:
    """Is a GeneratorExit raised in ``me``'s coroutine its close, from outside it (another
    task's ``ended``, the gc), not an observer's (attack124 F1: ``saga.run`` fails there,
    ``arun`` ran on and committed, "came once the saga had committed")?"""
    try:
        return bool(asyncio.current_task() is not me)
    except RuntimeError:  # (no loop runs: the gc's)
        return True


async def _wait(run: Run, seconds: float) -> None:
    """A branch's wait before its next attempt, cut short once the run stops meanwhile (a
    cancel, a sibling failing for good): it will not be tried again, so nothing is waited
    for (its machine hears the wait is over and ends it)."""
    import asyncio

    if run.wake is None:
        return await run.clock.asleep(seconds)  # type: ignore[func-returns-value]
    made: list[Any] = []  # (each made a task whole, or not at all: attack58 F10)
    try:
        sleep, woken = tasks_of(
            made, primed(carried(run.clock.asleep, seconds)), primed(carried(run.wake.wait))
        )
        await asyncio.wait({sleep, woken}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ended = [task for task in made if task.done()]
        for task in made:
            task.cancel()
    if losers := [task for task in made if task not in ended]:  # (their ends awaited: a Ctrl-C
        await asyncio.wait(losers)  # as one unwinds its cancel, carried into it, was never
    for task in losers:  # read, swallowed: the saga committed, attack273 F3)
        if not task.cancelled() and (error := task.exception()) is not None:
            raise original(error)
    for task in ended:  # the wait failed (a Ctrl-C in it): its step hears it, as
        if task.cancelled() and run.arun is not None and not run.arun.task.done():  # (one
            run.arun.task.cancel()  # asked of it as it ran, a signal handler's: arun's, the
            return await _wait(run, seconds)  # wait made again, ended as arun's, 126 F3)
        if task.done() and not task.cancelled() and (error := task.exception()) is not None:
            raise original(error)  # after any call
    return None


async def carried(wait: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """``wait(*args)`` awaited in a task of its own, a Ctrl-C (or sys.exit) in it carried out
    of the task: asyncio would end the event loop with it, the run half done (attack18's
    F2). ``primed`` first, so that the task's first step resumes it inside its ``try``."""
    try:
        await _paused()
        return await wait(*args)
    except (KeyboardInterrupt, SystemExit) as exc:
        raise Escaped(exc) from None


@types.coroutine
def _paused() -> Generator[None, None, None]:
    yield  # (a bare yield: handed back to ``primed``, never to the task)


def primed(coroutine: Any) -> Any:
    """``coroutine`` (``carried``'s) run here, in its maker's frame, to its first pause,
    inside its ``try``: a Ctrl-C at its task's first line, before that ``try``, left the task
    raw and stopped the loop (attack65 F4: a running branch cancelled, undone under its
    call). One raised here is its maker's (a Ctrl-C in the step's wait)."""
    try:
        coroutine.send(None)
    except BaseException as exc:
        raise original(exc) from None
    return coroutine


POLL, LOST = 0.05, 1.0
"""Seconds between two looks at the cancel while every branch runs or waits (``arun``), and
at the branches while the run fails: one asyncio lost is ended (``lost``, attack58 F5)."""


class Escaped(Exception):
    """A KeyboardInterrupt or SystemExit raised in a step's task outside its call, carried
    out of the task (asyncio re-raises these out of the event loop, leaving every other
    branch behind); ``adrive_graph`` takes the original back out. ``called``: the step's
    action was called (not: the Ctrl-C came before its first call, the step never run)."""

    def __init__(self, exc: BaseException, called: bool = True) -> None:
        super().__init__(type(exc).__name__)
        self.exc, self.called = exc, called


class Broke(Exception):
    """A branch's task raised ``exc`` (an ``Escaped`` Ctrl-C too), told the machine at
    once, in that task (``broken``), so that no other branch's end is told before it (a
    step freed by it would start, the run commit); ``answer`` is the machine's, ``again``
    what raised as it was told (a second Ctrl-C: the run fails, its rollback cut there, as
    ``saga.run``'s is, what was done left pending for ``recover``)."""

    def __init__(
        self, exc: BaseException, answer: GraphOp | None, again: BaseException | None = None
    ) -> None:
        super().__init__(type(exc).__name__)
        self.exc, self.answer, self.again = exc, answer, again


def original(exc: BaseException) -> BaseException:
    return exc.exc if isinstance(exc, Escaped) else exc


def not_run(gm: GraphMachine, step: str, exc: BaseException) -> GraphOp | None:
    """A Ctrl-C (or sys.exit) came as ``step``'s first call was handed over, its action not
    called: not run, as a list's step at that instant (``_guards.cut_forward``: its intent
    row written not run at once), and the run fails with it once the others ended."""
    what = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else cut_by(exc)
    gm.not_run(step, f"the {what} came as it started")
    return gm.broken(exc)


def returned_cut(run: Run, step: str, exc: BaseException) -> GraphOp | None:
    """A Ctrl-C (or sys.exit) after ``step``'s call returned (its result kept), before the
    machine was told: the step is done, told so now, and the run fails with ``exc``
    (``GraphMachine.step_returned``): undone with the rest, never reported leaked, as a
    list's step at that instant (``_guards.told_returned``); ``exc`` re-raised at the end."""
    gm: GraphMachine = run.m  # type: ignore[assignment]
    run.raise_after = run.raise_after or exc
    return gm.step_returned(step, exc)
