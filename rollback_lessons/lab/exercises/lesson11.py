"""Lesson 11 exercise: fix the flaw the explorer found.

The booking's refund is logged before the charge (a timeout after the charge must still be
refunded), so it also runs when the charge failed before charging anything. ``check`` puts
the learner's ``refund`` into the booking saga and explores every combination of up to two
faults under every policy, also from a world the lesson does not show (a customer with an
earlier booking already charged), and wants no invariant broken.
"""

from __future__ import annotations

from typing import Any

from ...explore import explore
from ...worlds import examples
from . import Exercise, Incorrect, attempted, function, register


def _with_earlier_booking() -> dict[str, Any]:
    state = examples.booking_state()
    state["charges"]["booking-0"] = 80  # an earlier booking, charged and kept
    return state


STATES = {"a new customer": examples.booking_state, "a returning customer": _with_earlier_booking}


def _check_refund(refund: Any) -> str:
    fn = function(refund, "refund")
    attempted(fn, examples.booking_state())
    runs = 0
    for who, state in STATES.items():
        exploration = explore(
            examples.booking_saga(refund=fn),
            state,
            policies=("continue", "retry", "halt"),
            restored=examples.booking_restored,
        )
        worst = exploration.smallest_failure
        if worst is not None:
            raise Incorrect(f"for {who}, with {worst.describe()}: {worst.violations[0]}")
        runs += len(exploration.runs)
    return (
        f"the explorer finds no broken invariant in {runs} runs, for new and returning customers."
    )


q1 = Exercise(
    id="11.1",
    title="Fix the flaw the explorer found",
    checker=_check_refund,
    answer_names=("refund",),
    hints=(
        "The refund is logged before the charge, so it runs even when the charge never "
        "happened. What must it look at first?",
        f"The charge is recorded in state['charges'] under the booking's key, {examples.KEY!r}.",
        "Refund only what was charged under this booking's key, and only once.",
    ),
    solution_code=(
        "# exercise: 11.1\n"
        "def refund(state):\n"
        f'    key = "{examples.KEY}"\n'
        '    if key in state["charges"] and key not in state["refunds"]:\n'
        '        state["refunds"][key] = state["charges"][key]'
    ),
    wrong_answers=(
        # refunds whether or not anything was charged: the flaw itself
        f'def refund(state):\n    state["refunds"]["{examples.KEY}"] = 120',
        # looks at any charge, not this booking's: wrong for a returning customer
        "def refund(state):\n"
        '    if state["charges"]:\n'
        f'        state["refunds"]["{examples.KEY}"] = 120',
        # does nothing: the charge stays
        "def refund(state):\n    pass",
    ),
    right_answers=(
        "def refund(state):\n"
        f'    charged = state["charges"].get("{examples.KEY}")\n'
        "    if charged:\n"
        f'        state["refunds"].setdefault("{examples.KEY}", charged)',
    ),
)

register(q1)
