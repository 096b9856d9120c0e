"""Runs and blocks left as the program ends. Python's shutdown closing an async run's
coroutine (its loop stopped): the engine goes no further there (it went on, calling
observers, one starting a thread waited for ever: attack283 F4): nothing more of the run
is made, told or written; the journal keeps it unfinished for ``recover``, as a crash
would. Said once, on stderr (a with-block: ``left_at_exit``, ``undone_at_exit``)."""

from __future__ import annotations

import atexit
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from . import _program_end
from ._forward import quieted
from ._loop_end import ended_by, not_undone
from ._results import KEPT


class Finalizing(GeneratorExit):
    """The run's coroutine closed by Python's shutdown: it ends there, nothing told."""


def asyncio_here() -> Any:
    """asyncio, if loaded, with no import (one fails at Python's shutdown); else None."""
    return KEPT.get("asyncio") or (sys.modules or {}).get("asyncio")


def finalizing(run: Any, say: bool = False) -> Finalizing | None:
    """At Python's shutdown, no loop running (the run's coroutine closed as it is
    collected), the run's end there (said once if ``say``: ``arun``'s; a with-block says
    its own); else None. A with-block with no journal rolls back on a loop of its own there
    (``_shutdown.alone``): that one runs on, its undos' failures dead letters as ever."""
    aio = asyncio_here()
    if not sys.is_finalizing() or (aio is not None and aio._get_running_loop() is not None):
        return None
    if say:
        _left(run, "was ended by Python's shutdown (its event loop stopped): nothing more of "
              "it ran there")  # fmt: skip
    return Finalizing()


def _left(run: Any, how: str, kept: str = "the journal keeps it unfinished") -> None:
    """An ``arun`` its loop left unfinished, said once: ``how``, and who keeps the rest."""
    if vars(run).get("exit_said"):
        return
    vars(run)["exit_said"] = True
    kept = (f"{kept}, and recover finishes it" if getattr(run, "journal", None) is not None
            else "no journal keeps what it left undone: end the run before the program exits, "
            "or give it a journal")  # fmt: skip
    said(f"saga {getattr(run, 'run_id', '?')!r} {how}{not_undone(run)}; {kept}")
    quieted(getattr(getattr(run, "arun", None), "task", None))  # (asyncio's line: attack305 F2)


_WATCHING: list[bool] = []


def watch_aruns() -> None:
    """(As an async run or block begins: ``unowned``.) ``left_unfinished`` at the end, once."""
    if not _WATCHING:
        _WATCHING.append(True)
        atexit.register(left_unfinished)
        atexit.register(_exit_begins)  # (run right before it)
        from . import _orphaned, _task_left  # noqa: F401 (now: imported at the end, their
        # allocations ran a collection that freed a block left in a cycle before it was found)


_ENTERED: list[int] = []


def _entering(signum: int, frame: Any) -> None:
    """A Ctrl-C as ``left_unfinished`` begins, before its own handler is in place (Python
    raised it at its first line: atexit's traceback, the runs left unended and unsaid,
    attack309 F9): noted, as one in it is; a second ends the process."""
    _ENTERED.append(signum)
    with contextlib.suppress(Exception):
        signal.signal(signal.SIGINT, _program_end.second_ends)


def _exit_begins() -> None:
    """(``atexit``, right before ``left_unfinished``.) ``_entering`` for Python's handler."""
    _program_end.ENDED.append(True)  # (no step of a daemon's loop's runs begins from now)
    with contextlib.suppress(Exception):
        if not _IGNORED_AT_START and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _entering)


