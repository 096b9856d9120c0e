"""Lesson 04 exercises: a safe order around an irreversible email; an idempotent refund.

04.2 runs the learner's ``refund`` as the undo of the booking's charge (logged before the
charge) in bookings it draws: other keys and prices, other bookings' charges (and
refunds) in the same state from before, another booking charged while this one runs; the
charge failing before it charged, timing out after, or the email failing after it; and
the refund called a second time.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from ...events import Event
from ...worlds.examples import BOOKING_STEPS, KEY, PRICE, booking_saga, booking_state
from . import (
    Exercise,
    Incorrect,
    attempted,
    forall,
    function,
    generator,
    names_list,
    raised,
    register,
)


def _check_order(order: Any) -> str:
    order = names_list(order, list(BOOKING_STEPS), "the order")
    missing = [n for n in BOOKING_STEPS if n not in order]
    twice = sorted({n for n in order if order.count(n) > 1})
    if missing or twice:
        raise Incorrect(
            f"use each of {', '.join(BOOKING_STEPS)} exactly once"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; more than once: {', '.join(twice)}" if twice else "")
        )
    problems = booking_saga(order, allow_unsafe_order=True).check_order().problems
    if problems:
        raise Incorrect(problems[0])
    if order[0] != "verify_card":
        raise Incorrect(
            f"{order[0]} runs before verify_card: when the card is declined, {order[0]} has "
            "to be undone. verify_card is a gate (it changes nothing): put it first, so a "
            "bad card stops the booking before anything needs undoing"
        )
    return (
        "check first, reversible steps next, then the irreversible email, and only what "
        "can be retried forward after it."
    )


q1 = Exercise(
    id="04.1",
    title="Put the booking in a safe order",
    checker=_check_order,
    answer_names=("safe_order",),
    setup="from rollback_lessons.worlds.examples import SAFE_BOOKING_ORDER",
    hints=(
        "saga.check_order() explains what is wrong with an order.",
        "Once the email is sent it cannot be taken back: nothing that can fail and be undone "
        "may come after it.",
        "award_points is retriable: it is never undone, only retried forward.",
        "A check that changes nothing should run before anything that needs undoing.",
    ),
    solution_code=(
        "# exercise: 04.1\n"
        "safe_order = [\n"
        '    "verify_card", "reserve_room", "charge_card", "send_email", "award_points"\n'
        "]"
    ),
)


FAULTS = {
    "fail": "the charge fails before charging anything",
    "fail_after_effect": "the charge times out after charging",
    "send_email": "the email fails after the charge",
}


@dataclass(frozen=True)
class World:
    key: str
    price: int
    before: tuple[tuple[str, int, bool], ...]  # other bookings: key, amount, refunded?
    after: tuple[tuple[str, int], ...]  # other bookings charged while this one runs
    fault: str

    def __str__(self) -> str:
        text = f"for a booking under key {self.key!r} priced {self.price}"
        if self.before:
            text += ", with " + " and ".join(
                f"{key!r} charged {amount}" + (" and refunded" if refunded else "")
                for key, amount, refunded in self.before
            )
            text += " before it"
        if self.after:
            text += (" and " if self.before else ", with ") + " and ".join(
                f"{key!r} charged {amount}" for key, amount in self.after
            )
            text += " while it ran"
        return f"{text}, when {FAULTS[self.fault]}"


def _keys(rng: Any, count: int, mine: str) -> list[str]:
    pool = [f"booking-{n}" for n in range(0, 40) if f"booking-{n}" != mine]
    return rng.sample(pool, count)


def worlds(seed: str = "04.2", count: int = 150) -> list[World]:
    """The lesson's booking first, then other keys and prices, and other bookings' charges
    before and during this one."""
    rng = generator(seed)
    found = [World(KEY, PRICE, (), (), fault) for fault in FAULTS]
    for _ in range(count):
        key = rng.choice((KEY, f"booking-{rng.randint(2, 40)}"))
        price = rng.choice((PRICE, rng.randint(5, 900)))
        others = _keys(rng, rng.randint(0, 4), key)
        split = rng.randint(0, len(others))
        before = tuple((k, rng.randint(5, 900), rng.random() < 0.3) for k in others[:split])
        after = tuple((k, rng.randint(5, 900)) for k in others[split:])
        found.append(World(key, price, before, after, rng.choice(list(FAULTS))))
    return found


def size(world: World) -> tuple[int, ...]:
    return (
        len(world.before) + len(world.after),
        world.key != KEY,
        world.price != PRICE,
        list(FAULTS).index(world.fault),
    )


def start(world: World) -> dict[str, Any]:
    state = booking_state(world.key, world.price)
    for key, amount, refunded in world.before:
        state["charges"][key] = amount
        if refunded:
            state["refunds"][key] = amount
    return state


def others_meanwhile(world: World, state: dict[str, Any]) -> Any:
    """An on_event hook: the other bookings of ``world.after`` are charged right after
    this booking's charge was attempted."""

    def hook(event: Event) -> None:
        if event.step == "charge_card" and event.kind in ("step_done", "step_failed"):
            for key, amount in world.after:
                state["charges"][key] = amount

    return hook


