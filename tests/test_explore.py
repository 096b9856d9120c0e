"""The fault-space explorer: it finds each kind of planted flaw, reports none on the
lessons' correct sagas, and its test helper fails with the smallest failing combination."""

import logging

import pytest
from conftest import lesson_worlds
from hypothesis import given, settings

from rollback_lessons import Kind, Saga, Step
from rollback_lessons.explore import (
    assert_every_failure_handled,
    check,
    combinations,
    explore,
    inject_of,
)
from rollback_lessons.worlds import examples
from rollback_lessons.worlds.examples import chain_saga, chain_state


@pytest.fixture(autouse=True)
def quiet():
    logging.disable(logging.WARNING)  # thousands of injected failures, each logged
    yield
    logging.disable(logging.NOTSET)


def restored_for(name):
    return {"restored": examples.booking_restored} if name == "booking" else {}


@pytest.mark.parametrize("name", sorted(lesson_worlds()))
def test_the_lessons_sagas_handle_every_pair_of_faults_under_every_policy(name):
    make_saga, make_state = lesson_worlds()[name]
    exploration = explore(
        make_saga(), make_state, policies=("continue", "retry", "halt"), **restored_for(name)
    )
    assert exploration.failures == [], exploration.table(only_failures=True)
    assert len(exploration.runs) == 3 * len(combinations(make_saga(), 2))


def write_row(state):
    state["rows"].append("row")


def remove_row(state):
    state["rows"].remove("row")


def notify(state):
    state["sent"] += 1


FLAWED = {
    # a step that changes the world with no undo, before a step that can fail
    "unreported": (
        Saga([Step("write_row", write_row), Step("notify", notify)], name="no undo"),
        lambda: {"rows": [], "sent": 0},
        {},
    ),
    # an undo logged before its step that refunds whether or not anything was charged
    "phantom undo": (
        examples.booking_saga(refund=lambda s: s["refunds"].__setitem__(examples.KEY, 120)),
        examples.booking_state,
        {"restored": examples.booking_restored},
    ),
    # an undo that does not put back what its step changed
    "not restored": (
        Saga(
            [
                Step("write_row", write_row, lambda s: s["rows"].append("deleted")),
                Step("notify", notify),
            ],
            name="bad undo",
        ),
        lambda: {"rows": [], "sent": 0},
        {},
    ),
    # the email (the pivot) before the charge: a declined charge undoes past the pivot
    "past the pivot": (
        examples.booking_saga(
            ["verify_card", "reserve_room", "send_email", "charge_card"], allow_unsafe_order=True
        ),
        examples.booking_state,
        {"restored": examples.booking_restored},
    ),
}


@pytest.mark.parametrize("flaw", sorted(FLAWED))
def test_the_explorer_finds_each_kind_of_planted_flaw(flaw):
    saga, state, options = FLAWED[flaw]
    exploration = explore(saga, state, policies=("continue", "halt"), **options)
    kinds = {v.split(":")[0] for run in exploration.failures for v in run.violations}
    assert flaw in kinds, exploration.summary()
    clean = [run for run in exploration.runs if not run.faults]
    assert clean and not clean[0].violations  # with no fault, nothing is wrong


def test_the_helper_fails_with_the_smallest_combination_and_its_story():
    saga, state, _ = FLAWED["unreported"]
    with pytest.raises(AssertionError) as failure:
        assert_every_failure_handled(saga, state)
    message = str(failure.value)
    assert "Smallest: notify fail (policy continue)" in message
    assert "the effect of write_row was neither undone nor reported" in message
    assert "pipeline_failed" in message and "rollback_done" in message  # that run's story
    assert_every_failure_handled(examples.folder_saga(), examples.folder_state)  # passes


def test_combinations_are_every_subset_with_one_action_and_one_undo_fault_per_step():
    saga = examples.folder_saga()
    singles = [c for c in combinations(saga, 2) if len(c) == 1]
    pairs = [c for c in combinations(saga, 2) if len(c) == 2]
    assert combinations(saga, 0) == [()]
    assert len(singles) == 3 * 4  # three steps: fail, fail after effect, undo fails (once)
    assert len(pairs) == 12 * 11 // 2 - 3 * 2  # minus two action (or undo) faults on a step
    assert all(len({(s, f.startswith("undo")) for s, f in c}) == 2 for c in pairs)
    assert inject_of([("write_file", "fail"), ("write_file", "undo_fails")]) == {
        "write_file": ("fail", "undo_fails")
    }


