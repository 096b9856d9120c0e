"""A saga, its policy, its errors and its record as plain data: what crosses into an engine
(a Temporal workflow's input, a DBOS workflow's arguments, a Step Functions message) and
comes back out. No rule lives here: the machine reads the steps and the policy these make,
and decides as it does in process.

Exceptions travel as data (``error_record``); a policy that decides in Python code travels
by its run's id only, to a machine in this process (``hosted``)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._checks import check_undo
from .._commit_notes import with_notes
from ..errors import InvalidPipelineError, NestedTooDeep
from ..graph import MACHINE_LIST, WRITTEN_LIST, ListForm, needs_graph, too_deep
from ..operations import StepSpec
from ..outcome import DeadLetter, Outcome, RunRecord, Status
from ..policies import (
    PolicyLike,
    RetryPolicy,
    UndoPolicy,
    UnsupportedPolicy,
    code_of,
    escape,
    resolve_policy,
    type_name,
)
from ..rules import (
    GRAPH_UNDO_ORDERS,
    UNDO_ORDERS,
    Register,
    UndoOrder,
    check_register,
    check_undo_order,
)
from ..saga import Saga, State
from ..snapshots import noted, safe_snapshot
from . import hosted
from .error_record import ErrorRecord, adopt, exception_type, keep_types, kept_types
from .names import keys

# -- the saga and its policy --------------------------------------------------------------


@dataclass
class RetrySpec:
    """A RetryPolicy as plain data (exception types by name)."""

    max_attempts: int
    initial_delay: float
    multiplier: float
    max_delay: float
    retry_on: list[str] = field(default_factory=lambda: ["Exception"])
    non_retryable: list[str] = field(default_factory=list)
    timeout: float | None = None
    kept: str | None = None
    """The id its classes are kept by while it runs here (``error_record.keep_types``): they
    match as ``isinstance`` does (two classes of one name apart); elsewhere, by name."""

    @classmethod
    def of(cls, policy: RetryPolicy) -> RetrySpec:
        return cls(
            max_attempts=policy.max_attempts,
            initial_delay=policy.initial_delay,
            multiplier=policy.multiplier,
            max_delay=policy.max_delay,
            retry_on=[escape(type_name(t)) for t in policy.retry_on],  # (as an error's
            non_retryable=[escape(type_name(t)) for t in policy.no_retry_on],  # record: UTF-8)
            timeout=policy.timeout,
            kept=keep_types((*policy.retry_on, *policy.no_retry_on)),
        )

    def policy(self) -> RetryPolicy:
        names = [*self.retry_on, *self.non_retryable]
        kept = kept_types(self.kept, names) or tuple(exception_type(n) for n in names)
        return RetryPolicy(
            max_attempts=self.max_attempts,
            initial_delay=self.initial_delay,
            multiplier=self.multiplier,
            max_delay=self.max_delay,
            retry_on=kept[: len(self.retry_on)],
            no_retry_on=kept[len(self.retry_on) :],
            timeout=self.timeout,
        )


@dataclass
class PolicySpec:
    """An UndoPolicy as data; ``in_code``: a policy of its own ``decide``, which only the
    process that started the run has (looked up by run id in ``hosted``)."""

    retry: RetrySpec | None = None
    then: str = "dead_letter"
    in_code: bool = False

    @classmethod
    def of(cls, policy: UndoPolicy) -> PolicySpec:
        retry = RetrySpec.of(policy.retry) if policy.retry is not None else None
        return cls(retry, policy.then, code_of(policy) is not None)

    def policy(self, run_id: str) -> UndoPolicy:
        if self.in_code:
            return hosted.policy(run_id)
        retry = self.retry.policy() if self.retry is not None else None
        return UndoPolicy(retry, self.then)  # type: ignore[arg-type]


@dataclass
class StepPlan:
    name: str
    kind: str
    has_undo: bool
    register: str
    retry: RetrySpec | None = None
    semantic: bool = False
    undo_timeout: float | None = None
    key: str = ""
    """The step's name as an engine that writes the saga down carries it (``names``)."""

    def spec(self) -> StepSpec:
        retry = self.retry.policy() if self.retry is not None else None
        return StepSpec(
            self.name, self.kind, self.has_undo, self.register, retry, self.semantic,
            self.undo_timeout,
        )  # fmt: skip


