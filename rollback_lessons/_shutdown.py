"""A run ``asyncio.run`` would end before its end (a second Ctrl-C, or a signal handler's
``sys.exit``: it cancels every task left, then runs the loop until they end): the cut call
is made again where that is harmless, else it is the interruption it is; either way the
rollback runs on, and the exception raised after says so."""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import types
import warnings
from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from . import _forward, _program_end
from ._at_exit import asyncio_here, dropped, finalizing, said, watch_aruns
from ._forward import Home, cut, forwarded
from ._loop_end import LoopCut, LoopEnded, rolling_cut
from ._results import KEPT
from ._results import ended as work_ended  # (at Python's shutdown an import fails: 290 F6)

if TYPE_CHECKING:
    from ._drive import Driver
    from ._run import Run


_INTERRUPTS = (KeyboardInterrupt, SystemExit)
_KEPT = KEPT  # asyncio, once an async block began (``alone``; ``_results.awaited``)


def taken_back(exc: BaseException, private: bool = False) -> BaseException | None:
    """The Ctrl-C (or ``SystemExit``) behind ``exc`` if ``exc`` is the cancel ``asyncio.run``
    sends every task left as it ends on it, that cancel taken back (the task runs on);
    else None. ``private``: the task is the engine's own, which nobody else cancels, so any
    cancel of it is that one: one that no Ctrl-C made is taken back too (``LoopEnded``)."""
    if issubclass(type(exc), Exception) or (asyncio := asyncio_here()) is None:  # (never a
        return None  # cancel; no import: it fails at Python's shutdown, where an undo that
    # raised was then no dead letter, attack86 F5, or its close raised it, attack283 F3)

    ki = exc.__context__  # (read by type: an error's __class__ may raise or lie)
    if not issubclass(type(exc), asyncio.CancelledError):
        return None
    task = asyncio.current_task()
    if not issubclass(type(ki), KeyboardInterrupt | SystemExit):
        if not private:
            return None  # (the program's end cuts a step on a daemon's loop so: ``arun_left``)
        ki = LoopEnded(getattr(task, "ended_why", "asyncio.run ended the loop while the saga ran"))
    if task is None or task.cancelling() == 0:
        return None
    task.uncancel()
    return ki


def branch_cut(run: Any, exc: BaseException) -> BaseException:
    """What a branch's step is thrown when ``exc`` cut its call: the Ctrl-C behind
    ``asyncio.run``'s cancel (the run's own, once one was heard), else ``exc`` itself."""
    if forwarded(run, exc):  # (a cancel asked of its task, arun's: its call cut short, in
        return cut(exc)  # doubt, as by a Ctrl-C: attack132 F1, F2)
    ki = taken_back(exc, private=True)  # asyncio.run's end (attack52 F2)
    if ki is not None:  # (the Ctrl-C behind it, or LoopEnded: an interruption)
        return run.shutdown if isinstance(ki, LoopEnded) and run.shutdown else ki
    return exc


def unowned(what: str) -> None:
    """Refuse to begin in a task asyncio does not know (not in ``all_tasks``): a Ctrl-C (or
    a signal handler's sys.exit) cut asyncio.run as it made it, before its SIGINT handler
    was in place and the task registered (attack65 F1). The caller was told it was
    interrupted, yet the loop, closing, ran the task's first step in its shutdown, never
    cancelling it: the saga ran half, never undone, named nowhere. Nothing of it begins.
    Keeps asyncio for ``alone`` (an import fails at Python's shutdown)."""
    import asyncio

    _KEPT["asyncio"] = asyncio
    watch_aruns()  # (one left unfinished as the program ends: said then, attack288 F7)
    _program_end.refused(what)  # (on a daemon's loop once the program's end began: 310 F4)
    task = asyncio.current_task()
    if task is not None and task not in asyncio.all_tasks():
        raise asyncio.CancelledError("asyncio.run was interrupted as it made this task")


