"""Lesson 02 exercises: write an undo that inverts its own step; predict the undo order.

02.1 runs the learner's ``undo_deposit`` as the undo of ``account_saga``'s deposit in worlds
it draws: other people's accounts opened before and after ``acct-1``, and money of
another payer landing in ``acct-1`` between the deposit and its undo (which must stay:
that is lesson 10's lost update, asked for here).
"""

from __future__ import annotations

import copy
import numbers
from dataclasses import dataclass
from typing import Any

from ...events import Event
from ...saga import Saga, Step
from ...worlds.examples import account_saga
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

ACCOUNT = "acct-1"
DEPOSIT = 100
OTHER_ACCOUNTS = ("acct-0", "acct-2", "acct-9", "acct-10", "acct-11", "acct-100")


@dataclass(frozen=True)
class World:
    before: tuple[tuple[str, int], ...]  # other accounts, opened before acct-1
    after: tuple[tuple[str, int], ...]  # other accounts, opened after acct-1
    arriving: int  # another payer's money landing in acct-1 between the deposit and its undo

    def __str__(self) -> str:
        parts = []
        if self.before:
            parts.append(f"{_accounts(self.before)} opened before {ACCOUNT}")
        if self.after:
            parts.append(f"{_accounts(self.after)} opened after {ACCOUNT}")
        if self.arriving:
            parts.append(
                f"{self.arriving} more landing in {ACCOUNT} between the deposit and its undo "
                "(another payer's transfer)"
            )
        return "with " + ", and ".join(parts) if parts else f"with {ACCOUNT} the only account"


def _accounts(accounts: tuple[tuple[str, int], ...]) -> str:
    return " and ".join(f"{name} ({balance})" for name, balance in accounts)


def worlds() -> list[World]:
    """Up to four other accounts, split between before and after acct-1 was opened, and
    money landing in acct-1 meanwhile (or none)."""
    rng = generator("02.1")
    found = [World((), (), 0), World((), (), 30)]
    for _ in range(300):
        others = [(name, rng.choice((0, rng.randint(1, 500)))) for name in OTHER_ACCOUNTS]
        rng.shuffle(others)
        others = others[: rng.randint(0, 4)]
        split = rng.randint(0, len(others))
        arriving = rng.choice((0, rng.randint(1, 500)))
        found.append(World(tuple(others[:split]), tuple(others[split:]), arriving))
    return found


def size(world: World) -> tuple[int, ...]:
    return (len(world.before) + len(world.after), world.arriving > 0, world.arriving)


def _run(fn: Any, world: World) -> tuple[Any, list[tuple[dict[str, Any], dict[str, Any]]]]:
    """account_saga with the learner's undo, notify failing; the others act meanwhile.
    Returns the outcome and the accounts just before and after each call of the undo."""
    seen: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def undo(state: Any) -> None:
        before = copy.deepcopy(state["accounts"])
        try:
            fn(state)
        finally:
            seen.append((before, copy.deepcopy(state["accounts"])))

    def others(event: Event) -> None:
        if event.kind == "step_done" and event.step == "open_account":
            state["accounts"].update(world.after)
        if event.kind == "pipeline_failed":
            state["accounts"][ACCOUNT] += world.arriving

    state: dict[str, Any] = {"accounts": dict(world.before), "notified": False}
    outcome = account_saga(undo).run(state, inject={"notify": "fail"}, on_event=others)
    return outcome, seen


def _check_undo_deposit(undo_deposit: Any) -> str:
    fn = function(undo_deposit, "undo_deposit(state)")
    attempted(fn, {"accounts": {ACCOUNT: DEPOSIT}, "notified": False})

    def holds(world: World) -> None:
        outcome, seen = _run(fn, world)
        for dead in outcome.dead_letters:
            if dead.step == "deposit":
                raise Incorrect(f"{world}, {raised(dead.error, 'undo_deposit')}")
        before, after = seen[0]
        for name, balance in before.items():
            if name != ACCOUNT and after.get(name) != balance:
                now = after.get(name, "gone")
                raise Incorrect(
                    f"{world}, your undo changed {name} ({balance} → {now}), an account of "
                    f"someone else: change only {ACCOUNT}"
                )
        added = sorted(set(after) - set(before))
        if added:
            raise Incorrect(f"{world}, your undo added {', '.join(added)}: change only {ACCOUNT}")
        held, left = before[ACCOUNT], after.get(ACCOUNT)
        if left is None:
            raise Incorrect(
                f"{world}, your undo deleted {ACCOUNT}; the deposit's undo only takes the "
                "money out: closing the account is open_account's undo, which runs next"
            )
        if isinstance(left, bool) or not isinstance(left, numbers.Number):  # (learn73 F11)
            raise Incorrect(
                f"{world}, your undo left {ACCOUNT} holding {left!r}, a {type(left).__name__}: "
                f"a balance is a number; take the deposit out of it"
            )
        if left == held - DEPOSIT:
            return
        if left == 0 and world.arriving:
            raise Incorrect(
                f"{world}, {ACCOUNT} held {held} when your undo ran and 0 after it: the "
                f"other payer's {world.arriving} went too (a lost update). Take out only what "
                "the deposit put in"
            )
        if left == held:
            raise Incorrect(f"{world}, {ACCOUNT} still held {held} after your undo")
        raise Incorrect(
            f"{world}, {ACCOUNT} held {held} when your undo ran and {left} after it; the "
            f"deposit put in {DEPOSIT}, so the undo should leave {held - DEPOSIT}"
        )

    forall(worlds(), holds, size=size)
    return (
        "the deposit comes back out, and only the deposit: other accounts and money that "
        "arrived meanwhile stay, and an emptied account can close."
    )


