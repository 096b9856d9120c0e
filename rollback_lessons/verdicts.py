"""The saga machine's verdicts: the status a run ends in, the pivot rule (when an
irreversible step may have happened, and why a saga is then left for a person), and the
order a list's undos run in.

They are the machine's rules (``machine.py`` decides with them and re-exports them), kept
here, one place each, so that the machine's file holds its transitions; ``recover`` reads
``pivot_at_stake`` and the runners ``HALTED_FORWARD`` through the machine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

from .errors import InjectedFault, JournalError, MayHaveRun, RemoteError, interrupts
from .events import describe
from .outcome import DeadLetter, Status, forward_when
from .rules import Kind


def status_of(
    *, failed: bool, halted: bool, dead_letters: bool, leaked: bool, semantic: bool = False,
    cancelled: bool = False,
) -> Status:  # fmt: skip
    """The one status rule. ``rolled_back`` promises the world is as it was (but for steps
    done with no undo: their effect stands by design, ``Outcome.kept``); a semantic
    compensation (a correction email) makes things right, not as they were: incomplete.
    ``cancelled`` promises what ``rolled_back`` does, for a run its caller cancelled."""
    if not failed:
        return Status.COMMITTED
    if halted:
        return Status.HALTED
    if dead_letters or leaked or semantic:
        return Status.ROLLBACK_INCOMPLETE
    return Status.CANCELLED if cancelled else Status.ROLLED_BACK


def halts_forward(pivot_done: bool, failed_kind: str | None) -> bool:
    """A retriable step failing after the pivot halts for a person: nothing is undone
    across a point of no return."""
    return pivot_done and failed_kind == Kind.RETRIABLE


def held(error: BaseException) -> tuple[BaseException, ...]:
    """The errors a group holds (``ExceptionGroup``: ``asyncio.TaskGroup``'s, or an engine's
    stand-in of one, ``RemoteError.held``); none for any other error."""
    kind = type(error)  # (not ``isinstance``: it asks ``__class__``, which may raise)
    if issubclass(kind, BaseExceptionGroup):
        return tuple(error.exceptions)  # type: ignore[attr-defined]
    return error.held if issubclass(kind, RemoteError) else ()  # type: ignore[attr-defined]


def after_effect(error: BaseException) -> bool:
    """Did the failing step's effect happen anyway (a timeout after the charge)? Only the
    error can tell: an injected fault says which it is (``Fault.FAIL_AFTER_EFFECT``), on
    every engine (``runners.wire.ErrorRecord`` carries it), and so does work a call handed
    back that was cancelled mid-way (``MayHaveRun``); a group holding one (nested too) tells
    it as well."""
    told = _told(error, lambda e: (isinstance(e, (InjectedFault, MayHaveRun)) and e.after_effect)
                 or (isinstance(e, RemoteError) and e.lineage[:2] == STOOD_IN))  # fmt: skip
    return told is True


PAST_PIVOT = (
    "a cancel heard once the irreversible step had started: declined (undoing the steps "
    "before it would not take it back; the run goes on as if none had come)"
)
"""The note of a cancel declined past the pivot (``stopping.cancel``: the one rule)."""

PAST_PIVOT_CUT = (
    "a cancel heard once the irreversible step had started: declined (undoing the steps "
    "before it would not take it back); a step after it was then cut short, so the run "
    "stopped there"
)


def cut_past_pivot(notes: Sequence[str]) -> list[str]:
    """The notes once a step was cut short: a cancel declined past the pivot no longer says
    the run went on (attack136 F3: a shutdown cancelled the run and the step after the pivot,
    the run halted, the note said it went on as if no cancel had come)."""
    return [PAST_PIVOT_CUT if note == PAST_PIVOT else note for note in notes]


STOOD_IN = ("MayHaveRun", "RollbackLessonsError")
"""A ``MayHaveRun`` as a run whose errors were not kept live carries it (``RemoteError``):
BPMN's ``run_explicit`` reported such a step rolled back, not leaked (attack100 F16)."""


def timed_out(error: BaseException) -> bool:
    """A timeout (here, or as an engine reported it), or a group holding one (nested too:
    ``asyncio.TaskGroup``'s ``ExceptionGroup``): the caller cannot tell whether the call's
    effect happened."""
    return _told(error, _a_timeout) is not False  # (None: it cannot tell either)


def _a_timeout(error: BaseException) -> bool:
    if isinstance(error, RemoteError):
        return "TimeoutError" in error.lineage
    return isinstance(error, TimeoutError)


