"""Lesson 10 exercises: an undo that commutes, the countermeasure for a situation, and a
retry policy that tells a business failure from a technical one.

10.1 runs the learner's ``undo_bonus`` as the bonus saga's undo in every interleaving with
other writers it draws (one or two, deposits and withdrawals of any amount, some taking the
balance below the bonus or below 0: an overdraft is allowed), from any starting balance,
in worlds where the undo finds the balance at 0 or next to the bonus (``EDGES``), with
another record beside the balance, and checks that the others' work survives, the
bonus is gone, and nothing else changed.
10.3 books against generated gateways (outages of up to three calls, longer than the
lesson's, of every technical kind; business failures of every kind; messages and kinds the
lesson does not show) and checks that each answer is compensated at once and each outage
retried into a booking, with a wait above 0 before each retry and 2 s of waits at most (so
the lesson's own policy is not the answer), even for a gateway that stays down (the policy's
``patience.worst``: a bound on what the policy does, not on the outages drawn).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

from ..._words import counted
from ...errors import InvalidPipelineError
from ...policies import RetryPolicy
from ...worlds.failures import BUSINESS, TECHNICAL, BusinessFailure, Tried, try_booking
from ...worlds.isolation import Actor, Scenario, bonus_saga, run
from . import (
    Exercise,
    Incorrect,
    attempted,
    canonical,
    choose,
    forall,
    function,
    generator,
    raised,
    register,
)
from .patience import WALK, noted, worst

WRITERS = {"Deposit": 1, "Withdrawal": -1, "Payroll": 1, "Fee": -1}  # name: sign


def _writer(name: str, amount: int) -> Any:
    def make() -> Actor:
        def actor(world: dict[str, Any]) -> Any:
            world["balance"] += amount
            yield f"{name}: {amount:+d}"

        return actor

    return make


@dataclass(frozen=True)
class World:
    start: int
    writers: tuple[tuple[str, int], ...]  # (name, change)
    savings: int  # another record of the same customer, which nobody touches

    def __str__(self) -> str:
        others = " and ".join(f"a {name.lower()} of {abs(amount)}" for name, amount in self.writers)
        return f"starting at {self.start} (savings {self.savings}), with {others}"


LESSON = World(100, (("Deposit", 30),), 0)


EDGES = (0, 1, -1, 49, 50, 51, -50)
"""Balances the undo finds in an interleaving of a world of its own (learn73 F2: an undo
that did nothing at exactly 0 passed 891 drawn interleavings, none of which found 0)."""


def worlds() -> list[World]:
    """The lesson's world, a low balance that a withdrawal takes below the bonus (the undo
    must then overdraw it), worlds where the undo finds each of ``EDGES`` (0 above all),
    and drawn ones: any start, withdrawals and fees that may take the balance below 0."""
    rng = generator("10.1")
    found = [
        LESSON,
        World(20, (("Withdrawal", -60),), 0),
        World(0, (("Fee", -5),), 0),
        World(0, (("Fee", -50),), 0),  # the undo may find 0: no balance is a special case
        World(30, (("Deposit", 20), ("Fee", -100)), 7),  # 0 again, after two others
    ]
    found += [World(100, (("Withdrawal", balance - 150),), 0) for balance in EDGES]
    for _ in range(150):
        names = rng.sample(list(WRITERS), rng.choice((1, 1, 2)))
        start = rng.choice((100, rng.randint(0, 60), rng.randint(0, 1000)))
        writers = []
        for name in names:
            size = rng.choice((rng.randint(1, 60), rng.randint(1, 400)))
            writers.append((name, size * WRITERS[name]))
        found.append(World(start, tuple(writers), rng.choice((0, rng.randint(1, 500)))))
    return found


def size(world: World) -> tuple[int, ...]:
    """The lesson's world first, then by how many writers, and how much money moves."""
    moved = abs(world.start) + sum(abs(amount) for _, amount in world.writers)
    return (len(world.writers), world != LESSON, world.savings > 0, moved)


