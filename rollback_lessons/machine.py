"""The saga machine: the one place that decides what happens next (sans-IO).

Everything that makes a saga a saga lives in this file (its verdicts, the status and pivot
rules, in ``verdicts.py``), as h11's ``_state.py`` holds its protocol: when a step's undo is
logged, when a step is retried, the pivot rules (a retriable step failing after the point
of no return halts forward; nothing is compensated across a pivot that may have happened,
``pivot_in_doubt``), the undo order, what a failed undo leads to (the policy's answer),
what leaked, the status a run ends in, the events that tell it. No I/O, no clock. A
driver tells it what happened and it answers the next operation (``operations.py``), as
tenacity's ``iter()`` does: ``RunStep`` (then ``step_ok()`` or ``step_failed(error)``),
``RunUndo`` (then ``undo_ok()`` or ``undo_failed(error)``), ``Wait`` (then ``resume()``),
``Ask`` (a person's ``answer()``), ``PROCEED`` / ``RAISE`` (a with-block's step is done /
failed for good) and ``Finished`` (its ``record``). A BaseException that cuts a call or a
wait short is ``interrupted(exc)``; the run failing outside a step is ``fail(error)``.
A step's return that a Ctrl-C may have cut ``step_ok`` at is ``step_returned()`` (once).
``TRANSITIONS`` lists what each phase takes and where it leads.

The drivers, each only I/O: ``_run.py`` (in process: ``Rollback``, ``AsyncRollback``,
``Saga.run``), ``durable.recovery`` (a crashed saga's rollback, resumed), the Temporal
workflow, the history walker (Step Functions, SpiffWorkflow), the DBOS workflow, and the
graph forms of Step Functions and BPMN (their worker or script task asks a ``GraphMachine``
at run time). Only the list forms the state-machine writers produce (ASL, BPMN) cannot
drive a machine at run time: they ask it beforehand (``runners.owed``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, Final

from .calls import off_its_loop
from .errors import DuplicateStepError, RollbackLessonsError, TakenOver, UnknownStepError, goes_on
from .events import EventKind, EventRow, describe
from .operations import (
    ANSWERS,
    PROCEED,
    RAISE,
    Ask,
    Entry,
    Finished,
    Op,
    Proceed,
    RunStep,
    RunUndo,
    StepSpec,
    Wait,
)
from .outcome import DeadLetter, RunRecord, Status
from .policies import CONTINUE, RetryPolicy, UndoPolicy, decided, is_delay, step_wait, undo_refused
from .resuming import resumed  # (taking up a crashed saga's rollback: the machine's too)
from .rules import IRREVERSIBLE, Kind
from .undo_log import in_effect, log_cut_off  # (the undo log against what was done)
from .verdicts import (  # the status and pivot rules, the machine's (one place each)
    COMMIT_UNRECORDED,
    HALTED_FORWARD,
    KEEPS,
    after_effect,
    by_journal,
    cut_by,
    cut_past_pivot,
    halted_at_pivot,
    halts_forward,
    in_undo_order,
    interruption_name,
    pivot_at_stake,
    pivot_in_doubt,
    status_of,
    still_ran,
    timed_out,
)


class MachineError(RollbackLessonsError):
    """A driver told the machine something that cannot happen now (a driver's bug)."""


class Phase(StrEnum):
    FORWARD = "forward"  # between steps: the next one may begin, or the run commits or fails
    STEP = "step"  # a step's action runs (registered by hand: in the caller's own code)
    STEP_WAIT = "step_wait"  # waiting before the step's next attempt
    UNDO = "undo"  # an undo attempt runs
    UNDO_WAIT = "undo_wait"  # waiting before the undo's next attempt
    ASK = "ask"  # the rollback halted; a person may still answer
    DONE = "done"


F, S, SW, U, UW, A, D = Phase
_FAIL = (U, A, D)  # failing leads to the first undo, a person, or the end
TRANSITIONS: Final[Mapping[Phase, Mapping[str, tuple[Phase, ...]]]] = {
    F: {"start": (S,), "begin": (S,), "register": (S,), "commit": (D,), "fail": _FAIL},
    S: {
        "step_ok": (F, S, D),  # a with-block's code goes on; a saga runs its next step
        "step_failed": (SW, F, *_FAIL),  # retry, raise in the block, or roll back
        "interrupted": (F, *_FAIL),
        "begin": (S,),  # a step registered by hand is done when the next one begins
        "register": (S,),
        "commit": (D,),
        "fail": _FAIL,
        "stop": (S,),  # it fails when the step returns, instead of going on
    },
    SW: {"resume": (S, F), "interrupted": (F, *_FAIL), "stop": (SW,)},  # (F: a with-block's)
    U: {"undo_ok": _FAIL, "undo_failed": (UW, *_FAIL), "interrupted": (D,)},
    UW: {"resume": (U,), "interrupted": (D,)},
    A: {"answer": _FAIL, "interrupted": (D,)},
    D: {},
}
"""Each phase, the inputs it takes, the phases they lead to. Once the run fails, any phase
takes ``interrupted``: whatever cut the rollback short, wherever, ends it ``halted``."""

Pairs = tuple[tuple[str, Any], ...]
_NO: Final[Pairs] = ()
REGISTERED: Final = {r: (("register", r),) for r in ("before", "after", "none")}  # step_start's
# The kinds of the rows the hottest inputs record inline when no one watches (``schedule``'s
# too); the phases and a kind as plain names (``Phase.STEP`` is a lookup), tuple.__new__.
ROW_START, ROW_DONE, ROW_LOGGED, ROW_UNDO = "step_start", "step_done", "undo_registered", "undo"
_FORWARD, _STEP, _STEP_WAIT, _UNDO, _UNDO_WAIT, _ASK, _DONE = Phase
_COMPENSABLE: Final = Kind.COMPENSABLE
_STARTED, _LOGGED = EventKind.STEP_START, EventKind.UNDO_REGISTERED
_new = tuple.__new__


# -- the machine --------------------------------------------------------------------------


class Machine:
    """One run of a saga, as state; the inputs below are all that change it.

    With a ``plan`` (the steps in order) it runs them one after the other (a ``Saga``);
    without, steps ``begin`` as a with-block's code asks, their names limited to ``allowed``.
    The driver stamps ``now`` (seconds since the run started) before an input; ``watch``, if
    given, is called with (seq, kind, step, details) after each event."""

    def __init__(
        self,
        policy: UndoPolicy = CONTINUE,
        *,
        plan: Sequence[StepSpec] | None = None,
        allowed: Sequence[str] | None = None,
        undo_order: str = "reverse",
        name: str = "saga",
        run_id: str | None = None,
        watch: Any = None,
        first_seq: int = 0,
    ) -> None:
        self.policy, self.undo_order, self.name, self.run_id = policy, undo_order, name, run_id
        if plan is not None:
            self.plan = tuple(plan)
        if allowed is not None:
            self.allowed = tuple(allowed)
        if watch is not None:
            self.watch = watch
        if first_seq:
            self.first_seq = first_seq
        self.rows: list[EventRow] = []
        self.kinds: dict[str, str] = {}
        self.seen: list[str] = []
        self.completed: list[str] = []
        self.log: list[Entry] = []  # the undo log

    # What the run holds besides; these start out empty or unset, in the class, so that a
    # run that never needs them does not pay for them (every run is a with-block's cost).
    plan: tuple[StepSpec, ...] | None = None
    allowed: tuple[str, ...] | None = None
    watch: Any = None
    """Called with (seq, kind, step, details) after each event (a journal, a logger)."""
    told_not_run: Any = None  # called with a step ``not_run`` (a journal: written at once)
    first_seq = 0
    now: float | None = None
    phase = _FORWARD
    spec: StepSpec | None = None  # the step running (or last begun)
    current: str | None = None
    open = False  # registered by hand: its action runs in the caller's code
    next_step = 0  # with a plan: the index of the step running
    attempt = base = 0  # base: attempts of this undo before this round (a crash, a person)
    pivot_done = halted = resumed = False
    cancelled = False  # the run's caller cancelled it (``schedule.cancel``)
    cut_note = ""  # the note of a rollback an interrupt cut short (``_cut_short``)
    NONE = ("no undo had been logged", "every undo had run")  # an interrupted rollback's rest
    doubt: str | None = None  # a pivot one attempt of which may have happened (``_doubted``)
    effected: frozenset[str] = frozenset()  # steps an attempt of which may have had its effect
    doubt_cause = ""  # how that attempt failed: after its effect, a timeout, cut short
    rolling = False  # the run failed: from here on, nothing may end the rollback silently
    kept = False  # a journal keeps what an interruption leaves, for ``recover``
    commit_written = False  # the commit is recorded (by its journal, if kept): final (``_commit``)
    commit_failed = False  # every step done, its commit failed (a block's too): attack91 F3
    error: BaseException | None = None
    failed_step: str | None = None
    reason = ""  # why it halted forward, when it did
    stopping: BaseException | None = None  # asked to stop when the running step returns
    tried: BaseException | None = None  # the error of a step's last try (to retry, or lost)
    interruption: BaseException | None = None
    interrupted_where = ""
    interrupted_undo: str | None = None  # the undo in hand as the rollback was cut, if any
    raised_at: tuple[BaseException, str] | None = None  # an event that raised going forward
    irreversible: Sequence[str] = ()
    leaked: Sequence[str] = ()
    semantic: Sequence[str] = ()
    withdrawn: Sequence[str] = ()  # steps whose undo logged before them was (``withdraw``)
    notes: Sequence[str] = ()
    compensated: Sequence[str] = ()  # the rollback's lists: made when it starts
    dead_letters: Sequence[DeadLetter] = ()
    pending: Sequence[str] = ()
    todo: Sequence[Entry] = ()  # the log in undo order
    index = 0
    entry: Entry | None = None  # the undo being run
    policy_timeout: float | None = None  # the policy's undo timeout (set as the rollback starts)
    told_as_called = False  # an engine hands each undo out: told as called (``undo_begins``)
    untold = False  # the undo asked for is not called yet (nor told: ``told_as_called``)

    def _emit(
        self, kind: EventKind, step: str | None = None, details: Mapping[str, Any] | Pairs = _NO
    ) -> None:
        """An event as a row of plain data (details as pairs: nothing for the gc to revisit)."""
        if type(details) is not tuple:
            details = tuple(details.items())  # type: ignore[union-attr]
        self.rows.append((kind._value_, step, details, self.now))  # type: ignore[arg-type]
        if self.watch is not None:
            try:
                self.watch(self.first_seq + len(self.rows), kind, step, dict(details))  # type: ignore[arg-type]
            except BaseException as exc:  # an observer, a journal write, a Ctrl-C in one
                if not self.rolling:  # going forward, the run fails there (``fail``)
                    self._broke(exc, kind, step)
                    raise
                self.cut(exc, f"at the {kind._value_} event" + (f" of {step}" if step else ""))

    def _broke(self, exc: BaseException, kind: EventKind, step: str | None) -> None:
        """Going forward, ``kind``'s event of ``step`` raised (as it began: attack53 F2): an undo
        logged before its uncalled step withdrawn, that step not run; said where, if it cuts."""
        last = (self.log[-1].step, self.log[-1].when) if self.log else None
        if self.raised_at is None or self.raised_at[0] is not exc:  # (once)
            if first := kind is _LOGGED and last == (step, "before"):
                self.withdraw(step)  # type: ignore[arg-type]
            if (first or kind is _STARTED) and not issubclass(type(exc), Exception):
                what = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else cut_by(exc)  # (L2)
                self.not_run(step, f"the {what} came as it started")  # type: ignore[arg-type]
            self.raised_at = (exc, f"at the {kind._value_} event" + (f" of {step}" if step else ""))

    def cut(self, exc: BaseException, where: str | None = None, by: str = "") -> None:
        """Something outside an undo raised in the rollback: no more undos; the first kept.
        ``where`` None: where the rollback is (``whereabouts``); ``by`` (who stopped it) after."""
        if self.interruption is None:
            said, undo = self.whereabouts()
            if where is not None:
                said, undo = where, None
            said = f"{said} ({by})" if by else said
            self.interruption, self.interrupted_undo, self.interrupted_where = exc, undo, said

    def whereabouts(self) -> tuple[str, str | None]:
        """Where the rollback is, as a note says it, and the undo in hand whose call may run on
        (``interrupted_undo``); not "during" one while a person or a retry waits (attack178 F1)."""
        undo = self.entry.step if self.entry is not None else None
        if undo is None:
            return "during the rollback", None
        if self.phase is _ASK:
            return f"as a person was asked about the undo of {undo}", None
        if self.phase is _UNDO_WAIT:
            return f"as the undo of {undo} waited to retry", None
        if self.untold:  # handed out, never called (``told_as_called``): a retry too (attack184
            tried = "" if self.attempt == 1 else f"attempt {self.attempt} of "  # F1: "during")
            return f"before {tried}the undo of {undo} began", None
        return f"during the undo of {undo}", undo

    def note(self, kind: EventKind, text: str) -> None:
        """Something around the run failed (a journal write, a snapshot): an event, a note."""
        self.notes = [*self.notes, text]
        self._emit(kind, None, {"note": text})

    def _expect(self, name: str) -> None:
        """Refuse an input the phase does not take (the hottest check their phase inline)."""
        if name not in TRANSITIONS[self.phase]:
            raise MachineError(f"{name}() cannot happen while the machine is {self.phase}")

    # -- forward ------------------------------------------------------------------------

    def start(self) -> RunStep:
        """With a plan: its first step."""
        self._expect("start")
        if not self.plan:
            raise MachineError("start() needs a plan of at least one step")
        return self._begin(self.plan[0])

    def begin(self, name: str, kind: str = _COMPENSABLE, has_undo: bool = False,
              register: str = "after", retry: RetryPolicy | None = None, semantic: bool = False,
              undo_timeout: float | None = None) -> RunStep:  # fmt: skip
        """A with-block's code runs a step now (its name is checked first)."""
        self._admit("begin", name)
        return self._begin(StepSpec(name, kind, has_undo, register, retry, semantic, undo_timeout))

    def plain_steps(self, steps: Sequence[tuple[Any, ...]], started: float) -> None:
        """A new with-block's plain steps run unwatched, told at once as ``begin``, ``step_ok``
        would take each (``_recorded``): (name, undo or None, begun, done since ``started``)."""
        if self.phase is not _FORWARD or self.watch or self.allowed is not None or self.kinds:
            raise MachineError("plain_steps() is for a new with-block's machine, unwatched")
        rows, kinds, seen, log = self.rows, self.kinds, self.seen, self.log
        for entry in steps:
            name, has_undo = entry[0], entry[1] is not None
            if type(name) is not str or not name or name in kinds:  # (the recorder checks)
                raise MachineError(f"plain_steps() got step {name!r} unnamed or twice")
            kinds[name], self.now = _COMPENSABLE, entry[2] - started
            seen.append(name)
            rows.append((ROW_START, name, REGISTERED["after" if has_undo else "none"], self.now))
            self.spec = _new(StepSpec, (name, _COMPENSABLE, has_undo, "after", None, False, None))
            self.current, self.attempt, self.phase = name, 1, _STEP
            if len(entry) < 4:  # begun, not done: it still runs
                break
            self.now, self.phase = entry[3] - started, _FORWARD
            self.completed.append(name)
            rows.append((ROW_DONE, name, _NO, self.now))
            if has_undo:
                log.append(Entry(name, "after", False, None))
                rows.append((ROW_LOGGED, name, _NO, self.now))

    def register(self, name: str, semantic: bool = False) -> Proceed:
        """A with-block logs an undo for an action its own code runs next (it may fail after
        its effect, still undone); the step is done when the next begins or the block ends."""
        self._admit("register", name)
        self._begin(StepSpec(name, _COMPENSABLE, True, "before", None, semantic))
        self.open = True
        return PROCEED

    def _admit(self, what: str, name: str) -> None:
        if self.phase is not _FORWARD:
            self._expect(what)
            if not self.open:
                raise MachineError(f"{what}({name!r}) while step {self.current!r} still runs")
            self._close_open()
        if not isinstance(name, str) or not name:
            raise TypeError(f"a step name must be a non-empty str, got {name!r}")
        if name in self.kinds:
            raise DuplicateStepError(f"step {name!r} appears twice; step names must be unique")
        if self.allowed is not None and name not in self.allowed:
            raise UnknownStepError(f"step {name!r} is not one of: {', '.join(self.allowed)}")

    def _close_open(self) -> None:
        if self.open:
            self.open, self.phase = False, _FORWARD
            self.completed.append(self.current)  # type: ignore[arg-type]
            self._emit(EventKind.STEP_DONE, self.current)

    def _begin(self, spec: StepSpec) -> RunStep:
        name = spec.name
        self.kinds[name] = spec.kind
        self.seen.append(name)
        self.spec, self.current, self.attempt, self.phase = spec, name, 1, _STEP
        details = REGISTERED[spec.register if spec.has_undo else "none"]
        if self.watch is None:
            self.rows.append((ROW_START, name, details, self.now))
        else:
            self._emit(EventKind.STEP_START, name, details)
        if spec.has_undo and spec.register == "before":
            self._log(spec)
        return _new(RunStep, (name, 1))

    def not_run(self, name: str, why: str = "the Ctrl-C came as it started") -> None:
        """``name``'s attempt was asked, never begun (``why``: a Ctrl-C as it started, an
        engine's stop): not cut short; a later one left waiting to retry, a first not run."""
        if self.attempt > 1:  # (a graph's steps: ``GraphMachine.not_run``)
            self.attempt, self.phase = self.attempt - 1, _STEP_WAIT
            return
        del self.kinds[name]  # (first: a second Ctrl-C in what follows leaves it not run)
        self.seen.remove(name)
        self.phase, self.spec, self.current = _FORWARD, None, ([None, *self.completed])[-1]
        self.notes = [*self.notes, f"{name} was not run: {why}"]
        try:
            self.withdraw(name)  # (an undo logged before it: never run)
        finally:  # a journal writes its row not run now (attack58 F3: only at the end)
            self.told_not_run is None or self.told_not_run(name)

    def withdraw(self, step: str) -> None:
        """``step``'s action will never be called (its undo's event raised, a group's step never
        begun): an undo logged before it withdrawn; a journal writes its row not run."""
        if self.logged(step):
            self.log.remove(next(e for e in self.log if e.step == step))
            self.withdrawn = [*self.withdrawn, step]

    def _log(self, spec: StepSpec) -> None:
        try:  # (a Ctrl-C as the append returns, at _emit's entry: as in its observer, F2)
            self.log.append(Entry(spec.name, spec.register, spec.semantic, spec.undo_timeout))
            self._emit(EventKind.UNDO_REGISTERED, spec.name)
        except BaseException as exc:
            if not self.rolling:
                self._broke(exc, _LOGGED, spec.name)
            raise

    def step_ok(self, go_on: bool = True) -> Op:
        """The step's action returned (``go_on=False``: told only; the run fails there)."""
        if self.phase is not _STEP:
            self._expect("step_ok")
        spec = self.spec
        assert spec is not None
        self.completed.append(spec.name)
        if spec.kind in IRREVERSIBLE:
            self.irreversible = [*self.irreversible, spec.name]
            self.pivot_done = self.pivot_done or spec.kind == Kind.PIVOT
        self.phase = _FORWARD
        if self.watch is not None:
            self._emit(EventKind.STEP_DONE, spec.name)  # (if it raises: ``Run._cut_forward``)
            if spec.has_undo and spec.register == "after":
                self._log(spec)
        else:  # no one watches: its rows, inline (a step is most of a saga's cost)
            self.rows.append((ROW_DONE, spec.name, _NO, self.now))
            if spec.has_undo and spec.register == "after":
                self.log.append(Entry(spec.name, "after", spec.semantic, spec.undo_timeout))
                self.rows.append((ROW_LOGGED, spec.name, _NO, self.now))
        if self.plan is None or not go_on:
            return PROCEED
        if self.stopping is not None:
            return self.fail(self.stopping)
        self.next_step += 1
        if self.next_step < len(self.plan):
            return self._begin(self.plan[self.next_step])
        return self._commit()

    def step_returned(self) -> bool:
        """The running step's call returned, and the driver cannot know if ``step_ok`` heard
        it (a Ctrl-C as the driver stamped it, or cut ``step_ok`` mid-way): told done now,
        once, whole (what a cut ``step_ok`` recorded is taken back first); the run fails
        there (no next step). False if it was told already (the machine past the step)."""
        if self.phase is not _STEP:
            return False
        if self.completed[-1:] == [self.current]:  # (a step running is never done: cut)
            self.completed.pop()
            if self.irreversible[-1:] == [self.current]:
                self.irreversible = self.irreversible[:-1]
        self.step_ok(go_on=False)
        return True

    def step_failed(self, error: BaseException) -> Op:
        """The action raised ``error``: retried if its policy says so."""
        self._expect("step_failed")
        spec, said = self.spec, describe(error)  # (first: a Ctrl-C it raises cuts the step short)
        assert spec is not None
        self._doubted(spec, error)
        delay, self.notes = step_wait(spec.retry, self.attempt, error, spec.name, self.notes)
        if delay is None or (self.stopping is not None and self.plan is None):  # (``stop``)
            return self._step_lost(error, runs=goes_on(error) is not None)  # (runs on: leaked)
        self.phase, self.tried = _STEP_WAIT, error
        details = {"attempt": self.attempt, "delay": delay, "error": said}
        self._emit(EventKind.STEP_RETRY, spec.name, details)
        return Wait(delay)

    def _step_lost(self, error: BaseException, cut: bool = False, runs: bool = False) -> Op:
        """The step failed for good (``cut``: cut short inside its call, by a Ctrl-C or a
        crash: its effect may have happened, so it is treated as one that failed after it)."""
        spec = self.spec
        assert spec is not None
        details = self._lost_effect(spec, error, cut, runs)  # (runs: goes on, unwaited)
        self.phase = _FORWARD
        self._emit(EventKind.STEP_FAILED, spec.name, details)
        return RAISE if self.plan is None else self.fail(error)

    def _lost_effect(
        self, spec: StepSpec, error: BaseException, cut: bool, runs: bool = False
    ) -> dict[str, Any]:
        """What a step failing for good leaves (STEP_FAILED's details; ``runs_on``: it goes on):
        its effect, if it happened and no undo was logged before it, leaked; a pivot in doubt."""
        details: dict[str, Any] = {"error": describe(error), **({"runs_on": True} if runs else {})}
        self.tried = error  # (the journal tells a task's cancel by it: ``task_cancel``)
        self.notes = cut_past_pivot(self.notes) if cut else self.notes  # (no "goes on")
        self._doubted(spec, error, cut)  # (any attempt's: ``error`` may be a cancel's, a retry's)
        if spec.name in self.effected:
            details["after_effect"] = True
            if runs or not (spec.has_undo and spec.register == "before"):
                self.leaked = [*self.leaked, spec.name]  # it happened; nothing will undo it
        return details

    def _doubted(self, spec: StepSpec, error: BaseException, cut: bool = False) -> None:
        """An attempt that may have had its effect (after it, or cut short; a gate changes
        nothing) is remembered for good, and so is a pivot's in doubt (``pivot_in_doubt``): a
        later attempt's clean refusal, or a cancel in the wait, does not prove it did nothing."""
        doubt = pivot_in_doubt(spec.kind, error, cut)  # (a pivot's timeout: it may have happened)
        if (after_effect(error) or cut or doubt) and spec.kind != Kind.GATE:
            self.effected = self.effected | {spec.name}
        if doubt and self.doubt != spec.name:
            how = "with a timeout" if timed_out(error) else "while it ran (cut short)"
            self.doubt_cause = "after its effect" if after_effect(error) else how
            self.doubt = spec.name

    def stop(self, error: BaseException) -> None:
        """The run is asked to stop while a step runs that cannot hear it (a workflow
        cancelled during a step that does not heartbeat): when the step returns, the run
        fails there, with ``error``, instead of going on. A with-block's step (another
        thread's, its block failed meanwhile) begins no new try: failed for good."""
        self._expect("stop")
        self.stopping = error

    def resume(self) -> Op:
        """The wait is over: the next attempt (none for a with-block's step ``stop``ped)."""
        self._expect("resume")
        if self.phase is _STEP_WAIT:
            if self.stopping is not None and self.plan is None:  # its block ended (``stop``)
                return self._step_lost(self.tried)  # type: ignore[arg-type]
            self.attempt, self.phase = self.attempt + 1, _STEP
            return RunStep(self.current, self.attempt)  # type: ignore[arg-type]
        self.attempt += 1
        return self._undo_attempt()

    def commit(self) -> Finished:
        """A with-block ended without an error."""
        if self.phase is not _FORWARD:
            self._expect("commit")
            self._close_open()
        return self._commit()

    def _commit(self) -> Finished:
        """Every step is done. A journal records the commit at this event; if it cannot, the
        run is not committed (the driver fails it there); once it did, the commit is final."""
        rows = len(self.rows)
        try:
            self._emit(EventKind.COMMITTED, None, (("steps", len(self.completed)),))
            self.commit_written = True  # (no journal: its row made is its record)
        except BaseException:  # never committed: its row (if made: attack52 M2) is not the run's,
            if not self.commit_written:  # but once its journal wrote it, it is final: what
                del self.rows[rows:]  # came after (a Ctrl-C) undoes nothing (attack70 F1)
                self.commit_failed = True
            raise
        finally:
            self.commit_written and self.commit_final()
        return Finished(self)

    def commit_final(self) -> Finished:
        """The commit is written: final (from ``fail`` too: a Ctrl-C in ``_commit``'s
        ``finally`` left the phase forward, and the committed saga was undone: a sweep)."""
        if self.phase is not _DONE:
            self.phase = _DONE  # a step failed after its effect (its error caught), its
            in_doubt = self.effected - {*self.completed, *self.leaked}  # undo logged, never
            self.leaked = [*self.leaked, *sorted(in_doubt, key=self.seen.index)]  # run: F6
        return Finished(self)

    def fail(self, error: BaseException) -> Op:
        """The run cannot go on (a step failed for good, the with-block raised, the workflow
        was cancelled): halt forward after a pivot, or roll back; never once committed."""
        if self.commit_written:
            return self.commit_final()
        if self.phase is not _FORWARD:
            self._expect("fail")
        log_cut_off(self)  # (a done step whose undo's log was cut off: logged, undone too)
        self.error, current = error, self.current  # (before ``rolling``: an interrupt
        self.rolling = True  # between them must never leave a failed run "committed")
        self.failed_step = current if current not in self.completed else None
        self.open = False
        self._emit(EventKind.PIPELINE_FAILED, self.failed_step, (("error", describe(error)),))
        if issubclass(type(error), TakenOver):  # another process holds it: it undoes, not us
            self.halted, self.phase, self.reason = True, _DONE, describe(error)
            late = error.late  # type: ignore[attr-defined] # (returned after: leaked, attack48)
            self.pending = [e.step for e in self.log[::-1] if e.step != late]
            self.leaked = [*self.leaked, late] if late else self.leaked
            self._emit(EventKind.HALTED, self.failed_step, {"reason": self.reason})
            return Finished(self)
        failed_kind = self.kinds.get(self.failed_step or "")
        if halts_forward(self.pivot_done, failed_kind):
            assert self.failed_step is not None
            self.halted, self.phase, self.reason = True, _DONE, HALTED_FORWARD
            self.pending = [self.failed_step]
            self._emit(EventKind.HALTED, self.failed_step, {"reason": self.reason})
            return Finished(self)
        pivot = self._pivot_at_stake(error)
        if pivot is not None:  # never compensated across: a person decides
            self.halted, self.phase, self.reason = True, _DONE, pivot
            self.pending = [e.step for e in self.log[::-1]]
            self._emit(EventKind.HALTED, self.failed_step, {"reason": self.reason})
            return Finished(self)
        self._rolling_back(self._order())
        if self.irreversible:
            self.leaked = [*self.leaked, *self.irreversible]
        details: tuple[tuple[str, Any], ...] = (
            ("undos", len(self.todo)), ("order", self.undo_order), ("policy", self.policy.name),
        )  # fmt: skip
        if self.cancelled:  # (a journal keeps it: recover ends the rollback ``cancelled`` too)
            details += (("cancelled", True),)
        self._emit(EventKind.ROLLBACK_START, None, details)
        return self._next_undo()

    def _pivot_at_stake(self, error: BaseException) -> str | None:
        """A pivot that may have happened is never compensated across: when an attempt of it
        may have (``_doubted``; the run failing then for no step's reason too, attack43 F5),
        or the run fails for a reason no step gave after it (a journal's too: 264 F1), a person
        decides. (A later step failing in an order ``check_order`` refuses, a cancel: across.)"""
        if self.doubt not in (None, *self.completed) and self.failed_step in (self.doubt, None):
            return halted_at_pivot(self.doubt, "failed", self.doubt_cause)  # type: ignore[arg-type]
        failing = self.failed_step is None or by_journal(error)  # (a write, not a step)
        if self.pivot_done and failing and error is not self.stopping:
            done = [s for s in self.completed if self.kinds[s] == Kind.PIVOT]
            whole = self.plan and {s.name for s in self.plan} <= {*self.completed}
            cause = COMMIT_UNRECORDED if self.commit_failed or whole else "the run failed"
            return halted_at_pivot(done[-1], "done", cause)
        return None

    # -- backward -----------------------------------------------------------------------

    def _rolling_back(self, todo: list[Entry]) -> None:
        self.compensated, self.dead_letters, self.pending, self.semantic = [], [], [], []
        self.todo, self.policy_timeout = todo, self.policy.timeout  # (read once, not per undo)

    def _next_undo(self) -> RunUndo | Finished:
        if self.index >= len(self.todo):  # (cut short at the last undo's event: said so)
            return self._rollback_done() if self.interruption is None else self._cut_short()
        self.entry = self.todo[self.index]  # (attempts made before a crash count, below)
        self.base, self.attempt = 0, self.entry.before + 1
        return self._undo_attempt()

    def _undo_attempt(self) -> RunUndo | Finished:
        entry = self.entry
        assert entry is not None
        self.phase, self.untold = _UNDO, self.told_as_called and self.interruption is None
        if self.interruption is None and not self.untold:  # (no one watches: its row, inline)
            row = (ROW_UNDO, entry.step, (("attempt", self.attempt),), self.now)
            self.rows.append(row) if self.watch is None else self._emit(EventKind.UNDO, *row[1:3])
        if self.interruption is not None:  # cut short around the rollback: no more undos
            return self._cut_short()
        timeout = entry.timeout if entry.timeout is not None else self.policy_timeout
        return _new(RunUndo, (entry.step, self.attempt, timeout))

    def undo_begins(self) -> Finished | None:
        """The undo asked for is called now (``told_as_called``): its event; the rollback's
        end instead, if an observer's Ctrl-C at that event cut it short (not called then)."""
        if self.untold:
            self.untold = False
            self._emit(EventKind.UNDO, self.entry.step, (("attempt", self.attempt),))  # type: ignore[union-attr]
        return None if self.interruption is None else self._cut_short()

    def undo_ok(self) -> RunUndo | Finished:
        """The undo attempt returned (unwatched, uncut, no correction: ``undos_ok``)."""
        if self.phase is not _UNDO:
            self._expect("undo_ok")
        entry: Entry = self.entry  # type: ignore[assignment]
        if self.watch or entry.semantic or self.interruption or self.told_as_called:
            return self._undone((("attempt", self.attempt),))
        return self.undos_ok((self.now,))  # type: ignore[arg-type]

    def undo_plan(self) -> tuple[str, ...]:
        """The undos this rollback asks for from here, in order, as long as each returns (the
        one asked, then the rest of the log), when nothing can come between them: nothing
        watches, none has a timeout or is a correction, nothing cut the rollback short. A
        driver may call them in a row and tell ``undos_ok`` when they returned; () if not."""
        if self.phase is not _UNDO or self.watch or self.interruption or self.policy_timeout:
            return ()
        plan = []
        for entry in self.todo[self.index :]:
            if entry.timeout is not None or entry.semantic:
                return ()
            plan.append(entry.step)
        return tuple(plan)

    def undos_ok(self, times: Sequence[float]) -> RunUndo | Finished:
        """The undo asked, and after it as many of the next as ``times`` has, returned, each
        at its time: recorded at once, as told one at a time (unwatched, no correction)."""
        if self.phase is not _UNDO or self.watch or self.interruption:
            raise MachineError("undos_ok() is for an unwatched rollback's undos, uncut")
        todo, rows, compensated = self.todo, self.rows, self.compensated
        index, attempt, now = self.index, self.attempt, self.now
        for now in times:
            step = todo[index].step
            compensated.append(step)  # type: ignore[attr-defined]
            rows.append(("undo_done", step, (("attempt", attempt),), now))
            index += 1
            if index < len(todo):
                attempt = todo[index].before + 1
                rows.append((ROW_UNDO, todo[index].step, (("attempt", attempt),), now))
        self.now, self.index, self.base, self.attempt = now, index, 0, attempt
        if index >= len(todo):
            return self._rollback_done()
        self.entry = after = todo[index]
        timeout = after.timeout if after.timeout is not None else self.policy_timeout
        return _new(RunUndo, (after.step, attempt, timeout))

    def _undone(self, details: Pairs) -> RunUndo | Finished:
        entry = self.entry
        assert entry is not None
        self.compensated.append(entry.step)  # type: ignore[attr-defined]
        if entry.semantic:
            self.semantic.append(entry.step)  # type: ignore[attr-defined]
        if self.watch is None:
            self.rows.append(("undo_done", entry.step, details, self.now))
        else:
            self._emit(EventKind.UNDO_DONE, entry.step, details)
        self.index += 1
        return self._next_undo()

    def undo_failed(self, error: BaseException, limit: str | None = None, by: Any = decided) -> Op:
        """The undo attempt raised ``error``: the policy decides (retry, dead letter, halt),
        asked ``by`` (a workflow's local activity). ``limit``: no room for another attempt
        (why: Temporal's history near its limit; its work runs on): a retry ends as the policy
        ends once its retries are over (its ``then``), a halt leaving the undos pending."""
        self._expect("undo_failed")
        entry = self.entry
        assert entry is not None
        error = off_its_loop(error, entry.step)  # (a plain undo's "no running event loop" said
        limit = limit if limit is not None else goes_on(error)  # whole, F15; its work runs on)
        decision = by(self.policy, self.deciding(), error)
        details: dict[str, Any] = {"attempt": self.attempt, "error": describe(error)}
        if limit is not None and decision != "dead_letter":
            self.notes = [*self.notes, f"the undo of {entry.step}: {limit}"]
            decision = "halt" if "halt" in (decision, self.policy.then) else "dead_letter"
            details["limit"] = limit
        if is_delay(decision):
            details["then"], details["delay"] = "retry", decision
            self.phase = _UNDO_WAIT
            self._emit(EventKind.UNDO_FAILED, entry.step, details)
            if self.interruption is not None:
                return self._cut_short()
            return Wait(decision)
        if decision not in ("dead_letter", "halt"):
            self.notes = [*self.notes, undo_refused(self.policy, decision)]
            decision = "halt"
        details["then"] = decision
        self._emit(EventKind.UNDO_FAILED, entry.step, details)
        if decision == "halt":
            self.phase = _ASK
            if limit is not None:
                return self.answer("leave")
            return Ask(tuple(e.step for e in self.todo[self.index :]))
        self.dead_letters.append(DeadLetter(entry.step, error, self.attempt))  # type: ignore[attr-defined]
        self.index += 1
        return self._next_undo()

    def deciding(self) -> int:
        """The attempt an undo policy is asked about (counted from a person's last "retry")."""
        return self.attempt - self.base

    def answer(self, answer: str) -> RunUndo | Finished:
        """A person's answer to ``Ask``: ``retry`` the undo (its retries start afresh), it
        was ``fixed`` by hand, or ``leave`` it and the rest for later."""
        self._expect("answer")
        if answer == "retry":
            self.base, self.attempt = self.attempt, self.attempt + 1
            return self._undo_attempt()
        if answer == "fixed":
            return self._undone((("attempt", self.attempt), ("by_hand", True)))
        if answer != "leave":
            raise MachineError(f"answer {answer!r} is not one of: {', '.join(ANSWERS)}")
        self.halted = True
        self.pending.extend(e.step for e in self.todo[self.index :])  # type: ignore[attr-defined]
        return self._rollback_done()

    def not_waited(self, why: str) -> RunUndo | Finished:
        """A person asked (``Ask``) is not waited for (``why``: ``CANCELLED_ASKING``, or no
        room left in a workflow's history): noted, and answered "leave" (halted, the undos
        left pending: never ``cancelled``, which promises the world as it was)."""
        self._expect("answer")
        step = self.todo[self.index].step  # type: ignore[attr-defined]
        self.notes = [*self.notes, f"the undo of {step}: a person no longer waited for: {why}"]
        return self.answer("leave")

    def interrupted(self, exc: BaseException, kept: bool = False, still_runs: bool = False) -> Op:
        """A BaseException (Ctrl-C, SystemExit, a cancelled task) cut a call or a wait short.
        In a step, the step failed for good (never retried). Once the run failed, anything
        that raised anywhere (an undo, a wait, an event's observer, the driver's own code)
        ends the rollback: what is not known to be done is pending, truthfully (``kept``: a
        journal keeps it for ``recover``; ``still_runs``: the step goes on, unwaited: leaked)."""
        if not self.rolling:
            self._expect("interrupted")
            runs = still_runs and self.phase is _STEP  # (waiting to retry: no new try begins)
            if runs:
                said = still_ran(self.current, "block" if self.plan is None else "run", exc)
                self.notes = [*self.notes, said]
            return self._step_lost(exc, cut=self.phase is _STEP, runs=runs)
        self.kept = self.kept or kept
        if self.interruption is None:  # (raised going forward, at an event: told once the
            raised = self.raised_at  # run had failed, before any undo ran: where it came)
            self.cut(exc, raised[1] if raised is not None and raised[0] is exc else None)
        if self.phase is _DONE:
            return Finished(self)
        return self._cut_short()

    def _cut_short(self) -> Finished:
        """End a rollback something cut short: every undo not known to be done (or dead, or
        left for a person) is pending, and the run halted; the first cause is the note."""
        exc = self.interruption
        assert exc is not None
        if self.todo is Machine.todo:  # cut before the rollback's lists were made
            self._rolling_back(self._order())
        over = {*self.compensated, *(d.step for d in self.dead_letters)}  # (pending ones left
        left = [e.step for e in self.todo if e.step not in over]  # too: named, attack118 F2)
        taken = issubclass(type(exc), TakenOver)  # (a journal's fence): the new holder finishes it
        rest = f"not known to be undone: {', '.join(left)}" if left else self.NONE[bool(self.todo)]
        kept = KEEPS if self.kept and left else ""  # (unless kept writes went unwritten)
        then = f"; {vars(exc).get('then', TakenOver.then)}" if taken else kept
        note = f"rollback interrupted by {interruption_name(exc)} {self.interrupted_where}; {rest}"
        if not self.cut_note:  # noted once, before they go pending (a Ctrl-C in here ran it
            self.notes, self.cut_note = [*self.notes, note + then], note + then  # twice: wrong)
        self.halted = self.halted or bool(left) or taken
        self.pending.extend(s for s in left if s not in self.pending)  # type: ignore[attr-defined]
        self.index = len(self.todo)
        return self._rollback_done(interrupted=cut_by(exc))

    def _rollback_done(self, **extra: Any) -> Finished:
        self.phase, self.entry = _DONE, None
        details: Pairs = (("status", self.status()._value_), ("undone", len(self.compensated)))
        details += (("dead_letters", len(self.dead_letters)), ("pending", len(self.pending)))
        if self.resumed and self.leaked:
            details += (("leaked", list(self.leaked)),)
        self._emit(EventKind.ROLLBACK_DONE, None, details + tuple(extra.items()))
        return Finished(self)

    @classmethod
    def resume_rollback(
        cls, undos: Sequence[tuple[str, int]], *, leaked: Sequence[str] = (),
        dead: Sequence[DeadLetter] = (), pivot: tuple[Any, ...] | None = None,
        semantic: Sequence[str] = (), corrected: Sequence[str] = (), cancelled: bool = False,
        policy: UndoPolicy = CONTINUE, undo_order: str = "reverse",
        timeouts: Mapping[str, float] | None = None, halted_at: str | None = None,
        **options: Any,
    ) -> tuple[Machine, Op]:  # fmt: skip
        """Take up a crashed saga's rollback (``recover``): ``undos`` are (step, attempts made)
        of the undos not yet done, in the order they were logged; ``leaked`` steps started
        with their undo still to be logged; ``dead`` the dead letters recorded before the
        crash; ``pivot`` is (step, started | done | refused) if the irreversible step began;
        ``semantic`` steps' undos are corrections (``corrected``: done before it, so
        rollback_incomplete); ``cancelled``: its caller had cancelled the run; ``timeouts``
        the steps' own undo timeouts, which win over the policy's. Its own ``policy`` and
        ``undo_order`` decide, as before the crash (and ``halted_at``, where it had halted,
        its end unwritten: it asks again, ``Ask``)."""
        m = cls(policy, undo_order=undo_order, **options)
        return m, resumed(m, undos, leaked=leaked, dead=dead, pivot=pivot, semantic=semantic,
                          corrected=corrected, cancelled=cancelled, timeouts=timeouts,
                          halted_at=halted_at)  # fmt: skip

    def _order(self) -> list[Entry]:
        """The undo log in the run's undo order (``in_undo_order``; a graph's own orders are
        ``GraphMachine``'s, also when ``recover`` resumes one)."""
        return in_undo_order(self.log, self.undo_order)

    # -- how it ended -------------------------------------------------------------------

    def status(self) -> Status:
        return status_of(failed=self.error is not None or self.resumed, halted=self.halted,
                         dead_letters=bool(self.dead_letters), leaked=bool(self.leaked),
                         semantic=bool(self.semantic), cancelled=self.cancelled)  # fmt: skip

    def in_effect(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """What a run stopped midway leaves in effect (``undo_log.in_effect``)."""
        return in_effect(self)

    def logged(self, step: str) -> bool:
        """Is ``step``'s undo in the log, so that a rollback would run it?"""
        log = self.log  # (newest first; a list: a Ctrl-C as any()'s genexpr closed: dropped, L1)
        return (bool(log) and log[-1].step == step) or step in [e.step for e in log]

    def record(self, cls: type[RunRecord] = RunRecord, **extra: Any) -> Any:
        """The run as a record (``cls``: a RunRecord with more fields, such as Outcome).
        A driver that knows the steps and kinds already may pass them (``steps=, kinds=``)."""
        return cls.of_run(self, **extra)


__all__ = ["ANSWERS", "PROCEED", "RAISE", "REGISTERED", "ROW_DONE", "ROW_LOGGED", "ROW_START",
    "ROW_UNDO", "TRANSITIONS", "Ask", "Finished", "Machine", "MachineError", "Phase", "RunStep",
    "RunUndo", "StepSpec", "Wait", "after_effect", "halts_forward", "pivot_at_stake",
    "pivot_in_doubt", "status_of", "timed_out"]  # fmt: skip
