"""Lesson 11 exercise: fix the flaw the explorer found, judged by the explorer.

Exercise 04.2 asked for an idempotent refund case by case; here the refund is judged the
way lesson 11 judges a saga, by its four invariants over every combination of faults, and
each call of the refund is watched: it may change only its own booking's refund, and
nothing at all when nothing was charged (invariant 2, stricter than "as the customer
sees it": a refund of 0 is a change too).

The booking's refund is logged before the charge (a timeout after the charge must still be
refunded), so it also runs when the charge failed before charging anything. ``check`` puts
the learner's ``refund`` into the booking saga and runs every combination of up to two
faults under every policy in the lesson's booking, as the explorer does; then, in bookings
it draws (other keys and prices, a returning customer whose earlier bookings are charged,
some refunded), it runs combinations of faults drawn at random. It wants no invariant
broken, and calls the refund a second time after each rollback, as ``recover`` may after a
crash.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from ...errors import InjectedFault
from ...explore import INVARIANTS, Faults, check, combinations
from ...outcome import Outcome, Status
from ...worlds import examples
from . import Exercise, Incorrect, attempted, forall, function, generator, raised, register
from .booking import changes, diff, refund_amounts, refund_changes_only_refunds, watched

POLICIES = ("continue", "retry", "halt")


@dataclass(frozen=True)
class World:
    key: str
    price: int
    before: tuple[tuple[str, int, bool], ...]  # earlier bookings: key, amount, refunded?
    faults: Faults
    policy: str

    def state(self) -> dict[str, Any]:
        state = examples.booking_state(self.key, self.price)
        for key, amount, refunded in self.before:
            state["charges"][key] = amount
            if refunded:
                state["refunds"][key] = amount
        return state

    def __str__(self) -> str:
        text = f"for a booking under key {self.key!r} priced {self.price}"
        if self.before:
            earlier = " and ".join(
                f"{k!r} charged {a}" + (" and refunded" if r else "") for k, a, r in self.before
            )
            text += f" (a returning customer: {earlier})"
        faults = ", ".join(f"{step} {fault.replace('_', ' ')}" for step, fault in self.faults)
        return f"{text}, with {faults or 'no fault'} (policy {self.policy})"


def worlds(saga: Any) -> list[World]:
    rng = generator("11.1")
    by_count: dict[int, list[Faults]] = {}
    for faults in combinations(saga, 2):
        by_count.setdefault(len(faults), []).append(faults)
    found = []
    for _ in range(250):
        key = rng.choice((examples.KEY, f"booking-{rng.randint(2, 40)}"))
        price = rng.choice((examples.PRICE, rng.randint(5, 900)))
        pool = [f"booking-{n}" for n in range(0, 41) if f"booking-{n}" != key]
        before = tuple(  # often of the same amount: a refund goes by key, not by amount
            (k, rng.choice((price, rng.randint(5, 900))), rng.random() < 0.3)
            for k in rng.sample(pool, rng.choice((0, 1, 1, 2, 3)))
        )
        faults = rng.choice(by_count[rng.choice((0, 1, 1, 2, 2))])
        found.append(World(key, price, before, faults, rng.choice(POLICIES)))
    return found


def size(world: World) -> tuple[int, ...]:
    parts = (
        len(world.before),
        world.key != examples.KEY,
        world.price != examples.PRICE,
        len(world.faults),
    )
    return (sum(parts), *parts)


def _money(start: Any, end: Any) -> str:
    """What makes up each net amount that changed, in the records the learner wrote to
    (": 'booking-1' was charged 717 and refunded 120")."""
    if not start or not end:
        return ""
    was = examples.booking_as_seen(start)["charged"]
    now = examples.booking_as_seen(end)["charged"]
    parts = []
    for key in sorted(set(was) | set(now)):
        if was.get(key) != now.get(key):
            charged = end["charges"].get(key)
            refunded = end["refunds"].get(key)
            parts.append(
                f"{key!r} was "
                + (f"charged {charged}" if charged is not None else "never charged")
                + (f" and refunded {refunded}" if refunded is not None else ", never refunded")
            )
    return (": " + "; ".join(parts)) if parts else ""


def _others(key: str, before: Any, after: Any) -> list[str]:
    """The other bookings whose refund a call changed."""
    refunds = set(before["refunds"]) | set(after["refunds"])
    return sorted(
        k for k in refunds if k != key and before["refunds"].get(k) != after["refunds"].get(k)
    )


def _check_call(world: World, before: dict[str, Any], after: dict[str, Any]) -> None:
    """One call of the learner's refund, from ``before`` to ``after``: it changed only this
    booking's refund, and nothing at all when nothing was charged under its key."""
    key = before["key"]
    refund_amounts(world, before, after, "your refund")
    if before["charges"] != after["charges"]:
        raise Incorrect(
            f"{world}, your refund changed the charges: {diff(before, after)}. The charges "
            "are the card's history, and a refund is a new record beside its charge, in "
            "state['refunds']"
        )
    for other in _others(key, before, after):
        was, now = (
            refunds.get(other, "no refund") for refunds in (before["refunds"], after["refunds"])
        )
        raise Incorrect(
            f"{world}, your refund changed the refund of {other!r}, another booking "
            f"({was} → {now}); this booking's "
            f"key is {key!r}. A refund changes only its own booking's record, by its key, "
            "state['key']"
        )
    if key not in before["charges"] and before != after:
        zero = " (not even a refund of 0)" if after["refunds"].get(key) == 0 else ""
        raise Incorrect(
            f"{world}: phantom undo ({INVARIANTS['phantom undo']}). Nothing was charged under "
            f"{key!r}, yet your refund {changes(before, after)}: when its step never "
            f"happened, an undo must change nothing{zero}"
        )
    refund_changes_only_refunds(world, before, after, "your refund")


