"""Runs on an event loop in another thread (a daemon's: a service's, a kernel's) once the
program's end has begun. That thread dies with the process, cutting whatever it began, so
from then on nothing of such a run begins: a run or block begun there is refused, nothing
of it run (attack310 F4: its task made only once a blocked loop freed, after the exit had
looked, its steps ran after the end, unsaid); a run the exit found starts no step, and no
step's next attempt: journalled, it stays as the journal keeps it, for ``recover``, as a
crash leaves it (F2: it went on and committed, the line having said the journal keeps it
unfinished); else the exit's cut, if its loop has not taken it yet, is taken there (F5: a
step began after the end, the cut queued behind it)."""

from __future__ import annotations

import atexit
import contextlib
import threading
from typing import Any

from .errors import ProgramEnded

SCANNED: list[bool] = []
"""Set once the exit has looked for runs on such loops (``_at_exit._ended_all``): each one
found marked ``exit_known`` (``_task_left.arun_begun``), its cut handed out."""
ENDED: list[bool] = []
"""Set as the program's end begins (``atexit``; ``_at_exit._exit_begins`` when async runs
or blocks began before: right before the exit looks for them)."""

atexit.register(ENDED.append, True)  # (as the package loads: the last hooks run it)


def elsewhere() -> bool:
    """Is the program ending, and this code in a thread other than the main one? (At
    ``atexit`` every thread still running but the main one is a daemon's.)"""
    return bool(ENDED) and threading.current_thread() is not threading.main_thread()


SCAN_CUT = ("a Ctrl-C as the program ended, as it looked for runs and blocks left open: they "
            "are ended all the same; a second Ctrl-C ends the process now")  # fmt: skip


def second_ends(signum: int, frame: Any) -> None:
    """A second Ctrl-C at the program's end, a first one noted and said: the process ends
    now, as with Python's own handler put back (which the exit's own lines would take for a
    first again: attack312 F9, it took three)."""
    import os
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)


_SAYING = threading.Lock()


def claimed(said: set[str], run_id: str) -> bool:
    """Is ``run_id``'s line ``said`` by none yet (and now this caller's)? One lock: the exit
    and a daemon's loop both say a block left (attack311 F6: said twice, once falsely)."""
    with _SAYING:
        if run_id in said:
            return False
        said.add(run_id)
        return True


def refused(what: str) -> None:
    """(As an async run or block begins.) Raise ``ProgramEnded`` there, said in one line
    too (the task may be one nobody awaits, its error never read before the end)."""
    if not elsewhere():
        return
    from ._at_exit import said

    text = (f"{what} began on an event loop in another thread (a daemon's) after the "
            "program's end began: refused, nothing of it ran (that thread ends with the "
            "process, cutting whatever it begins)")  # fmt: skip
    said(text)
    refusal = ProgramEnded(text)
    with contextlib.suppress(Exception):  # (said: not again as "never retrieved", 311 F3)
        from ._forward import dropping

        loop = __import__("asyncio").get_running_loop()
        dropping(loop, "refusals_quiet", lambda c: type(c.get("exception")) is ProgramEnded)
    raise refusal


async def gate(run: Any, block: bool = False) -> None:
    """(Before a step of ``run`` begins, or its next attempt.) Once the program's end has
    begun, in a daemon's thread: journalled, the run waits here for good (its journal keeps
    it for ``recover``; the thread ends with the process); else the exit's cut is taken now
    (``_task_left.arun_begun`` left it as ``run.exit_cut``), raised at the next await; a
    block's step (``block``) fails before its call, the block rolling back."""
    if not elsewhere():
        return
    import asyncio

    if getattr(run, "journal", None) is not None:
        if getattr(run, "stopped_by", None) is not None:  # (cancelled already, by what awaits
            return  # it: it starts nothing more, its rollback runs, 311 F5's second)
        from ._forward import quieted

        home = getattr(getattr(run, "arun", None), "task", None) or getattr(run, "home", None)
        quieted(home, running=True)  # (said: not again as its task is collected, pending)
        run.held_at_end = True  # (a cancel of its arun leaves it held: ``_arun.shielded``)
        await asyncio.get_running_loop().create_future()  # (a block's: a cancel ends it)
    if block:  # (unjournalled: its step refused, the block rolls back, as it is cut)
        raise ProgramEnded(
            "the program's end began: a step of a block on an event loop in another thread "
            "(a daemon's) does not begin there (that thread ends with the process)"
        )
    while not SCANNED and not vars(run).get("exit_known"):  # (the exit still looking for
        await asyncio.sleep(0.005)  # runs: its cut comes, none begins meanwhile, 311 F9)
    cut = vars(run).get("exit_cut")
    if cut is not None:
        cut()
        await asyncio.sleep(0)
