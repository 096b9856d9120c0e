"""What an interruption that comes once a saga committed, or as its commit is written,
says: nothing was undone, and why; the note names what came (a Ctrl-C, a ``sys.exit``,
``asyncio.run``'s end), as the engines' runs do."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from ._shutdown import LoopEnded, exit_said
from .machine import Phase
from .outcome import Outcome, Status
from .schedule import PAST_PIVOT
from .verdicts import COMMIT_UNRECORDED, REFUSED, interruption_name, rollback_notes

if TYPE_CHECKING:
    from ._run import Run

E = TypeVar("E", bound=BaseException)


AFTER_COMMIT = "rollback: the Ctrl-C came once the saga had committed: there is nothing to undo"
AFTER_LOOP = AFTER_COMMIT.replace("the Ctrl-C came", "asyncio.run ended the loop")  # (no Ctrl-C)


def committed(run: Run) -> bool:
    """Has the run committed (ended, never failed)? Its commit written is final, even if a
    Ctrl-C came before the machine ended its phase (``Machine.commit_final``)."""
    m = run.m
    if m.commit_written and not m.rolling:
        m.commit_final()
    return m.phase is Phase.DONE and not m.rolling


def after_commit(exc: BaseException) -> str:
    """The note of an interruption (``exc``) that came once the saga had committed, by its
    name: a ``sys.exit`` is no Ctrl-C (attack58 F6), ``asyncio.run``'s end neither (attack52)."""
    if issubclass(type(exc), LoopEnded):
        return AFTER_LOOP
    if isinstance(exc, KeyboardInterrupt):
        return AFTER_COMMIT
    return AFTER_COMMIT.replace("the Ctrl-C", f"the {interruption_name(exc)}")


def committed_note(exc: BaseException, run: Run) -> BaseException:
    """A Ctrl-C that came once the saga committed says so (once), in ``Rollback``,
    ``AsyncRollback``, ``saga.run`` and ``saga.arun`` alike: nothing was undone, and nothing
    needed to be; a ``sys.exit``'s note on stderr too, as the engines' (attack58 F6)."""
    said = after_commit(exc)
    if not issubclass(type(exc), Exception) and said not in getattr(exc, "__notes__", ()):
        exc.add_note(said)
        exit_said(run, exc)
    return exc


AFTER_COMMIT_CANCEL = "rollback: the cancel was heard once the saga had committed: nothing to undo"


def cancelled_with(stopped: E, outcome: Outcome) -> E:
    """A cancelled ``arun`` task's CancelledError, carrying the outcome (``error.outcome``);
    one that came once the saga had committed says so (attack37 F6: a committed outcome, no
    word of why the cancel did nothing); else what the rollback left, as notes, which the
    traceback of ``asyncio.run``'s KeyboardInterrupt shows (attack57 L3: halted, not a word)."""
    stopped.outcome = outcome  # type: ignore[attr-defined]
    said = getattr(stopped, "__notes__", ())
    if outcome.status is Status.COMMITTED and AFTER_COMMIT_CANCEL not in said:
        declined = f"rollback: {PAST_PIVOT}"  # (it came as the pivot ran: attack44 F3)
        note = declined if PAST_PIVOT in outcome.notes else AFTER_COMMIT_CANCEL
        if note not in said:
            stopped.add_note(note)
    elif outcome.status is not Status.COMMITTED:
        for note in outcome_notes(outcome):
            if note not in said:
                stopped.add_note(note)
    return stopped


def outcome_notes(outcome: Outcome) -> list[str]:
    """What a rollback left, by its outcome, in the machine's wording (``rollback_notes``),
    for an exception raised after the run with no run at hand (an engine's, a cancel's)."""
    cut = any(e.kind == "rollback_done" and "interrupted" in e.details for e in outcome.events)
    return rollback_notes(
        outcome.dead_letters, outcome.pending, outcome.leaked, outcome.notes, cut=cut,
        forward=outcome.forward_said, finished=any(
            e.kind == "halted" and COMMIT_UNRECORDED in str(e.details.get("reason", ""))
            for e in outcome.events
        ),
    )  # fmt: skip


def commit_in_doubt(run: Run, error: BaseException) -> bool:
    """Did ``error`` (a Ctrl-C) come as the journal recorded the commit, and could the
    journal not be read back (``journal_watch``, attack70 F4)? Then it alone knows whether
    the commit landed: no outcome says committed, nothing is undone, a note says so
    (``saga.run`` and the with-blocks alike: attack52 F1)."""
    what = "the Ctrl-C" if isinstance(error, KeyboardInterrupt) else interruption_name(error)
    what = what if what == "the Ctrl-C" else f"the {what}"  # (attack62 L1: no article)
    said = f"rollback: {what} came as the journal recorded the commit: nothing was undone; "
    said += "the journal says whether it committed (if not, recover "
    past = "leaves it for a person: past its irreversible step nothing is undone)"
    said += past if run.m.pivot_done else "rolls it back)"  # (attack58 F9: recover halts)
    if error is run.in_doubt and said not in getattr(error, "__notes__", ()):
        error.add_note(said)
        exit_said(run, error)  # (a SystemExit's: on stderr, attack53 F6)
    return error is run.in_doubt


def with_notes(outcome: Outcome) -> Outcome:
    """``outcome``, its error carrying what the rollback left as notes, as ``saga.run``'s
    does (attack287 F4: an engine's came back bare, ``raise_for_status`` telling less)."""
    error = outcome.error
    if error is None or outcome.status is Status.COMMITTED:
        return outcome
    try:
        for note in outcome_notes(outcome):
            if note not in getattr(error, "__notes__", ()):
                error.add_note(note)
    except Exception:  # (one that refuses notes: the outcome keeps them, as saga.run's)
        refused = REFUSED.format(type(error).__name__)
        return replace(outcome, notes=(*outcome.notes, refused))  # (attack288 F3)
    return outcome
