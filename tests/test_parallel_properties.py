"""Properties of parallel groups and cancellation over random graphs (issue 27): every
effect that happened is undone or reported; the declared undo order holds (by dependency: no
undo before the undos of its dependants; reverse completion; reverse start); a cancel at any
point leaves nothing done and not undone; the async engine, with the branches finishing in
a random order, agrees with the machine played in that order."""

import asyncio

from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from rollback_lessons import InjectedTimeout, Parallel, Saga, Status, Step
from rollback_lessons.clock import VirtualClock
from rollback_lessons.schedule import dependants

ORDERS = ("reverse", "reverse_start", "by_dependency")


class World:
    """Each step's effect is its key in the state; its undo removes it. Action faults are
    the world's own (so that an async step fails when its turn comes, not at once)."""

    def __init__(self, faults, gate=None):
        self.faults, self.gate = faults, gate

    def step(self, name, undo=True, register="after"):
        def effect(state):
            fault = self.faults.get(name)
            if fault == "fail":
                raise RuntimeError(f"{name} failed")
            state[name] = True
            if fault == "fail_after_effect":
                raise InjectedTimeout(name, fault, f"{name} timed out after its effect")

        def action(state):
            if self.gate is None:
                return effect(state)
            return self.gate(name, lambda: effect(state))

        return Step(
            name,
            action,
            (lambda s: s.pop(name, None)) if undo else None,
            register=register if undo else "after",
        )


@st.composite
def graphs(draw):
    """A definition: steps and parallel groups (branches of 1-3 steps, a group inside a
    branch now and then), 2-9 steps; some steps have no undo, some log it before."""
    count = iter(range(100))
    shape = {}

    def step():
        name = f"s{next(count)}"
        shape[name] = (True, draw(st.sampled_from(["after", "before"])))
        return name

    def items(depth):
        out = []
        for _ in range(draw(st.integers(1, 3))):
            if depth < 2 and draw(st.booleans()):
                branches = [items(depth + 1) for _ in range(draw(st.integers(2, 3)))]
                out.append(("group", branches))
            else:
                out.append(step())
        return out

    return items(0), shape


def build(world, definition, shape):
    def make(items):
        out = []
        for item in items:
            if isinstance(item, str):
                out.append(world.step(item, *shape[item]))
            else:
                out.append(Parallel(*[make(branch) for branch in item[1]]))
        return out

    return Saga(make(definition))


@st.composite
def runs(draw):
    definition, shape = draw(graphs())
    names = list(shape)
    faults = draw(
        st.dictionaries(
            st.sampled_from(names), st.sampled_from(["fail", "fail_after_effect"]), max_size=2
        )
    )
    undo_faults = draw(
        st.dictionaries(
            st.sampled_from(names), st.sampled_from(["undo_fails", "undo_fails_once"]), max_size=1
        )
    )
    completion = draw(st.permutations(names))
    order = draw(st.sampled_from(ORDERS))
    policy = draw(st.sampled_from(["continue", "retry", "halt"]))
    return definition, shape, faults, undo_faults, completion, order, policy


def first_undos(outcome):
    """Each undone (or tried) step, in the order its undo first ran."""
    seen = []
    for event in outcome.events:
        if event.kind == "undo" and event.step not in seen:
            seen.append(event.step)
    return seen


def ended(outcome):
    return [e.step for e in outcome.events if e.kind in ("step_done", "step_failed")]


def started(outcome):
    return [e.step for e in outcome.events if e.kind == "step_start"]


def check_reported(outcome):
    """Every effect still in the world is reported (a dead letter, pending, leaked); a run
    that says rolled_back or cancelled left the world as it was."""
    if outcome.status is Status.COMMITTED:
        return
    told = {d.step for d in outcome.dead_letters} | set(outcome.pending) | set(outcome.leaked)
    for step in outcome.state_after:
        assert step in told, f"{step}'s effect is neither undone nor reported"
    if outcome.status in (Status.ROLLED_BACK, Status.CANCELLED):
        assert outcome.state_after == outcome.state_before == {}