@dataclass
class SagaPlan:
    """What an engine needs to run a saga: names, kinds, options, the policy; no code."""

    run_id: str
    name: str
    steps: list[StepPlan]
    policy: PolicySpec
    undo_order: str = "reverse"
    step_timeout: float = 60.0
    halt_wait: float | None = 0.0
    """On a halt, how long a remote engine waits for a person (None: as long as it takes)."""
    after: dict[str, list[str]] | None = None
    """A saga with parallel groups: each step's dependencies (``Saga.after``); None: a list."""
    shape: list[Any] | None = None
    """A saga with parallel groups as its definition reads (``shape_of``): what a writer
    (ASL, BPMN) draws its branches from; None: a list."""
    turns: bool = False
    """Temporal's: each action waits for its turn (``completion``) before its call, a wait
    ``step_timeout`` does not count (``timeouts.turn_wait``: every step's tries)."""
    timing: list[str] | None = None
    """Temporal's: the timing ``completion`` plays (the order of the turns), kept with the
    run so a process taking it up (``handle_for``) gives its actions the same turns."""
    history_limit: int | None = None
    """Temporal's: the events its server keeps in a workflow's history (None: the default,
    ``limits.HISTORY_EVENTS_LIMIT``); the workflow stops retrying undos before it."""

    def specs(self) -> tuple[StepSpec, ...]:
        return tuple(s.spec() for s in self.steps)

    def undo_policy(self) -> UndoPolicy:
        return self.policy.policy(self.run_id)

    def key(self, step: str) -> str:
        """``step``'s key (``names.keys``): what a state machine names it by."""
        return next(s.key for s in self.steps if s.name == step)

    def step_of(self, key: str) -> str:
        """The step a key stands for."""
        found = [s.name for s in self.steps if s.key == key]
        if not found:
            raise KeyError(f"no step has the key {key!r}")
        return found[0]


def _steps(items: Any) -> dict[str, tuple[str, bool]]:
    return {s.name: (str(s.kind), bool(s.has_undo)) for s in items}


def changed(run_id: str, saga: Saga, plan: SagaPlan) -> str | None:
    """Why ``saga`` is not the saga run ``run_id`` was started with (its steps' names, kinds,
    and whether each has an undo, against the plan its engine keeps), in one line; None:
    the same. (DBOS's ``handle_for`` and ``sagas=``, Temporal's ``handle_for``: a saga
    hosted for a run it did not start.) A saga of another name is never the run's, whatever
    its steps (attack19's S2)."""
    if saga.name != plan.name:
        return (
            f"saga {saga.name!r} is not the one run {run_id!r} was started with (that was a "
            f"saga {plan.name!r}): nothing was hosted; give the saga that started it"
        )
    now, then = _steps(saga.specs()), _steps(plan.steps)
    if now == then:
        return None
    gone = [n for n in then if n not in now]
    new = [n for n in now if n not in then]
    if gone or new:
        why = f"steps {gone} are gone" if gone else ""
        why += (" and " if gone and new else "") + (f"steps {new} are new" if new else "")
    else:
        n = next(n for n in then if now[n] != then[n])
        was, has = then[n], now[n]
        why = (f"step {n!r} is {has[0]}, it was {was[0]}" if was[0] != has[0] else
               f"step {n!r} {'has an undo now' if has[1] else 'has no undo now'}, "
               f"it had {'one' if was[1] else 'none'}")  # fmt: skip
    return (
        f"saga {plan.name!r} is not the one run {run_id!r} was started with ({why}): "
        "nothing was hosted; give the saga that started it"
    )


GRAPH_ENGINES = (
    "in process (saga.run, await saga.arun), on Temporal, on Step Functions, on DBOS and as "
    "BPMN on SpiffWorkflow"
)
"""Where a saga with parallel groups runs (an engine not among them refuses it)."""


def refuse_graph(saga: Saga) -> None:
    """A saga with parallel groups runs only where ``GRAPH_ENGINES`` says: an engine whose
    plan ``plan_of`` makes without ``graphs=True`` refuses it before anything runs, rather
    than run its branches as a list."""
    if saga.after is not None:
        raise InvalidPipelineError(
            f"saga {saga.name!r} has parallel groups, which this engine does not run; it "
            f"runs {GRAPH_ENGINES}"
        )


