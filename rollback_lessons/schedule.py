"""A saga that is a graph: which steps may start, what is owed when one fails, the undo order.

A saga with parallel groups (``Parallel``) is a graph: each step names the steps that must
be done before it starts (``after``). ``GraphMachine`` is the saga machine (``machine.py``)
for such a saga, sans I/O as it is: it answers which steps may start now (``Ready``), takes
each step's outcome by name (several run at once), and once the run cannot go on, hands
over to the machine's own rollback, with the undo log in the order declared. Every other
rule (the pivot, what a failed undo leads to, the status, the events) is the machine's.

What it decides, and why:

- **A failure stops the graph, and the running siblings are awaited.** Once a step fails for
  good (or the run is cancelled) no step starts; the steps still running finish their
  attempt (a step cut off mid-call leaves an effect nobody knows happened), a step waiting
  to retry is not tried again; then the rollback undoes everything logged. So every effect
  that happened is undone or reported.
- **The undo order is declared** (``undo_order``): ``reverse`` (the default) undoes in
  reverse *completion* order, ``reverse_start`` in reverse *start* order (Cloudflare
  Workflows' rule), ``by_dependency`` so that a step's undo runs after the undos of every
  step that depended on it (independent undos could run at once; here they run one at a
  time, in reverse definition order, so the order does not depend on which branch happened
  to finish first). ``forward`` is the log's order, only to show why it is wrong.
- Undos run one at a time, in that order (the machine's rollback, unchanged).

The in-process drivers (``_graph_drive.py``) run the ready steps one at a time, in definition
order (synchronously), or at once as asyncio tasks (``Saga.arun``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from .errors import goes_on
from .events import EventKind, describe
from .graph_shape import After, concurrent, dependants, undo_order
from .machine import REGISTERED, ROW_DONE, ROW_START, Machine, MachineError, Phase
from .operations import Entry, Op, RunStep, StepSpec, Wait
from .policies import UndoPolicy, step_wait
from .rules import IRREVERSIBLE, Kind
from .stopping import (  # noqa: F401 (named here too: ``schedule.cancel``)
    PAST_PIVOT,
    STOPPED_PAST,
    cancel,
    declines,
    past_pivot,
    stop_forward,
)
from .verdicts import halts_forward, still_ran


class Ready(NamedTuple):
    """These steps may start now (``launch`` each, at once or one at a time). Empty: wait
    for a running step's outcome."""

    steps: tuple[str, ...]


GraphOp = Op | Ready


_RUNNING, _WAITING, _DONE, _FAILED = "running", "waiting", "done", "failed"
_FORWARD, _new = Phase.FORWARD, tuple.__new__  # (the hottest inputs: plain names)