def shut_down(run: Driver, exc: BaseException, todo: Any) -> BaseException | None:
    """What ``Driver.adrive`` throws into the machine for ``exc``, raised in a call
    (``todo``): ``exc`` itself, unless it is the cancel ``asyncio.run`` sends every task
    left as it ends on a Ctrl-C or a ``SystemExit`` (its context); the engine's task must
    not be cut there (attack40 F4: the undos not run were reported nowhere). The cancel is
    taken back, and the call is made again (None) where that is harmless: a wait of the
    rollback, or an undo a journal holds (idempotent, called with its key, as a journal
    asks). Anything else (an undo with no journal: it may not be idempotent, attack42 F12;
    a step going forward, F1) is the Ctrl-C (or exit) it is: what it cut is not known to
    be done, and the rollback runs from there, as when it lands in a plain ``def``. At
    Python's shutdown, the run ends there (``_at_exit``)."""
    if (end := finalizing(run)) is not None:
        raise end
    if forwarded(run, exc):  # (user code's cancel of the task: arun's, attack123 F2; a
        if type(todo) is float or type(todo) is int:  # call it cut is cut short, 132 F1)
            return None
        return cut(exc)
    ki = taken_back(exc, private=run.m.rolling)  # (a rollback runs in a task of its own)
    if ki is None:
        return exc
    if not isinstance(ki, LoopEnded):  # (the caller's exception: told what was done)
        run.shutdown = ki
    wait = type(todo) is float or type(todo) is int
    if run.m.rolling and (wait or (run.kept() and todo[2] == "undo")):
        if isinstance(ki, LoopEnded) and run.shutdown is None:  # (asyncio logs it, the
            run.raise_after = run.raise_after or ki  # outcome on it: attack305 F6, unsaid)
        return None
    if isinstance(ki, LoopEnded) and run.shutdown is None and run.m.rolling and not wait:
        return LoopCut(todo[3], ki) if todo[2] == "undo" else ki  # (no Ctrl-C: no stop asked)
    return ki


def told_end(run: Driver, cut: BaseException) -> None:
    """An interruption (``cut``) came as an undo's work ran on, awaited to its known ``end``
    (a signal handler's ``sys.exit`` ending asyncio.run with no journal): that end is told
    first, done or failed, then the interruption cuts what is left (attack107 F6: the
    refund landed, the note said "not known to be undone", one following it refunded
    twice)."""
    entry = run.m.entry
    if entry is None or (end := work_ended(cut, "undo", entry.step)) is None:
        return
    run.m.cut(cut)  # (in its undo, first: no next undo begins, its
    run.m.undo_ok() if end[0] else run.m.undo_failed(end[1])  # event unsaid, attack108 F6)


def told_at_shutdown(run: Run) -> None:
    """The Ctrl-C ``asyncio.run`` raised as it ended (``shut_down``) carries the run's
    record (``error.outcome``) and, where it cut nothing, says the rollback ran to its end
    (where it cut a call, the interruption's own note says what is left)."""
    ki: Any = run.shutdown
    if ki is None or getattr(ki, "outcome", None) is not None:
        return
    outcome = run.outcome()
    if run.m.interruption is not ki:
        left = f"; pending: {', '.join(outcome.pending)}" if outcome.pending else ""
        left += f"; leaked: {', '.join(outcome.leaked)}" if outcome.leaked else ""  # (F4)
        ki.add_note(
            f"asyncio.run ended on this {type(ki).__name__} while {run.name!r} ran: its "
            f"rollback ran to its end first ({outcome.status}{left})"
        )
    ki.outcome = outcome


def hand_off(box: list[Any], rollback: Callable[..., Any], error: BaseException) -> None:
    """``AsyncRollback``'s rollback as a task, kept in ``box`` by the same call that makes it:
    a Ctrl-C heard as the call returns finds it there (made once; never lost, never twice).
    A cancelled task's rollback says ``cancelled`` (the machine's rule, as ``arun``'s).
    ``box[1]`` makes it again; ``box[2]`` is there once it began (``shielded``)."""
    import asyncio

    # Cancelled: the error a CancelledError by its type (attack34 F1), and its task cancelled,
    # not a future a step awaited (attack35 F1), as ``arun`` tells them apart.
    task = asyncio.current_task()
    own = task is not None and _forward.cancels(task) > 0
    cancelled = own and issubclass(type(error), asyncio.CancelledError)
    driver = getattr(rollback, "__self__", None)  # (its run: a cancel asked of the rollback's
    if driver is not None and task is not None:  # task is the block's, ``_forward``: 133 F2)
        driver.arun = Home(task, task.cancelling())

    async def begun() -> Any:
        box.append(True)
        done = await rollback(error, cancelled)  # (a cancel user code asked of this task
        return await _forward.answered(driver, done)  # as it ended: the block's, attack183)

    box.append(_forward.engine_task(begun()))
    box.append(begun)