DEEPEST: Final = 64  # a group nested deeper cannot be read: ``_told`` says None


def _told(error: BaseException, test: Callable[[BaseException], bool]) -> bool | None:
    """Does ``error``, or an error a group of it holds (nested too), pass ``test``? None when
    that cannot be read: a test or a group that raises (a ``__class__`` that raises), a
    group nested deeper than ``DEEPEST`` (attack33 F1: a pivot's timeout held deep in a
    group was forgotten, the run rolled back across it); walked without recursion."""
    try:
        todo = [(error, 0)]
        while todo:
            e, depth = todo.pop()
            if test(e):
                return True
            inner = held(e)
            if inner and depth >= DEEPEST:
                return None
            todo += [(i, depth + 1) for i in inner]
        return False
    except Exception:
        return None


def pivot_in_doubt(kind: str | None, error: BaseException, cut: bool = False) -> bool:
    """The pivot rule: an irreversible step that failed after its effect (``after_effect``),
    timed out (``timed_out``: it cannot tell), or was cut short while it ran (``cut``: a
    Ctrl-C, a crash) may have happened; the steps before it are never undone then (that
    would not take it back), and it is never run again blindly: the saga halts for a
    person. A group holding any such error is in doubt too. A pivot that refused cleanly,
    any other error, is compensated across like any failed step."""
    return kind == Kind.PIVOT and (cut or after_effect(error) or timed_out(error))


def pivot_at_stake(state: str | None) -> bool:
    """Does a journal's pivot state (``started``, ``done``, ``refused``: it failed before
    any effect) keep ``recover`` from compensating across it?"""
    return state in ("started", "done")


T = TypeVar("T")


def in_undo_order(log: list[T], undo_order: str) -> list[T]:
    """The one undo order rule of a list's run: its undo log as logged for ``forward``,
    newest first (last in, first out) for every other order (a graph's own orders are
    ``GraphMachine``'s). The machine's ``fail`` and a recorded with-block's rollback
    (``_recorded.roll_back``, which runs its undos before any machine is made) both ask it."""
    return list(log) if undo_order == "forward" else log[::-1]


HALTED_FORWARD: Final = "failed after an irreversible step"
COMMIT_UNRECORDED: Final = "its commit was recorded, every step done (nothing left forward)"
"""The cause of a halt past a pivot when every step was done and the run failed before its
commit was recorded (a full disk, a Ctrl-C as it was written, or before): nothing is left
to finish forward (attack91 F3)."""


def halted_at_pivot(pivot: str, state: str, cause: str = "the crash") -> str:
    """Why a saga whose pivot may have happened is left for a person (in process: the run
    failed after it, or it failed after its effect; in ``recover``: a crash)."""
    if state == "failed":  # the pivot itself failed, after its effect or cut short
        return (
            f"its irreversible step {pivot!r} failed {cause}, so it may have happened: "
            "undoing the steps before it would not take it back, so the saga is left for a "
            "person"
        )
    when = "happened" if state == "done" else "started, and may have happened,"
    return (
        f"its irreversible step {pivot!r} {when} before {cause}: undoing the steps "
        "before it would not take it back, so the saga is left for a person"
    )


def pivot_check(recorded: tuple[Any, ...], leaked: Sequence[str], pending: Sequence[str]) -> str:
    """What a person must check for a saga ``recover`` left halted at its pivot, by the pivot
    rule: the steps after the pivot go forward (retried, never undone); whether the pivot
    itself happened, only a person can tell. ``leaked``: the steps that started and may
    have had their effect with nothing to undo it (the pivot's own start too). ``recorded``:
    (the pivot, its state, the steps after it the journal shows done, never to be made
    again: attack60 F4, and those after it the journal knows: each not done is named to
    finish forward, ``forward ...`` as a run's own halted line says it: attack79 F2)."""
    pivot, state = recorded[:2]
    done_after, later = (*recorded[2:4], (), ())[:2]
    whole = recorded[4] if len(recorded) > 4 else True  # (False: a list, its later steps unknown)
    others = [s for s in leaked if s != pivot]  # (the pivot's own start: said already)
    maybe = f"; {', '.join(others)} started too and may have had its effect" if others else ""
    undos = ", ".join(pending) or "none"
    forward = "finish the steps after it forward by hand (retried, never undone)"
    if done_after:
        forward = (
            f"finish the steps after it not yet done forward by hand (retried, never undone; "
            f"done already: {', '.join(done_after)})"
        )
    todo = [s for s in later if s not in done_after]
    if whole and not todo:  # (the journal shows each step after it done: attack91 F3)
        forward = "nothing is left forward (every step after it was done" + (
            f": {', '.join(done_after)})" if done_after else ")"
        )
    named = f"; forward {', '.join(todo)} ({forward_when(state == 'done')})" if todo else ""
    if not whole:  # (a list: the journal writes a step as it begins, so later ones are not
        # in it; said, not left out silently: attack83 F2)
        named += (
            f"{', then' if todo else '; forward:'} the steps that come after "
            f"{'them' if todo else 'it'} in the saga's code (a list's steps are journalled "
            "only as they begin)"
        )
    if state == "done":
        return f"{maybe}; {forward}, leave its undos pending ({undos}), then settle the saga{named}"
    return (
        f"{maybe}; check whether {pivot!r} happened: if it did, {forward}; if it did not, "
        f"run its pending undos by hand ({undos}); then settle the saga{named}"
    )