def _check_undo(undo_bonus: Any) -> str:
    fn = function(undo_bonus, "undo_bonus(world)")
    attempted(fn, {"balance": 150, "savings": 0})
    runs = [0]
    errors: list[Exception] = []

    def undo(world: dict[str, Any]) -> None:
        try:
            fn(world)
        except Exception as exc:
            errors.append(exc)
            raise

    def holds(world: World) -> None:
        expected = world.start + sum(amount for _, amount in world.writers)
        actors = {"Saga": lambda: bonus_saga(undo=undo)}
        actors |= {name: _writer(name, amount) for name, amount in world.writers}
        scenario = Scenario(
            "exercise",
            {"balance": world.start, "savings": world.savings},
            actors,
            lambda w: None,
            ("balance",),
        )
        turns = "SS" + "".join(name[0] for name, _ in world.writers)  # the saga moves twice
        for schedule in sorted(set(itertools.permutations(turns))):
            trace = run(scenario, "".join(schedule))
            runs[0] += 1
            story = ", then ".join(t.did for t in trace.turns)
            if errors:
                raise Incorrect(f"{world}: {story}. Then {raised(errors[-1], 'undo_bonus')}")
            balance, savings = trace.world["balance"], trace.world["savings"]
            if savings != world.savings:
                raise Incorrect(
                    f"{world}: {story}. Savings ended at {savings}, not {world.savings}: "
                    "the undo of the bonus changes the balance only"
                )
            if balance != expected:
                overdraft = (
                    " (an overdraft is allowed: the balance may end below 0)"
                    if expected < 0
                    else ""
                )
                raise Incorrect(
                    f"{world}: {story}. The balance ends at {balance}, not {expected}: the "
                    "bonus must be gone and every other change must stay, whenever it "
                    f"lands{overdraft}"
                )

    forall(worlds(), holds, size=size)
    return (
        f"your undo commutes: {runs[0]} interleavings with deposits and withdrawals of "
        "other amounts, from other balances, all end right."
    )


LESSON_IMPORTS = (
    "from IPython.display import Image\n"
    "from rollback_lessons.lab.interleave import IsolationLab, trace_png\n"
    "from rollback_lessons.worlds.isolation import SCENARIOS, interleavings, run\n"
    "from rollback_lessons import RetryPolicy\n"
    "from rollback_lessons.worlds.failures import "
    "LESSON_POLICY, CardDeclined, ServiceUnavailable, try_booking\n"
    "from rollback_lessons.lab.exercises import ____, lesson10\n"
)
"""What lesson 10 has imported before its exercises (``Exercise.setup``: a test
compares it with the notebook)."""


q1 = Exercise(
    id="10.1",
    setup=LESSON_IMPORTS,
    title="An undo that commutes",
    checker=_check_undo,
    answer_names=("undo_bonus",),
    hints=(
        "Restoring a saved balance erases whatever happened since. What did the step itself "
        "do to the balance?",
        "Others change the balance between the bonus and its undo, by amounts the undo "
        "cannot know: it must be right for any balance it finds, even one lower than the "
        "bonus (an overdraft is allowed).",
        "Lesson 10 calls the fix commutative: like a deposit, the undo can land in any order "
        "among the others' changes and the total comes out the same.",
    ),
    solution_code=('# exercise: 10.1\ndef undo_bonus(world):\n    world["balance"] -= 50'),
)

