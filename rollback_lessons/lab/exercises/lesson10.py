"""Lesson 10 exercises: an undo that commutes, and the countermeasure for a situation.

10.1 runs the learner's ``undo_bonus`` as the bonus saga's undo against every
interleaving with other writers the lesson does not show (a withdrawal, a larger deposit,
another starting balance), and checks that their work survives and the bonus is gone.
"""

from __future__ import annotations

from typing import Any

from ...worlds.isolation import Actor, Scenario, bonus_saga, interleavings
from . import Exercise, Incorrect, attempted, function, register


def _writer(name: str, amount: int) -> Any:
    def make() -> Actor:
        def actor(world: dict[str, Any]) -> Any:
            world["balance"] += amount
            yield f"{name}: {amount:+d}"

        return actor

    return make


# (starting balance, the other writer, its change); the lesson shows the first
CASES = (
    (100, "Deposit", 30),
    (100, "Withdrawal", -20),
    (250, "Deposit", 70),
    (40, "Withdrawal", -40),
)


def _check_undo(undo_bonus: Any) -> str:
    fn = function(undo_bonus, "undo_bonus")
    attempted(fn, {"balance": 150})
    runs = 0
    for start, name, amount in CASES:
        expected = start + amount

        def ended(world: dict[str, Any], expected: int = expected) -> str | None:
            return None if world["balance"] == expected else "wrong balance"

        scenario = Scenario(
            "exercise",
            {"balance": start},
            {"Saga": lambda: bonus_saga(undo=fn), name: _writer(name, amount)},
            ended,
            ("balance",),
        )
        for trace in interleavings(scenario):
            if "Saga" not in trace.failed:
                raise Incorrect(f"the bonus saga did not fail as it should: {trace.turns}")
            if trace.world["balance"] != expected:
                story = ", then ".join(t.did for t in trace.turns)
                raise Incorrect(
                    f"starting at {start}: {story}. The balance ends at "
                    f"{trace.world['balance']}, not {expected}: the bonus must be gone and "
                    f"the {name.lower()} of {amount:+d} must stay, whenever it lands"
                )
            runs += 1
    return f"your undo commutes: {runs} interleavings with deposits and withdrawals all end right."


q1 = Exercise(
    id="10.1",
    title="An undo that commutes",
    checker=_check_undo,
    answer_names=("undo_bonus",),
    hints=(
        "Restoring a saved balance erases whatever happened since. What did the step do?",
        "The step added 50. Undo exactly that: whatever else changed the balance stays.",
        'world["balance"] -= 50',
    ),
    solution_code=('# exercise: 10.1\ndef undo_bonus(world):\n    world["balance"] -= 50'),
    wrong_answers=(
        # restores the value the lesson started from
        'def undo_bonus(world):\n    world["balance"] = 100',
        # takes back the deposit the lesson shows, not the bonus
        'def undo_bonus(world):\n    world["balance"] -= 80',
        # undoes only when nothing happened in between, and tells no one otherwise
        'def undo_bonus(world):\n    if world["balance"] == 150:\n        world["balance"] = 100',
        # forgets the undo
        "def undo_bonus(world):\n    pass",
    ),
    right_answers=(
        'def undo_bonus(world):\n    world.update(balance=world["balance"] - 50)',
        'BONUS = 50\n\ndef undo_bonus(world):\n    world["balance"] = world["balance"] - BONUS',
    ),
)

COUNTERMEASURES = ("semantic lock", "commutative updates", "pessimistic view", "reread value")
SITUATIONS = {
    "a": "Concert tickets: a payment saga holds a seat; until it ends, other buyers must "
    "not be turned away for a seat that may come free.",
    "b": "Loyalty points: a saga adds points, and its undo takes them back, while other "
    "purchases keep adding points to the same account.",
    "c": "An order saga reserves stock (which shoppers see at once) and then runs a fraud "
    "check that often fails.",
    "d": "An undo puts a customer's old address back, but the customer may have changed "
    "it again in the meantime.",
}
ANSWERS = {
    "a": "semantic lock",
    "b": "commutative updates",
    "c": "pessimistic view",
    "d": "reread value",
}
WHY = {
    "semantic lock": "mark the held record PENDING so others wait or treat it as tentative",
    "commutative updates": "undo by the same amount, so concurrent changes keep their effect",
    "pessimistic view": "do the step that may fail first, before the one others can see",
    "reread value": "check the record is still what the saga wrote before overwriting it",
}


def _normal(text: Any) -> str:
    return " ".join(str(text).lower().replace("-", " ").replace("_", " ").split())


def _check_choice(choices: Any) -> str:
    if not isinstance(choices, dict):
        raise Incorrect(f"answer with a dict like {{'a': 'semantic lock', ...}}, got {choices!r}")
    given = {str(k).strip().lower(): _normal(v) for k, v in choices.items()}
    said = {str(k).strip().lower(): v for k, v in choices.items()}
    missing = sorted(set(SITUATIONS) - set(given))
    if missing:
        raise Incorrect(f"no countermeasure for situation(s) {', '.join(missing)}")
    for key in sorted(SITUATIONS):
        if given[key] not in COUNTERMEASURES:
            raise Incorrect(
                f"situation {key}: {said[key]!r} is not one of: {', '.join(COUNTERMEASURES)}"
            )
    for key in sorted(SITUATIONS):
        if given[key] != ANSWERS[key]:
            raise Incorrect(
                f"situation {key}: {given[key]} would {WHY[given[key]]}; is that what goes "
                "wrong there?"
            )
    return "each situation gets the countermeasure that stops its anomaly."


q2 = Exercise(
    id="10.2",
    title="Choose the countermeasure",
    checker=_check_choice,
    answer_names=("choices",),
    hints=(
        "Ask first: what goes wrong? Someone acts on a value that is undone (dirty read), "
        "an undo erases someone's change (lost update), or a step others see comes before "
        "the one that fails.",
        "A hold others must respect: a lock. A count others add to: commute. A failing "
        "check after a visible step: reorder. An overwrite of a value others may change: "
        "look again first.",
    ),
    solution_code=(
        "# exercise: 10.2\n"
        "choices = {\n"
        '    "a": "semantic lock",\n'
        '    "b": "commutative updates",\n'
        '    "c": "pessimistic view",\n'
        '    "d": "reread value",\n'
        "}"
    ),
    wrong_answers=(
        'choices = {"a": "semantic lock", "b": "reread value", "c": "pessimistic view",'
        ' "d": "commutative updates"}',
        'choices = {"a": "pessimistic view", "b": "commutative updates",'
        ' "c": "semantic lock", "d": "reread value"}',
        'choices = {"a": "semantic lock", "b": "commutative updates", "c": "pessimistic view"}',
        'choices = {"a": "locking", "b": "commutative updates", "c": "pessimistic view",'
        ' "d": "reread value"}',
    ),
    right_answers=(
        'choices = {"A": "Semantic lock", "b": "commutative-updates",'
        ' "c": "Pessimistic View", "d": "reread_value"}',
    ),
)

register(q1, q2)