async def shielded(box: list[Any], run: Run | None = None) -> Any:
    """Wait for the rollback's task ``box[0]``, each cancellation shielded from it (the
    latest returned, else False: the block honours it once undone, ``honoured``). The task
    is the engine's own: one cancelled before it began was cancelled by asyncio.run's end,
    which cancels every task left: made again, as nothing of it ran (attack52 F2: no undo
    ran, no outcome); one cancelled since (a cancel inside is taken back: ``shut_down``) has
    its ``CancelledError`` raised."""
    import asyncio

    again: Any = False
    while True:
        if box[0].done() and box[0].cancelled() and len(box) == 2:
            box[0] = _forward.engine_task(box[1]())
        if box[0].done():
            return again
        try:
            await watched(box[0], run)  # (as ``asyncio.shield``: a cancel leaves it be)
        except asyncio.CancelledError as cancel:
            if box[0].cancelled() and len(box) > 2:
                raise
            own = _forward.cancels(asyncio.current_task()) > 0
            again = ((own or not box[0].cancelled()) and cancel) or again  # (the latest: 140)


def honoured(cancel: Any, notes: Iterable[str]) -> BaseException:
    """The CancelledError an ``AsyncRollback`` raises for a cancel heard in its rollback: that
    one, its message kept (attack138 F4: a bare one lost it, and anyio's ``move_on_after``,
    which knows its own cancel by its message, let it escape), with the notes of what the
    rollback left (``notes``), as ``arun``'s (attack148 F3: on the block's error alone)."""
    import asyncio

    raised = asyncio.CancelledError(*getattr(cancel, "args", ()))  # (True: none heard)
    for note in notes:
        raised.add_note(note)
    return raised


def watched(task: Any, run: Run | None = None) -> Any:
    """A future done once ``task`` is (its own: cancelling it leaves ``task`` be, as
    ``asyncio.shield``'s), whose waiter's wake is never lost: a Ctrl-C inside asyncio's
    ``call_soon`` as it is scheduled (its future done, nothing to step the waiter) has it
    scheduled again before it goes on. ``AsyncRollback`` waited for ever there, its rollback
    over, asyncio.run's end never ending (attack65 F7, in ``shield``'s callback). That
    Ctrl-C ends asyncio.run: ``run``'s shutdown, it then says what was done."""
    import asyncio

    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def ended(_: Any) -> None:
        if waiter.done():  # (cancelled: its waiter was, and woken by that)
            return
        wakes = list(waiter._callbacks or ())  # (the waiting task's wake, read first)
        try:
            waiter.set_result(None)
        except BaseException as exc:
            if run is not None and run.shutdown is None and isinstance(exc, _INTERRUPTS):
                run.shutdown = exc  # (``told_at_shutdown``)
            queue = getattr(loop, "_ready", None)  # (a loop whose queue we know, else
            ready = [h._callback for h in list(queue or ())]  # nothing is said lost)
            for wake, context in wakes if queue is not None else ():
                if not [c for c in ready if c is wake]:  # (lost: never twice)
                    loop.call_soon(wake, waiter, context=context)
            raise

    task.add_done_callback(ended)
    return waiter


def exit_said(run: Run, exc: BaseException) -> None:
    """A ``sys.exit`` (a service's SIGTERM handler) that ends a run leaving undos undone:
    Python prints no note of a SystemExit, so its notes are a warning on stderr (attack52:
    a halted rollback's process ended 0, not a word)."""
    notes = [n for n in getattr(exc, "__notes__", ()) if n.startswith("rollback")]
    if not getattr(run, "exit_told", False):
        warned(run.name, exc, notes)


_TOLD_BY_CALLER: contextvars.ContextVar[bool] = contextvars.ContextVar("told", default=False)


@contextlib.contextmanager
def exits_told() -> Iterator[None]:
    """Within: a caller that catches a SystemExit and tells it (an exercise's check) says the
    notes itself, so no warning says Python never prints them (learn77 F2: untrue there)."""
    token = _TOLD_BY_CALLER.set(True)
    try:
        yield
    finally:
        _TOLD_BY_CALLER.reset(token)


