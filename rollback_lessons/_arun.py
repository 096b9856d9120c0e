"""``Saga.arun``'s own task: ``adrive_graph`` awaited there, shielded from a cancel of
``arun``'s task, and made again if asyncio.run's end cancelled it before it began."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Generator
from typing import Any

from . import _forward, _guards
from ._at_exit import finalizing
from ._branches import Escaped, original
from ._forward import Home, answered
from ._graph_drive import Asked, adrive_graph
from ._run import Run
from ._shutdown import LoopEnded, half_made
from .machine import Phase
from .operations import Op


async def shielded(run: Run, asked: Asked, heard: Callable[[Any], None]) -> Any:
    """``arun``'s wait for its own task (``adrive_graph``, ``kept``), shielded: a cancel of
    ``arun``'s task is ``heard`` and the run goes on to undo; that task done, it is returned
    (its error is ``arun``'s to handle). Cancelled before it began, by asyncio.run's end
    (it cancels every task left: attack52 F2), it is made again, as nothing of it ran."""
    import asyncio

    began: list[bool] = []
    alone: list[BaseException] = []
    me = asyncio.current_task()  # (its cancel heard before the next step: ``heard_first``)
    run.arun = Home(me, me.cancelling()) if me is not None else None
    given = run.arun.given if me is not None else []  # (``kept``'s answer, as it returns)
    inner = made(run, asked, began, alone)
    try:
        while not inner.done():
            try:
                await asyncio.shield(inner)
            except asyncio.CancelledError as exc:
                if vars(run).get("held_at_end"):  # (journalled, held at the program's end: left
                    raise  # for recover as a crash leaves it; what awaits it ends: 311 F5)
                if inner.cancelled() and began and given:  # (asked of it as it returned,
                    inner = asyncio.get_running_loop().create_future()  # a signal handler's:
                    inner.set_result(given[0])  # arun's, its answer standing, attack126 F1)
                elif inner.cancelled() and began:
                    raise
                if inner.cancelled():
                    inner = _forward.engine_task(kept(run, asked, began, alone))
                    if not asyncio.current_task().cancelling():  # type: ignore[union-attr]
                        continue  # (only the engine's task was cancelled)
                heard(exc)
                if run.arun is not None:
                    run.arun.before = run.arun.task.cancelling()
            except Exception:  # inner failed: its error is handled by arun
                break
    except (KeyboardInterrupt, SystemExit) as exc:  # on these lines (a second Ctrl-C as the
        if not inner.done():  # first's cancel is heard): it leaves arun, the run going on in
            alone.append(exc)  # its task, which then ends it and says so (``kept``)
        raise
    return inner


def made(run: Run, asked: Asked, began: list[bool], alone: list[BaseException]) -> Any:
    """``coroutine``'s task, or, if a Ctrl-C came as it was made (attack58 F2: the saga ran
    on in the background, the caller told it was interrupted), no work of it ever: its task,
    if made, cancelled before it began, else (half made, scheduled) withdrawn: ``kept``
    returns at once (``began`` marked); the Ctrl-C then says so."""

    coroutine = None
    try:
        coroutine = kept(run, asked, began, alone)
        return _forward.engine_task(coroutine)
    except BaseException as exc:
        began.append(False)  # (a task half made is found too; one never scheduled, ended)
        for task in half_made(coroutine) if coroutine is not None else []:
            task.cancel()  # (else never made, its coroutine closed: nothing will await it)
        with contextlib.suppress(Exception):
            exc.add_note("rollback: the Ctrl-C came as the run began: nothing of it ran")
        raise


async def kept(run: Run, asked: Asked, began: list[bool], alone: list[BaseException]) -> Op:
    """Await ``adrive_graph`` in ``arun``'s task, a KeyboardInterrupt or SystemExit it
    raises carried out as ``Escaped`` (asyncio would end the event loop with it, the run
    left as it was): ``arun`` fails the run there, as ``saga.run`` does. ``began`` says it
    began (a task asyncio.run's end cancelled before that is made again: attack52 F2).
    ``alone``: the Ctrl-C that left ``arun`` while this ran (``shielded``); this then ends
    the run as ``arun`` would have, that Ctrl-C telling how (attack67: said nowhere)."""
    if began:  # (withdrawn as its task was made: ``made``)
        return None  # type: ignore[return-value]
    began.append(True)
    driven = None
    try:
        while True:
            try:
                driven = driven or Driven(run, asked)
                op = await driven
                break
            except (KeyboardInterrupt, SystemExit) as exc:  # (raised here as this resumed,
                if driven is None or driven.driver is None or driven.driver.cr_await is None:
                    raise Escaped(exc) from None  # its driver left at its wait: heard there
                driven.heard = exc  # as this awaits it again, attack65 F2)
    except Exception as exc:
        if not alone:
            raise
        await undone(run, exc)
        op = None  # type: ignore[assignment]
    if alone:
        ended_alone(run, alone[0])
    op = await answered(run, op)  # (an observer's cancel of this task: arun's, 123 F2)
    run.arun.given.append(op)  # (kept: a cancel asked after it ends the task cancelled)
    return op


class Driven(Generator[Any, Any, Any]):
    """``adrive_graph``'s coroutine as ``kept`` awaits it. A Ctrl-C (or sys.exit) raised in
    ``kept`` itself as it resumes leaves the driver suspended at its wait, left out of it
    (attack65 F2: the rollback ran while branches ran, an effect landed after its undo):
    ``heard``, it is thrown into the driver as ``kept`` awaits this again, heard at that
    wait as one landing there is (the branches awaited and told, then the rollback)."""

    def __init__(self, run: Run, asked: Asked) -> None:
        self.args = (run, asked)  # (its driver made as it begins: never one made and
        self.driver: Any = None  # dropped, "never awaited")
        self.heard: BaseException | None = None

    def __await__(self) -> Generator[Any, Any, Any]:
        return self

    def send(self, value: Any) -> Any:
        heard, self.heard = self.heard, None
        if self.driver is None:
            self.driver = adrive_graph(*self.args)
        return self.driver.send(value) if heard is None else self.driver.throw(heard)

    def throw(self, exc: Any, *rest: Any) -> Any:
        return self.driver.throw(exc, *rest)

    def close(self) -> None:
        if self.driver is not None:
            self.driver.close()


async def failed(run: Run, inner: Any) -> None:
    """What ``inner`` raised (a journal write, a Ctrl-C going forward) fails the run there."""
    try:
        inner.result()
    except Exception as exc:
        await undone(run, exc)


async def undone(run: Run, exc: Exception) -> None:
    error = original(exc)
    if _guards.settled(run, error) is None:
        await run.aroll_back(error)


def ended_alone(run: Run, cut: BaseException) -> None:
    """The run's end, ``arun`` gone (``cut`` left it): closed as ``_guards.end`` closes it,
    ``cut`` (asyncio.run's, as it ends on it) carrying its notes and outcome."""
    run.shutdown = run.shutdown or cut
    run.finish(run.m.error)
    _guards.at_end(run, cut)


def ended_on(run: Run, exc: BaseException, outcome: Callable[[], Any]) -> None:
    """What ``arun`` says of ``exc``, raised as it ended (a Ctrl-C, a cancel that cut an
    undo): its notes (``_guards.at_end``), the outcome on a cut's CancelledError (attack132)
    and on a Ctrl-C or sys.exit once the run is over (as the README says it carries), then
    ``ending``. One raised as that is said (a Ctrl-C a millisecond after a shutdown cut an
    undo: attack136 F1, no outcome, no note) is said the same, and raised. At Python's
    shutdown (its coroutine closed), nothing but a line: imports fail there."""
    if isinstance(exc, GeneratorExit) and finalizing(run, say=True) is not None:
        return
    try:
        _guards.at_end(run, exc)
        if _forward.was_cut(exc):  # (a cancel of arun's that cut an undo: 132)
            _guards.cancelled_with(exc, outcome())
        else:
            carries(run, exc, outcome)
    except BaseException as late:
        _guards.at_end(run, late)
        carries(run, late, outcome)
        raise
    ending(run, exc)


def carries(run: Run, exc: BaseException, outcome: Callable[[], Any]) -> None:
    """A Ctrl-C or sys.exit raised in ``arun`` (or out of a with-block: attack283 F1) once
    its run is over carries the outcome (not asyncio.run's own: ``told_at_shutdown``); so
    does a ``LoopEnded`` (asyncio logs it: ``error.outcome`` for a handler of its own)."""
    if not issubclass(type(exc), KeyboardInterrupt | SystemExit | LoopEnded) or exc is run.shutdown:
        return
    if run.m.phase is Phase.DONE and getattr(exc, "outcome", None) is None:
        with contextlib.suppress(Exception):
            exc.outcome = outcome()  # type: ignore[attr-defined,union-attr]


def carried(run: Run, exc: BaseException, outcome: Callable[[], Any]) -> BaseException:
    """``exc``, carrying the outcome (``carries``), to be raised; a CancelledError if it is
    the Ctrl-C (or exit) ``asyncio.run`` ended on, which leaves it already, the outcome on it
    (``told_at_shutdown``): raised from the task too (an ``AsyncRollback``'s, the block's own
    error or not), it cut asyncio.run's teardown and was logged "Task exception was never
    retrieved", a raw traceback (attack302 F3, attack305 F3)."""
    carries(run, exc, outcome)
    if exc is run.shutdown:
        import asyncio

        return asyncio.CancelledError(f"asyncio.run ended on a {type(exc).__name__} as it ran")
    told_once(exc)
    return exc


def told_once(exc: BaseException | None) -> None:
    """``exc`` (an undo's own Ctrl-C or exit) ends the task it is raised in: asyncio raises
    it out of the loop too, to its caller (``asyncio.run``'s, the outcome on it), so the
    task's copy, if nobody reads it, is not logged again as "never retrieved", a raw
    traceback at the program's end (attack302 F4: the loop's hook's task closing a generator;
    attack305 F5: a task nobody awaited, as asyncio.run's end ran its rollback). Any other
    report goes on as it was."""
    if not issubclass(type(exc), KeyboardInterrupt | SystemExit):  # (by type: its __class__
        return  # may raise, the block's own error: test_class_by_type)
    asyncio = sys.modules.get("asyncio")  # (a with-block's too: no loop, no import)
    task = asyncio.current_task() if asyncio and asyncio._get_running_loop() else None
    if task is None:
        return
    loop, before = task.get_loop(), task.get_loop().get_exception_handler()

    def handler(loop: Any, context: dict[str, Any]) -> None:
        if context.get("future") is not task or context.get("exception") is not exc:
            before(loop, context) if before is not None else loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


def ending(run: Run, exc: BaseException) -> None:
    """``arun``'s task, ending on ``exc``, ends cancelled if ``exc`` is the Ctrl-C or
    sys.exit asyncio.run ended on (its cancel taken back: ``run.shutdown``): that one leaves
    asyncio.run already, the run's notes on it. Re-raised from the task, it cut asyncio.run's
    teardown, and the task's exception was logged "never retrieved" (attack62 L2). So too a
    ``LoopEnded`` once that one is known (logged "unhandled exception", its notes only there)."""
    import asyncio

    shutdown = run.shutdown
    if isinstance(exc, LoopEnded) and shutdown is not None:  # (it stood for that one: its
        with contextlib.suppress(Exception):  # notes go to it, never logged by asyncio)
            for note in getattr(exc, "__notes__", ()):
                if note not in getattr(shutdown, "__notes__", ()):
                    shutdown.add_note(note)
        exc = shutdown
    if exc is shutdown:
        raise asyncio.CancelledError(f"asyncio.run ended on a {type(exc).__name__} as it ran")
    told_once(exc)
