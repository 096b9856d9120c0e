"""An ``AsyncRollback`` left open as the program ends whose generator, or coroutine, is
gone (``_at_exit.left_unfinished``): which are (``held``), and their end (``ended_orphan``)."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from ._at_exit import _let_go, said


def held(block: Any) -> bool:
    """Is ``block`` still in a frame: a generator's or a coroutine's (which ends it, or
    Python's shutdown closes), a frame running (a task's, not done, of a loop running in
    another thread: a plain step running there, taken for freed, attack309 F5)? Not so,
    its end will never run."""
    import gc
    import types

    with contextlib.suppress(Exception):
        if not (home := block._run.home).done() and home.get_loop().is_running():
            return True

    kinds = (types.AsyncGeneratorType, types.CoroutineType, types.FrameType)
    return any(type(holder) in kinds for holder in gc.get_referrers(block))


def ended_orphan(block: Any) -> None:
    """An ``AsyncRollback`` left open whose async generator is gone, never to end it (its
    loop closed before its hook closed it: attack302 F1, its undos never run, not a word):
    ended at the program's end, as one Python dropped (``left_at_exit``, ``alone``), if
    something still holds it; never at Python's shutdown, nor twice, nor as it is freed (a
    ``__del__`` ran the undos of a block its loop's hook then closed: attack303 F3, F4)."""
    with contextlib.suppress(BaseException):
        if block._state != "open" or sys.is_finalizing() or getattr(block._run, "left_said", 0):
            return
        run, block._state = block._run, "ending"
        how = "was left open, its async generator closed by a loop that closed first"
        then = "close the generator, aclose(), before its loop"
        if not getattr(block, "_entered_in", None) or not block._entered_in.co_flags & 0x200:
            how = "was left open, what entered it gone without ending it (a coroutine freed "
            how += "unfinished, an AsyncExitStack dropped)"  # (in no generator: 303 F5)
            then = "end the block before what holds it is dropped"
        if run.journal is not None:
            said(f"saga {run.run_id!r}: its AsyncRollback block {how}; " + _let_go(run))
            return
        said(
            f"saga {run.run_id!r}: its AsyncRollback block {how}: its undos run now, on an "
            f"event loop of their own ({then})"
        )
        block._undone_alone(GeneratorExit())