def shape_of(items: Sequence[Any]) -> list[Any]:
    """A definition as plain data: a step by its name, a parallel group as
    ``{"parallel": [branch, ...]}``, each branch a list of the same."""
    from ..graph import Parallel

    return [
        {"parallel": [shape_of(branch) for branch in item.branches]}
        if isinstance(item, Parallel)
        else item.name
        for item in items
    ]


def plan_of(
    saga: Saga,
    run_id: str,
    *,
    policy: PolicyLike | None = None,
    register: Register | None = None,
    undo_order: UndoOrder = "reverse",
    step_timeout: float = 60.0,
    halt_wait: float | None = 0.0,
    graphs: bool = False,
    engine: str | None = None,
    written: bool = False,
) -> SagaPlan:
    """``saga`` as data for an engine; every option is checked here, before it runs. A
    policy that decides in code is hosted in this process under ``run_id``. A saga with
    parallel groups is refused (``refuse_graph``) unless the engine runs them (``graphs``);
    so is an undo order of a graph's (``reverse_start``, ``by_dependency``) without it."""
    if register is not None:
        check_register(register)
    check_undo_order(undo_order, GRAPH_UNDO_ORDERS if graphs else UNDO_ORDERS)
    if not graphs:
        refuse_graph(saga)
    if engine is not None:  # (groups nested deeper than it takes: ``DEEPEST_ON``)
        check_nesting(saga, engine, written)
    for step in saga.steps:  # (an engine calls undos synchronously: an async def
        if step.undo is not None:  # compensation refused, as saga.run refuses it, attack96 F9)
            check_undo(step.name, step.undo, journalled=False, allow_async=False, engine=True)
        if (code := code_of(step.retry)) is not None:  # (carried as data: its fields obeyed)
            raise UnsupportedPolicy(
                f"step {step.name!r}: its retry policy decides in Python ({code}); an engine "
                "carries a step's retry as data: use RetryPolicy's fields, or run it in process"
            )
    adopt(run_id)  # (``runner.run``'s run keeps its errors here: ``error_record``)
    chosen = resolve_policy(policy if policy is not None else saga.policy)
    spec = PolicySpec.of(chosen)
    if spec.in_code:
        hosted.host_policy(run_id, chosen)
    specs = saga.specs(register)
    return SagaPlan(
        run_id=run_id,
        name=saga.name,
        steps=[
            StepPlan(
                name=s.name,
                kind=str(s.kind),
                has_undo=s.has_undo,
                register=s.register,
                retry=RetrySpec.of(s.retry) if s.retry is not None else None,
                semantic=s.semantic,
                undo_timeout=s.undo_timeout,
                key=key,
            )
            for s, key in zip(specs, keys([s.name for s in specs]), strict=True)
        ],
        policy=spec,
        undo_order=undo_order,
        step_timeout=step_timeout,
        halt_wait=halt_wait,
        after={s: list(d) for s, d in saga.after.items()} if saga.after is not None else None,
        shape=_shape(saga),
    )


DEEPEST_ON: dict[str, tuple[int, str]] = {
    "Step Functions": (30, "moto's state machine parser recurses per level, and fails past it"),
    "DBOS": (120, "it pickles the saga's plan, recursing per level"),
    "Temporal": (120, "its JSON payloads carry the plan, encoded and read recursing per level"),
    "BPMN": (30, "SpiffWorkflow's joins walk the task tree: a run's time grows as the cube "
                 "of the nesting, seconds at 30 levels, minutes at 100"),
}  # fmt: skip
"""The deepest nesting of parallel groups each engine takes (``graph.too_deep``): deeper
was a bare RecursionError, or moto's 190 KB InvalidDefinition (attack100 F1-F5), or a BPMN
run of minutes (attack102 F5)."""
COST_ON = {"Step Functions": (120, 26), "DBOS": (110, 6), "Temporal": (80, 6), "BPMN": (110, 5)}
WRITTEN_COST = {"Step Functions": (85, 2), "BPMN": (65, 5)}  # (to_asl, to_bpmn: no run)
"""The frames an engine's entry recurses beyond ``check_nesting``: so many, and so many per
level of nesting (measured, with room to spare): a caller already deep in its stack is
refused in one line what the engine would fail on with a bare RecursionError (attack102 F3)."""