def warned(name: str | None, exc: BaseException, notes: list[str], level: int = 0) -> None:
    """``exc``'s ``notes`` on stderr if it is a SystemExit (Python never prints them), each
    note once (a saga run inside another's step: the outer run's said too, attack62 F7, F9),
    every time one ends a run (attack58 F7: the default filter showed it once per process),
    at the caller's first line outside this package (not a library line). Warnings made
    errors (``-W error``) never replace the exit: the words go to stderr (attack62 F6)."""
    shut = isinstance(exc, KeyboardInterrupt) and sys.is_finalizing()  # (Python's shutdown
    if not (issubclass(type(exc), SystemExit) or shut) or _TOLD_BY_CALLER.get():  # says it
        return  # "ignored", its notes unsaid: attack290 t22)
    said_before: list[str] = getattr(exc, "_said", None) or []
    new = [n for n in notes if n not in said_before]
    if not new:
        return
    exc._said = [*said_before, *new]  # type: ignore[attr-defined]
    code = getattr(exc, "code", None)
    how = "a KeyboardInterrupt at Python's shutdown" if shut else f"sys.exit({code!r})"
    text = f"saga {name!r} ended by {how}, whose notes Python never prints: "
    text += "; ".join(new)
    frame = _outside(sys._getframe(1))
    try:
        warnings.warn_explicit(  # (a fresh registry: the filter's "default" shows it again)
            RuntimeWarning(text), RuntimeWarning, frame.f_code.co_filename, frame.f_lineno,
            frame.f_globals.get("__name__", "?"), {}, frame.f_globals,
        )  # fmt: skip
    except Exception:  # (a warning made an error; a __main__ with no source, read from
        with contextlib.suppress(Exception):  # stdin or -c: linecache's ImportError, 143 F1)
            sys.stderr.write(
                f"{frame.f_code.co_filename}:{frame.f_lineno}: RuntimeWarning: {text}\n"
            )


_OURS = (os.path.dirname(__file__), os.path.dirname(contextlib.__file__), "<frozen")


def _outside(frame: types.FrameType) -> types.FrameType:
    """The first frame from ``frame`` out that is neither this package's nor the standard
    library's (contextlib, asyncio, threading): the line of the caller's code."""
    first = frame
    while frame is not None:
        if not frame.f_code.co_filename.startswith(_OURS):
            return frame
        frame = frame.f_back  # type: ignore[assignment]
    return first


@contextlib.contextmanager
def exit_warned(name: str | None) -> Iterator[None]:
    """An engine's run (``runner.run``, ``run_explicit``) ended by a ``sys.exit``: its notes,
    what the run left, go to stderr as ``saga.run``'s do (attack56 F1: not a word)."""
    try:
        yield
    except SystemExit as exc:
        with contextlib.suppress(Exception):
            warned(name, exc, list(getattr(exc, "__notes__", ())))
        raise


def tasks_of(made: list[Any], *coroutines: Any) -> list[Any]:
    """Each of ``coroutines`` made a task (``asyncio.ensure_future``), in ``made`` as it is
    made: a Ctrl-C (or sys.exit) heard as one is made leaves no coroutine unawaited (attack58
    F10: "coroutine ... was never awaited" printed), then raised. A task half made is found
    (``half_made``): kept in ``made`` for its caller to cancel if its first step is
    scheduled, else ended here; the coroutines of the tasks never made are closed."""

    done = 0
    try:
        for coroutine in coroutines:
            made.append(_forward.engine_task(coroutine))
            done += 1
    except BaseException:
        for coroutine in coroutines[done:]:
            made += [t for t in half_made(coroutine) if t not in made]
        raise
    return made


def half_made(coroutine: Any) -> list[Any]:
    """The task a Ctrl-C cut the making of (``coroutine``'s), if it will run: its first step
    scheduled (its caller cancels it, or awaits it). One whose step was never scheduled (the
    Ctrl-C inside ``call_soon``) would never run, pending for ever ("Task was destroyed but it
    is pending!"): ended, its coroutine closed, as is one no task was made of."""
    import asyncio
    import gc

    half = [t for t in gc.get_referrers(coroutine) if isinstance(t, asyncio.Task)]
    ready = getattr(half[0].get_loop(), "_ready", None) if half else None
    if half and ready is not None:  # (the loop's queue: its step in it, it will run)
        steps = [getattr(h._callback, "__self__", None) for h in list(ready)]
        if any(s is half[0] for s in steps) or half[0] in asyncio.all_tasks():
            return half
    coroutine.close()
    for task in half:
        asyncio.Future.cancel(task)  # (as a Future: never run, nothing logged of it)
    return []


