"""A cancel on BPMN (issue 27): heard while the explicit form runs on SpiffWorkflow, it stops
the forward steps and compensates what was done, ``cancelled``, as ``saga.run(...,
cancel=...)`` does: on lesson 12's travel graph, a cancel at each step boundary, in each undo
order, the same outcome event by event; a list's cancel too; a cancel past the pivot is
declined; a cancel function that raises fails the run with its error."""

import threading

import pytest
from conftest import same_outcome
from trips import _act, _step, _undo, trip

from rollback_lessons import Saga, Status, Step
from rollback_lessons.clock import VirtualClock
from rollback_lessons.runners.bpmn import run_explicit
from rollback_lessons.worlds import travel


def effects(state):
    """How many steps have returned so far (the booking's effects in its world)."""
    return len(state["hotel"]) + len(state["cars"]) + len(state["flights"]) + bool(state["charged"])


def after(count, state):
    """A cancel asked once ``count`` steps have returned: at that step boundary."""
    return lambda: effects(state) >= count


@pytest.mark.parametrize("order", [*travel.ORDERS, "forward"])
@pytest.mark.parametrize("declared", [False, True])
def test_a_cancel_at_each_step_boundary_of_the_travel_graph_is_undone_as_in_process(
    order, declared
):
    seen = set()
    for count in range(5):  # before any step, after each of the four
        local_state, remote_state = travel.state(), travel.state()
        local = travel.booking(declared=declared).run(
            local_state, cancel=after(count, local_state), undo_order=order, clock=VirtualClock()
        )
        remote = run_explicit(travel.booking(declared=declared), remote_state,
                              cancel=after(count, remote_state), undo_order=order)  # fmt: skip
        same_outcome(local, remote)
        assert remote_state == local_state
        seen.add((str(remote.status), remote.compensated))
        assert remote.status in (Status.CANCELLED, Status.ROLLBACK_INCOMPLETE)
        # every step that returned is undone; heard as the charge returned, before the
        # commit (the machine's rule, as on a list), the charge is refunded too
        assert len(remote.compensated) + len(remote.dead_letters) == count
        if remote.status is Status.CANCELLED:
            assert remote_state == travel.state()
    assert len(seen) == 5


def test_a_cancel_set_when_a_step_returns_on_a_graph_and_on_a_list():
    local_cancel, cancel = threading.Event(), threading.Event()
    local = trip(cancel_at=("car", local_cancel)).run({}, cancel=local_cancel,
                                                      clock=VirtualClock())  # fmt: skip
    state = {}
    remote = run_explicit(trip(cancel_at=("car", cancel)), state, cancel=cancel)
    same_outcome(local, remote)
    assert remote.status is Status.CANCELLED and "car" in remote.compensated
    assert set(state.values()) == {"undone"} and "charge" not in state

    def listed(event):
        return Saga([_step("x"), Step("y", lambda s: (_act("y", s), event.set()),
                                      lambda s: _undo("y", s)), _step("z")])  # fmt: skip

    local_cancel, cancel = threading.Event(), threading.Event()
    local = listed(local_cancel).run({}, cancel=local_cancel, clock=VirtualClock())
    state = {}
    remote = run_explicit(listed(cancel), state, cancel=cancel)
    same_outcome(local, remote)
    assert remote.status is Status.CANCELLED and remote.compensated == ("y", "x")
    assert state == {"x": "undone", "y": "undone"}


def test_a_cancel_past_the_pivot_is_declined_and_one_that_raises_fails_the_run():
    def saga():
        return Saga([_step("a"), Step("email", lambda s: _act("email", s), kind="pivot"),
                     Step("ship", lambda s: _act("ship", s), kind="retriable")])  # fmt: skip

    def past(state):
        return lambda: "email" in state

    local_state, state = {}, {}
    local = saga().run(local_state, cancel=past(local_state), clock=VirtualClock())
    remote = run_explicit(saga(), state, cancel=past(state), policy="continue")
    same_outcome(local, remote)
    assert remote.status is Status.COMMITTED and remote.notes == local.notes != ()

    def broken():
        raise OSError("the cancel button's service is down")

    local = trip().run({}, cancel=broken, clock=VirtualClock())
    remote = run_explicit(trip(), {}, cancel=broken)
    same_outcome(local, remote)
    assert remote.status is Status.ROLLED_BACK


@pytest.mark.parametrize("order", ["forward", "reverse_start", "by_dependency"])
def test_a_list_that_needs_the_graph_form_runs_it(order):
    """A list in an undo order its written form cannot chain runs the graph form, as a
    chain (it ran the list's model before, whose tasks answer otherwise: a TypeError)."""
    for inject in ({}, {"y": "fail"}, {"z": "fail", "x": "undo_fails"}):
        saga = Saga([_step("x"), _step("y"), _step("z")])
        local = saga.run({}, inject=inject, undo_order=order, clock=VirtualClock())
        same_outcome(local, run_explicit(saga, {}, inject=inject, undo_order=order))
