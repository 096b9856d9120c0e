"""What a journal's writer tells a person when the journal cannot say it (a disk full to
the end, a takeover): what ``recover`` will find, or found, each step named, read from the
journal itself where it can be read (``UndoJournalRun.shown``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .verdicts import COMMIT_UNRECORDED, pivot_at_stake

if TYPE_CHECKING:
    from .journaling import JournalWriter
    from .ports import UndoJournalRun


def pivot_held(pivot: str, ran: list[str], state: str) -> str:
    """What a person learns of a pivot the journal shows ``started`` (though it never had
    its effect here: its refusal unwritten, a disk full to the end) or ``done`` (the run
    rolled back across it, in an order ``check_order`` refuses: attack264 F1, said "recover
    will call it again"): ``recover`` leaves the saga for them, and the undos it would tell
    them to run by hand ran here already."""
    why = (
        "started, though it had no effect here (its refusal could not be written)"
        if state == "started"
        else "done"
    )
    return (
        f"the journal shows {pivot!r} {why}: recover will leave the saga for a person; the "
        f"undo of {', '.join(map(repr, ran))} ran here: do not run it again"
    )


UNREAD = (
    "the journal could not be read back, and what it shows is not known here: read it with "
    "`journal show` once it can be, before recover runs"
)


def left_note(
    w: JournalWriter, jrun: UndoJournalRun, error: str, never: list[tuple[int, str]]
) -> str:
    """What a disk full to the end leaves ``recover`` to find, each step named: read
    from the journal (a full disk still reads: attack42 F6, the note named steps whose
    records it held), or, if it cannot be read at all, as the run's committed writes left it.
    ``error``: the last write's error and how often it was tried; ``never``: (position,
    step) of the steps never called (or refused before any effect)."""
    ran = list(dict.fromkeys(w.unrecorded))
    try:
        saga, shown = jrun.shown()
        pivot = saga.pivot_state
    except Exception:  # (unread at all: as this run's own committed writes left it,
        kept = jrun.kept_shown()  # attack263: guessed from what it knew, wrong)
        if kept is None:  # (those unknown too: out of memory)
            return f"journal write failed ({error}); {UNREAD}"
        pivot, shown = kept
    at = {e.step: e.position for e in w.m.log if e.position is not None}
    again = [s for s in ran if shown.get(at.get(s, -1)) == "pending"]
    lost = [s for s in ran if s not in at or shown.get(at[s]) == "intent"]
    unwritten = [s for p, s in never if shown.get(p) == "intent"]
    known = {*w.m.leaked, *ran, *unwritten}  # (and what else the run knows better)
    done = [s for p, s in sorted(w.rows.items()) if shown.get(p) == "intent"]
    done = [s for s in dict.fromkeys(done) if s not in known]
    said = f"journal write failed ({error}); the journal still shows "
    said += "the saga unfinished"
    if again and pivot_at_stake(pivot):  # recover halts there, for a person
        said += "; " + pivot_held(str(w.pivot), again, str(pivot))
    elif again:  # (attack28 F3: a disk full to the end; undos given a journal: idempotent)
        said += (
            f", and the undo of {', '.join(map(repr, again))} pending though it ran: "
            "recover will call it again (same idempotency key)"
        )
    elif pivot == "started" and w.pivot in w.m.completed:  # (recover asks a person whether
        said += (  # it happened: it did, here)
            f"; the journal shows {w.pivot!r} started, though it happened here (its done could "
            "not be written): recover will leave the saga for a person to check it"
        )
    elif pivot_at_stake(pivot) and w.m.halted:  # (in doubt, halted here too: attack310 F11)
        said += f"; the journal shows {w.pivot!r} {pivot}: recover will leave the saga for a person"
    left_in = [s for s in w.m.withdrawn if shown.get(w.before.get(s, -1)) == "pending"]
    if left_in:  # (attack279 F3: said of none, recover ran it, a refund of a charge never made)
        said += (
            f"; the undo of {', '.join(map(repr, left_in))}, logged before its step, which was "
            "never called, could not be withdrawn: recover will run it, though that step "
            "never happened"
        )
    if lost:  # (attack36 F2: recover then sends a person to a step undone here)
        said += (
            f"; {', '.join(map(repr, lost))} undone here, though the journal never "
            "recorded its undo: recover will report it leaked (it was undone)"
        )
    if unwritten:
        said += (
            f"; {', '.join(map(repr, unwritten))} not run (failed with nothing done, "
            "or never called), though the journal could not record it: recover will "
            "report it leaked"
        )
    left = [s for s in w.m.pending if s not in ran and shown.get(at.get(s, -1)) == "pending"]
    if w.m.halted and not w.halt_written and left and not pivot_at_stake(pivot):  # (F9)
        said += (
            f"; the halt for a person could not be written: recover will not know of it and "
            f"will run the undo of {', '.join(map(repr, left))} itself"
        )
    forward = w.m.record().forward_said if w.m.halted else ""
    if w.m.halted and COMMIT_UNRECORDED in str(w.m.reason):  # (attack201 F1: recover sent
        here = ", ".join(map(repr, done))
        none = f"none is left ({here} done here)" if done else "there are none"
        said += (  # a person to look for steps after the pivot, none said none were left;
            f"; every step was done, which no record of the journal says: recover will ask "
            f"a person to finish the steps after {w.pivot!r} forward by hand: {none}"
        )  # attack262 F3: "there are none", recover asking for c, done here)
    elif forward:  # (the halted event that keeps them went with the failed batch: F2)
        said += f"; to finish forward: {forward}, which no record of the journal names"
    if done:
        said += (
            f"; {', '.join(map(repr, done))} done here, though the journal could not "
            "record it: recover will report it leaked"
        )
    return said


def taken_did(w: JournalWriter, rows: dict[int, str] | None) -> str:
    """What the journal shows the process that took the saga over did (attack42 F7: it
    was said to have undone a saga it had left for a person, undoing nothing): ``rows``
    read before this process's last write (which says its step's undo leaked), the saga's
    status after it."""
    try:
        saga, _ = w.jrun.shown()  # type: ignore[union-attr]
    except Exception:  # (unread: what may be)
        rows = None
    if rows is None:
        return "its effect may have landed after recover undid the saga"
    undone = [e.step for e in w.m.log[::-1] if rows.get(e.position or -1) == "done"]
    said = f"the journal shows the saga {saga.status}"
    if not undone:
        return f"{said}, nothing of it undone by recover: its effect may stand"
    return f"its effect may have landed after recover undid {', '.join(undone)} ({said})"
