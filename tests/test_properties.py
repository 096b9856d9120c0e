"""Property tests: for random pipelines and faults, the engine keeps the pattern's promises.

An independent model below says what must happen; the engine must agree with it.
"""

from dataclasses import dataclass

import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from rollback_lessons import (
    InjectedFault,
    Retry,
    RetryPolicy,
    Rollback,
    Saga,
    Status,
    Step,
    VirtualClock,
)


@dataclass(frozen=True)
class Spec:
    action: str | None  # None, "fail", "fail_after_effect", "raise" (a real error, not injected)
    undo: str | None  # None, "undo_fails", "undo_fails_once"
    register: str


specs = st.builds(
    Spec,
    action=st.sampled_from([None, None, None, "fail", "fail_after_effect", "raise"]),
    undo=st.sampled_from([None, None, "undo_fails", "undo_fails_once"]),
    register=st.sampled_from(["before", "after"]),
)
policies = st.one_of(
    st.sampled_from(["continue", "halt"]),
    st.integers(1, 4).map(lambda m: ("retry", m)),
)


class World:
    """Records every effect and every undo call, for the invariants to read."""

    def __init__(self):
        self.state = {}
        self.actions = []
        self.undos = []
        self.errors = {}

    def action(self, name, spec):
        def run(*_):
            self.actions.append(name)
            if spec.action == "raise":
                raise self.errors.setdefault(name, ValueError(f"{name} broke"))
            self.state[name] = "done"

        return run

    def undo(self, name):
        def run(*_):
            self.undos.append(name)
            self.state[name] = "undone"

        return run


def inject_of(names, pipeline):
    out = {}
    for name, spec in zip(names, pipeline, strict=True):
        faults = [f for f in (spec.action, spec.undo) if f and f != "raise"]
        if faults:
            out[name] = faults
    return out


def policy_of(policy):
    if isinstance(policy, tuple):
        return Retry(RetryPolicy(max_attempts=policy[1], initial_delay=0.01))
    return policy


def expected(names, pipeline, policy):
    """The model: which undos run, succeed, dead-letter or wait for a person."""
    fail_at = next((i for i, s in enumerate(pipeline) if s.action), None)
    if fail_at is None:
        return None
    registered = names[:fail_at] + (
        [names[fail_at]] if pipeline[fail_at].register == "before" else []
    )
    attempts, compensated, dead, pending = {}, [], [], []
    for index, name in enumerate(reversed(registered)):
        fault = pipeline[names.index(name)].undo
        if fault is None:
            attempts[name] = 1
            compensated.append(name)
            continue
        if policy == "halt":
            attempts[name] = 1
            pending = list(reversed(registered))[index:]
            break
        max_attempts = policy[1] if isinstance(policy, tuple) else 1
        if fault == "undo_fails_once" and max_attempts >= 2:
            attempts[name] = 2
            compensated.append(name)
        else:
            attempts[name] = max_attempts
            dead.append(name)
    return fail_at, registered, attempts, compensated, dead, pending


def check(names, pipeline, policy, world, outcome, raised):
    model = expected(names, pipeline, policy)
    if model is None:
        assert outcome.status is Status.COMMITTED
        assert world.actions == names and world.undos == []
        return
    fail_at, registered, attempts, compensated, dead, pending = model
    failing = pipeline[fail_at]

    # steps after the failure never ran (the failing one ran only if the fault lets it)
    ran = names[:fail_at] + ([names[fail_at]] if failing.action != "fail" else [])
    assert world.actions == ran

    # undos run exactly in reverse order of registration, each within its allowed attempts
    undo_events = [e for e in outcome.events if e.kind == "undo"]
    order = [e.step for e in undo_events if e.details["attempt"] == 1]
    assert order == list(reversed(registered))[: len(order)]
    assert order == list(reversed(registered))[: len(compensated) + len(dead) + bool(pending)]
    for name in order:
        assert max(e.details["attempt"] for e in undo_events if e.step == name) == attempts[name]
    registrations = [e.step for e in outcome.events if e.kind == "undo_registered"]
    assert registrations == registered

    # every undo that succeeded restored its step; the rest stay done
    assert list(outcome.compensated) == compensated
    assert world.undos == compensated
    for name in compensated:
        assert world.state.get(name) == "undone"
    for name in set(ran) - set(compensated):
        if not (name == names[fail_at] and failing.action == "raise"):
            assert world.state[name] == "done"

    # dead letters are exactly the undos that finally failed; pending is what a person gets
    assert [d.step for d in outcome.dead_letters] == dead
    assert all(isinstance(d.error, InjectedFault) for d in outcome.dead_letters)
    assert list(outcome.pending) == pending

    # the original exception is the one re-raised
    if failing.action == "raise":
        assert raised is world.errors[names[fail_at]]
    else:
        assert isinstance(raised, InjectedFault) and raised.step == names[fail_at]
    assert outcome.error is raised

    leaks = failing.action == "fail_after_effect" and failing.register == "after"
    if pending:
        assert outcome.status is Status.HALTED
    elif dead or leaks:
        assert outcome.status is Status.ROLLBACK_INCOMPLETE
    else:
        assert outcome.status is Status.ROLLED_BACK


@settings(max_examples=examples(100), deadline=None)
@given(pipeline=st.lists(specs, min_size=1, max_size=12), policy=policies)
def test_rollback_keeps_its_promises(pipeline, policy):
    names = [f"s{i}" for i in range(len(pipeline))]
    world = World()
    raised = None
    rb = Rollback(
        policy=policy_of(policy),
        inject=inject_of(names, pipeline),
        steps=names,
        clock=VirtualClock(),
    )
    try:
        with rb:
            for name, spec in zip(names, pipeline, strict=True):
                rb.do(name, world.action(name, spec), world.undo(name), register=spec.register)
    except Exception as exc:
        raised = exc
    check(names, pipeline, policy, world, rb.outcome, raised)


@settings(max_examples=examples(100), deadline=None)
@given(pipeline=st.lists(specs, min_size=1, max_size=12), policy=policies)
def test_saga_keeps_the_same_promises(pipeline, policy):
    names = [f"s{i}" for i in range(len(pipeline))]
    world = World()
    saga = Saga(
        [
            Step(name, world.action(name, spec), world.undo(name), register=spec.register)
            for name, spec in zip(names, pipeline, strict=True)
        ]
    )
    outcome = saga.run(
        {}, inject=inject_of(names, pipeline), policy=policy_of(policy), clock=VirtualClock()
    )
    check(names, pipeline, policy, world, outcome, outcome.error)


@pytest.mark.parametrize("n", [1, 5, 12])
def test_model_sanity_every_step_done_then_undone(n):
    # A plain failure at the end: the model and the engine must both undo everything.
    names = [f"s{i}" for i in range(n)]
    pipeline = [Spec(None, None, "after")] * (n - 1) + [Spec("raise", None, "after")]
    model = expected(names, pipeline, "continue")
    assert model[3] == list(reversed(names[:-1]))
