"""Lesson 04 exercises: a safe order around an irreversible email; an idempotent refund."""

from __future__ import annotations

from typing import Any

from ...events import describe
from ...worlds.examples import BOOKING_STEPS, KEY, booking_saga, booking_state
from . import Exercise, Incorrect, attempted, function, register, step_names


def _check_order(order: Any) -> str:
    order = step_names(order)
    missing = [n for n in BOOKING_STEPS if n not in order]
    extra = [n for n in order if n not in BOOKING_STEPS]
    if missing or extra or len(order) != len(BOOKING_STEPS):
        raise Incorrect(
            f"use each of {', '.join(BOOKING_STEPS)} exactly once"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; unknown: {', '.join(extra)}" if extra else "")
        )
    problems = booking_saga(order, allow_unsafe_order=True).check_order().problems
    if problems:
        raise Incorrect(problems[0])
    if order[0] != "verify_card":
        raise Incorrect(
            "verify_card is a gate: put it first, so a bad card stops the booking "
            "before anything needs undoing"
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
    wrong_answers=(
        'safe_order = ["verify_card", "send_email", "reserve_room", "charge_card", "award_points"]',
        'safe_order = ["reserve_room", "charge_card", "verify_card", "send_email", "award_points"]',
        'safe_order = ["verify_card", "reserve_room", "charge_card", "send_email"]',
        # points before the email: if the email then fails, the points stay awarded
        'safe_order = ["verify_card", "reserve_room", "charge_card", "award_points", "send_email"]',
        'safe_order = "verify_card, reserve_room, charge_card, send_email, award_points"',
    ),
    right_answers=(
        'safe_order = ("verify_card", "charge_card", "reserve_room", "send_email", "award_points")',
        "safe_order = list(SAFE_BOOKING_ORDER) + ['award_points']",
    ),
)


def _refunds_after(refund: Any, fault: str) -> dict[str, Any]:
    outcome = booking_saga(refund=refund).run(booking_state(), inject={"charge_card": fault})
    for dead in outcome.dead_letters:
        raise Incorrect(
            f"with the charge failing ({fault.replace('_', ' ')}), your refund raised "
            f"{describe(dead.error)}: an undo logged before its step must cope with either case"
        )
    return dict((outcome.state_after or {})["refunds"])


def _check_refund(refund: Any) -> str:
    fn = function(refund, "refund")
    attempted(fn, booking_state())
    never = _refunds_after(fn, "fail")
    if never:
        raise Incorrect(
            f"the charge failed before it happened, yet your refund paid back {never}: "
            "refund only what was charged under the key"
        )
    once = _refunds_after(fn, "fail_after_effect")
    if once != {KEY: 120}:
        raise Incorrect(
            f"the card was charged 120 and then timed out; expected refunds {{{KEY!r}: 120}}, "
            f"got {once}"
        )
    state = booking_state()
    state["charges"][KEY] = 120
    fn(state)
    fn(state)
    if state["refunds"] != {KEY: 120}:
        raise Incorrect(
            f"called twice, your refund left refunds at {state['refunds']}: "
            "a second call must change nothing"
        )
    return "it refunds a real charge once, and does nothing when there is nothing to refund."


q2 = Exercise(
    id="04.2",
    title="An idempotent refund",
    checker=_check_refund,
    answer_names=("refund",),
    setup="from rollback_lessons.worlds.examples import KEY",
    hints=(
        "The charge step runs `state['charges'].setdefault(KEY, 120)`.",
        "Logged before the charge, the refund also runs when the charge never happened.",
        "Refund only if KEY is in state['charges'] and not yet in state['refunds'].",
    ),
    solution_code=(
        "# exercise: 04.2\n"
        "def refund(state):\n"
        '    if KEY in state["charges"] and KEY not in state["refunds"]:\n'
        '        state["refunds"][KEY] = state["charges"][KEY]'
    ),
    wrong_answers=(
        'def refund(state):\n    state["refunds"][KEY] = 120',
        'def refund(state):\n    state["refunds"][KEY] = state["charges"][KEY]',
        "def refund(state):\n"
        '    if KEY in state["charges"]:\n'
        '        state["refunds"][KEY] = state["refunds"].get(KEY, 0) + 120',
        "def refund(state):\n    pass",
    ),
)

register(q1, q2)
