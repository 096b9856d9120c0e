"""Lesson 04 exercises: a safe order for any pipeline; an idempotent refund.

04.1 calls the learner's ``safe_order(steps)`` on pipelines it draws (1 to 12 steps of
every kind, names the lesson does not show, written in any order) and holds the order it
returns to ``check_order()``, gates first, and each kind's steps in the order given.

04.2 runs the learner's ``refund`` as the undo of the booking's charge (logged before the
charge) in bookings it draws: other keys and prices, other bookings' charges (and
refunds) in the same state from before, often of the same amount, another booking charged
while this one runs; the
charge failing before it charged, timing out after, or the email failing after it; and
the refund called a second time.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from ...events import Event
from ...saga import Saga, Step
from ...worlds.examples import KEY, PRICE, booking_saga, booking_state
from . import (
    Exercise,
    Incorrect,
    attempted,
    call,
    forall,
    function,
    generator,
    not_names,
    raised,
    register,
)
from .booking import (
    BookingWorld,
    booking_worlds,
    refund_amounts,
    refund_changes_only_refunds,
    watched,
)

KINDS = ("gate", "compensable", "pivot", "retriable")
POOL = {
    "gate": ("verify_card", "check_stock", "check_fraud", "validate_address"),
    "compensable": (
        "reserve_room", "charge_card", "hold_seat", "book_taxi", "add_row", "create_event",
        "reserve_stock",
    ),
    "pivot": ("send_email", "send_tickets", "ship_parcel"),
    "retriable": ("award_points", "notify_partner", "update_crm", "send_survey"),
}  # fmt: skip


@dataclass(frozen=True)
class Pipeline:
    steps: tuple[tuple[str, str], ...]  # (name, kind), in the order they were written

    def saga(self, order: list[str]) -> Saga:
        kinds = dict(self.steps)
        return Saga(
            [
                Step(n, _nothing, _nothing if kinds[n] == "compensable" else None, kind=kinds[n])
                for n in order
            ],
            name="pipeline",
            allow_unsafe_order=True,
        )

    def __str__(self) -> str:
        return "for the steps " + ", ".join(f"{n} ({k})" for n, k in self.steps)


def _nothing(state: Any) -> None:
    return None


LESSON_PIPELINE = Pipeline(
    (
        ("verify_card", "gate"),
        ("reserve_room", "compensable"),
        ("send_email", "pivot"),
        ("charge_card", "compensable"),
        ("award_points", "retriable"),
    )
)  # lesson 04's bad order, with the loyalty points


def pipelines() -> list[Pipeline]:
    """Pipelines of 1 to 12 steps, in any written order: 0 to 3 gates, 1 to 5 compensable
    steps, at most one pivot (two cannot both be safe), 0 to 3 retriable steps."""
    rng = generator("04.1")
    found = [LESSON_PIPELINE]
    for _ in range(200):
        counts = {
            "gate": rng.choice((0, 1, 1, 2, 3)),
            "compensable": rng.randint(1, 5),
            "pivot": rng.choice((0, 1, 1)),
            "retriable": rng.choice((0, 1, 2, 3)),
        }
        steps = [(n, kind) for kind in KINDS for n in rng.sample(POOL[kind], counts[kind])]
        rng.shuffle(steps)
        found.append(Pipeline(tuple(steps)))
    return found


def _check_order(safe_order: Any) -> str:
    fn = function(safe_order, "safe_order(steps)")
    attempted(fn, list(LESSON_PIPELINE.saga([n for n, _ in LESSON_PIPELINE.steps]).steps))

    def holds(pipeline: Pipeline) -> None:
        written = [n for n, _ in pipeline.steps]
        steps = list(pipeline.saga(written).steps)
        order = call(fn, steps, name="safe_order", where=str(pipeline))
        if isinstance(order, tuple):
            order = list(order)
        if isinstance(order, list) and any(isinstance(n, Step) for n in order):
            shown = [f"Step({n.name!r})" if isinstance(n, Step) else repr(n) for n in order]
            raise Incorrect(
                f"{pipeline}, safe_order returned Step objects, [{', '.join(shown)}]: return "
                "the steps' names (step.name), a list of strings"
            )
        if (slip := not_names(order, "the steps' names (step.name)")) is not None:
            raise Incorrect(f"{pipeline}, safe_order {slip}")
        missing = [n for n in written if n not in order]
        twice = sorted({n for n in order if order.count(n) > 1})
        strangers = [n for n in order if n not in written]
        if missing or twice or strangers:
            raise Incorrect(
                f"{pipeline}, safe_order returned {order}: give each of these steps exactly "
                "once"
                + (f"; missing: {', '.join(missing)}" if missing else "")
                + (f"; more than once: {', '.join(twice)}" if twice else "")
                + (f"; not a step of this pipeline: {', '.join(strangers)}" if strangers else "")
            )
        problems = pipeline.saga(order).check_order().reorder  # safe_order changes no kind
        if problems:
            raise Incorrect(f"{pipeline}, your order {order} is unsafe: {problems[0]}")
        kinds = dict(pipeline.steps)
        first_change = next((n for n in order if kinds[n] != "gate"), None)
        late_gates = [n for n in order[order.index(first_change) :] if kinds[n] == "gate"]
        if first_change is not None and late_gates:
            raise Incorrect(
                f"{pipeline}, your order {order} runs {first_change} before {late_gates[0]}: "
                f"when {late_gates[0]} fails, {first_change} has to be undone. A gate changes "
                "nothing: put the gates first, so a failed check stops the pipeline before "
                "anything needs undoing"
            )
        for kind in KINDS:
            given = [n for n in written if kinds[n] == kind]
            yours = [n for n in order if kinds[n] == kind]
            if yours != given:
                raise Incorrect(
                    f"{pipeline}, your order {order} puts the {kind} steps as {yours}; they "
                    f"were written {given}, and a later one may depend on an earlier one: "
                    "keep steps of the same kind in the order they were given"
                )

    tried = forall(pipelines(), holds, size=lambda p: (len(p.steps), p != LESSON_PIPELINE))
    return (
        f"in {tried} pipelines: the gates first, the reversible steps next, then the "
        "irreversible one, and only what can be retried forward after it."
    )


LESSON_IMPORTS = (
    "from rollback_lessons.worlds.examples import booking_saga, booking_state\n"
    "from rollback_lessons import UnsafeOrderError\n"
    "from rollback_lessons.lab.widgets import RollbackLab\n"
    "from IPython.display import Image\n"
    "from rollback_lessons.lab import viz\n"
    "from rollback_lessons import VirtualClock\n"
    "from rollback_lessons.worlds.examples import SAFE_BOOKING_ORDER\n"
    "from rollback_lessons.lab.exercises import lesson04\n"
    "from rollback_lessons.worlds.examples import booking_state\n"
)
"""What lesson 04 has imported before its exercises (``Exercise.setup``: a test
compares it with the notebook)."""


q1 = Exercise(
    id="04.1",
    setup=LESSON_IMPORTS,
    title="Put any pipeline in a safe order",
    stops="the program asking your order stops there, as at a Ctrl-C",
    checker=_check_order,
    answer_names=("safe_order",),
    hints=(
        "saga.check_order() explains what is wrong with an order; section 1 printed each "
        "step's kind.",
        "Once a pivot (the email) has happened it cannot be taken back, and a retriable step "
        "is never undone: nothing that can fail and need undoing may come after either.",
        "A check that changes nothing should run before anything that needs undoing. Then "
        "group the steps by kind, in the order the kinds must run, without reordering "
        "within a kind.",
    ),
    solution_code=(
        "# exercise: 04.1\n"
        "def safe_order(steps):\n"
        '    rank = {"gate": 0, "compensable": 1, "pivot": 2, "retriable": 3}\n'
        "    return [s.name for s in sorted(steps, key=lambda s: rank[s.kind])]"
    ),
)


def start(world: BookingWorld) -> dict[str, Any]:
    state = booking_state(world.key, world.price)
    for key, amount, refunded in world.before:
        state["charges"][key] = amount
        if refunded:
            state["refunds"][key] = amount
    return state


def others_meanwhile(world: BookingWorld, state: dict[str, Any]) -> Any:
    """An on_event hook: the other bookings of ``world.after`` are charged right after
    this booking's charge was attempted."""

    def hook(event: Event) -> None:
        if event.step == "charge_card" and event.kind in ("step_done", "step_failed"):
            for key, amount in world.after:
                state["charges"][key] = amount

    return hook


