"""A rollback ``asyncio.run`` would end before its end (a second Ctrl-C: it cancels every task
left, then runs the loop until they end): it runs to its end first, and the Ctrl-C says so."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._drive import Driver
    from ._run import Run


def shut_down(run: Driver, exc: BaseException) -> bool:
    """The rollback's task cancelled from outside its shield as ``asyncio.run`` ends on a
    second Ctrl-C (it cancels every task left, the engine's too, then runs the loop until
    they end; that cancel's context is the Ctrl-C): the rollback is not cut (attack40 F4:
    the undos not run were reported nowhere). The cancel is taken back and the call made
    again (an undo is idempotent; a wait, waited again), so it runs to its end first; the
    Ctrl-C, raised after, is told what was done (``told_at_shutdown``)."""
    import asyncio

    ki = exc.__context__  # (read by type: an error's __class__ may raise or lie)
    if not (
        issubclass(type(exc), asyncio.CancelledError) and issubclass(type(ki), KeyboardInterrupt)
    ):
        return False
    task = asyncio.current_task()
    if not run.m.rolling or task is None or task.cancelling() == 0:
        return False
    task.uncancel()
    run.shutdown = ki
    return True


def told_at_shutdown(run: Run) -> None:
    """The Ctrl-C ``asyncio.run`` raised as it ended (``shut_down``) names the rollback it
    waited for, how it ended and what is left, and carries its record (``error.outcome``)."""
    if run.shutdown is None or getattr(run.shutdown, "outcome", None) is not None:
        return
    outcome = run.outcome()
    left = f"; pending: {', '.join(outcome.pending)}" if outcome.pending else ""
    run.shutdown.add_note(
        f"asyncio.run ended on this Ctrl-C while {run.name!r} rolled back: the rollback ran "
        f"to its end first ({outcome.status}{left})"
    )
    run.shutdown.outcome = outcome  # type: ignore[attr-defined]
