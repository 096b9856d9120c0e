"""A block left open in an async generator that a task of a stopped event loop was awaiting as
the program ends (a notebook's cell cut as the generator's step awaited, the loop never run
again: attack303 F7). The generator is at an ``await``, not a ``yield``: nothing can close it
(its ``aclose`` is refused, "already running"), and Python's shutdown, collecting the task,
closes the task's coroutine only: no undo ran, not a word. At the program's end (Python whole)
the task is ended instead, as a cancel of it would be: its coroutine, driven on an event loop
of its own from a thrown CancelledError, runs the block's rollback as on any cancel."""

from __future__ import annotations

import contextlib
import signal
import sys
import types
from collections.abc import Generator
from typing import Any

from ._at_exit import LEFT_SAID, _ctrl_c_said, _left, _open_blocks, _what_it_left, said
from ._forward import quieted
from ._loop_end import LoopEnded, not_undone, rolling_cut
from ._program_end import claimed, second_ends


def awaiting(blocks: list[Any], done: set[int]) -> dict[Any, list[Any]]:
    """Of ``blocks`` (open ``AsyncRollback`` blocks; none whose id is in ``done``), by task:
    those in an async generator at an ``await`` in a task, not done, of a loop that does not
    run; and those in a task, not done, of a loop running in another thread (a daemon's, as
    the program ends: a service's background work, attack306 F7: lost, unsaid)."""
    import gc

    found: dict[Any, list[Any]] = {}
    for block in blocks:
        with contextlib.suppress(Exception):
            task, code = block._run.home, block._entered_in
            if task is None or task.done() or id(block) in done:
                continue
            if task.get_loop().is_running() or any(
                type(agen) is types.AsyncGeneratorType and agen.ag_running and
                agen.ag_code is code for agen in gc.get_referrers(block)):  # fmt: skip
                found.setdefault(task, []).append(block)
    return found


def ended_in_task(task: Any, blocks: list[Any]) -> None:
    """The ``blocks`` ``awaiting`` found in ``task``: all journalled, none of their undos run
    (said: the journal keeps them, as at Python's shutdown); else the task is cancelled on a
    loop of its own (said first), and what the rollback left is said."""
    other = task.get_loop() if task.get_loop().is_running() else None
    how = ("was left suspended in an async generator awaiting in a task as the program ended, "
           "its event loop stopped")  # fmt: skip
    if other is not None:
        how = ("was left open in a task of an event loop running in another thread as the "
               "program ended (a daemon's, ended with the program)")  # fmt: skip
    if all(block._run.journal is not None for block in blocks):
        for block in blocks:
            if not claimed(LEFT_SAID, block._run.run_id):  # (its own end said it: 311 F6)
                continue
            said(f"saga {block._run.run_id!r}: its AsyncRollback block {how}; none of its undos "
                 f"ran{not_undone(block._run)}: the journal keeps it unfinished, and recover "
                 "runs them")  # fmt: skip
        return
    for block in blocks:
        block._run.exit_told = True  # (what an undo's sys.exit left: said below, as 301 F2)
        said(f"saga {block._run.run_id!r}: its AsyncRollback block {how}: its task is cancelled "
             f"now, its undos run on {'that loop' if other else 'an event loop of their own'} "
             "(end the block before the program exits)")  # fmt: skip
    import asyncio

    async def cancelled() -> Any:
        cut = asyncio.CancelledError("the program ended")
        await _driven(task.get_coro(), cut, lambda: all(b._state == "closed" for b in blocks))

    def cancel() -> None:  # (the cancel it ends on is no stop: ``ended_at_end``)
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(cancelled())
        finally:
            with contextlib.suppress(BaseException):
                loop.close()
            with contextlib.suppress(Exception):  # (its coroutine ended here: not "pending")
                task._log_destroy_pending = task.get_coro().cr_frame is not None

    async def cancelled_there() -> None:  # (to the blocks' end, not the task's: a service
        task.cancel()  # that goes on once they ended hung the exit for ever, attack310 F1)
        await over(task, blocks)

    if other is None:
        return ended_at_end(blocks, cancel)
    from ._late_threads import closed_on

    ended_at_end(blocks, lambda: closed_on(other, cancelled_there, blocks))


async def over(task: Any, blocks: list[Any]) -> None:
    """Until ``blocks`` are closed, or ``task`` is done (its own interrupt raised: said)."""
    import asyncio

    while not task.done() and not all(block._state == "closed" for block in blocks):
        await asyncio.sleep(0.02)
    exc = task.exception() if task.done() and not task.cancelled() else None
    if issubclass(type(exc), KeyboardInterrupt | SystemExit):
        raise exc  # type: ignore[misc]


