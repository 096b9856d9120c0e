"""The explorer on parallel groups (issue 27): faults in every branch's steps, and, with
``orders=True``, each order in which a group's branches finish."""

import pytest

from rollback_lessons import Parallel, Saga, Step
from rollback_lessons.explore import (
    assert_every_failure_handled,
    completion_orders,
    explore,
    single_faults,
)
from rollback_lessons.worlds.examples import chain_state, graph_saga


def test_each_order_the_branches_of_each_group_can_finish_in():
    saga = graph_saga()  # s0, then [s1, s4] | [s2, s5] | [s3, s6], then s7
    orders = completion_orders(saga)
    assert len(orders) == 6 and len(set(orders)) == 6
    assert all(sorted(order) == sorted(saga.names) for order in orders)
    assert ("s0", "s3", "s6", "s1", "s4", "s2", "s5", "s7") in orders
    x = [Step(n, lambda s: None, lambda s: None) for n in "abc"]
    assert len(completion_orders(Saga([Parallel(x[0], Parallel(x[1], x[2]))]))) == 4
    assert completion_orders(Saga(x)) == [("a", "b", "c")]


def test_every_branch_step_gets_its_faults_and_every_order_is_tried():
    saga = graph_saga()
    assert {step for step, _ in single_faults(saga)} == set(saga.names)
    exploration = explore(saga, chain_state, max_faults=1, policies=("continue",), orders=True)
    assert not exploration.failures
    # a run that failed before the group (s0) has one order; the others have six each
    by_faults: dict = {}
    for run in exploration.runs:
        by_faults.setdefault(run.faults, []).append(run)
    assert len(by_faults[(("s0", "fail"),)]) == 1
    last = by_faults[(("s7", "fail"),)]
    assert len(last) == 6
    undone = {run.outcome.compensated for run in last}
    assert len(undone) == 6  # reverse completion: each order undoes in its own order
    assert "finishing s0 " in last[0].describe()


def test_an_effect_in_a_branch_nothing_undoes_is_found():
    def book(name):
        return lambda state: state["booked"].append(name)

    def cancel(name):
        return lambda state: state["booked"].remove(name)

    saga = Saga(
        [
            Parallel(
                Step("room", book("room"), cancel("room")),
                [Step("car", book("car"), cancel("car")), Step("gps", book("gps"))],
            ),
            Step("charge", lambda s: None),
        ]
    )
    with pytest.raises(AssertionError, match="unreported: the effect of gps") as info:
        assert_every_failure_handled(saga, {"booked": []}, max_faults=1, orders=True)
    assert "(policy continue, finishing " in str(info.value)