LESSON_IMPORTS = (
    "from rollback_lessons.worlds.demo import xyz_saga, xyz_state\n"
    "from rollback_lessons.worlds.examples import folder_saga, folder_state\n"
    "from rollback_lessons.outcome import compare_table\n"
    "from rollback_lessons.lab.widgets import RollbackLab\n"
    "from IPython.display import Image, display\n"
    "from rollback_lessons.lab import viz\n"
    "from rollback_lessons.worlds.examples import account_saga, account_state\n"
    "from rollback_lessons.worlds.examples import user_saga, user_state\n"
    "from rollback_lessons.lab.exercises import ____, lesson02\n"
)
"""What lesson 02 has imported before its exercises (``Exercise.setup``: a test
compares it with the notebook)."""


q1 = Exercise(
    id="02.1",
    setup=LESSON_IMPORTS,
    title="Write the undo of the deposit",
    checker=_check_undo_deposit,
    answer_names=("undo_deposit",),
    hints=(
        "What did the deposit step do to the state? Its undo does the opposite of that, "
        "and nothing else.",
        "close_account runs right after your undo and refuses while acct-1 holds money; "
        "but money from someone else may have arrived meanwhile, and it must stay.",
        "Setting the balance to a number erases whatever arrived in between: the undo must "
        "be right for whatever balance it finds when it runs.",
    ),
    solution_code=(
        '# exercise: 02.1\ndef undo_deposit(state):\n    state["accounts"]["acct-1"] -= 100'
    ),
)


REGISTER = {
    "pack": "after",
    "bill": "before",
    "label": "after",
    "insure": "before",
    "ship": "after",
}
FAILS = "insure"


def five_steps() -> Saga:
    """pack, bill, label, insure, ship: bill and insure log their undo before they run."""
    return Saga(
        [Step(n, lambda s: None, lambda s: None, register=r) for n, r in REGISTER.items()],  # type: ignore[arg-type]
        name="five",
    )


def _check_order(predicted: Any) -> str:
    names = list(REGISTER)
    given, predicted = predicted, names_list(predicted, names, "the order")
    if not predicted:  # (names_list reads None, "" and [] as none; here some undos run)
        raise Incorrect(
            f"the order: write a list, in order, of the undos that run, such as "
            f"{names[:2]}, got {given!r}"
        )
    actual = list(five_steps().run(inject={FAILS: "fail"}).compensated)
    if predicted == actual:
        return (
            f"{', '.join(actual)}: last in, first out, and {FAILS}'s undo was logged before "
            f"{FAILS} ran."
        )
    if "ship" in predicted:
        raise Incorrect("ship never ran: steps after the failure are not run, so not undone")
    if FAILS not in predicted:
        raise Incorrect(
            f"{FAILS} logs its undo before it runs, so that undo is in the log when {FAILS} "
            "fails, and it runs (which is why such an undo must be safe when its step did "
            "nothing)"
        )
    if predicted == actual[::-1]:
        raise Incorrect("that is the order the steps ran in; the undos run the other way")
    if predicted in (sorted(actual), sorted(actual, reverse=True)):
        raise Incorrect(
            "that is the order of their names; the undos run in the reverse of the order "
            "their undos were logged"
        )
    if sorted(predicted) == sorted(actual):
        raise Incorrect("those are the undos that run, but not in that order: the log is a stack")
    raise Incorrect(f"{predicted} is not it: which undos are in the log, and which went last?")


q2 = Exercise(
    id="02.2",
    setup=LESSON_IMPORTS,
    title="Predict the undo order",
    checker=_check_order,
    answer_names=("predicted",),
    hints=(
        "An undo logged after its step is in the log only if the step finished; one logged "
        "before is in the log as soon as its step starts.",
        "Write down the log as the run fills it, step by step, until insure fails.",
        "The log is a stack: the last undo pushed is the first popped.",
    ),
    solution_code='# exercise: 02.2\npredicted = ["insure", "label", "bill", "pack"]',
)

register(q1, q2)