def test_an_eight_step_saga_is_explored_under_three_policies():
    exploration = explore(chain_saga(8), chain_state, policies=("continue", "retry", "halt"))
    assert exploration.failures == []
    assert len(exploration.runs) == 3 * len(combinations(chain_saga(8), 2)) > 1400


def test_a_saga_too_big_to_enumerate_is_checked_by_hypothesis():
    from rollback_lessons.lab.testing import fault_combinations

    saga = chain_saga(8)

    @settings(max_examples=60, deadline=None)
    @given(fault_combinations(saga, max_faults=4))
    def every_failure_handled(faults):
        assert check(saga, chain_state, faults).violations == ()

    every_failure_handled()

    flawed = FLAWED["unreported"][0]

    @settings(max_examples=60, deadline=None, database=None)
    @given(fault_combinations(flawed, max_faults=2))
    def finds_the_flaw(faults):
        assert check(flawed, lambda: {"rows": [], "sent": 0}, faults).violations == ()

    with pytest.raises(AssertionError):
        finds_the_flaw()


def test_a_pivot_saga_that_halts_forward_is_not_compensation_past_the_pivot():
    saga = Saga(
        [
            Step("charge", lambda s: s.update(charged=True), lambda s: s.pop("charged")),
            Step("email", lambda s: s.update(emailed=True), kind=Kind.PIVOT),
            Step("ship", lambda s: s.update(shipped=True), kind=Kind.RETRIABLE),
        ],
        name="pivot",
    )
    exploration = explore(saga, lambda: {}, policies=("continue", "halt"))
    assert exploration.failures == [], exploration.table(only_failures=True)


def told(run):
    """Everything a run of the exploration says, its events with their times."""
    o = run.outcome
    events = [(e.seq, e.kind, e.step, dict(e.details), e.offset) for e in o.events]
    dead = [(d.step, repr(d.error), d.attempts) for d in o.dead_letters]
    return (
        run.violations, o.status, o.completed, o.compensated, dead, o.pending, o.leaked,
        o.failed_step, repr(o.error), o.notes, o.state_before, o.state_after, events, o.states,
    )  # fmt: skip


@pytest.mark.parametrize("orders", [False, True])
def test_a_combination_whose_extra_faults_were_never_reached_tells_what_its_own_run_tells(orders):
    """The explorer runs a combination once per set of faults its run reached (a fault on a
    step never started, or an undo never run, is never felt) and shares that run's outcome;
    each run it reports says exactly what running that combination by itself says."""
    saga = examples.graph_saga(6, 2) if orders else chain_saga(6)
    exploration = explore(
        saga, chain_state, max_faults=2, policies=("continue", "retry", "halt"), orders=orders
    )
    for run in exploration.runs:
        alone = check(saga, chain_state, run.faults, run.policy, completion=run.completion)
        assert told(run) == told(alone), run.describe()
    assert len({id(run.outcome) for run in exploration.runs}) < len(exploration.runs) / 2


@pytest.mark.parametrize("name", sorted(lesson_worlds()))
def test_each_run_of_a_lesson_saga_tells_what_its_combination_run_alone_tells(name):
    """The same on the lessons' sagas: pivots, retriable steps, gates, undos logged first."""
    make_saga, make_state = lesson_worlds()[name]
    saga, options = make_saga(), restored_for(name)
    exploration = explore(saga, make_state, policies=("continue", "retry", "halt"), **options)
    for run in exploration.runs:
        alone = check(saga, make_state, run.faults, run.policy, **options)
        assert told(run) == told(alone), run.describe()


def test_the_readmes_example_passes_as_printed():
    """attack41 F8: the README's block failed on the package's own booking world (its
    refund leaves a record: the world's ``restored`` says whether it is as it was)."""
    import re
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    (block,) = [b for b in blocks if "def test_booking_handles_every_failure" in b]
    space: dict = {}
    exec(block, space)
    space["test_booking_handles_every_failure"]()
