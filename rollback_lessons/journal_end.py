"""The run's end in the journal (``JournalWriter.end``): its last batch (its last events, the
steps never called, those cut short, its status). A rollback's end is written at its
``rollback_done`` event, before the run's observers hear it, as a commit is at its own
(attack70 F2: a Ctrl-C in an observer of that event left the journal ``rolling_back`` for
good while the process lived, the outcome ``rolled_back``, not a word). A rollback an
interruption cut short, or whose end it cut before it was written, is left to ``recover``,
and a note says so."""

from __future__ import annotations

import contextlib
from functools import partial
from typing import TYPE_CHECKING

from .errors import TakenOver
from .events import EventKind
from .journal_notes import left_note
from .outcome import EARLY, ran_on
from .verdicts import KEEPS, interruption_name

if TYPE_CHECKING:
    from .journaling import JournalWriter
    from .ports import UndoJournalRun

UNRECORDED = (
    ", though the journal could not record it: recover will call it again (same idempotency key)"
)
CUT_RECORD = (
    "; the Ctrl-C cut the write of its record: unless it landed, recover will call it again "
    "(same idempotency key)"
)
END_CUT = "the Ctrl-C came as the journal recorded the rollback's end: unless that landed, "
END_UNWRITTEN = "the Ctrl-C came before the journal recorded the rollback's end: "
END_RECORDED = (
    "the Ctrl-C came once the journal had recorded the rollback's end: it shows the saga "
)
UNFINISHED = (  # (when: at once if the run lets its saga go, else once its process ends,
    "the journal still shows the saga unfinished, for recover to finish"  # said by ``HELD``)
)
ATTEMPTS = 3  # a write the run's end relies on (a commit, its last batch): tried this often


def end(w: JournalWriter, error: BaseException | None) -> None:
    """The run ended: its last batch, tried as often as a commit (one failed write left a
    step never called with its intent, which recover reports leaked: attack20's N3), unless
    written at the rollback's end event already (``at_rollback_done``). A Ctrl-C leaves the
    run for ``recover`` to finish, and a failed write during the rollback left it
    unfinished: then only the steps never called (failed before any effect, or never begun)
    are written, alone (attack19's F2/F7, attack18), and so they are after a Ctrl-C in the
    last batch's tries. If a write still fails (a disk full until the process ends), the
    intents stay: recover reports them leaked, the safe side."""
    w.m.told_not_run = None  # (no cycle left: machine -> writer -> machine)
    if isinstance(w.m.error, TakenOver) or w.ended:
        return  # (taken over: the new holder ends it; or written at the rollback's end)
    jrun = w.jrun if w.jrun is not None else w.dropped
    if jrun is None:
        return  # (no journal, or taken over while rolling back)
    if w.jrun is None or w.m.interruption is not None:
        left_to_recover(w, jrun)
        return
    last_batch(w, jrun, error)


def at_rollback_done(w: JournalWriter) -> None:
    """The rollback ended, nothing cut it short: its end (its status, the steps never called,
    those leaked) written with its ``rollback_done`` event, now, before the run's observers
    hear it. A Ctrl-C in the write is raised (the machine keeps it: the rollback is over) and
    the run's end says whether the journal may still show the saga unfinished."""
    assert w.jrun is not None
    w.ending = True
    last_batch(w, w.jrun, w.m.error)
    w.ended = True


def never_called(w: JournalWriter) -> tuple[list[str], list[int], str | None, list[str]]:
    """The steps the machine never heard of that have an intent row (``Machine.not_run``: a
    Ctrl-C as they began; never called), their rows (taken out of ``w.intents``), the
    pivot among them (or the pivot whose start's write failed once its ``started`` was
    written: its action never called, recover halted for a person at a pivot that "may have
    happened", attack268 F1), and the steps whose undo logged before them was withdrawn."""
    steps = [s for s in list(w.intents) if s not in w.m.kinds]
    not_run = [w.intents.pop(s) for s in steps]
    pivot = w.pivot if w.pivot in steps or w.pivot == w.uncalled else None
    return steps, not_run, pivot, list(w.m.withdrawn)


