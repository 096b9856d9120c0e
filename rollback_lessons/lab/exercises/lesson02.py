"""Lesson 02 exercises: write an undo that inverts its own step; predict the undo order."""

from __future__ import annotations

from typing import Any

from ...events import describe
from ...saga import Saga, Step
from ...worlds.examples import account_saga
from . import Exercise, Incorrect, attempted, function, register, step_names


def _check_undo_deposit(undo_deposit: Any) -> str:
    fn = function(undo_deposit, "undo_deposit")
    attempted(fn, {"accounts": {"acct-1": 100}, "notified": False})
    state = {"accounts": {"acct-0": 50}, "notified": False}
    outcome = account_saga(fn).run(state, inject={"notify": "fail"})
    for dead in outcome.dead_letters:
        if dead.step == "deposit":
            raise Incorrect(f"your undo raised {describe(dead.error)} during the rollback")
        balance = (outcome.state_after or {})["accounts"].get("acct-1")
        if balance is None:
            raise Incorrect(
                "acct-1 was gone before close_account ran: the deposit's undo should only "
                "take the money out; closing the account is open_account's undo"
            )
        raise Incorrect(
            f"the account could not be closed ({dead.error}): after your undo its balance "
            f"was {balance}. The undo of a deposit takes the deposit back out."
        )
    if outcome.state_after != {"accounts": {"acct-0": 50}, "notified": False}:
        raise Incorrect(
            f"after the rollback the state is {outcome.state_after}, "
            "expected {'accounts': {'acct-0': 50}, 'notified': False}"
        )
    # Not graded (the lesson does not show it): what the undo does if money arrived meanwhile
    later: dict[str, Any] = {"accounts": {"acct-1": 150}, "notified": False}
    fn(later)
    if later["accounts"].get("acct-1") != 50:
        return (
            "the account is back as it was, so it can close. One thing to know: your undo "
            "sets the balance rather than taking the deposit out, so a deposit that arrived "
            "in between would be wiped out too (a lost update: the isolation lesson shows it)."
        )
    return "the deposit comes back out, so the account can close, and nothing else changes."


q1 = Exercise(
    id="02.1",
    title="Write the undo of the deposit",
    checker=_check_undo_deposit,
    answer_names=("undo_deposit",),
    hints=(
        "The deposit step runs `state['accounts']['acct-1'] += 100`.",
        "close_account refuses while the balance is not 0, and it is undone right after you.",
        "Invert the step itself: take the 100 back out.",
    ),
    solution_code=(
        '# exercise: 02.1\ndef undo_deposit(state):\n    state["accounts"]["acct-1"] -= 100'
    ),
    wrong_answers=(
        'def undo_deposit(state):\n    state["accounts"]["acct-1"] += 100',
        'def undo_deposit(state):\n    del state["accounts"]["acct-1"]',
        "def undo_deposit(state):\n    pass",
        "undo_deposit = 100",
        'def undo_deposit(state):\n    state["accounts"].clear()',  # other accounts go too
    ),
    right_answers=(
        'def undo_deposit(state):\n    state["accounts"]["acct-1"] = 0',
        "def undo_deposit(state):\n"
        '    accounts = state["accounts"]\n'
        '    accounts.update({"acct-1": accounts["acct-1"] - 100})',
    ),
)


REGISTER = {"a": "after", "b": "before", "c": "after", "d": "before", "e": "after"}


def five_steps() -> Saga:
    """a, b, c, d, e: b and d log their undo before they run, the others after."""
    return Saga(
        [Step(n, lambda s: None, lambda s: None, register=r) for n, r in REGISTER.items()],  # type: ignore[arg-type]
        name="five",
    )


def _check_order(predicted: Any) -> str:
    predicted = step_names(predicted)
    actual = list(five_steps().run(inject={"d": "fail"}).compensated)
    if predicted == actual:
        return f"{', '.join(actual)}: last in, first out, and d's undo was logged before d ran."
    if "e" in predicted:
        raise Incorrect("e never ran: steps after the failure are not run, so not undone")
    if "d" not in predicted:
        raise Incorrect(
            "d logs its undo before it runs, so that undo is in the log when d fails, and it "
            "runs (which is why such an undo must be safe when its step did nothing)"
        )
    if predicted == actual[::-1]:
        raise Incorrect("that is the order the steps ran in; the undos run the other way")
    raise Incorrect(f"{predicted} is not it: which undos are in the log, and which went last?")


q2 = Exercise(
    id="02.2",
    title="Predict the undo order",
    checker=_check_order,
    answer_names=("predicted",),
    hints=(
        "An undo logged after its step is in the log only if the step finished; one logged "
        "before is in the log as soon as its step starts.",
        "The log is a stack: the last undo pushed is the first popped.",
    ),
    solution_code='# exercise: 02.2\npredicted = ["d", "c", "b", "a"]',
    wrong_answers=(
        'predicted = ["a", "b", "c", "d"]',
        'predicted = ["c", "b", "a"]',
        'predicted = ["e", "d", "c", "b", "a"]',
        'predicted = "d, c, b, a"',
    ),
    right_answers=('predicted = ("d", "c", "b", "a")', 'predicted = list("dcba")'),
)

register(q1, q2)
