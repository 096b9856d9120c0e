"""What goes wrong around a run in process, and what its drivers do then (issue 25, the
third attack on the engine): bad arguments refused before anything runs (``_checks``); a
Ctrl-C going forward (the steps running cut short, a done step's undo logged, a commit in
doubt left to the journal); a saga taken over by ``recover --force`` (every branch that lands
later reported); an error that refuses notes (the outcome keeps them). ``Run`` and ``Saga``
call these; every rule they apply is still the machine's."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ._checks import (  # noqa: F401 (named here too)
    check_clock,
    check_completion,
    check_journal,
    check_run,
    check_undo,
)
from ._commit_notes import (  # noqa: F401 (named here too)
    AFTER_COMMIT,
    AFTER_COMMIT_CANCEL,
    after_commit,
    cancelled_with,
    commit_in_doubt,
    committed,
    committed_note,
)
from ._shutdown import exit_said
from .errors import StepStillRunning, TakenOver
from .events import EventKind, describe
from .machine import Machine, Phase
from .operations import RAISE, Finished, Op
from .schedule import GraphMachine, GraphOp, Ready, declines, log_anyway, past_pivot
from .undo_log import cut_off
from .undo_log import log_cut_off as log_now
from .verdicts import COMMIT_UNRECORDED, REFUSED, cut_by, rollback_notes

E = TypeVar("E", bound=BaseException)

if TYPE_CHECKING:
    from ._drive import Driver
    from ._run import Run
    from .outcome import Outcome

# -- a Ctrl-C (or a write) that breaks the run going forward -------------------------------


def forward_broke(run: Run, error: BaseException) -> Op:
    """Something outside a step's call raised going forward (``Saga.run``): the run fails
    there, as a with-block's does when its code raises; a Ctrl-C is re-raised once what was
    done is undone (or left pending, said so), never swallowed."""
    return settled(run, error) or run.roll_back(error)


def settled(run: Run, error: BaseException) -> Op | None:
    """``forward_broke``'s rule, for ``saga.run`` and ``saga.arun`` alike: a Ctrl-C is kept
    to re-raise; once the saga committed (or as its commit was written) nothing is undone
    and a note says why (the run's end, Finished); None: the run fails there (rolled back)."""
    if not issubclass(type(error), Exception) and run.raise_after is None:
        run.raise_after = error
    if committed(run):  # committed already: re-raised as is
        run.raise_after = run.raise_after or error
        committed_note(error, run)
        return Finished(run.m)
    if commit_in_doubt(run, error):
        return Finished(run.m)
    return None


def end(run: Run, outcome: Callable[[], Outcome]) -> Outcome:
    """``saga.run``'s and ``arun``'s end: the run closed, a Ctrl-C re-raised (never
    swallowed), else its outcome. Whatever raises here (a Ctrl-C as the run is closed or its
    outcome built, even at this call's entry) goes through ``at_end`` in the caller."""
    run.finish(run.m.error)
    if run.raise_after is not None:
        raise run.raise_after
    return outcome()


def at_end(run: Run, exc: BaseException) -> None:
    """A Ctrl-C raised as the run ended says how: once the saga committed, that nothing was
    undone, nor needed to be; else what the rollback left (pending, leaked, dead letters),
    each note once: it comes with no outcome (attack52 F3: at ~25 instants, none said)."""
    if committed(run):
        committed_note(exc, run)
        return
    if run.m.phase is not Phase.DONE:  # (not over: what it will leave is not known yet)
        return
    with contextlib.suppress(Exception):  # (an error that refuses notes: the outcome's)
        said = getattr(exc, "__notes__", ())
        for note in left_notes(run):
            if note not in said:
                exc.add_note(note)
        exit_said(run, exc)


def cut_forward(run: Run, error: BaseException) -> Op | None:
    """The run fails going forward (``Run.fail``): a step done whose undo's log was cut off
    (its done event raised) is logged now; and for a Ctrl-C outside a step's call (in an
    event, a stamp, between a call's return and the machine hearing of it) the steps
    running are cut short, as one interrupted inside its call is (it may have happened:
    leaked, or undone if its undo was logged before it); for an error, the steps a timing
    launched and never called were not run (``GraphMachine.not_called``), and a list's step
    begun, not yet called (``run.began``: attack58 F1). None: the machine's ``fail``."""
    m, uncalled = run.m, run.uncalled
    if m.rolling:  # (told it failed already, its answer lost to ``error``: ``began_cut``)
        return began_cut(run, error)
    if not isinstance(m, GraphMachine) and m.phase is Phase.STEP and run.began != m.current:
        uncalled = (m.current,) if m.current is not None else ()
    elif not isinstance(m, GraphMachine):
        told_returned(run)
    else:
        op = graph_returned(run, error)
        if op is not None and (m.rolling or m.phase is Phase.DONE):
            return op  # type: ignore[return-value]  # (the run's failure: no step runs)
    return cut_forward_of(m, error, uncalled, raising=True)


def graph_returned(run: Run, error: BaseException) -> GraphOp | None:
    """A graph's steps whose call returned, the machine not yet told (a Ctrl-C as the driver
    stamps one, or at ``step_done``'s entry): each told so (``GraphMachine.step_returned``:
    the run fails first, never commits; undone with the rest, as a list's step,
    ``told_returned``; attack65 F3: reported leaked). The machine's last answer, or None."""
    gm: GraphMachine = run.m  # type: ignore[assignment]
    back = [step for step in gm.busy if step in run.results]  # (only a call that returned)
    answers = [gm.step_returned(step, error) for step in back]
    return answers[-1] if answers else None


def told_returned(run: Run) -> bool:
    """A list step whose call returned, the machine not yet told (a Ctrl-C as the driver
    stamps it, or at ``step_ok``'s entry): told done now, its undo logged, so the failing run
    undoes it (attack60 F3: reported leaked, for a person). True if so."""
    m = run.m  # (whether its call returned, the driver's; told whole, the machine's)
    return m.phase is Phase.STEP and m.current in run.results and m.step_returned()


def log_cut_off(m: Machine | GraphMachine, raising: bool = False) -> None:
    """A step done whose undo's log was cut off (a Ctrl-C in its done event, or in the
    machine's ``step_ok`` before the entry: a gathered step's, whose block then fails as
    cancelled, attack31 F1) is logged now: undone with the rest, never left standing.
    ``raising`` (``Run.fail``'s): a second Ctrl-C here is raised, not swallowed: its driver
    fails the run (``Machine.fail`` logs the step) and cuts the rollback there, the step
    left pending for ``recover`` (a runner's path, ``heard``, swallows it: its rollback
    goes on, the step undone)."""
    if m.phase is Phase.DONE:
        return
    if raising:
        log_now(m)  # (the machine's rule: which steps; an observer's error goes on)
        return
    for spec in cut_off(m):  # (``Machine.fail`` logs it too, if a Ctrl-C here cut this)
        log_anyway(m, spec)


def cut_forward_of(
    m: Machine | GraphMachine,
    error: BaseException,
    uncalled: tuple[str, ...] = (),
    raising: bool = False,
) -> Op | None:
    """``cut_forward``'s rule, for any driver of ``m`` (an engine's, driving it live: a
    Ctrl-C raised by an observer told an event); ``uncalled``: steps launched whose action
    was not called; ``raising``: a Ctrl-C as a cut-off step is logged is raised
    (``log_cut_off``)."""
    if m.rolling or m.phase is Phase.DONE:
        return None
    log_cut_off(m, raising)
    if issubclass(type(error), Exception):
        if isinstance(m, GraphMachine):  # launched with it, never called: never run
            for step in uncalled:
                if step in m.busy:
                    m.not_called(step)
        return None
    if isinstance(m, GraphMachine):
        cut: GraphOp | None = None
        for step in m.busy:
            cut = m.step_cut(step, error, called=step not in uncalled)
        return cut if cut is not None and type(cut) is not Ready else None  # type: ignore[return-value]
    if m.phase is Phase.STEP and m.current in uncalled:  # (a list's, never called)
        what = "Ctrl-C" if isinstance(error, KeyboardInterrupt) else type(error).__name__
        m.not_run(m.current, f"the {what} came as it started")  # type: ignore[arg-type]
        return None
    if m.phase in (Phase.STEP, Phase.STEP_WAIT):
        op = m.interrupted(error)
        return op if op is not RAISE else None  # (a with-block's: then it fails)
    return None


# -- a takeover; an error that refuses notes ----------------------------------------------


def landed_late(run: Run, error: BaseException, exc: BaseException) -> None:
    """A Ctrl-C landed in the engine's own code as the run failed, before the rollback's
    guards (entering ``roll_back``, ``fail``, ``drive``): the machine hears the failure if it
    has not, and the rollback is cut short there (everything not known undone pending); one
    that lands after the rollback ended is only re-raised once the run is closed."""
    m = run.m
    if not m.rolling and m.phase is not Phase.DONE:
        m.fail(error)
    if m.phase is not Phase.DONE:
        began_cut(run, exc)
    elif run.raise_after is None and not issubclass(type(exc), Exception):
        run.raise_after = exc


def began_cut(run: Run, exc: BaseException) -> Op:
    """A Ctrl-C outside the rollback's loop once the machine heard the run failed (at
    ``drive``'s entry, before its ``try``; in ``Run.fail``, as the machine was told): the
    rollback is cut there, named by it, said as it began when no undo was called yet
    (attack65 F6: named as an internal MachineError "during the undo of" a step whose undo
    nobody called), or at the event that raised it going forward, when one did."""
    m, raised = run.m, run.m.raised_at
    entry = m.entry
    if raised is not None and raised[0] is exc:  # (an event's, going forward: the machine
        return run.cut(exc)  # names it, "at the step_failed event of b", more exact)
    if m.rolling and m.index == 0 and entry is not None and m.attempt == entry.before + 1:
        m.cut(exc, "as the rollback began")  # (the first undo, its first attempt: not called)
    return run.cut(exc)


def journal_watch(
    run: Run, seq: int, kind: EventKind, step: str | None, details: Mapping[str, Any]
) -> None:
    """The journal writes the event down. Once a step returned after ``recover --force``
    took the saga over (the writer then drops the run), every other branch that returns
    later is reported too: it may also have landed after recover undid it."""
    journal = run.journal
    assert journal is not None
    jrun = journal.jrun
    if jrun is None and run.taken is not None and kind is EventKind.STEP_DONE:
        assert step is not None
        taken, why = run.taken
        taken.late_effect(step, describe(why))
        run.m.notes = [
            *run.m.notes,
            f"step {step!r} also returned after the saga was taken over: its effect may "
            f"have landed after recover undid it; check {step!r} by hand",
        ]
        return
    try:
        journal.watch(seq, kind, step, details)
    except TakenOver as exc:
        if kind is EventKind.STEP_DONE and jrun is not None:
            run.taken = (jrun, exc)
        raise
    except BaseException as exc:
        if kind is EventKind.COMMITTED and not issubclass(type(exc), Exception):
            run.in_doubt = exc  # a Ctrl-C as the commit was written: did it land? Read back
            try:  # (attack70 F4): committed, it is final; else the run fails there (undone)
                if jrun is not None:
                    landed = jrun.shown()[0].status == "committed"
                    run.m.commit_written, run.in_doubt = landed, None
            except BaseException:  # (a read that fails, a second Ctrl-C: in doubt, said so)
                pass
        raise


def returned(run: Run, step: str) -> None:
    """``Run.returned``: a step's call returned, and a cancel function is to be asked before
    the machine hears it is done: its undo is written now, so a process killed in that
    function leaves the undo for ``recover`` to run, never the step leaked although it
    returned (attack35 F4; observers of its done event are told after the journal wrote
    it). A Ctrl-C in the write: the step is done all the same (undone), and the run fails
    there, as with one in the cancel function."""
    if run.journal is None or run.journal.jrun is None:
        return
    try:
        run.journal.settle(step)
    except BaseException as exc:  # (an Exception is the write's: kept for the next write)
        if not isinstance(run.m, GraphMachine):
            raise  # (``heard_done``'s, as a Ctrl-C in the cancel function: ``cut_as_returned``)
        run.raise_after = run.raise_after or exc
        run.m.broken(exc)


def retrying(run: Run, step: str) -> None:
    """``Run.retrying``: a step whose attempt refused with nothing done rested in its wait
    (written not run: ``JournalWriter.rest``); its next attempt is written back, durably,
    before it begins. Raises if it cannot be: the attempt is not made."""
    if run.journal is not None:
        run.journal.retrying(step)


def cancel_heard(run: Run, exc: E, taken: bool = False) -> E:
    """``arun``'s task cancelled (its machine hears of it once a running step ends: they
    finish first), or a graph's cancel heard while its branches run on: the journal says so
    now, so a crash before any other write is recovered ``cancelled``, as the run would end
    (attack36 F3). ``taken``: the machine took it (a graph's); else it is checked not to be
    declined. ``exc`` returned."""
    journal, m = run.journal, run.m
    if journal is None or journal.jrun is None or journal.cancel_told:
        return exc
    if taken or declines(m) is None:  # (else declined: attack38 F1)
        journal.cancel_told = True
        journal.jrun.cancel_heard()
        journal.jrun.written_soon()
    return exc


def cut_as_returned(driver: Driver, exc: BaseException) -> BaseException | None:
    """A Ctrl-C as a step returned (in its undo's write, or the cancel function asked then:
    ``Driver.heard_done``): the step is done all the same, and the run fails there. Before
    the irreversible step, as a stop (once told done: what was done is undone); past it, the
    Ctrl-C is returned, the run failed with it once the step is told done (halted, forward,
    as by one in its done event's observer): a stop rolls back across the pivot, and the
    undos ran with the email sent (attack36 F5). Re-raised once the run is over."""
    driver.raise_after = driver.raise_after or exc
    return stop_as_returned(driver.m, exc)


def stop_as_returned(m: Machine, exc: BaseException) -> BaseException | None:
    """``cut_as_returned``'s rule for the machine, every driver's (DBOS's: ``asking``)."""
    if past_pivot(m):
        return exc
    if m.phase is Phase.STEP and m.stopping is None:
        m.stop(exc)
    return None


def fenced(run: Run) -> BaseException | None:
    """``Run.fenced``, checked after a wait, before another undo attempt: ``recover
    --force`` may have taken the saga over meanwhile (and undone it); then this run runs no
    other undo and writes nothing more (the machine halts it, the takeover its note)."""
    journal = run.journal
    if journal is None or journal.jrun is None:
        return None
    try:
        journal.jrun.holds()
    except TakenOver as exc:
        journal.jrun = None
        return exc
    except Exception as exc:  # unread (a journal closed, a disk error): no takeover known,
        journal.went_on(exc, "read")  # the rollback goes on in memory, as after a write
    return None


def left_notes(run: Run) -> list[str]:
    """What an incomplete rollback left, as notes (none for a complete one)."""
    m = run.m
    if not (m.dead_letters or m.pending or m.leaked or m.notes):
        return []  # (complete: nothing to say, the common case)
    taken = issubclass(type(m.error), TakenOver)  # (its message says what, and the late step)
    return rollback_notes(
        m.dead_letters, m.pending, [s for s in m.leaked if (not taken or s != m.error.late)  # type: ignore[union-attr]
                                    and s not in m.compensated],  # (undone: its note says
        m.notes, cut=bool(m.cut_note) or taken,  # it may land after: attack92 F4; a Ctrl-C
        # once it halted: attack52 F3)
        forward=m.record().forward_said if m.halted else "",
        finished=m.halted and COMMIT_UNRECORDED in str(m.reason),  # (every step done: F3)
    )  # fmt: skip


def add_notes(run: Run, error: BaseException, warn: bool = True) -> None:
    """The notes of an incomplete rollback (what the machine left: dead letters, pending,
    leaked, its notes) on the error (and on the interruption), so a caller sees it; one
    that refuses them (a frozen dataclass, a tuple of notes) is never replaced: the outcome
    keeps them, and says so. ``warn``: a SystemExit's warning here (else ``exits_said``)."""
    m = run.m
    notes = left_notes(run)
    if not notes:
        return  # (complete: nothing to say, the common case)
    for carrier in _carriers(run, error):
        try:
            for note in notes:
                carrier.add_note(note)
            if warn:
                exit_said(run, carrier)
        except Exception:
            m.notes = [*m.notes, REFUSED.format(type(carrier).__name__)]


def _carriers(run: Run, error: BaseException) -> list[BaseException]:
    every = [error, run.m.interruption, run.raise_after]  # (and the Ctrl-C the caller gets)
    return [c for i, c in enumerate(every) if c is not None and all(c is not d for d in every[:i])]


def exits_said(run: Run, error: BaseException) -> None:  # (once the journal's notes are
    for carrier in _carriers(run, error) if left_notes(run) else ():
        with contextlib.suppress(Exception):  # in: one warning, attack280 F1)
            exit_said(run, carrier)


def cut_running(run: Run, late: BaseException, failed: BaseException | None) -> BaseException:
    """A Ctrl-C while the block waited for a step running in another thread: that step is
    cut short, and, as it still runs, reported leaked (its undo, if logged before it, runs
    too: it may land after); the block fails, and the Ctrl-C is re-raised once the
    rollback is done."""
    m = run.m
    if not m.rolling and m.phase in (Phase.STEP, Phase.STEP_WAIT):
        m.interrupted(late, still_runs=True)  # (its note, the machine's: once)
    run.raise_after = late
    return failed if failed is not None else late


def unheard(run: Run, name: str, exc: BaseException) -> None:
    """A step's ``do`` raised ``exc`` that the machine never heard of (a Ctrl-C after its
    call returned, before it was told), and its block goes on (in another thread, or it
    caught it): the step is done (``told_returned``), or, its return unknown, cut short as
    one interrupted inside its call is (leaked, or undone if its undo was logged before it)."""
    history = run.history
    if history is not None and not (history and len(history[-1]) < 4):
        return  # (recorded, and told done or raised: nothing unheard)
    m = run.m
    if not m.rolling and m.phase in (Phase.STEP, Phase.STEP_WAIT) and m.current == name:
        raised = m.raised_at  # (its start's event raised it: its action was never called,
        if raised is not None and raised[0] is exc and raised[1].startswith("at the step_start"):
            m.not_run(name, f"its start could not be told ({describe(exc)})")  # attack38 F5)
            return
        if not told_returned(run):  # (returned: done, undone with the rest)
            m.interrupted(exc)


def outlived(run: Any, step: str, cut: BaseException) -> StepStillRunning:
    """A step of another thread ended after its block stopped waiting for it (``cut``): by
    what, and what the block's outcome says of it, cut short (leaked) or stopped in its wait
    to retry, no attempt having had an effect (attack104 F8: "a Ctrl-C" for a SIGTERM's
    ``sys.exit``, "cut short" of a step the outcome reports nothing of)."""
    what = "Ctrl-C" if isinstance(cut, KeyboardInterrupt) else cut_by(cut)
    said = (
        "the block's outcome reports it cut short (leaked)"
        if step in run.m.leaked
        else "it was stopped in its wait to retry, no attempt of it having had an effect "
        "(the block's outcome does not report it leaked)"
    )
    return StepStillRunning(
        f"step {step!r} ended after its block did: a {what} came while the block waited for "
        f"it, and {said}"
    )


def own_failure(run: Run, exc: BaseException | None) -> BaseException | None:
    """A block's error: a Ctrl-C (``sys.exit``) raised as its step's own failure was told
    (an observer of ``step_failed``) leaves that failure the run's error, and is raised after
    the rollback, as ``saga.arun`` does (attack205 F1: the outcome said the step failed with
    a KeyboardInterrupt, its real error only the interrupt's context)."""
    own = run.error
    if exc is None or isinstance(exc, Exception) or own is None or exc.__context__ is not own:
        return exc
    rows = run.m.rows if run.history is None else ()  # (a recorded block's: told later)
    if not rows or rows[-1][0] != EventKind.STEP_FAILED._value_:  # (told last: its failure)
        return exc
    run.raise_after = run.raise_after or exc
    return own
