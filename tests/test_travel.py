"""Lesson 12's world (issue 27): the travel booking as a graph, where only one of the three
undo orders is right unless the dependency is declared, and a booking cancelled midway."""

import asyncio

from rollback_lessons import Status
from rollback_lessons.worlds import travel


def test_only_reverse_completion_is_right_when_the_dependency_is_timing():
    _, outcomes = travel.orders_side_by_side()
    assert outcomes["reverse"].status is Status.ROLLED_BACK
    for order in ("reverse_start", "by_dependency"):
        wrong = outcomes[order]
        assert wrong.status is Status.ROLLBACK_INCOMPLETE, order
        assert [d.step for d in wrong.dead_letters] == ["room"]
        assert isinstance(wrong.dead_letters[0].error, travel.HotelRefuses)
        assert wrong.state_after["hotel"] == {travel.ROOM: "booked"}


def test_declared_every_order_is_right():
    table, outcomes = travel.orders_side_by_side(declared=True)
    assert {o.status for o in outcomes.values()} == {Status.ROLLED_BACK}
    assert all(o.state_after == travel.state() for o in outcomes.values())
    assert "rolled_back" in str(table)


def test_the_car_goes_to_the_room_only_when_the_room_was_booked_first():
    saga = travel.booking()
    assert saga.run(travel.state()).state_after["cars"] == {travel.CAR: "airport"}  # in order
    played = saga.run(travel.state(), completion=travel.TIMING)
    assert played.state_after["cars"] == {travel.CAR: travel.ROOM}


def test_a_booking_cancelled_midway_is_undone_and_says_cancelled():
    world = travel.state()
    outcome = asyncio.run(travel.cancelled_midway(world))
    assert outcome.status is Status.CANCELLED and "charge" not in outcome.completed
    assert set(outcome.compensated) == {"room", "car", "flight"}
    assert world == travel.state()
    assert str(outcome).startswith("cancelled: stopped by CancelledError")


def test_every_undo_order_an_all_at_once_engine_may_finish_in_is_tabled_truthfully():
    table, wrong = travel.every_undo_order()
    assert len(table.rows) == 6 and wrong == 3
    declared = travel.booking(declared=True)
    for order_text, left, allowed in table.rows:
        order = tuple(order_text.split(" → "))
        world = travel.booked()
        refused = travel.undo_in(order, world)
        assert (left == "all undone") == (not refused) == (world == travel.state())
        # the dependency declared, the engine may pick exactly the orders that undo all
        assert (allowed == "yes") == travel.allowed(order, declared) == (not refused)


def test_temporal_plans_the_booking_and_the_writers_take_it():
    said = travel.engines_say()
    assert said == [
        "Temporal's plan:",
        "  car, room, flight: start at once, as concurrent activities",
        "  charge: starts after car, room, flight",
        "to_asl: written, with 1 Parallel state",
        "to_bpmn: written, with 2 parallel gateways (a split and a join)",
    ]


def test_the_plan_table_is_read_from_the_saga_graph():
    from rollback_lessons.lab.graphs import plan_table

    rows = {row[0]: row[2:] for row in plan_table(travel.booking(declared=True)).rows}
    assert rows["car"] == ("room", "flight")
    assert rows["charge"] == ("car, flight", "-")
    assert rows["flight"] == ("-", "room, car")