def expected_refunds(world: BookingWorld) -> dict[str, int]:
    refunds = {key: amount for key, amount, refunded in world.before if refunded}
    if world.fault != "fail":
        refunds[world.key] = world.price
    return refunds


def check_refunds(world: BookingWorld, refunds: dict[str, Any], what: str) -> None:
    """The refunds after ``what`` are this booking's price (when it was charged) and the
    other bookings' as they were."""
    want = expected_refunds(world)
    if refunds == want:
        return
    keys = sorted(set(refunds) | set(want), key=lambda k: (k == world.key, k))  # others first
    for key in keys:
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
            f"{world}, {what} left the refund under {key!r} at {got!r}; it was charged "
            f"{wanted!r}, and that is what comes back"
        )


def _check_refund(refund: Any) -> str:
    fn = function(refund, "refund(state)")
    attempted(fn, booking_state())

    calls: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def holds(world: BookingWorld) -> None:
        state = start(world)
        failing = "send_email" if world.fault == "send_email" else "charge_card"
        inject = {failing: "fail" if failing == "send_email" else world.fault}
        calls.clear()
        outcome = booking_saga(refund=watched(fn, calls)).run(
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
        for before, after in calls:  # (as 11.1 does: learn83 F1)
            refund_amounts(world, before, after, "your refund")
        check_refunds(world, dict(state["refunds"]), "your refund")
        for before, after in calls:  # (as 11.1 does: learn82 F4)
            refund_changes_only_refunds(world, before, after, "your refund")
        again = copy.deepcopy(state)
        try:
            fn(again)
        except Exception as exc:
            raise Incorrect(f"{world}, called a second time, {raised(exc, 'refund')}") from None
        if again != state:
            check_refunds(world, dict(again["refunds"]), "a second call of your refund")
            refund_changes_only_refunds(world, state, again, "a second call of your refund")

    forall(booking_worlds("04.2", KEY, PRICE), holds, size=lambda w: w.size(KEY, PRICE))
    return (
        "it refunds this booking's charge once, by its key, leaves every other booking "
        "alone, changes nothing but the refunds, and does nothing when nothing was charged."
    )


q2 = Exercise(
    id="04.2",
    setup=LESSON_IMPORTS,
    title="An idempotent refund",
    checker=_check_refund,
    answer_names=("refund",),
    hints=(
        "Logged before the charge, the refund also runs when the charge never happened, "
        "and it may be called again after it ran.",
        "The booking's own charge is the one under its key, state['key']: other bookings' "
        "charges sit in the same dict.",
        "Before paying anything back, the refund has two things to ask of the state, one "
        "of state['charges'] and one of state['refunds'].",
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