def left_unfinished() -> None:
    """At the program's end (``atexit``: Python still whole), each ``saga.arun`` still
    suspended, its loop stopped, said now, once: Python's shutdown closes its coroutine
    later, or never, nothing said (attack288 F7: no line in 2 of 30); one in a loop running
    in another thread (a daemon's): ``_task_left.arun_left``; the blocks left, ended."""
    heard: list[int] = list(_ENTERED)  # (one as it began: ``_entering``)

    def noted(signum: int, frame: Any) -> None:  # (a first Ctrl-C as it looks: noted, it
        with contextlib.suppress(Exception):  # goes on; a second ends the process, 302 F9: a
            signal.signal(signal.SIGINT, _program_end.second_ends)  # traceback, the block left
            said(_program_end.SCAN_CUT)  # unended; said now, as it comes: attack312 F9)

    _LOOKING[:] = [noted]  # (undos run meanwhile: ``_ctrl_c_said``'s own, then this again)

    before = signal.getsignal(signal.SIGINT)
    ours = (signal.SIG_DFL, signal.default_int_handler, _entering)
    with contextlib.suppress(Exception):
        if not _IGNORED_AT_START and not heard and before in ours:
            signal.signal(signal.SIGINT, noted)
    try:  # (all of it: a Ctrl-C as a line is said printed atexit's traceback, 305 F4)
        _ended_all(heard)
    finally:
        with contextlib.suppress(Exception):
            if before is not None and signal.getsignal(signal.SIGINT) in (noted, _entering):
                back = signal.default_int_handler if before is _entering else before
                signal.signal(signal.SIGINT, back)


def _ended_all(heard: list[int]) -> None:
    from . import _task_left as tasks
    from ._orphaned import ended_orphan

    left, orphans, running = _left_unfinished()
    try:
        begun = [tasks.arun_begun(run) for run in running]  # (a daemon's loop's: all cut at once)
    finally:
        _program_end.SCANNED.append(True)  # (runs on such loops wait for it: 311 F9)
    if heard and (left or orphans or running or _open_blocks("_Base", "ending") or
                  _open_blocks("_Base")):  # (one as it began: ``_entering``)  # fmt: skip
        said(_program_end.SCAN_CUT)
    for agen, blocks in left.items():
        _ended_here(agen, blocks)
    for block in orphans:  # (whose generator is gone: attack302 F1)
        ended_orphan(block)
    done = {id(block) for blocks in left.values() for block in blocks}  # (at a yield: ended)
    for task, blocks in tasks.awaiting(_open_blocks("AsyncRollback"), done).items():
        tasks.ended_in_task(task, blocks)  # (in a task: 303 F7; said once, 311 F6)
        done |= {id(block) for block in blocks}
    for task, blocks in tasks.awaiting(_open_blocks("AsyncRollback", "ending"), done).items():
        if task.get_loop().is_running():  # (rolling back on a daemon's loop: 310 F3)
            tasks.rolling_there(task, blocks)
    for each in begun:
        tasks.arun_ended(each, lambda: tasks.rolling_of(begun))
    tasks.rolling_left()


def _left_unfinished() -> tuple[dict[Any, list[Any]], list[Any], list[Any]]:
    from ._orphaned import held as is_held
    from ._task_left import aruns

    stopped, running = aruns()
    for run in stopped:
        _left(run, "was left unfinished as the program ended (its event loop stopped): "
              "nothing more of it runs")  # fmt: skip
    left = _left_in_async_generators()
    blocks = _open_blocks("AsyncRollback")
    held = {id(b._run) for b in blocks if is_held(b)}  # (a copy of a held one: never ended,
    orphans: dict[int, Any] = {}  # attack303 F1; one block a run, the last entered first)
    for block in sorted(blocks, key=lambda b: -b._run.started):
        if id(block._run) not in held:
            orphans.setdefault(id(block._run), block)
    return left, list(orphans.values()), running


def _left_in_async_generators() -> dict[Any, list[Any]]:
    """The ``AsyncRollback`` blocks still open in async generators whose event loop stopped
    (a ``run_until_complete`` ended, never run again), by generator: the loop's own hook
    would close it there, and never does (attack294 F1: no undo, no line)."""
    import gc
    import types

    found: dict[Any, list[Any]] = {}
    for block in _open_blocks("AsyncRollback"):
        with contextlib.suppress(Exception):
            for agen in gc.get_referrers(block):
                if type(agen) is types.AsyncGeneratorType and _closable(agen, block):
                    found.setdefault(agen, []).append(block)
                    break
    return found


def entered_in(frame: Any) -> Any:
    """The code a block is entered in, past contextlib's (an AsyncExitStack's: attack306 F8)."""
    while frame.f_back is not None and frame.f_globals.get("__name__") == "contextlib":
        frame = frame.f_back
    return frame.f_code


def _closable(agen: Any, block: Any) -> bool:
    """Is ``agen`` the generator ``block`` was entered in (not one holding it: a watcher of
    its events, attack303 F2), at a ``yield`` (not an ``await`` in a task: F7)?"""
    home = getattr(block, "_entered_in", None)
    return agen.ag_frame is not None and not agen.ag_running and agen.ag_code is home


