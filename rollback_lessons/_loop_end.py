"""What ``asyncio.run``'s end is to a run when no Ctrl-C is behind it (``_shutdown`` reads
the cancel it sends every task left): ``LoopEnded``, and ``LoopCut`` for an undo it cut."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from ._results import KEPT, ended

if TYPE_CHECKING:
    from ._drive import Driver
    from .operations import Op


class LoopEnded(BaseException):
    """``asyncio.run`` ended the loop while the engine ran, and its cancel carries no Ctrl-C
    (the signal was handled inside the loop's own code, not at an await: attack43 F6): an
    interruption, as a Ctrl-C is (what it cut is not known to be done)."""


class LoopCut(Exception):
    """An undo (no journal to call it again) that ``asyncio.run``'s end cut as it ran, no
    Ctrl-C behind it: it may have happened, so it is not called again; the rollback goes on
    as the policy says after an undo that failed so (a dead letter, or a halt), as after an
    undo's timeout (attack302 F7: every undo after it was left, never tried, as if a
    person had asked to stop). ``ki``: the ``LoopEnded`` the run raises once it ends."""

    def __init__(self, step: str, ki: BaseException) -> None:
        super().__init__(f"asyncio.run's end cut the undo of {step}: it may have happened")
        self.ki = ki

    LIMIT = "asyncio.run's end cut it as it ran: it may have happened, so it is not called again"


def loop_cut(run: Driver, exc: BaseException) -> Op | None:
    """The machine's answer to an undo ``asyncio.run``'s end cut (``LoopCut``): its work's
    end told if it is known, else a failure not tried again; None for any other ``exc``."""
    if type(exc) is not LoopCut:
        return None
    run.raise_after = run.raise_after or exc.ki  # (asyncio logs it, the outcome's notes on it)
    end = ended(exc, "undo", run.m.entry.step)  # type: ignore[union-attr]
    if end is not None:
        return run.m.undo_ok() if end[0] else run.m.undo_failed(end[1])
    return run.m.undo_failed(exc, LoopCut.LIMIT)


def not_undone(run: Any, said: str = " (not known to be undone: {})") -> str:
    """What a line said as a run is left (its loop stopped, the program ending) names: the
    steps done or perhaps in effect that no undo is known to have undone, last first, in
    ``said`` (attack302 F5: "check them by hand", naming none); '' if none, or unreadable."""
    try:
        done, maybe = run.m.in_effect()
        steps = [*done, *maybe][::-1]
    except Exception:
        return ""
    return said.format(", ".join(steps)) if steps else ""


def mid_call(run: Any) -> str:
    """The steps of ``run`` running (or waiting to try again) with no undo logged, as a line
    says its loop was left (attack310 F7: the step blocking the loop went unnamed, its effect
    perhaps landed); '' if none, or unreadable."""
    try:
        m = run.m
        busy = getattr(m, "busy", None)
        if busy is None:  # (a list's machine, a block's: the step it is in)
            busy = (m.current,) if m.phase.name in ("STEP", "STEP_WAIT") else ()
        known = {*m.in_effect()[0], *m.in_effect()[1]}
        steps = [step for step in busy if step and step not in known]
    except Exception:
        return ""
    return (
        f"; no undo logged for: {', '.join(steps)}, running then (check by hand)" if steps else ""
    )


def ended_by(exc: BaseException) -> str:
    """What ended a block at Python's shutdown, or mid-program with no loop to end it:
    Python closing what it was in (a GeneratorExit: an async generator, or a coroutine, as a
    task left pending is collected: attack303 F5, said "async generator"), or its own error
    (a block an undo run there opened: attack289 F3, said ended by Python)."""
    if issubclass(type(exc), GeneratorExit) and not sys.is_finalizing():
        aio = KEPT.get("asyncio") or sys.modules.get("asyncio")
        home = _home()
        if aio is not None and aio._get_running_loop() is not None:  # (attack297 F4)
            return (
                f"was ended as another event loop ran (its {home} dropped there, its own "
                "loop stopped)"
            )
        return f"was ended with no event loop running (its {home} dropped, its loop stopped)"
    if issubclass(type(exc), GeneratorExit):
        return f"was ended by Python's shutdown ({type(exc).__name__})"
    if type(exc) is LoopEnded and not sys.is_finalizing():  # (a run it awaited, cut: 311 F6)
        return "was ended, as the program ended, on an event loop in a daemon's thread"
    return f"failed during Python's shutdown ({type(exc).__name__})"


def _home() -> str:
    """What the block ending now was in: the nearest caller not of this package, an async
    generator's frame or a coroutine's (a task collected unfinished)."""
    frame: Any = sys._getframe(2)
    while frame is not None and str(frame.f_globals.get("__name__")).startswith("rollback_lessons"):
        frame = frame.f_back
    flags = frame.f_code.co_flags if frame is not None else 0x200
    return "coroutine" if flags & 0x80 and not flags & 0x200 else "async generator"


CLOSED = "was closed (GeneratorExit: its event loop stopped) as its rollback ran"


def rolling_cut(run: Any, how: str = CLOSED) -> str:
    """The line said of an ``AsyncRollback`` whose rollback its event loop's stop cut (the
    program ending: ``_shutdown.closed_rolling``, ``_task_left.rolling_left``)."""
    kept = ("stay in the journal, and recover runs them" if run.journal is not None else
            "are kept nowhere (no journal): check them by hand")  # fmt: skip
    return (
        f"saga {run.run_id!r}: its AsyncRollback block {how}; the undos not known to be done"
        f"{not_undone(run, ' ({})')} {kept}"
    )
