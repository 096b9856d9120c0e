"""Lesson 06 exercises: undo by id, not by wiping; survive a timeout after the charge.

06.1 runs the learner's ``undo_create_event`` in calendars it draws: up to a dozen events of
other people before this booking's (some also titled "Ada arrives", at the same time) and
more created while the booking runs. 06.2 runs the learner's refund on bookings with other
keys and prices, other bookings' charges before and during this one, the charge timing out
after charging, failing before it, or the email failing after it, and calls it twice more.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ...events import Event
from ...saga import Saga
from ...worlds.services import booking_saga, new_world
from . import (
    Exercise,
    Incorrect,
    attempted,
    choose,
    forall,
    function,
    generator,
    raised,
    register,
)
from .booking import BookingWorld, booking_worlds

KEY, PRICE = "booking-42", 240  # the booking of worlds.services that the lesson runs
NO_MAIL = ("127.0.0.1", 9)  # the failures are injected before the email step or in it
ADA = ("Ada arrives", "Fri 15:00")  # the title and time create_event gives this booking
OTHERS = (
    ADA,
    ("Team standup", "Mon 09:00"),
    ("Ada arrives", "Mon 09:00"),
    ("Bob arrives", "Fri 15:00"),
)


@dataclass(frozen=True)
class CalendarWorld:
    before: tuple[tuple[str, str], ...]  # other events already in the calendar
    after: tuple[tuple[str, str], ...]  # other events created while the booking runs

    def __str__(self) -> str:
        if not self.before and not self.after:
            return "with the calendar empty before the booking"
        parts = []
        if self.before:
            parts.append(f"{_events(self.before, 1)} in the calendar before the booking")
        if self.after:
            first = len(self.before) + 2
            parts.append(f"{_events(self.after, first)} created while it ran")
        return "with " + ", and ".join(parts)


def _events(events: tuple[tuple[str, str], ...], first: int) -> str:
    shown = [f"evt-{first + n} {title!r} {when}" for n, (title, when) in enumerate(events)]
    if len(shown) > 4:
        shown = [*shown[:2], f"... ({len(shown) - 3} more)", shown[-1]]
    return f"{len(events)} other event{'s' * (len(events) != 1)} ({'; '.join(shown)})"


def calendar_worlds() -> list[CalendarWorld]:
    rng = generator("06.1")
    found = [CalendarWorld((), ())]
    for _ in range(200):
        before = tuple(rng.choice(OTHERS) for _ in range(rng.choice((0, 1, 2, rng.randint(3, 12)))))
        after = tuple(rng.choice(OTHERS) for _ in range(rng.randint(0, 3)))
        found.append(CalendarWorld(before, after))
    return found


def calendar_size(world: CalendarWorld) -> tuple[int, ...]:
    return (len(world.before) + len(world.after), len(world.after))


def _check_undo_event(undo_create_event: Any) -> str:
    fn = function(undo_create_event, "undo_create_event(world)")
    scratch = new_world(*NO_MAIL)
    scratch["booking"]["event"] = scratch["calendar"].create(*ADA)
    attempted(fn, scratch)

    def holds(case: CalendarWorld) -> None:
        world = new_world(*NO_MAIL, standup=False)
        calendar = world["calendar"]
        for title, when in case.before:
            calendar.create(title, when)

        created: list[str] = []  # this booking's event id, as create_event stored it

        def others(event: Event) -> None:
            if event.kind == "step_done" and event.step == "create_event":
                created.append(world["booking"]["event"])
                for title, when in case.after:
                    calendar.create(title, when)

        outcome = booking_saga(undo_event=fn).run(
            world, inject={"charge_card": "fail"}, on_event=others
        )
        mine = created[0]
        for dead in outcome.dead_letters:
            raise Incorrect(f"{case}, {raised(dead.error, 'undo')}")
        events = calendar.events
        kept = [(n, event) for n, event in enumerate(case.before + case.after)]
        for n, (title, when) in kept:
            event_id = f"evt-{n + 1 if n < len(case.before) else n + 2}"
            if event_id not in events:
                raise Incorrect(
                    f"{case}, your undo deleted {event_id} ({title!r}, {when}), an event of "
                    f"someone else; this booking's event was {mine}. Delete only it, by the id "
                    "create_event stored in world['booking']['event']"
                )
            if events[event_id] != {"title": title, "when": when}:
                raise Incorrect(f"{case}, your undo changed {event_id}, an event of someone else")
        if mine in events:
            forgot = (
                " (your undo took its id out of world['booking'], but the calendar still "
                "holds the event)"
                if world["booking"].get("event") != mine
                else ""
            )
            raise Incorrect(
                f"{case}, this booking's event ({mine}) is still in the calendar after the "
                f"rollback{forgot}"
            )

    forall(calendar_worlds(), holds, size=calendar_size)
    return "only the event this run created is gone, by its id; every other event stays."


LESSON_IMPORTS = (
    "from rollback_lessons.worlds.mailserver import MailServer\n"
    "from rollback_lessons.worlds.services import booking_saga, new_world\n"
    "from rollback_lessons.worlds.services import action_undo_table\n"
    "from rollback_lessons.lab.widgets import RollbackLab\n"
    "from IPython.display import Image\n"
    "from rollback_lessons.lab import viz\n"
    "from rollback_lessons.lab.exercises import ____, lesson06\n"
)
"""What lesson 06 has imported before its exercises (``Exercise.setup``: a test
compares it with the notebook)."""


q1 = Exercise(
    id="06.1",
    setup=LESSON_IMPORTS,
    title="Undo the calendar event",
    checker=_check_undo_event,
    answer_names=("undo_create_event",),
    hints=(
        "Other people's events may have the same title and time as this booking's. What "
        "tells this booking's event apart?",
        "The exercise's text says where create_event put what tells this booking's event "
        "apart from all the others.",
        "What does the calendar need to be told to remove exactly one event, and only that one?",
    ),
    solution_code=(
        "# exercise: 06.1\n"
        "def undo_create_event(world):\n"
        '    world["calendar"].delete(world["booking"]["event"])'
    ),
)


def _saga(charge_register: str, refund: Any, price: int) -> Saga:
    """The lesson's booking, with the learner's refund, charging ``price``."""
    saga = booking_saga(charge_register=charge_register, refund_charge=refund)

    def charge(world: Any) -> None:
        world["payments"].charge(price, world["booking"]["key"])

    steps = [
        dataclasses.replace(s, action=charge) if s.name == "charge_card" else s for s in saga.steps
    ]
    return Saga(steps, name=saga.name)


def _refunded(world: Any) -> dict[str, int]:
    return {k: c["refunded"] for k, c in world["payments"].charges.items()}


def _check_timeout(charge_register: Any, refund_booking: Any) -> str:
    register_at = choose(charge_register, ("before", "after"), "charge_register")
    fn = function(refund_booking, "refund_booking(world)")
    attempted(fn, new_world(*NO_MAIL))

    def holds(case: BookingWorld) -> None:
        world = new_world(*NO_MAIL)
        world["booking"]["key"] = case.key
        payments = world["payments"]
        for key, amount, refunded in case.before:
            payments.charge(amount, key)
            if refunded:
                payments.refund(key)

        def others(event: Event) -> None:
            if event.step == "charge_card" and event.kind in ("step_done", "step_failed"):
                for key, amount in case.after:
                    payments.charge(amount, key)

        failing = "send_email" if case.fault == "send_email" else "charge_card"
        inject = {failing: "fail" if failing == "send_email" else case.fault}
        outcome = _saga(register_at, fn, case.price).run(world, inject=inject, on_event=others)
        charged = case.fault != "fail"
        if register_at == "after" and case.fault == "fail_after_effect":
            raise Incorrect(
                f"{case}: with 'after' the refund was never logged (the step raised), so "
                f"{payments.charges[case.key]['refunded']} came back of the {case.price} charged"
            )
        for dead in outcome.dead_letters:
            raise Incorrect(f"{case}, {raised(dead.error, 'refund_booking')}")
        want = {key: (amount if refunded else 0) for key, amount, refunded in case.before}
        want |= {key: 0 for key, _ in case.after}
        if charged:
            want[case.key] = case.price
        amounts = {key: amount for key, amount, _ in case.before} | dict(case.after)
        if charged:
            amounts[case.key] = case.price
        for calls in ("your refund", "a second call of your refund"):
            kept = {k: c["amount"] for k, c in payments.charges.items()}
            if kept != amounts:
                raise Incorrect(
                    f"{case}, after {calls} the payment service holds the charges {kept}, "
                    f"not {amounts}: its charges are the card's history; refund through "
                    "world['payments'].refund(key)"
                )
            got = _refunded(world)
            for key in sorted(set(got) | set(want), key=lambda k: (k == case.key, k)):
                if got.get(key) == want.get(key):
                    continue
                if key != case.key:
                    raise Incorrect(
                        f"{case}, after {calls} the refund of {key!r} is {got.get(key)}, not "
                        f"{want.get(key)}: that is another booking's charge. Refund under this "
                        "booking's key only, world['booking']['key']"
                    )
                raise Incorrect(
                    f"{case}, after {calls} {got.get(key)} of the {case.price} charged under "
                    f"{key!r} came back: refund it once, all of it, by its key"
                )
            try:
                fn(world)
            except Exception as exc:
                raise Incorrect(f"{case}, called again, {raised(exc, 'refund_booking')}") from None

    forall(booking_worlds("06.2", KEY, PRICE), holds, size=lambda w: w.size(KEY, PRICE))
    return "the timeout is covered: refunded once, by key, and harmless when nothing was charged."


q2 = Exercise(
    id="06.2",
    setup=LESSON_IMPORTS,
    title="Survive a timeout after the charge",
    checker=_check_timeout,
    answer_names=("charge_register", "refund_booking"),
    hints=(
        "A timeout after the charge means the step fails after its effect.",
        "Which registration time still logs the undo when the step raises?",
        "The payment service refunds by idempotency key, once per key; the booking's key is "
        "in world['booking'].",
    ),
    solution_code=(
        "# exercise: 06.2\n"
        'charge_register = "before"\n\n\n'
        "def refund_booking(world):\n"
        '    world["payments"].refund(world["booking"]["key"])'
    ),
)

register(q1, q2)