def _ended_here(agen: Any, blocks: list[Any]) -> None:
    """The blocks ``_left_in_async_generators`` found in ``agen``, at the program's end,
    Python whole: all journalled, none of their undos run (said: the journal keeps them, as
    at Python's shutdown); else the generator is closed on an event loop of its own, so
    each block rolls back as on any error, the one without a journal its only chance (said
    first; a journalled one beside it too: attack296 F4), and what that left is said (F2),
    a first Ctrl-C held as it runs (F1), an interrupt an undo raises told (F6)."""
    home = blocks[0]._run.home  # (a loop still running at the end: a daemon thread's, which
    other = home.get_loop() if home is not None and home.get_loop().is_running() else None
    loop_was = "its event loop stopped" if other is None else "its event loop left running in "
    loop_was += "" if other is None else "another thread (a daemon's, ended with the program)"
    if all(block._run.journal is not None for block in blocks):  # never closes it: 302 F6)
        for block in blocks:
            LEFT_SAID.add(block._run.run_id)
            said(
                f"saga {block._run.run_id!r}: its AsyncRollback block was left suspended in "
                f"an async generator as the program ended, {loop_was}; none of its "
                f"undos ran{not_undone(block._run)}: the journal keeps it unfinished, and "
                "recover runs them"
            )
        return
    for block in blocks:
        block._run.exit_told = True  # (what an undo's sys.exit left: said below, 301 F2)
        said(
            f"saga {block._run.run_id!r}: its AsyncRollback block was left suspended in an "
            f"async generator as the program ended, {loop_was}: it is ended now, its undos "
            f"run on {'that loop' if other else 'an event loop of their own'} (end the block "
            "before the program exits)"
        )

    def close() -> None:
        if other is not None:  # (its own loop: it is suspended at a yield there, so closed
            from ._late_threads import closed_on  # there)

            return closed_on(other, agen.aclose, blocks)
        import asyncio

        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(agen.aclose())
        finally:
            with contextlib.suppress(BaseException):
                loop.close()

    from ._task_left import ended_at_end

    ended_at_end(blocks, close)


@contextlib.contextmanager
def dropped(run: Any) -> Iterator[None]:
    """(``_shutdown.alone``.) A block whose async generator Python dropped mid-program, no
    loop running, rolling back on a loop of its own: a first Ctrl-C there is said, the
    undos running on, its handler put back after; then what they left is said, dead
    letters, undos not known done (attack297 F1-F3: neither said, a Ctrl-C Python's
    "ignored" error). At Python's shutdown, as ever (``undone_at_exit``)."""
    if run is None or sys.is_finalizing():
        yield
        return
    before = signal.getsignal(signal.SIGINT)
    _ctrl_c_said(repr(run.run_id), at_exit=True, when="as its generator was dropped")
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            if before is not None:
                signal.signal(signal.SIGINT, before)
        with contextlib.suppress(Exception):
            stop, run.raise_after = run.raise_after, None  # (said here: never raised into
            kept = "kept nowhere"  # Python's "Exception ignored" traceback, attack297 F3)
            if stop is not None:
                kept += f"; an undo raised {type(stop).__name__}, its rollback stopped"
            _left_by(run.run_id, run.m.dead_letters, run.m.pending, kept)


def _what_it_left(block: Any, stop: Any = None) -> None:
    """A block ``_ended_here`` rolled back, what its rollback left, said if anything (and
    the interrupt an undo raised that stopped it: attack302 F8)."""
    out = block.outcome
    if out is None or str(out.status) == "rolled_back":
        return
    if str(out.status) == "committed":  # (its last step returned before the cut: 309 F1)
        return said(f"saga {block._run.run_id!r} committed there, before the cut came")
    kept = "the journal keeps it" if block._run.journal is not None else "kept nowhere"
    kept += f"; an undo raised {type(stop).__name__}, its rollback stopped" if stop else ""
    _left_by(block._run.run_id, out.dead_letters, out.pending, kept, f" {out.status}", out.leaked)


