"""Lesson 06 exercises: undo by id, not by wiping; survive a timeout after the charge."""

from __future__ import annotations

from typing import Any

from ...events import describe
from ...worlds.services import booking_saga, new_world
from . import Exercise, Incorrect, attempted, function, register

NO_MAIL = ("127.0.0.1", 9)  # the failures are injected before the email step


def _check_undo_event(undo_create_event: Any) -> str:
    fn = function(undo_create_event, "undo_create_event")
    scratch = new_world(*NO_MAIL)
    scratch["booking"]["event"] = scratch["calendar"].create("Ada arrives", "Fri 15:00")
    attempted(fn, scratch)
    outcome = booking_saga(undo_event=fn).run(new_world(*NO_MAIL), inject={"charge_card": "fail"})
    for dead in outcome.dead_letters:
        raise Incorrect(f"your undo raised {describe(dead.error)} during the rollback")
    calendar = (outcome.state_after or {})["calendar"]
    if "Team standup" not in calendar:
        raise Incorrect(
            "you deleted 'Team standup' too: delete only this booking's event, by the id "
            "create_event stored in world['booking']['event']"
        )
    if "Ada arrives" in calendar:
        raise Incorrect("the stay is still in the calendar after the rollback")
    return "only the event this run created is gone; the standup stays."


q1 = Exercise(
    id="06.1",
    title="Undo the calendar event",
    checker=_check_undo_event,
    answer_names=("undo_create_event",),
    hints=(
        "create_event stores the new event's id in world['booking']['event'].",
        "world['calendar'].delete(event_id) deletes one event.",
    ),
    solution_code=(
        "# exercise: 06.1\n"
        "def undo_create_event(world):\n"
        '    world["calendar"].delete(world["booking"]["event"])'
    ),
    wrong_answers=(
        'def undo_create_event(world):\n    world["calendar"].events.clear()',
        'def undo_create_event(world):\n    world["calendar"].delete("evt-1")',
        "def undo_create_event(world):\n    pass",
    ),
)


def _check_timeout(charge_register: Any, refund_booking: Any) -> str:
    if charge_register not in ("before", "after"):
        raise Incorrect(f"charge_register is 'before' or 'after', got {charge_register!r}")
    fn = function(refund_booking, "refund_booking")
    attempted(fn, new_world(*NO_MAIL))
    saga = booking_saga(charge_register=charge_register, refund_charge=fn)
    timeout = saga.run(new_world(*NO_MAIL), inject={"charge_card": "fail_after_effect"})
    after = timeout.state_after or {}
    if charge_register == "after":
        raise Incorrect(
            f"the gateway charged {after['charged']} and then timed out; with 'after' the "
            f"refund was never logged, so {after['refunded']} came back"
        )
    for dead in timeout.dead_letters:
        raise Incorrect(f"your refund raised {describe(dead.error)} after the timeout")
    if after["refunded"] != after["charged"]:
        raise Incorrect(
            f"charged {after['charged']} but refunded {after['refunded']}: refund under the "
            "booking's idempotency key, world['booking']['key']"
        )
    never = saga.run(new_world(*NO_MAIL), inject={"charge_card": "fail"})
    for dead in never.dead_letters:
        raise Incorrect(
            f"when the charge never happened your refund raised {describe(dead.error)}; "
            "logged before the charge, it must be safe to run anyway"
        )
    twice = new_world(*NO_MAIL)
    twice["payments"].charge(240, twice["booking"]["key"])
    fn(twice)
    fn(twice)
    if twice["payments"].refunded != 240:
        raise Incorrect(f"called twice, {twice['payments'].refunded} was refunded, not 240")
    return "the timeout is covered: refunded once, by key, and harmless when nothing was charged."


q2 = Exercise(
    id="06.2",
    title="Survive a timeout after the charge",
    checker=_check_timeout,
    answer_names=("charge_register", "refund_booking"),
    hints=(
        "A timeout after the charge means the step fails after its effect.",
        "Which registration time still logs the undo when the step raises?",
        "world['payments'].refund(key) refunds once per key and returns 0 after that.",
    ),
    solution_code=(
        "# exercise: 06.2\n"
        'charge_register = "before"\n\n\n'
        "def refund_booking(world):\n"
        '    world["payments"].refund(world["booking"]["key"])'
    ),
    wrong_answers=(
        'charge_register = "after"\n\n'
        'def refund_booking(world):\n    world["payments"].refund(world["booking"]["key"])',
        'charge_register = "before"\n\n'
        'def refund_booking(world):\n    world["payments"].refund("booking-1")',
        'charge_register = "before"\n\n'
        "def refund_booking(world):\n"
        '    charge = world["payments"].charges[world["booking"]["key"]]\n'
        '    charge["refunded"] += charge["amount"]',
    ),
)

register(q1, q2)