def expected_refunds(world: World) -> dict[str, int]:
    refunds = {key: amount for key, amount, refunded in world.before if refunded}
    if world.fault != "fail":
        refunds[world.key] = world.price
    return refunds


def check_refunds(world: World, refunds: dict[str, Any], what: str) -> None:
    """The refunds after ``what`` are this booking's price (when it was charged) and the
    other bookings' as they were."""
    want = expected_refunds(world)
    if refunds == want:
        return
    for key in sorted(set(refunds) | set(want)):
        got, wanted = refunds.get(key), want.get(key)
        if got == wanted:
            continue
        if key != world.key:
            did = (
                f"paid back {got}"
                if wanted is None
                else (
                    "took back the refund"
                    if got is None
                    else f"changed the refund from {wanted} to {got}"
                )
            )
            raise Incorrect(
                f"{world}, {what} {did} under {key!r}: that is another booking's money. "
                "Refund only this booking's charge, under its own key (state['key'])"
            )
        if wanted is None:
            raise Incorrect(
                f"{world}, {what} paid back {got} under {key!r}, but nothing was charged "
                "under that key: refund only what was charged"
            )
        if got is None:
            raise Incorrect(
                f"{world}, {what} paid back nothing under {key!r}, which was charged "
                f"{wanted}: refund what was charged under the booking's key, state['key']"
            )
        raise Incorrect(
            f"{world}, {what} left the refund under {key!r} at {got}; it was charged "
            f"{wanted}, and that is what comes back"
        )


def _check_refund(refund: Any) -> str:
    fn = function(refund, "refund(state)")
    attempted(fn, booking_state())

    def holds(world: World) -> None:
        state = start(world)
        failing = "send_email" if world.fault == "send_email" else "charge_card"
        inject = {failing: "fail" if failing == "send_email" else world.fault}
        outcome = booking_saga(refund=fn).run(
            state, inject=inject, on_event=others_meanwhile(world, state)
        )
        for dead in outcome.dead_letters:
            raise Incorrect(f"{world}, {raised(dead.error, 'refund')}")
        charges = {key: amount for key, amount, _ in world.before} | dict(world.after)
        if world.fault != "fail":
            charges[world.key] = world.price
        if state["charges"] != charges:
            raise Incorrect(
                f"{world}, the charges after your refund are {state['charges']}, not "
                f"{charges}: the charges are the card's history; a refund is a new record "
                "beside its charge, in state['refunds']"
            )
        check_refunds(world, dict(state["refunds"]), "your refund")
        again = copy.deepcopy(state)
        try:
            fn(again)
        except Exception as exc:
            raise Incorrect(f"{world}, called a second time, {raised(exc, 'refund')}") from None
        if again != state:
            check_refunds(world, dict(again["refunds"]), "a second call of your refund")
            raise Incorrect(f"{world}, a second call of your refund changed the state")

    forall(worlds(), holds, size=size)
    return (
        "it refunds this booking's charge once, by its key, leaves every other booking "
        "alone, and does nothing when nothing was charged."
    )


q2 = Exercise(
    id="04.2",
    title="An idempotent refund",
    checker=_check_refund,
    answer_names=("refund",),
    setup="from rollback_lessons.worlds.examples import booking_state",
    hints=(
        "Logged before the charge, the refund also runs when the charge never happened, "
        "and it may be called again after it ran.",
        "The booking's own charge is the one under its key, state['key']: other bookings' "
        "charges sit in the same dict.",
        "Refund what was charged under the key, and only when there is such a charge and "
        "no refund under that key yet.",
    ),
    solution_code=(
        "# exercise: 04.2\n"
        "def refund(state):\n"
        '    key = state["key"]\n'
        '    if key in state["charges"] and key not in state["refunds"]:\n'
        '        state["refunds"][key] = state["charges"][key]'
    ),
)

register(q1, q2)