def _left_by(
    run_id: str, dead_letters: Any, pending: Any, kept: str, status: str = "", leaked: Any = ()
) -> None:
    """What a rollback there left, said, if anything: its dead letters, its undos not known
    to be done, the steps with no undo logged (cut in doubt: ``arun_left``)."""
    dead = [f"{d.step} ({type(d.error).__name__}: {d.error})" for d in dead_letters]
    told = [f"dead letters: {', '.join(dead)}"] if dead else []
    told += [f"not known to be undone: {', '.join(pending)}"] if pending else []
    told += [f"no undo logged for: {', '.join(leaked)} (check by hand)"] if leaked else []
    how = f" ended{status} there" if status else ": its rollback there left"
    if told:
        said(f"saga {run_id!r}{how} ({kept}): {'; '.join(told)}")


LEFT_SAID: set[str] = set()
"""Run ids whose block ``_ended_here`` said left to the journal (``left_at_exit``: once)."""


def left_at_exit(run_id: str, exc: BaseException, block: str = "Rollback", run: Any = None) -> None:
    """A journalled block ended by the interpreter's shutdown (a generator left suspended
    that Python closes as it exits): its undos are not run there, where builtins and
    modules are being torn down (each one failed, written a dead letter for a person, and
    the process exited 0: attack84 F3); the journal keeps the saga unfinished, as a crash
    would, and ``recover`` runs them once this process has ended. Said on stderr. Its
    generator dropped mid-program (``run``'s), the saga is let go: ``recover`` in this
    process runs them too (attack301 F3: refused, "still running", for the process's life)."""
    if not _program_end.claimed(LEFT_SAID, run_id):  # (once, whoever says it first: 311 F6)
        return
    if run is None or sys.is_finalizing() or _program_end.elsewhere():
        said(
            f"saga {run_id!r}: its {block} block {ended_by(exc)}; none of its undos ran "
            "there: the journal keeps it unfinished, and recover runs them"
        )
    else:
        said(f"saga {run_id!r}: its {block} block {ended_by(exc)}; {_let_go(run)}")


def _let_go(run: Any) -> str:
    """A journalled block ended mid-program, none of its undos run: its saga let go, so
    ``recover`` in this process runs them too (attack301 F3: refused, "still running", for
    the process's life); what to say of it."""
    from .journal_end import let_go

    run.left_said = True  # (``_orphaned.ended_orphan`` says no more of it)
    jrun = run.journal.jrun if run.journal.jrun is not None else run.journal.dropped
    where = " (in this process too: it was let go)" if jrun and let_go(jrun) else ""
    kept = "the journal keeps it unfinished, and recover runs them"
    return f"none of its undos ran there: {kept}{where}"


def undone_at_exit(run_id: str, exc: BaseException, block: str = "Rollback") -> None:
    """A block with no journal ended by Python's shutdown: its undos are run there, the only
    chance they have, but with builtins and modules half torn down, and what fails there is
    seen by nobody (attack85 F3: silent, exit 0). Said on stderr before they run."""
    if not sys.is_finalizing():  # (its async generator collected, no loop running: F5)
        said(f"saga {run_id!r}: its {block} block {ended_by(exc)}; its undos run now, on an "
             "event loop of their own, and no journal keeps what fails: end the block "
             "before what it is in is dropped, or give it a journal")  # fmt: skip
        return
    said(
        f"saga {run_id!r}: its {block} block {ended_by(exc)}; its undos run now, with "
        "Python half torn down, and no journal keeps what fails: end the block before the "
        "program exits, or give it a journal"
    )
    _no_thread_starts()
    _ctrl_c_said(run_id)


def _ctrl_c_said(
    run_id: str | Any, at_exit: bool = False, when: str = "", kept: bool = False
) -> None:
    """Python's shutdown puts the default Ctrl-C back: one as the undos run there killed the
    process, unsaid (attack290 F4). A first one is only said (the undos run on); a second ends
    the process; one ignored as it began stays ignored (attack296 F3). ``kept``: by a journal."""
    when = when or ("as the program ends" if at_exit else "at Python's shutdown")

    def heard(signum: int, frame: Any) -> None:
        with contextlib.suppress(Exception):
            signal.signal(signal.SIGINT, signal.SIG_DFL)
        ids = run_id() if callable(run_id) else [run_id]  # (those rolling back then: 310 F8)
        saga = f"saga{'s' * (len(ids) > 1)} {', '.join(ids)}" if at_exit else f"saga {ids[0]!r}"
        left = ("; the journal keeps those not yet run, for recover" if kept else  # (312 F8)
                ", leaving those not yet run undone, and nothing keeps them")  # fmt: skip
        chance = "" if kept else ", their only chance"
        said(f"a Ctrl-C {when}: the undos of {saga} still run{chance}; a second Ctrl-C ends the "
             f"process now{left}")  # fmt: skip

    with contextlib.suppress(Exception):  # (not the main thread, or signal torn down)
        now = signal.getsignal(signal.SIGINT)
        if _IGNORED_AT_START or now == signal.SIG_IGN:
            return
        if now in (None, signal.SIG_DFL, signal.default_int_handler, *_LOOKING):
            signal.signal(signal.SIGINT, heard)