def check_nesting(saga: Saga, engine: str, written: bool = False) -> None:
    """Refuse ``saga`` (``NestedTooDeep``, one line, nothing run) if its groups nest deeper
    than ``engine`` takes (``DEEPEST_ON``), or than it takes at this call's depth (run, or
    only ``written`` down: ``to_asl``, ``to_bpmn``)."""
    most, why = DEEPEST_ON[engine]
    cost = (WRITTEN_COST if written else COST_ON)[engine]
    deep = too_deep(f"saga {saga.name!r}", saga.definition, engine, most, why, cost)
    if deep is not None:
        raise deep


def _shape(saga: Saga) -> list[Any] | None:
    try:
        return shape_of(saga.definition) if saga.after is not None else None
    except RecursionError:
        raise NestedTooDeep(
            f"saga {saga.name!r}: its parallel groups nest too deep to be written for an "
            f"engine within Python's recursion limit ({sys.getrecursionlimit()}) at this "
            "call's depth; nothing ran (saga.run and arun take it)"
        ) from None


# -- the record ---------------------------------------------------------------------------


def record_data(record: RunRecord) -> dict[str, Any]:
    """A run record as JSON-friendly data (what a workflow returns)."""
    return {
        "status": str(record.status),
        "steps": list(record.steps),
        "completed": list(record.completed),
        "compensated": list(record.compensated),
        "dead_letters": [
            {
                "step": d.step,
                "error": _error_data(d.error, d.step, record.run_id),
                "attempts": d.attempts,
            }
            for d in record.dead_letters
        ],
        "pending": list(record.pending),
        "leaked": list(record.leaked),
        "semantic": list(record.semantic),
        "error": (
            _error_data(record.error, record.failed_step, record.run_id) if record.error else None
        ),
        "failed_step": record.failed_step,
        "kinds": list(record.kinds.items()),  # (pairs: a payload's keys sorted, attack287 F2)
        "name": record.name,
        "run_id": record.run_id,
        "notes": list(record.notes),
        # details as (key, value) pairs, not a dict: Temporal's JSON converter sorts a dict's
        # keys, and the story would print them in another order than the run that made them
        "events": [
            [kind, step, [[key, value] for key, value in details]]
            for kind, step, details, _ in record.rows
        ],
    }


def _error_data(error: BaseException, step: str | None, run: str | None) -> dict[str, Any]:
    return vars(ErrorRecord.of(error, step, run))


def _error(data: Mapping[str, Any]) -> BaseException:
    return ErrorRecord(**data).to_exception()


def record_of(data: Mapping[str, Any]) -> RunRecord:
    """``record_data``'s inverse (errors come back as stand-ins: RemoteError, InjectedFault)."""
    return RunRecord.build(
        status=Status(data["status"]),
        steps=tuple(data["steps"]),
        completed=tuple(data["completed"]),
        compensated=tuple(data["compensated"]),
        dead_letters=tuple(
            DeadLetter(d["step"], _error(d["error"]), d["attempts"]) for d in data["dead_letters"]
        ),
        pending=tuple(data["pending"]),
        leaked=tuple(data["leaked"]),
        semantic=tuple(data["semantic"]),
        error=_error(data["error"]) if data["error"] else None,
        failed_step=data["failed_step"],
        kinds=dict(data["kinds"]),
        name=data["name"],
        run_id=data["run_id"],
        notes=tuple(data["notes"]),
        rows=tuple(
            (kind, step, tuple((key, value) for key, value in details), None)
            for kind, step, details in data["events"]
        ),
    )


def outcome_of(
    saga: Saga,
    record: RunRecord,
    *,
    before: Mapping[str, Any] | None,
    state: State | None,
) -> Outcome:
    """An engine's record as ``saga.run``'s Outcome (state after: a snapshot of ``state``;
    a state before not copied: ``noted``), its error with the rollback's notes (287 F4)."""
    return with_notes(Outcome.of(
        noted(record, before),
        state_before=before,
        state_after=safe_snapshot(state) if state is not None else None,
        labels={s.name: s.label for s in saga.steps if s.label},
    ))  # fmt: skip


__all__ = [
    "MACHINE_LIST",
    "WRITTEN_LIST",
    "ErrorRecord",
    "ListForm",
    "PolicySpec",
    "RetrySpec",
    "SagaPlan",
    "StepPlan",
    "needs_graph",
    "outcome_of",
    "plan_of",
    "record_data",
    "record_of",
    "refuse_graph",
    "shape_of",
]
