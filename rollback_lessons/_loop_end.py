"""What ``asyncio.run``'s end is to a run when no Ctrl-C is behind it (``_shutdown`` reads
the cancel it sends every task left): ``LoopEnded``, and ``LoopCut`` for an undo it cut."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._results import ended

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
