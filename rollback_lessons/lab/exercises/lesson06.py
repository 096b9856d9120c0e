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
    # the lesson's world, and one it does not show: Ada stayed before, so the calendar
    # already holds an "Ada arrives" event of another booking (and the ids are shifted)
    for earlier_stay in (False, True):
        world = new_world(*NO_MAIL)
        kept = dict(world["calendar"].events)
        if earlier_stay:
            for when in ("Mon 09:00", "last Fri 15:00"):
                event_id = world["calendar"].create("Ada arrives", when)
                kept[event_id] = dict(world["calendar"].events[event_id])
        outcome = booking_saga(undo_event=fn).run(world, inject={"charge_card": "fail"})
        for dead in outcome.dead_letters:
            raise Incorrect(f"your undo raised {describe(dead.error)} during the rollback")
        events = world["calendar"].events
        for event_id, event in kept.items():
            if event_id not in events:
                raise Incorrect(
                    f"you deleted {event_id} ({event['title']!r}, {event['when']}), an event "
                    "of someone else"
                    + (" (Ada's earlier stay)" if earlier_stay else "")
                    + ": delete only this booking's event, by the id create_event stored in "
                    "world['booking']['event']"
                )
        if set(events) != set(kept):
            raise Incorrect("this booking's event is still in the calendar after the rollback")
    return "only the event this run created is gone, by its id; every other event stays."


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
        'def undo_create_event(world):\n    world["calendar"].delete("evt-2")',
        "def undo_create_event(world):\n    pass",
        # by its title: right in the lesson's world, wrong once Ada has stayed before
        "def undo_create_event(world):\n"
        '    calendar = world["calendar"]\n'
        "    for event_id, event in list(calendar.events.items()):\n"
        '        if event["title"] == "Ada arrives":\n'
        "            calendar.delete(event_id)",
        "def undo_create_event(world):\n"
        '    calendar = world["calendar"]\n'
        '    first = next(i for i, e in calendar.events.items() if e["title"] == "Ada arrives")\n'
        "    calendar.delete(first)",
    ),
    right_answers=(
        "def undo_create_event(world):\n"
        '    booking = world["booking"]\n'
        '    world["calendar"].delete(booking["event"])',
        "def undo_create_event(world):\n"
        '    del world["calendar"].events[world["booking"]["event"]]',
        "def undo_create_event(world):\n"
        '    event_id = world["booking"].get("event")\n'
        '    if event_id in world["calendar"].events:\n'
        '        world["calendar"].delete(event_id)',
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