_IGNORED_AT_START = signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # (a `cmd &`: it stays)
_LOOKING: list[Any] = []  # (``left_unfinished``'s Ctrl-C handler)


def _no_thread_starts() -> None:
    """A thread started at Python's shutdown never runs, and CPython 3.11's ``Thread.start``
    waits for it for ever: an undo run there that starts one (a pool's, ``to_thread``)
    hung the process, the undos after it never run (attack290 F3). From here on a start
    there raises, as it does from 3.12 on: that undo fails, the others run."""
    start = threading.Thread.start
    if getattr(start, "refused_at_exit", False):
        return

    def refusing(self: threading.Thread) -> None:
        if sys.is_finalizing():
            raise RuntimeError("can't create new thread at interpreter shutdown")
        start(self)

    refusing.refused_at_exit = True  # type: ignore[attr-defined]
    threading.Thread.start = refusing  # type: ignore[method-assign]


def no_loop(exc: BaseException, run: Any = None) -> bool:
    """Is ``exc`` an async generator's close that nothing awaits (Python's cycle collector
    dropped it, its loop stopped, the program running on): with no event loop running
    (attack296 F5), or with another loop running in this thread (attack297 F4: an await
    there gave the close up, "async generator ignored GeneratorExit", the undos ran on as
    that loop's task, a journal's too, and the line at the exit was false)? The block then
    rolls back as at Python's shutdown, on a loop of its own. (An ``aclose()`` awaited,
    or run by a task, as the loop's own hook and ``asyncio.run``'s end do, is no such
    close: its caller awaits it there.)"""
    if getattr(run, "journal", None) is not None and _program_end.elsewhere():  # (journalled,
        return True  # left to recover as the program ended, on a daemon's loop: 311 F6)
    aio = asyncio_here()  # (by its type: a __class__ that raises is read by none of this)
    if not issubclass(type(exc), GeneratorExit) or aio is None:
        return False
    if aio._get_running_loop() is None:
        return True
    frame: Any = sys._getframe(1)
    while frame is not None and not frame.f_code.co_flags & 0x200:  # (CO_ASYNC_GENERATOR)
        frame = frame.f_back  # (the block's async generator: the frame closed)
    if frame is None:
        return False
    import dis

    task = aio.current_task()
    if type(task.get_coro() if task is not None else None).__name__ == "async_generator_athrow":
        return False  # (a task of its own closes it: the loop's hook, a gather)
    caller = frame.f_back  # (at an await of it: ``await agen.aclose()``, ``aclosing``)
    return caller is None or dis.opname[caller.f_code.co_code[caller.f_lasti]] != "SEND"


def _open_blocks(kind: str, state: str = "open") -> list[Any]:
    """The blocks of class ``kind`` of ``rollback`` (``_Base``: every one) still open (or in
    ``state``), by a gc scan; none if never imported. Read by type (never ``__class__``)."""
    import gc

    cls: Any = getattr(sys.modules.get("rollback_lessons.rollback"), kind, None)
    found: list[Any] = []
    for block in gc.get_objects() if cls is not None else ():
        with contextlib.suppress(Exception):
            if issubclass(type(block), cls) and block._state == state:
                found.append(block)
    return found


def said(line: str) -> None:
    """``line`` on the process's own stderr, no import (they fail at Python's shutdown),
    nothing raised (a closed stderr: nothing more to say)."""
    with contextlib.suppress(Exception):
        sys.__stderr__.write(f"rollback-lessons: {line}\n")  # type: ignore[union-attr]