def lost(tasks: Iterable[Any]) -> list[Any]:
    """Those of ``tasks`` that will never run again: pending, nothing scheduled to step them
    and nothing pending they wait for. A Ctrl-C inside asyncio's own ``call_soon`` (as a
    task's next step or wake was scheduled) loses it, and arun awaited that branch for ever:
    asyncio.run never ended (attack58 F5)."""
    import asyncio

    ready = getattr(asyncio.get_running_loop(), "_ready", None)
    if ready is None:  # (not a loop whose queue we know: nothing is said lost)
        return []
    scheduled = {id(getattr(h._callback, "__self__", None)) for h in list(ready)}
    return [
        t for t in tasks
        if not t.done() and id(t) not in scheduled
        and (getattr(t, "_fut_waiter", None) is None or t._fut_waiter.done())
    ]  # fmt: skip


def ended(task: Any, error: BaseException) -> None:
    """``task`` (``lost``) ended, ``error`` its result, for its reader to raise as if the
    task raised it: its coroutine closed first (its ``finally`` blocks run, none of it told
    the machine). (Not its exception: asyncio.run's end logged it, "unhandled exception".)"""
    import asyncio

    with contextlib.suppress(Exception):
        task.get_coro().close()
    asyncio.Future.set_result(task, error)  # (as a Future: a Task refuses it)


def rescued(
    tasks: dict[Any, str], shutdown: BaseException | None, broke: Callable[[str, Any], Any]
) -> set[Any]:
    """The branches asyncio lost (``lost``), each ended as if it raised ``broke(step, cut)``
    (its step told cut short by ``cut``: the Ctrl-C asyncio.run ended on, else LoopEnded,
    so it may have happened: README's LoopEnded case; not run if its action was never
    called, attack67 F1), for the driver to read as it reads a branch that raised; none,
    the common case."""
    found = set()
    for task in lost(tasks):
        cut = shutdown or LoopEnded("asyncio lost the wake of its step's task")
        ended(task, broke(tasks[task], cut))
        found.add(task)
    return found


def closed_rolling(run: Any, exc: BaseException) -> BaseException:
    """``exc``, after saying on stderr that a journalled ``AsyncRollback`` was closed as its
    rollback ran (``GeneratorExit``: its event loop stopped, the program ending), the undos
    not known done left in the journal for ``recover``; a stop in a step said so, one in the
    rollback said nothing, exit 0 (attack101 F4)."""
    if type(exc) is GeneratorExit and not vars(run).get("rolling_said"):  # (no journal too:
        said(rolling_cut(run))  # not a word was said, attack288 F2; said at the end: once)
        _forward.quieted(getattr(run, "home", None))  # (asyncio's line beside it: 305 F1)
    return exc


def alone(rollback: Coroutine[Any, Any, Any], run: Any = None) -> None:
    """An ``AsyncRollback``'s ``rollback`` (no journal, ended by Python's shutdown:
    ``_at_exit.undone_at_exit``) run to its end on a loop of its own: no loop runs there,
    and an await there yields to the generator's close, which gives up ("async generator ignored
    GeneratorExit"). The loop is made with the asyncio kept as the block began (``unowned``):
    an import fails there (attack86 F5: the undo never ran, a raw ImportError said). Its
    async generator dropped mid-program (``run``'s: ``_at_exit.dropped``), a first Ctrl-C
    is said, and what the undos left is said after."""
    loop = _KEPT["asyncio"].SelectorEventLoop()  # (not the policy's: it may import)
    events = _KEPT["asyncio"].events  # (another loop running here, the generator dropped
    other = events._get_running_loop()  # in its task: it waits, attack297 F4)
    try:
        events._set_running_loop(None)
        if run is not None and not sys.is_finalizing():  # (dropped: its lines say what an
            run.exit_told = True  # undo's sys.exit left, never raised: no warning, 301 F2)
        with dropped(run):
            loop.run_until_complete(rollback)
    finally:
        loop.close()
        events._set_running_loop(other)