def _told(outcome: Outcome) -> str:
    """What a "not restored" run is told: a clean rollback as the explorer names it, any
    other by how it ended (learn73 F3: a halted run was said to be "rolled back")."""
    if outcome.status == Status.ROLLED_BACK:
        return INVARIANTS["not restored"]
    standing = [*outcome.pending, *(d.step for d in outcome.dead_letters), *outcome.leaked]
    return (
        f"the run ended {outcome.status}, leaving {', '.join(standing)} standing; "
        f"{', '.join(outcome.compensated)} compensated, yet the rest is not as it was"
    )


def _check_refund(refund: Any) -> str:
    fn = function(refund, "refund(state)")
    attempted(fn, examples.booking_state())
    calls: list[tuple[dict[str, Any], dict[str, Any]]] = []

    saga = examples.booking_saga(refund=watched(fn, calls))
    cases = [  # the lesson's booking, every combination of up to two faults, every policy
        World(examples.KEY, examples.PRICE, (), faults, policy)
        for faults in combinations(saga, 2)
        for policy in POLICIES
    ]

    judged: list[tuple[Any, Any]] = []

    def restored(before: Any, after: Any) -> bool:
        """The explorer's question, noted: for a rollback that was not clean, ``after``
        has the effects left standing (a dead letter, a pending undo) put back."""
        judged.append((before, after))
        return examples.booking_restored(before, after)

    def holds(world: World) -> None:
        calls.clear()
        try:
            run = check(saga, world.state, world.faults, world.policy, restored)
        except Exception:  # (the check's own reading broke: say first what the calls did)
            for before, after in calls:
                refund_amounts(world, before, after, "your refund")
            raise
        outcome = run.outcome
        for before, after in calls:
            _check_call(world, before, after)
        for dead in outcome.dead_letters:
            if dead.step == "charge_card" and not issubclass(type(dead.error), InjectedFault):
                raise Incorrect(f"{world}, {raised(dead.error, 'refund')}")
        if run.violations:
            violation = run.violations[0]
            kind = violation.split(":")[0]
            start, end = outcome.state_before or {}, outcome.state_after or {}
            said = INVARIANTS.get(kind, kind)
            if kind == "not restored":  # (as judged: the effects left standing put back)
                said, (start, end) = _told(outcome), judged[-1]
                seen = diff(examples.booking_as_seen(start), examples.booking_as_seen(end))
                detail = f"as the customer sees the booking, {seen}{_money(start, end)}"
            elif kind == "phantom undo":
                detail = f"from before the run to after it, {diff(start, end)}"
            else:
                detail = violation.split(":", 1)[1].strip()
            raise Incorrect(f"{world}: {kind} ({said}): {detail}")
        if "charge_card" not in outcome.compensated:
            return  # the refund did not run: a call now would be its first
        after = copy.deepcopy(dict(outcome.state_after or {}))
        again = copy.deepcopy(after)
        try:
            fn(again)
        except Exception as exc:
            raise Incorrect(f"{world}, called a second time, {raised(exc, 'refund')}") from None
        if again != after:
            raise Incorrect(
                f"{world}, a second call of your refund (as recover makes after a crash) "
                f"{changes(after, again)}: refund once"
            )

    tried = forall(cases + worlds(saga), holds, size=size)
    return (
        f"the explorer finds no broken invariant in {tried} runs, for new and returning "
        "customers, and a second call changes nothing."
    )


LESSON_IMPORTS = (
    "from IPython.display import Image\n"
    "from rollback_lessons.explore import assert_every_failure_handled, explore\n"
    "from rollback_lessons.lab.engines import to_png\n"
    "from rollback_lessons.lab.grid import ExplorerGrid, draw_grid\n"
    "from rollback_lessons.worlds.examples import booking_restored, booking_saga, booking_state\n"
    "from dataclasses import replace\n"
    "from rollback_lessons import Saga\n"
    "import math\n"
    "from hypothesis import given, settings\n"
    "from rollback_lessons.explore import check, single_faults\n"
    "from rollback_lessons.lab.testing import fault_combinations\n"
    "from rollback_lessons.worlds.examples import chain_saga, chain_state\n"
    "import rollback_lessons.lab\n"  # (a cell above imports it: run too early, it says so)
    "from rollback_lessons.lab.exercises import lesson11\n"
)
"""What lesson 11 has imported before its exercises (``Exercise.setup``: a test
compares it with the notebook)."""


q1 = Exercise(
    id="11.1",
    setup=LESSON_IMPORTS,
    title="Fix the flaw the explorer found",
    checker=_check_refund,
    answer_names=("refund",),
    hints=(
        "Explore your refund as section 3 explored refund_anyway: explore(booking_saga("
        "refund=refund), booking_state, restored=booking_restored).smallest_failure is the "
        "first run it breaks.",
        "The refund is logged before the charge, so it runs even when the charge never "
        "happened: then it must change nothing at all. A returning customer has other "
        "charges in state['charges'], perhaps of the same amount.",
        "Invariant 2 says when the refund may act (what does state['charges'] hold under "
        "this booking's key?); a crash's second call says when it must not act again "
        "(state['refunds']).",
    ),
    solution_code=(
        "# exercise: 11.1\n"
        "def refund(state):\n"
        '    key = state["key"]\n'
        '    if key in state["charges"] and key not in state["refunds"]:\n'
        '        state["refunds"][key] = state["charges"][key]'
    ),
)

register(q1)
