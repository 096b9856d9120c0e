"""A saga's plan for Temporal: the workflow's input (``plan_for``, every option checked, no
server needed), the check that a saga is the one a run was started with (``check_same``),
and the plan in words (``plan_text``)."""

from __future__ import annotations

from collections.abc import Sequence

from ..._guards import check_completion
from ..._numbers import plain_number
from ...errors import InvalidPipelineError
from ...policies import PolicyLike, check_seconds
from ...rules import default_run_id
from ...saga import Saga
from ..hosted import SagaChanged
from ..wire import SagaPlan, changed, needs_graph, plan_of

LONGEST = 10**12
"""The longest duration a plan carries, in seconds (some 31,000 years): Python's timedelta
ends at 8.6e13, and a workflow given more never ran (attack109 F6)."""


def plan_for(
    saga: Saga,
    *,
    policy: PolicyLike | None = None,
    register: str | None = None,
    undo_order: str = "reverse",
    step_timeout: float = 60.0,
    halt_wait: float | None = 0.0,
    completion: Sequence[str] | None = None,
    run_id: str | None = None,
) -> SagaPlan:
    """The workflow's input for ``saga``, every option checked (no server needed). A saga
    with parallel groups keeps each step's dependencies (``after``): the workflow runs the
    graph machine on them; so does a list in an undo order of a graph's or with a timing
    (``completion``), as a chain. A policy that decides in code is hosted here under the
    run's id (``hosted.release`` it if no run follows)."""
    check_completion(completion, saga.names)
    check_seconds(step_timeout, "step_timeout")  # (a duration: none was checked, attack108
    if halt_wait is not None:  # F9: -5, nan or 'ten' hung the run past any cancel)
        check_seconds(halt_wait, "halt_wait", zero=True)
    step_timeout, halt_wait = plain_number(step_timeout), plain_number(halt_wait)
    for what, seconds in (("step_timeout", step_timeout), ("halt_wait", halt_wait or 0)):
        if seconds > LONGEST:  # (a timedelta past its end: the run hung, attack109 F6)
            raise InvalidPipelineError(
                f"{what} must be at most {LONGEST:,} seconds, got {seconds!r} (a wait "
                "without end: halt_wait=None)"
            )
    plan = plan_of(
        saga,
        run_id or default_run_id(saga.name),
        policy=policy,
        register=register,  # type: ignore[arg-type]
        undo_order=undo_order,  # type: ignore[arg-type]
        step_timeout=step_timeout,
        engine="Temporal",
        halt_wait=halt_wait,
        graphs=True,
    )
    if plan.after is None and needs_graph(plan, undo_order=undo_order, completion=completion):
        plan.after = {s: list(d) for s, d in saga.dependencies.items()}  # a chain
    return plan


def check_same(run_id: str, saga: Saga, plan: SagaPlan) -> None:
    """Refuse (``SagaChanged``, one line) a saga that is not the one ``plan`` started: of
    another name, or whose steps differ (``wire.changed``, DBOS's rule too)."""
    why = changed(run_id, saga, plan)
    if why is not None:
        raise SagaChanged(why)


def plan_text(plan: SagaPlan) -> list[str]:
    """A plan's steps as the workflow runs them, one line per set of steps that wait on the
    same steps (in the order they are first defined): those that start at once (concurrent
    activities), and what they wait for."""
    if plan.after is None:
        return [f"{', '.join(s.name for s in plan.steps)}: one after the other, each an activity"]
    lines: dict[tuple[str, ...], list[str]] = {}
    for step in plan.steps:
        lines.setdefault(tuple(plan.after[step.name]), []).append(step.name)
    said = []
    for deps, steps in lines.items():
        after = f" after {', '.join(deps)}" if deps else ""
        if len(steps) > 1:
            said.append(f"{', '.join(steps)}: start at once{after}, as concurrent activities")
        else:
            said.append(f"{steps[0]}: starts{after or ' first'}")
    return said