class GraphMachine(Machine):
    """The saga machine for a graph of steps (``after``: each step's dependencies; ``plan``
    the steps in definition order). Inputs: ``start``, ``launch(step)``, then for each step
    ``step_done(step)``, ``step_error(step, error)`` (a ``Wait`` answer: the step waits, then
    ``step_resume(step)``), ``step_cut(step, exc)`` (a BaseException cut it short),
    ``step_returned(step, exc)`` (one came as its call returned); ``cancel(error)`` any time.
    Answers: ``Ready``, ``RunStep``, ``Wait``, and, once no step runs and the run is over,
    what the machine answers (``Finished``, or the first undo)."""

    hear: Callable[[], object] | None = None
    """The caller's cancel as its driver asks it: asked as each step returns, the last one
    too, before the run commits (a list's drivers ask just before ``step_ok``, the same
    point: ``_drive``, ``_run``, Temporal's and DBOS's lists)."""

    def __init__(
        self,
        policy: UndoPolicy,
        *,
        plan: Sequence[StepSpec],
        after: After,
        history: tuple[Sequence[str], Sequence[str]] = ((), ()),
        **options: Any,
    ) -> None:
        super().__init__(policy, plan=plan, **options)
        self.after = after
        self.specs = {spec.name: spec for spec in plan}
        self.definition = tuple(spec.name for spec in plan)
        self.place = {step: n for n, step in enumerate(self.definition)}  # (no search each)
        # kept as it changes, not searched for: the explorer runs thousands (``make bench``)
        self.children: dict[str, list[str]] = {step: [] for step in self.definition}
        self.unmet = {step: len(after[step]) for step in self.definition}
        for step in self.definition:
            for dep in after[step]:
                self.children[dep].append(step)
        self.waiting = [step for step in self.definition if not after[step]]  # may start
        self.busy_count = 0
        self.where: dict[str, str] = {}  # step -> running, waiting, done, failed
        self.attempts: dict[str, int] = {}
        self.last_error: dict[str, BaseException] = {}
        self.started: list[str] = list(history[0])
        self.ended: list[str] = list(history[1])
        self.failures: list[tuple[str | None, BaseException]] = []
        self.asked_error: BaseException | None = None  # the caller's cancel function raised

    # -- which steps may start --------------------------------------------------------------

    @property
    def failing(self) -> bool:
        """Nothing more starts: a step failed for good, or the run was cancelled."""
        return bool(self.failures) or self.stopping is not None

    @property
    def busy(self) -> tuple[str, ...]:
        """The steps started and not yet ended (running, or waiting to retry)."""
        return tuple(s for s, w in self.where.items() if w in (_RUNNING, _WAITING))

    def ready(self) -> tuple[str, ...]:
        """The steps that may start now (all they depend on is done), in definition order."""
        if self.failures or self.stopping is not None or self.phase is not _FORWARD:
            return ()
        return tuple(self.waiting)

    def start(self) -> Ready:  # type: ignore[override]
        self._expect("start")
        return Ready(self.ready())

    def launch(self, step: str) -> RunStep:
        """Start ``step`` (one of ``ready()``)."""
        if step not in self.ready():
            raise MachineError(f"launch({step!r}): it may not start now")
        spec = self.specs[step]
        self.kinds[step] = spec.kind
        self.seen.append(step)
        self.spec, self.current = spec, step
        details = REGISTERED[spec.register if spec.has_undo else "none"]
        if self.watch is None:  # (its row, inline: the explorer runs thousands)
            self.rows.append((ROW_START, step, details, self.now))
        else:  # (a Ctrl-C in an observer: not run, ``Machine.not_run``, nor started below)
            self._emit(EventKind.STEP_START, step, details)
        self.waiting.remove(step)
        self.busy_count += 1
        self.started.append(step)
        self.attempts[step] = 1  # (first: a step in ``where`` always has its attempts,
        self.where[step] = _RUNNING  # whatever instant an exception lands at: attack79 F1)
        if spec.has_undo and spec.register == "before":
            try:
                self._log(spec)
            except BaseException as exc:  # never called (withdrawn, ``_emit``; a Ctrl-C: not
                if step in self.where:  # run; one as ``_log`` returned, past its ``try``, told
                    self._broke(exc, EventKind.UNDO_REGISTERED, step)  # here: attack269, its
                if step in self.where:  # undo left logged, the step unlaunched, the
                    self._unlaunch(step)  # rollback's order a KeyError)
                raise
        return _new(RunStep, (step, 1))

    def _unlaunch(self, step: str) -> None:  # launched, its action never to be called
        del self.where[step]  # (first, as ``launch`` stores it last: attack79 F1)
        self.attempts.pop(step, None)
        self.busy_count -= 1
        self.started.remove(step)

    def not_run(self, step: str, why: str = "the Ctrl-C came as it started") -> None:
        if self.attempts.get(step, 1) > 1:  # a later attempt: the step waits to retry again
            self.where[step], self.attempts[step] = _WAITING, self.attempts[step] - 1
            return
        if step in self.where:  # (a Ctrl-C at its undo_registered, launched already)
            self._unlaunch(step)
        super().not_run(step, why)

    # -- how each step went ---------------------------------------------------------------

    def _running(self, step: str, *states: str) -> StepSpec:
        if self.where.get(step) not in states:
            now = self.where.get(step, "not started")
            raise MachineError(f"step {step!r} is {now}, not {' or '.join(states)}")
        return self.specs[step]

    def step_done(self, step: str) -> GraphOp:
        """``step``'s action returned (a cancel is heard first, ``hear``: the last step's too,
        before the run commits)."""
        spec = self._running(step, _RUNNING)
        if self.hear is not None:
            self.hear()
        try:  # (done: whatever raises from here, its undo logged after it is logged)
            self.where[step], self.busy_count = _DONE, self.busy_count - 1  # (one instant)
            self._passed(spec)  # (first: an irreversible step done is never undone across)
            self.completed.append(step)
            self.ended.append(step)
            freed = False
            for child in self.children[step]:
                self.unmet[child] -= 1
                if not self.unmet[child]:
                    self.waiting.append(child)
                    freed = True
            if freed:
                self.waiting.sort(key=self.place.__getitem__)
            if self.watch is None:
                self.rows.append((ROW_DONE, step, (), self.now))
            else:
                self._emit(EventKind.STEP_DONE, step)
            if spec.has_undo and spec.register == "after":
                self._log(spec)
        except BaseException:  # (an observer, a journal write, a Ctrl-C as any call here
            if self.where[step] != _DONE:  # (a Ctrl-C as its try began: done all the same)
                self.where[step], self.busy_count = _DONE, self.busy_count - 1
            self._passed(spec)  # (all the same: attack116 F1, a undone after its pivot ran)
            self.completed += [step] if step not in self.completed else []
            if spec.has_undo and spec.register == "after" and not self.logged(step):
                log_anyway(self, spec)  # returned: attack53 F4): undone all the same
            raise
        return self._next()

    def _passed(self, spec: StepSpec) -> None:
        """``spec``'s step, done: if irreversible, recorded so (once), its pivot passed."""
        if spec.kind in IRREVERSIBLE:
            self.pivot_done = self.pivot_done or spec.kind == Kind.PIVOT
            if spec.name not in self.irreversible:
                self.irreversible = [*self.irreversible, spec.name]

    def step_error(self, step: str, error: BaseException) -> GraphOp:
        """``step``'s action raised ``error``: retried if its policy says so and nothing
        else failed meanwhile. Told first: a repr raising a Ctrl-C cuts the step short (still
        running: ``cut_forward``), as in a list (``Machine.step_failed``)."""
        said = describe(error)
        spec = self._running(step, _RUNNING)
        attempt = self.attempts[step]
        self._doubted(spec, error)  # (a pivot's doubt outlives its later attempts)
        delay = None
        if not self.failing:  # (its retry's answer read as a list's: ``step_wait``)
            delay, self.notes = step_wait(spec.retry, attempt, error, step, self.notes)
        if delay is None:
            return self._lost(step, error, runs=goes_on(error) is not None)  # (runs on: leaked)
        self.where[step], self.last_error[step] = _WAITING, error
        details = {"attempt": attempt, "delay": delay, "error": said}
        self._emit(EventKind.STEP_RETRY, step, details)
        return Wait(delay)

    def step_resume(self, step: str) -> GraphOp:
        """``step``'s wait is over: its next attempt, unless the run failed meanwhile (then
        it failed for good: by the cancel if the run was cancelled, else with its last error)."""
        self._running(step, _WAITING)
        if self.failing:  # (cancelled, nothing failed: the step failed by the cancel, as a list's)
            self.where[step] = _RUNNING
            error, stopping = self.last_error.pop(step), self.stopping
            if self.cancelled and not self.failures and stopping is not None:
                error = stopping
            if self.failures and self.failures[0] == (None, self.asked_error):  # (``broken``)
                self.failures[0] = (step, self.failures[0][1])  # the step fails with it
                return self._lost(step, self.failures[0][1], counted=True)
            return self._lost(step, error)
        self.where[step] = _RUNNING
        self.attempts[step] += 1
        self.spec, self.current = self.specs[step], step
        return RunStep(step, self.attempts[step])

    def step_cut(
        self, step: str, exc: BaseException, called: bool = True, runs: bool = False
    ) -> GraphOp:
        """A BaseException (Ctrl-C, a cancelled task) cut ``step`` short: failed for good.
        ``called``: its action was called (not, when launched with others and not yet begun);
        ``runs``: its work goes on, the wait for it given up (leaked, undone or not: a note)."""
        cut = called and self.where[step] == _RUNNING  # inside its call: it may have happened
        self._running(step, _RUNNING, _WAITING)
        if not called:  # (never called: an undo logged before it is withdrawn)
            self.withdraw(step)
        self.where[step] = _RUNNING
        if runs and cut:  # (attack96 F2: a graph's said nothing, its journal rolled_back)
            self.notes = [*self.notes, still_ran(step, "run", exc)]
        return self._lost(step, exc, cut, runs=runs and cut)

    def step_returned(self, step: str, error: BaseException) -> GraphOp | None:  # type: ignore[override]
        """``step``'s call returned, and the driver cannot know if ``step_done`` heard it
        (``error``, a Ctrl-C, came as the driver kept its result, or at ``step_done``'s
        entry): the run fails with ``error`` first, so it never commits, then ``step`` is
        told done (its undo logged, the cancel not asked again): undone with the rest, as a
        list's (``Machine.step_returned``). The answer; None if it was told already."""
        if self.where.get(step) != _RUNNING:
            return None
        if not [e for _, e in self.failures if e is error]:  # (once, for every step back)
            self.broken(error)  # (the step still busy: no answer yet)
        hear, self.hear = self.hear, None
        try:
            return self.step_done(step)
        finally:
            self.hear = hear

    def not_called(self, step: str) -> None:
        """``step`` was launched with others (a timing played: ``completion``) and the run
        failed going forward (a journal write as another step started or ended) before its
        action was called: it never ran, as a list's step a Ctrl-C came as it began
        (``Machine.not_run``), so a journal writes its intent not run, never leaked (attack21's
        E1). An undo logged before it is withdrawn: a step never called had no effect
        (attack23's F1)."""
        self._running(step, _RUNNING)
        self.withdraw(step)
        self._unlaunch(step)
        del self.kinds[step]
        self.seen.remove(step)
        if self.current == step:
            self.current = self.completed[-1] if self.completed else None
        self.notes = [*self.notes, f"{step} was not run: the run failed before its turn"]

    def _lost(self, step: str, error: BaseException, cut: bool = False,
              counted: bool = False, runs: bool = False) -> GraphOp:  # fmt: skip
        """``step`` failed for good: nothing more starts; its effect, if it happened anyway
        (after its effect, or ``cut`` short inside its call) and no undo was logged before
        it, leaked; a pivot that may have happened halts for a person (the machine's rule,
        ``pivot_in_doubt``). ``counted``: its failure is in ``failures`` already."""
        details = self._lost_effect(self.specs[step], error, cut, runs)  # (first: a Ctrl-C its
        self.where[step] = _FAILED  # describe raises cuts the step short, still running)
        self.busy_count -= 1
        self.ended.append(step)
        if self.failures and not counted and not [e for _, e in self.failures if e is error]:
            how = "was also cut short (in doubt)" if cut else "also failed"  # (172 F1)
            also = f"{step} {how}, while the running steps finished: {describe(error)}"
            self.notes = [*self.notes, also]
        if not counted:
            self.failures.append((step, error))
        self._emit(EventKind.STEP_FAILED, step, details)
        return self._next()

    def broken(self, error: BaseException, asked: bool = False) -> GraphOp | None:
        """Something outside a step's call raised going forward (a journal write as a step
        starts or ends): nothing more starts, and once the running steps have ended (each
        told as usual) the run fails with it, by the machine's rules (rolled back, or halted
        after a pivot). The driver awaits them first: a branch still running is never left
        behind by a rollback. Answers the run's end at once when no step runs (None while
        steps still run, or once the run failed). ``asked``: the caller's cancel function
        raised it; a step waiting to retry fails with it as it resumes, as a list's does."""
        if self.rolling or self.phase is Phase.DONE:
            return None
        self.asked_error = error if asked else self.asked_error
        self.failures.append((None, error))
        return self._next() if not self.busy_count else None

    def cancel(self, error: BaseException) -> GraphOp | None:
        """The run's caller cancels it (told through ``schedule.cancel``, which declines it
        once the run failed or past the pivot): nothing more starts; the steps running
        finish (tell their outcome as usual), then what was done is undone and the status
        says ``cancelled``. Answers the rollback at once when no step runs; None while
        steps still run."""
        self.cancelled, self.stopping = True, error
        return self._next() if not self.busy_count else None

    def _next(self) -> GraphOp:
        """What follows an ended step: more may start, or wait for the running, or the run
        is over (committed, or failed: the first failure's rollback)."""
        if self.busy_count:
            return Ready(self.ready())
        ready = self.ready()
        if ready:
            return Ready(ready)
        if self.failures:
            step, error = self.failures[0]
            self.current = step
            ended = self.fail(error)
            if self.halted and halts_forward(self.pivot_done, self.kinds.get(step or "")):
                also = [s for s, _ in self.failures[1:] if s is not None and s not in self.pending]
                self.pending = [*self.pending, *dict.fromkeys(also)]  # (each step after the
            return ended  # pivot that failed for good, to finish forward: attack295 F2)
        if self.stopping is not None:
            self.current = self.completed[-1] if self.completed else None
            return self.fail(self.stopping)
        return self._commit()

    # -- the undo order ---------------------------------------------------------------------

    @classmethod
    def resume_rollback(  # type: ignore[override]
        cls,
        undos: Sequence[tuple[str, int]],
        *,
        after: After,
        started: Sequence[str] = (),
        ended: Sequence[str] = (),
        **options: Any,
    ) -> tuple[Machine, Op]:
        """Take up a crashed graph saga's rollback (``recover``), as ``Machine.resume_rollback``
        does a list's, with what its journal kept: ``after`` each step's dependencies (in
        definition order), ``started`` and ``ended`` the steps in the order they started and
        ended (done or failed) before the crash. Its undos run in its declared order as the
        run would have ordered them (``undo_order``); a step that started and never ended
        counts as ending last, as it does in the run."""
        plan = [StepSpec(step) for step in after]
        started = [*started, *(s for s, _ in undos if s not in started)]  # (its start unread)
        return super().resume_rollback(
            undos, plan=plan, after=after, history=(started, ended), **options
        )

    def _rolling_back(self, todo: list[Entry]) -> None:
        super()._rolling_back(self._graph_order(todo))

    def _graph_order(self, log: list[Entry]) -> list[Entry]:
        """The undo log in the declared order (``forward``: as logged)."""
        if self.undo_order == "forward":  # (as logged: by place, not a search each)
            at = {id(e): n for n, e in enumerate(self.log)}
            return sorted(log, key=lambda e: at[id(e)])
        entry, ended = {e.step: e for e in log}, set(self.ended)
        steps = undo_order(
            self.undo_order,
            [e.step for e in log],
            started=self.started,
            ended=self.ended + [s for s in self.started if s not in ended],
            definition=self.definition,
            after=self.after,
        )
        return [entry[step] for step in steps]


def log_anyway(m: Machine, spec: StepSpec) -> None:
    """Log a done step's undo although something raised around it (an observer of its
    event, a Ctrl-C): the run that fails there undoes it. The entry is kept in memory even
    if its own event raises too (the first error is the one that goes on)."""
    with contextlib.suppress(BaseException):
        m._log(spec)


__all__ = [
    "After", "GraphMachine", "GraphOp", "Ready", "cancel", "concurrent", "declines", "dependants",
    "log_anyway", "past_pivot", "stop_forward", "undo_order",
]  # fmt: skip