def rolling_there(task: Any, blocks: list[Any]) -> None:
    """``AsyncRollback`` blocks rolling back in a task of a loop running in another thread (a
    daemon's) as the program ends: waited for there, as a ``saga.arun`` rolling back is, and
    said (attack310 F3: the process ended at once, an undo cut mid-call, nothing said)."""
    how = ("was left rolling back in a task of an event loop in another thread (a daemon's) "
           "as the program ended: its rollback is waited for on that loop (end the block "
           "before the program exits)")  # fmt: skip
    for block in blocks:
        said(f"saga {block._run.run_id!r}: its AsyncRollback block {how}")
    from ._late_threads import closed_on

    ended_at_end(blocks, lambda: closed_on(task.get_loop(), lambda: over(task, blocks), blocks))


@types.coroutine
def _driven(coro: Any, first: BaseException, ended: Any) -> Generator[Any, Any, bool]:
    """``coro`` (another loop's task's, suspended) driven on the running loop from a throw of
    ``first``, what it awaits from then on this loop's, until it ends (True) or ``ended()``:
    its blocks are over, and the code past them (a ``finally`` that awaits a lock of the old
    loop: attack306 F4, a hang, unsaid) is not run here (False: Python's shutdown closes it)."""
    step, value = coro.throw, first
    while True:
        try:
            yielded = step(value)
        except StopIteration:
            return True
        if ended():
            return False
        try:
            value, step = (yield yielded), coro.send
        except BaseException as exc:
            value, step = exc, coro.throw


def rolling_left() -> None:
    """Each ``AsyncRollback`` whose rollback runs in a task of a loop that stopped (a Ctrl-C as
    ``asyncio.run``'s end ran it, the README's third), said now, at the program's end (Python
    whole), not when Python's shutdown closes its task: a second Ctrl-C as the program ended
    lost that line, the undos never run named nowhere (attack305 F4; ``arun``'s said here)."""
    for block in _open_blocks("AsyncRollback", "ending"):
        with contextlib.suppress(Exception):
            task, run = block._run.home, block._run
            if task is None or task.done() or task.get_loop().is_running():
                continue
            if not vars(run).get("rolling_said") and run.m.rolling:
                run.rolling_said = True
                said(rolling_cut(run, "was left rolling back as the program ended, its event "
                                      "loop stopped: nothing more of it runs"))  # fmt: skip
                quieted(task)  # (asyncio's own line beside it: attack305 F2)


def ended_at_end(blocks: list[Any], end: Any, names: Any = None) -> None:
    """``end()``, which ends ``blocks`` (their rollback runs), at the program's end: a first
    Ctrl-C said (naming ``names()``, if given: the runs still rolling back then), the undos
    running on, the handler put back after; what each left said (an undo's
    KeyboardInterrupt or exit that stopped it too: attack302 F8)."""
    before = signal.getsignal(signal.SIGINT)
    ids = [repr(block._run.run_id) for block in blocks]
    kept = all(block._run.journal is not None for block in blocks)
    _ctrl_c_said(lambda: (names() if names is not None else []) or ids, at_exit=True, kept=kept)
    stop: Any = None
    try:
        end()
    except BaseException as exc:  # (the block's own error, or an undo's interrupt: said
        stop = exc if issubclass(type(exc), KeyboardInterrupt | SystemExit) else None  # below)
    finally:
        with contextlib.suppress(Exception):  # (the Ctrl-C of the rest of the end: as it was;
            if before is not None:  # once one was heard, the next ends it: attack312 F9)
                heard = signal.getsignal(signal.SIGINT) is signal.SIG_DFL
                signal.signal(signal.SIGINT, second_ends if heard else before)
    for block in blocks:
        with contextlib.suppress(Exception):
            _what_it_left(block, stop)


def aruns() -> tuple[list[Any], list[Any]]:
    """The runs of the ``saga.arun`` coroutines left as the program ends (one look: under
    load each took long enough for a rollback to end between them): in a task of a loop
    stopped (not running now: said, ``_at_exit._left_unfinished``), and in a task of a loop
    that runs in another thread (a daemon's: ``arun_left``)."""
    import gc

    saga = sys.modules.get("rollback_lessons.saga")
    code = None if saga is None else saga.Saga.arun.__code__
    stopped: list[Any] = []
    running: list[Any] = []
    for coro in gc.get_objects() if code is not None else ():
        if type(coro) is not types.CoroutineType or coro.cr_code is not code:
            continue
        with contextlib.suppress(Exception):  # (a loop of an odd kind: said by Python's end)
            run = coro.cr_frame.f_locals.get("run") if coro.cr_frame is not None else None
            home = getattr(run, "arun", None)
            on = bool(home and not home.task.done() and home.task.get_loop().is_running())
            if run is not None and (on or not coro.cr_running):
                (running if on else stopped).append(run)
    return stopped, running