@settings(max_examples=examples(40))  # make soak: 400
@given(runs())
def test_every_effect_is_undone_or_reported_and_the_order_holds(case):
    definition, shape, faults, undo_faults, completion, order, policy = case
    saga = build(World(faults), definition, shape)
    outcome = saga.run(
        {},
        inject=undo_faults,
        undo_order=order,
        policy=policy,
        completion=completion,
        clock=VirtualClock(),
    )
    assert (outcome.status is Status.COMMITTED) == (not faults)
    check_reported(outcome)
    undos = first_undos(outcome)
    assert set(undos) <= set(started(outcome))  # no undo for a step that never started
    if order == "by_dependency":
        below = dependants(saga.dependencies)
        for n, step in enumerate(undos):
            assert not below[step] & set(undos[n + 1 :]), f"{step} undone before a dependant"
    else:
        times = ended(outcome) if order == "reverse" else started(outcome)
        assert undos == sorted(undos, key=lambda s: -times.index(s))


@settings(max_examples=examples(40))  # make soak: 400
@given(runs(), st.integers(0, 12))
def test_a_cancel_at_any_point_leaves_nothing_done_and_not_undone(case, after_checks):
    definition, shape, _, undo_faults, completion, order, policy = case
    saga = build(World({}), definition, shape)
    checks = iter(range(after_checks + 1))

    def asked():  # true from its n-th check on
        return next(checks, after_checks) >= after_checks

    outcome = saga.run(
        {}, inject=undo_faults, undo_order=order, policy=policy, cancel=asked,
        completion=completion, clock=VirtualClock(),
    )  # fmt: skip
    check_reported(outcome)
    if outcome.status is not Status.COMMITTED:
        told = {d.step for d in outcome.dead_letters} | set(outcome.pending)
        assert set(outcome.completed) <= set(outcome.compensated) | told
        if not undo_faults:
            assert outcome.status is Status.CANCELLED and outcome.state_after == {}


def plain(outcome):
    return [(e.kind, e.step, dict(e.details)) for e in outcome.events]


@settings(max_examples=examples(40))  # make soak: 400
@given(runs())
def test_the_async_engine_agrees_with_the_machine_in_any_completion_order(case):
    definition, shape, faults, undo_faults, completion, order, policy = case
    played = build(World(faults), definition, shape).run(
        {}, inject=undo_faults, undo_order=order, policy=policy, completion=completion,
        clock=VirtualClock(),
    )  # fmt: skip
    # each step ends when as many events have happened as before its end in the played run
    at = {e.step: n for n, e in enumerate(played.events) if e.kind in ("step_done", "step_failed")}
    seen = []

    async def gate(name, effect):
        for _ in range(10_000):  # (a run that disagrees would wait for ever: fail instead)
            if len(seen) == at[name]:
                return effect()
            await asyncio.sleep(0)
        raise AssertionError(f"{name}'s turn never came: {[(e.kind, e.step) for e in seen]}")

    saga = build(World(faults, gate), definition, shape)
    ran = asyncio.run(
        saga.arun(
            {}, inject=undo_faults, undo_order=order, policy=policy, clock=VirtualClock(),
            on_event=seen.append,
        )
    )  # fmt: skip
    assert plain(ran) == plain(played)
    assert ran.status is played.status and ran.state_after == played.state_after


@settings(max_examples=examples(40))  # make soak: 400
@given(runs(), st.data())
def test_steps_ending_in_one_turn_of_the_loop_run_as_the_timing_they_ended_in(case, data):
    """``arun`` with each action ending after 0-2 turns of the event loop, so that several
    often end in one: the steps an end frees start before the next end is told, so the run
    is the one ``saga.run(completion=...)`` plays for the order they ended in (before: both
    ends told, then the freed steps started, a run no timing gives; attack12's B7)."""
    definition, shape, faults, undo_faults, _, order, policy = case
    turns = {name: data.draw(st.integers(0, 2), label=name) for name in shape}

    async def gate(name, effect):
        for _ in range(turns[name]):
            await asyncio.sleep(0)
        return effect()

    options = {"inject": undo_faults, "undo_order": order, "policy": policy}
    saga = build(World(faults, gate), definition, shape)
    ran = asyncio.run(saga.arun({}, clock=VirtualClock(), **options))
    played = build(World(faults), definition, shape).run(
        {}, completion=ended(ran), clock=VirtualClock(), **options
    )
    assert plain(ran) == plain(played)
    assert ran.status is played.status and ran.state_after == played.state_after