def left_to_recover(w: JournalWriter, jrun: UndoJournalRun) -> None:
    """A run an interruption cut (or whose writes failed): only the steps never called are
    written, alone; each undo run here whose record no write carried is said, and so is a
    journal left showing the saga unfinished that no note names (attack70 F2)."""
    names, not_run, pivot, withdrawn = never_called(w)
    never = [*w.refused, *not_run]
    m = w.m
    cut_by = m.interruption  # (a sys.exit is no Ctrl-C: attack62 F9)
    unwritten, owed = carried(w, jrun) if w.jrun is not None else (None, False)  # (first)
    if never or pivot is not None or withdrawn:  # (taken over meanwhile: fenced,
        try:  # nothing written; a Ctrl-C is kept)
            failed = len(w.tried(partial(jrun.abandon_now, never, pivot, withdrawn)))
            if failed >= ATTEMPTS and owed:  # (with the kept writes, as they are written:
                owe_abandoned(jrun, never, pivot, withdrawn)  # attack276 F1)
        except TakenOver:
            pass
        except BaseException:  # a second Ctrl-C: unwritten, recover reports those steps
            if cut_by is None:  # leaked (the safe side); the saga is still let go below
                raise  # (attack104 F10: it was held until the process ended)
    ran = list(dict.fromkeys(w.unrecorded))  # (attack44 F8: said nowhere)
    cut = [  # (run, their done cut by the Ctrl-C: attack52 M1, attack53 F5)
        s for s in dict.fromkeys(m.compensated) if s not in {*ran, *w.taken}
    ]
    what = "Ctrl-C" if isinstance(cut_by, KeyboardInterrupt | None) else interruption_name(cut_by)
    said = [
        f"the undo of {', '.join(map(repr, steps))} ran here{how.replace('Ctrl-C', what)}"
        for steps, how in ((ran, UNRECORDED + (LATER if owed else "")), (cut, CUT_RECORD))
        if steps
    ]
    if cut_by is not None and w.jrun is not None and "journal keeps" not in m.cut_note:
        said.append(end_said(w, jrun).replace("Ctrl-C", what))
    if unwritten is not None:  # (what recover finds, read from the journal, as a disk full
        was, m.cut_note = m.cut_note, m.cut_note.replace(KEEPS, "")  # to the end's is)
        m.notes = [m.cut_note if n == was else n for n in m.notes]
        with contextlib.suppress(Exception):  # (told on the Ctrl-C already: as it is now)
            told = cut_by.__notes__  # type: ignore[union-attr]
            cut_by.__notes__ = [n.replace(was, m.cut_note) for n in told]  # type: ignore[union-attr]
        named = [*zip(w.refused, w.refusals, strict=True), *zip(not_run, names, strict=True)]
        said.append(left_note(w, jrun, unwritten, named) + (OWED_KEPT if owed else ""))
        jrun.left_said = said[-1].removeprefix(f"journal write failed ({unwritten}); ")
    for note in said:
        try:
            m.note(EventKind.JOURNAL_FAILED, note)
        except BaseException:  # (an observer's second Ctrl-C: the saga is still let go
            if cut_by is None:  # below, attack104 F10)
                raise
        with contextlib.suppress(Exception):  # (the Ctrl-C raised after says it)
            cut_by.add_note(f"rollback: {note}")  # type: ignore[union-attr]
    in_undo = m.interrupted_undo is not None  # (its call may run on in
    # a helper thread or a pool: recover would run it again at once, attack102 F1; so may a
    # call an earlier attempt left running, or a step's given up, attack103 F1)
    if cut_by is None or w.jrun is None:
        return
    with contextlib.suppress(BaseException):  # (its process may live on: recover may take it
        held = HELD if in_undo or w.runs_on else None  # now, attack101 F5; or, if a call of
        held = held or (None if let_go(jrun) else NOT_LET_GO)  # its may go on, once it ends)
        if held is NOT_LET_GO and owed:  # (let go with the kept writes, when written)
            jrun.release(now=False)
            held += LET_GO_LATER
        if held is not None:
            m.note(EventKind.JOURNAL_FAILED, held)
            cut_by.add_note(f"rollback: {held}")


def carried(w: JournalWriter, jrun: UndoJournalRun) -> tuple[str | None, bool]:
    """The writes a failed write kept for the next (``durably``: an undo logged, its done, a
    pivot's end, a halt), written before the notes and the saga let go: the run's last
    writes went without them (attack266: a disk full for a moment, then a Ctrl-C; recover
    reported an undo logged here leaked, a pivot done in doubt, ran a halt's undos). None
    once written; if they could not be, why (the journal as it is then: ``left_note``), and
    whether they are owed (failed writes, not a second Ctrl-C: in doubt, never written again)."""
    try:
        errors = w.tried(partial(jrun.flush, sync=False))  # (the release after it syncs)
    except TakenOver:
        return None, False  # (the new holder finishes it: nothing of it written here)
    except BaseException as exc:  # (a second Ctrl-C: as they may be)
        return f"{type(exc).__name__} as it was written again", False
    if len(errors) >= ATTEMPTS:  # (kept: with the journal's next write, its close or the
        owed = jrun.owe()  # process's end, as a last batch is; attack276 F1: dropped)
        return f"{errors[-1]}, {ATTEMPTS} attempts", owed
    w.unrecorded.clear()  # (written: an undo's done, a halt, with them)
    w.unsure.clear()
    w.halt_written = True
    return None, False


def owe_abandoned(
    jrun: UndoJournalRun, never: list[int], pivot: str | None, withdrawn: list[str]
) -> None:
    """``abandon_now``'s writes, failed as the kept ones did: owed with them."""
    for position in never:
        jrun.abandon(position)
    for step in withdrawn:
        jrun.withdraw(step)
    if pivot is not None:
        jrun.pivot(pivot, "refused", flush=False)