DAEMON = ("was left running in a task of an event loop in another thread (a daemon's) as the "
          "program ended")  # fmt: skip
ENDED_WHY = "the program ended as the saga ran on an event loop in a daemon thread"


def arun_begun(run: Any) -> Any:
    """A ``saga.arun`` in a task of a loop running in a daemon thread as the program ends (a
    service's background work): that thread dies mid-step, nothing said. Journalled, it is
    said, the journal keeping it for ``recover``, as a crash would (None); else its end is
    begun on that loop, not waited for (``arun_ended``; every run's begun first, so that none
    runs on forward while another's rollback is waited for: attack309 F2): its task
    cancelled, its steps running cut there as ``asyncio.run``'s end cuts them (in doubt: a
    cancel alone waits for them, a step of hours kept the exit), first thing as the loop
    takes it (no step starts after it: 309 F1); one rolling back already, waited for."""
    run.exit_known = True  # (``_program_end.gate``: found, its cut handed out here; said
    run.held_at_end = run.journal is not None  # left to recover: a cancel leaves it so, 311 F5)
    if run.journal is not None and run.m.rolling:  # (its undos go on: 311 F4, said left)
        return _left(
            run,
            f"{DAEMON}, rolling back: its rollback goes on there until that thread"
            " ends with the process",
            "the journal keeps what it does not finish",
        )
    if run.journal is not None:  # (its arun ends now, cancelled: what awaits it, an exit
        loop, why = run.arun.task.get_loop(), "the program ended: left to recover"  # hook's
        loop.call_soon_threadsafe(run.arun.task.cancel, why)  # wait, ends: attack312 F2)
        return _left(run, f"{DAEMON}: no step of it begins from now, and that thread ends "
                     "with the process, cutting any running")  # fmt: skip
    said(f"saga {run.run_id!r} {DAEMON}: " + (
        "its rollback is waited for on that loop" if run.m.rolling else "its task is "
        "cancelled on that loop, its steps running cut (in doubt), its undos run there"
    ) + " (end the run before the program exits)")  # fmt: skip
    task, left = run.arun.task, types.SimpleNamespace(_run=run, outcome=None)

    def cut() -> None:  # (once: as its loop takes it, or a step of it begins: 310 F5)
        if vars(run).pop("exit_cut", None) is None or run.m.rolling or task.done():
            return
        task.cancel()
        for branch in [b for b in run.arun.branches if not b.done()]:
            branch.ended_why = ENDED_WHY
            branch.cancel()
            branch.in_run = branch.inside = -1  # (the loop's end's, as asyncio.run's: a cut)

    async def awaited() -> None:  # (the run's end, not its task's: a service that goes on
        import asyncio  # to its next job in that task hung the exit, attack309 F10)

        while not task.done() and run.m.phase.name != "DONE":
            await asyncio.sleep(0.02)
        await asyncio.sleep(0)  # (a run just over: its task's end, if it ends with it)
        if task.done() and not task.cancelled():  # (else its machine's: ``arun_ended``)
            exc = task.exception()
            left.outcome = task.result() if exc is None else getattr(exc, "outcome", None)

    from ._late_threads import begun_on

    run.exit_cut = cut  # (``_program_end.gate``)
    return left, begun_on(task.get_loop(), awaited, cut)


def rolling_of(begun: list[Any]) -> list[str]:
    """The runs of ``begun`` (``arun_begun``'s) whose rollback is not over: a Ctrl-C as the
    exit waits names them (attack310 F8: it named the first waited for, one with no undo)."""
    runs = [each[0]._run for each in begun if each is not None]
    return [repr(run.run_id) for run in runs if run.m.phase.name != "DONE"]


def arun_ended(begun: Any, names: Any = None) -> None:
    """What ``arun_begun`` began, waited for, and what the run left said (an outcome its
    cancel did not carry read off its machine: attack309 F1, a run that committed said
    nothing, the line before having said it cancelled)."""
    if begun is None:
        return
    from ._late_threads import finished

    left, closing = begun
    run = left._run

    def end() -> None:
        finished(closing, [left])
        with contextlib.suppress(Exception):  # (the cut's own LoopEnded, raised out of a task
            task = run.arun.task  # nobody awaits, as its loop stopped: said here, not again;
            if type(task._exception) is LoopEnded:  # peeked: any other error of that task is
                task._log_traceback = False  # still reported as asyncio reports it, 310 F6)
        if left.outcome is None and run.m.phase.name == "DONE":
            m = run.m
            left.outcome = types.SimpleNamespace(status=m.status(), dead_letters=m.dead_letters,
                                                 pending=m.pending, leaked=m.leaked)  # fmt: skip

    ended_at_end([left], end, names)
