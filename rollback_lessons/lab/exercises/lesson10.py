"""Lesson 10 exercises: an undo that commutes, the countermeasure for a situation, and a
retry policy that tells a business failure from a technical one.

10.1 runs the learner's ``undo_bonus`` as the bonus saga's undo against every
interleaving with other writers the lesson does not show (a withdrawal, a larger deposit,
another starting balance), and checks that their work survives and the bonus is gone.
10.3 books against generated gateways (short outages of every technical kind, business
failures of every kind, with messages and kinds the lesson does not show) and checks that
each answer is compensated at once and each outage retried into a booking.
"""

from __future__ import annotations

import random
from typing import Any

from ...policies import RetryPolicy
from ...worlds.failures import BUSINESS, TECHNICAL, BusinessFailure, try_booking
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


# -- 10.3: retry what a retry can fix ------------------------------------------------------

WAIT_BUDGET = 5.0  # seconds of backoff a booking may spend on a gateway's short outage


class FraudSuspected(BusinessFailure):
    """A business failure the lesson never names: an answer all the same."""


class ReadTimedOut(TimeoutError):
    """A technical failure the lesson never names."""


_BUSINESS = (*BUSINESS, FraudSuspected)
_TECHNICAL = (*TECHNICAL, ReadTimedOut, BrokenPipeError)
_WORDS = ("gateway", "card 4242", "bank", "booking-7", "acquirer", "node eu-2", "try later")


def _failure(kind: type[Exception], rng: random.Random) -> Exception:
    return kind(f"{rng.choice(_WORDS)}: {rng.randrange(100, 1000)}")


def _worlds(seed: int = 10_3, count: int = 80) -> list[tuple[list[Exception], bool]]:
    """Generated gateways: up to two technical failures (an outage lasts at most two
    calls), then either a charge or a business failure; every kind appears."""
    rng = random.Random(seed)
    worlds: list[tuple[list[Exception], bool]] = []
    for n in range(count):
        outage = [_failure(rng.choice(_TECHNICAL), rng) for _ in range(rng.randrange(3))]
        if n < len(_TECHNICAL):  # each technical kind alone at least once
            outage = [_failure(_TECHNICAL[n], rng)]
        answer = n % 2 == 1 or n >= count - len(_BUSINESS)
        if answer:
            outage.append(_failure(_BUSINESS[n % len(_BUSINESS)], rng))
        worlds.append((outage, answer))
    return worlds


def _check_retry(charge_retry: Any) -> str:
    if not isinstance(charge_retry, RetryPolicy):
        raise Incorrect(
            f"give a RetryPolicy(...), as in lesson 03, got {type(charge_retry).__name__}"
        )
    worlds = _worlds()
    for failures, answered in worlds:
        tried = try_booking(failures, charge_retry)
        said = ", then ".join(f"{type(e).__name__}({str(e)!r})" for e in failures)
        if answered and tried.calls < len(failures):  # the outage before the answer won
            raise Incorrect(
                f"the gateway raised {said}; the booking was undone after {tried.calls} "
                "call(s), before the gateway got past its outage to its answer. A technical "
                "failure says nothing about the answer: retry it."
            )
        if answered:
            if tried.calls > len(failures):
                raise Incorrect(
                    f"the gateway raised {said}; the last is a business failure, an answer, "
                    f"yet the charge was tried {tried.calls} times: retrying an answer only "
                    "asks the same question again (and waits). Compensate at once."
                )
            if tried.outcome.status != "rolled_back":
                raise Incorrect(
                    f"the gateway raised {said}; the booking should be undone, "
                    f"it ended {tried.outcome.status}"
                )
            continue
        if tried.outcome.status != "committed":
            raise Incorrect(
                f"the gateway raised {said}, and the next call would have charged the card; "
                f"the booking ended {tried.outcome.status} after {tried.calls} call(s). A "
                "technical failure says nothing about the answer: retry it."
            )
        if sum(tried.waited) > WAIT_BUDGET:
            raise Incorrect(
                f"the gateway raised {said}; the booking waited {sum(tried.waited):g} s "
                f"between calls, more than the {WAIT_BUDGET:g} s a guest will wait"
            )
    outages = sum(1 for _, answered in worlds if not answered)
    return (
        f"{len(worlds) - outages} business failures compensated at once and {outages} "
        "gateways with short outages retried into a booking, with failures of kinds and "
        "messages this lesson does not show."
    )


q3 = Exercise(
    id="10.3",
    title="Retry what a retry can fix",
    checker=_check_retry,
    answer_names=("charge_retry",),
    setup=(
        "from rollback_lessons import RetryPolicy\n"
        "from rollback_lessons.worlds.failures import BusinessFailure, CardDeclined, "
        "ServiceUnavailable\n"
    ),
    hints=(
        "Which failures would a second call answer differently? A declined card stays "
        "declined; a timeout or a 503 may be gone a second later.",
        "Every business failure is a BusinessFailure, and every technical one a "
        "ConnectionError or a TimeoutError; name the family, not the cases you saw.",
        "RetryPolicy(max_attempts=3, initial_delay=0.5, no_retry_on=(BusinessFailure,))",
    ),
    solution_code=(
        "# exercise: 10.3\n"
        "charge_retry = RetryPolicy(max_attempts=3, initial_delay=0.5, "
        "no_retry_on=(BusinessFailure,))"
    ),
    wrong_answers=(
        # retries everything: a declined card is asked again and again
        "charge_retry = RetryPolicy()",
        # retries nothing: a 503 undoes the booking
        "charge_retry = RetryPolicy(max_attempts=1)",
        # only the case the lesson shows
        "charge_retry = RetryPolicy(no_retry_on=(CardDeclined,))",
        "charge_retry = RetryPolicy(retry_on=(ServiceUnavailable,))",
        # forgets that a timeout is technical too
        "charge_retry = RetryPolicy(retry_on=(ConnectionError,))",
        # not enough attempts for a two-call outage
        "charge_retry = RetryPolicy(max_attempts=2, no_retry_on=(BusinessFailure,))",
        # waits far too long between calls
        "charge_retry = RetryPolicy(initial_delay=4, no_retry_on=(BusinessFailure,))",
    ),
    right_answers=(
        "charge_retry = RetryPolicy(retry_on=(ConnectionError, TimeoutError))",
        "charge_retry = RetryPolicy(retry_on=(OSError,))",
        "charge_retry = RetryPolicy(max_attempts=4, initial_delay=0.2, multiplier=3,\n"
        "                           no_retry_on=(BusinessFailure,))",
        "charge_retry = RetryPolicy(retry_on=(TimeoutError, ConnectionError),"
        " no_retry_on=(BusinessFailure,), max_delay=1)",
    ),
)

register(q3)