COUNTERMEASURES = ("semantic lock", "commutative updates", "pessimistic view", "reread value")
SITUATIONS = {
    "a": "Concert tickets: a payment saga holds a seat, then charges the card; the seat must "
    "be held first (no buyer is charged for a seat someone took meanwhile), and until the saga "
    "ends, other buyers must not be turned away for a seat that may come free.",
    "b": "Loyalty points: a saga adds points, and its undo takes them back, while other "
    "purchases keep adding points to the same account.",
    "c": "An order saga reserves stock (which shoppers see at once) and then runs a fraud "
    "check that often fails; shoppers must never see stock taken by an order the check "
    "then rejects.",
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


WHY_NOT = {  # (learn73 F4: both fix lesson 10's last room; the situations tell them apart)
    ("a", "pessimistic view"): "would charge the card before holding the seat, and this seat "
    "must be held first; what lets other buyers know a held seat may come free?",
    ("c", "semantic lock"): "would still show shoppers the stock, marked pending, while the "
    "check runs; to never show it, which step must come first?",
}


def _check_choice(choices: Any) -> str:
    if not isinstance(choices, dict):
        raise Incorrect(f"answer with a dict like {{'a': 'semantic lock', ...}}, got {choices!r}")
    given = {canonical(k): v for k, v in choices.items()}
    missing = sorted(k for k in SITUATIONS if k not in given)
    if missing:
        raise Incorrect(
            f"no countermeasure for situation{'s' * (len(missing) > 1)} {', '.join(missing)}"
        )
    chosen = {k: choose(given[k], COUNTERMEASURES, f"situation {k}") for k in sorted(SITUATIONS)}
    for key, choice in chosen.items():
        if choice != ANSWERS[key]:
            why = WHY_NOT.get((key, choice), f"would {WHY[choice]}; is that what goes wrong there?")
            raise Incorrect(f"situation {key}: {choice} {why}")
    return "each situation gets the countermeasure that stops its anomaly."


q2 = Exercise(
    id="10.2",
    setup=LESSON_IMPORTS,
    title="Choose the countermeasure",
    checker=_check_choice,
    answer_names=("choices",),
    hints=(
        "Ask first: what goes wrong? Someone acts on a value that is undone (dirty read), "
        "an undo erases someone's change (lost update), or a step others see comes before "
        "the one that fails.",
        "What each countermeasure stops: a reread value checks a record is still what the "
        "saga wrote before overwriting it; a pessimistic view runs the step that may fail "
        "before the one others can see; commutative updates change by an amount, so others' "
        "changes keep their effect; a semantic lock marks a record held, so others wait or "
        "treat it as tentative.",
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
)

register(q1, q2)


# -- 10.3: retry what a retry can fix ------------------------------------------------------

OUTAGE = 3  # calls: this gateway's outages last up to three (lesson 10's lasted up to two)
UNDO_POLICY = "Retry(...) is the undo policy that retries undos; a step is retried by a RetryPolicy"
WAIT_BUDGET = 2.0  # seconds of backoff a booking may spend on a gateway's outage


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
    """Generated gateways: an outage of up to OUTAGE technical failures, then either a
    charge or a business failure; every kind appears, and the longest outage before
    both. Shortest first, so a failure is reported in the smallest gateway."""
    rng = random.Random(seed)
    worlds: list[tuple[list[Exception], bool]] = []
    for n in range(count):
        outage = [_failure(rng.choice(_TECHNICAL), rng) for _ in range(rng.randrange(OUTAGE + 1))]
        if n < len(_TECHNICAL):  # each technical kind alone at least once
            outage = [_failure(_TECHNICAL[n], rng)]
        elif n < len(_TECHNICAL) + 4:  # the longest outage, before a charge and an answer
            outage = [_failure(rng.choice(_TECHNICAL), rng) for _ in range(OUTAGE)]
        answer = n % 2 == 1 or n >= count - len(_BUSINESS)
        if answer:
            outage.append(_failure(_BUSINESS[n % len(_BUSINESS)], rng))
        worlds.append((outage, answer))
    return sorted(worlds, key=lambda world: len(world[0]))


def _shown(error: BaseException) -> str:
    return f"{type(error).__name__}({str(error)!r})"


def _gave_up(policy: RetryPolicy, failures: list[Exception], tried: Tried) -> str:
    """Why the booking stopped retrying after ``calls`` calls of an outage (the engine's
    note too, when the policy's answer was no wait: a method of it that raised, say)."""
    calls = tried.calls
    error = failures[calls - 1]
    if not policy.retries(error):
        return (
            f"your policy does not retry a {type(error).__name__}. A technical failure says "
            "nothing about the answer: retry it"
        )
    return (
        f"your policy gave up after {counted(calls, 'attempt')} "
        f"(max_attempts={policy.max_attempts}), "
        f"before the outage was over: an outage of this gateway lasts up to {OUTAGE} calls"
        f"{noted(tried.outcome)}"
    )


def _check_retry(charge_retry: Any) -> str:
    if not isinstance(charge_retry, RetryPolicy):
        kind = type(charge_retry).__name__  # (learn226 N2: "as in lesson 03" said of Retry)
        inside = f" (the RetryPolicy inside it: {UNDO_POLICY})" if kind == "Retry" else ""
        raise Incorrect(f"give a RetryPolicy(...), got {kind}{inside}")
    try:
        try_booking([], charge_retry)  # (a policy the charge step refuses is told so first)
    except InvalidPipelineError as exc:  # (learn73 F6: it was "did it replace a record")
        raise Incorrect(f"the charge step refuses your policy: {exc}") from None
    worlds = _worlds()
    for failures, answered in worlds:
        tried = try_booking(failures, charge_retry)
        said = ", then ".join(_shown(e) for e in failures)
        if answered and tried.calls < len(failures):  # the outage before the answer won
            raise Incorrect(
                f"the gateway raised {said}; the booking was undone after "
                f"{counted(tried.calls, 'call')}, before the gateway got past its outage to "
                "its answer: "
                f"{_gave_up(charge_retry, failures, tried)}."
            )
        if answered:
            if tried.calls > len(failures):
                answer = failures[-1]
                outage = ", then ".join(_shown(e) for e in failures[:-1])
                before = f"raised {outage}, then " if outage else ""
                raise Incorrect(
                    f"the gateway {before}answered {_shown(answer)}, a business failure, and "
                    f"your policy retried it (call {len(failures) + 1} came after that "
                    "answer): asking again only gets the same answer, and makes the guest "
                    "wait. Compensate at once."
                )
            if tried.outcome.status != "rolled_back":
                raise Incorrect(
                    f"the gateway raised {said}; the booking should be undone, "
                    f"it ended {tried.outcome.status}"
                )
        elif tried.outcome.status != "committed":
            raise Incorrect(
                f"the gateway raised {said}, and the next call would have charged the card; "
                f"the booking ended {tried.outcome.status} after {counted(tried.calls, 'call')}: "
                f"{_gave_up(charge_retry, failures, tried)}."
            )
        if any(wait <= 0 for wait in tried.waited):
            raise Incorrect(
                f"the gateway raised {said}; the waits between calls were {list(tried.waited)}: "
                "a call right after a failed one meets the same outage; give each retry a wait "
                "above 0 (initial_delay, capped by max_delay)"
            )
        if sum(tried.waited) > WAIT_BUDGET + 1e-9:
            raise Incorrect(
                f"the gateway raised {said}; the booking waited {sum(tried.waited):.12g} s "
                f"between calls ({list(tried.waited)}), more than the {WAIT_BUDGET:g} s a "
                "guest will wait"
            )
    down = [kind("gateway down") for kind in _TECHNICAL]
    found = worst(charge_retry, down, WAIT_BUDGET)
    how = f"with {_shown(found.error)}, " if found.error is not None else ""
    if not found.stopped:
        within = (
            f"within the {WAIT_BUDGET:g} s"
            if found.waited > WAIT_BUDGET + 1e-9
            else f"in {WALK} waits"
        )
        raise Incorrect(
            f"if the gateway stays down {how}your policy was still calling it after "
            f"{len(found.waits)} waits {found.shown()}, {found.waited:.12g} s in all, and never "
            f"stopped {within} a guest will wait: the policy must keep within them whatever "
            "the gateway does, then give up"
        )
    if found.waited > WAIT_BUDGET + 1e-9:
        raise Incorrect(
            f"if the gateway stays down {how}your policy calls it {found.attempts} times "
            f"and waits {found.waited:.12g} s between calls in all, more than the "
            f"{WAIT_BUDGET:g} s a guest will wait: the policy must keep within them whatever "
            "the gateway does"
        )
    outages = sum(1 for _, answered in worlds if not answered)
    return (
        f"{len(worlds) - outages} business failures compensated at once and {outages} "
        f"gateways with outages of up to {OUTAGE} calls retried into a booking within "
        f"{WAIT_BUDGET:g} s, with failures of kinds and messages this lesson does not show."
    )


q3 = Exercise(
    id="10.3",
    setup=LESSON_IMPORTS + "from rollback_lessons.worlds.failures import BusinessFailure\n",
    title="Retry what a retry can fix",
    checker=_check_retry,
    answer_names=("charge_retry",),
    hints=(
        "Which failures would a second call answer differently? A declined card stays "
        "declined; a timeout or a 503 may be gone a second later.",
        "Every business failure is a BusinessFailure, and every technical one a "
        "ConnectionError or a TimeoutError: name the family, not the cases you saw.",
        "Count the calls of the longest outage and the answer after it, then the waits "
        "between them (lesson 03: initial_delay, then times multiplier each time): every "
        "wait the policy can make, even if the gateway stays down, must fit in the guest's "
        "patience, and none may be 0.",
    ),
    solution_code=(
        "# exercise: 10.3\n"
        "charge_retry = RetryPolicy(\n"
        "    max_attempts=4, initial_delay=0.2, multiplier=2, no_retry_on=(BusinessFailure,)\n"
        ")"
    ),
)

register(q3)