def interruption_name(exc: BaseException) -> str:
    """What cut a rollback short, as the machine's note names it: a Ctrl-C, ``sys.exit``
    (``errors.interrupts``) by its type, here or where it ran (an engine's stand-in,
    ``RemoteError``, said ``SystemExit('3')`` where ``saga.run`` said ``SystemExit``:
    attack24's L2), an error by its description."""
    return cut_by(exc) if interrupts(exc) else describe(exc)


def cut_by(exc: BaseException) -> str:
    """What cut a rollback short, by its class's name, as its ``rollback_done`` event says:
    an engine's stand-in (``RemoteError``, an interrupt whose record it could not keep: a
    ``sys.exit`` whose repr raises) by the class it stands for, as in process."""
    return exc.type_name if issubclass(type(exc), RemoteError) else type(exc).__name__  # type: ignore[attr-defined]


REFUSED = "the {} raised refused these notes (add_note failed); the outcome keeps them"
"""What the outcome says of an error that refuses the rollback's notes (in process and on
every engine alike: attack288 F3)."""


def rollback_notes(
    dead_letters: Sequence[DeadLetter],
    pending: Sequence[str],
    leaked: Sequence[str],
    notes: Sequence[str],
    cut: bool,
    forward: str = "",
    finished: bool = False,
) -> list[str]:
    """What a rollback left, as the notes on the exception a run raises: one wording in
    process (``_guards.add_notes``) and on every engine (``remote.reraise``), which told it
    again and dropped each dead letter's error and attempts (attack24's L2). ``cut``: an
    interruption ended it (its own note says what is pending, and why). ``forward``: the
    steps after a pivot to finish by hand, as the outcome says them (``forward_said``:
    attack42 F3, those never begun were named nowhere). ``finished``: halted past its pivot
    with every step done, its commit failed (``COMMIT_UNRECORDED``)."""
    said = [f"rollback: undo of {d} (dead letter)" for d in dead_letters]
    if pending and not cut and finished:  # (past its pivot: never to run, attack91 F3)
        said.append(
            "rollback halted: every step was done (nothing left forward), its irreversible "
            "step too, but the run failed before its commit was recorded; undos not to run "
            f"(its pivot happened): {', '.join(pending)}"
        )
    elif pending and not cut:
        said.append(f"rollback halted; left for a person: {', '.join(pending)}")
    if forward:
        said.append(f"rollback halted; forward {forward}")
    logged = {*(d.step for d in dead_letters), *pending}  # (its undo logged: it ran on, its
    leaked = [s for s in leaked if s not in logged]  # own note says so, attack100 F8)
    if leaked:
        said.append(f"rollback: not undone (no undo logged for it): {', '.join(leaked)}")
    return said + [f"rollback: {n}" for n in notes]


def still_ran(step: object, who: str, exc: BaseException) -> str:
    """The note of a step whose call the ``who`` ("block", "run") stopped waiting for
    (attack95 F5: a ``saga.run``'s said "the block")."""
    return (
        f"step {step!r} still ran when the {who} stopped waiting for it "
        f"({type(exc).__name__}): its effect may land after any undo; check it by hand"
    )


KEEPS = " (the journal keeps them for recover)"
"""What a rollback cut short says of the undos left (``Machine._cut_short``), taken back by
``journal_end`` when the writes a failed write kept could not be written after all."""


def by_journal(error: BaseException) -> bool:
    """Did a journal's write (or read) fail the run, not a step (``JournalError``)?"""
    return issubclass(type(error), JournalError)