LATER = ", unless this journal writes it first (as said below)"
LET_GO_LATER = ", or as this journal writes what the failed write kept (as said above)"
HELD = (
    "the saga stays with this process, as a call of its run was cut or left running and may "
    "go on: recover takes it once this process ends"
)
NOT_LET_GO = (
    "the saga was not let go (interrupted again, or the journal failed, as that was written): "
    "recover takes it once this process ends"
)


def let_go(jrun: UndoJournalRun, tries: int = 3) -> bool:
    """Write the release, again if a second Ctrl-C (a person pressing twice, as the write
    waits for the journal's lock) cut it: the saga was otherwise held until the process
    ended, recover saying it may still run (attack102 F8). Fenced: taken over, not needed."""
    for _ in range(tries):
        try:
            jrun.release()
            return True
        except TakenOver:
            return True
        except BaseException:  # (the first interruption is raised all the same)
            continue
    return False


def end_said(w: JournalWriter, jrun: UndoJournalRun) -> str:
    """What an interruption leaves of the rollback's end in the journal. Cut as that write
    was made (``w.ending``), it is read back, as the commit is (``journal_watch``): a Ctrl-C
    as the write returned, once COMMIT had, said "unless that landed" of an end the journal
    shows, with nothing for recover to finish (attack72 F4). Unread: as it may be."""
    if not w.ending:
        return END_UNWRITTEN + UNFINISHED
    try:
        status = jrun.shown()[0].status
    except BaseException:  # (a read that fails, a second Ctrl-C: in doubt, said so)
        status = None
    if status is None or status in ("running", "rolling_back"):
        return END_CUT + UNFINISHED
    return f"{END_RECORDED}{status}, and recover has nothing of it to finish"


DEAD_RAN_ON = ran_on(dead=True)
"""A leaked row's words for a step whose work ran on unwaited and whose undo failed."""


def last_batch(w: JournalWriter, jrun: UndoJournalRun, error: BaseException | None) -> None:
    """The run's last batch, tried ``ATTEMPTS`` times; a Ctrl-C in its tries leaves it to
    recover, the steps never called written alone (attack21's E2), and is raised. Never
    written: the journal keeps the saga unfinished, and a note says what recover finds."""
    steps, not_run, pivot, withdrawn = never_called(w)
    w.withdraw(jrun)
    for position in not_run:
        jrun.abandon(position)
    if pivot is not None:
        jrun.pivot(pivot, "refused", flush=False)
    for step in w.m.leaked:  # a step cut short after it began: it may have happened
        if step in w.intents:
            jrun.leaked(w.intents.pop(step))
        elif step in w.settled:  # (returned, cut short before the machine heard)
            jrun.leaked(w.settled.pop(step)[0])
        elif step in w.m.compensated:  # (undone while it ran on: attack95 F1)
            jrun.ran_on(step, f"step {step!r}: {EARLY}")
        elif step in {d.step for d in w.m.dead_letters}:  # (its undo failed: F8)
            jrun.ran_on(step, f"step {step!r}: {DEAD_RAN_ON}")
    if error is None and pivot is None:
        return  # committed: written at its event
    if error is not None:
        jrun.end(str(w.m.status()), error, flush=False)
    try:
        errors = w.tried(jrun.flush, what="the run's end")
    except Exception:
        raise
    except BaseException:  # a Ctrl-C in its tries: the batch is left to recover, and
        never = [*w.refused, *not_run]  # the steps never called are written alone,
        if never or pivot is not None or withdrawn:  # as after a Ctrl-C in the run
            with contextlib.suppress(TakenOver):
                w.tried(partial(jrun.abandon_now, never, pivot, withdrawn))
        raise
    if len(errors) < ATTEMPTS:
        return
    w.dropped, w.jrun = jrun, None  # the journal keeps the saga unfinished, till it
    owed = jrun.owe()  # writes them with its next write or close (attack270 F1: dropped)
    named = [*zip(w.refused, w.refusals, strict=True), *zip(not_run, steps, strict=True)]
    failed = f"{errors[-1]}, {ATTEMPTS} attempts"
    said = left_note(w, jrun, failed, named)
    jrun.left_said = said.removeprefix(f"journal write failed ({failed}); ")  # (its end's line)
    w.m.note(EventKind.JOURNAL_FAILED, f"{said}{OWED if owed else ''}")


OWED_KEPT = (
    "; all this until this journal writes what the failed write kept: it tries again with its"
    " next write, as it closes and as this process ends, and once that is written the journal"
    " shows the undos as they ran here"
)
OWED = (
    "; all this until this journal writes the run's end: it tries again with its next write"
    ", as it closes and as this process ends, and once that is written the journal shows the"
    " saga as it ran here"
)
