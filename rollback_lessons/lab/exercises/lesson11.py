"""Lesson 11 exercise: fix the flaw the explorer found.

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
from ...worlds import examples
from . import Exercise, Incorrect, attempted, forall, function, generator, raised, register

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
        before = tuple(
            (k, rng.randint(5, 900), rng.random() < 0.3)
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


def _money(state: Any) -> str:
    return f"charges {dict(state['charges'])}, refunds {dict(state['refunds'])}"


def _check_refund(refund: Any) -> str:
    fn = function(refund, "refund(state)")
    attempted(fn, examples.booking_state())
    erased: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def watched(state: Any) -> None:
        """The learner's refund; a change to the charges themselves is noted."""
        charges = dict(state["charges"])
        try:
            fn(state)
        finally:
            if dict(state["charges"]) != charges:
                erased.append((charges, dict(state["charges"])))

    saga = examples.booking_saga(refund=watched)
    cases = [  # the lesson's booking, every combination of up to two faults, every policy
        World(examples.KEY, examples.PRICE, (), faults, policy)
        for faults in combinations(saga, 2)
        for policy in POLICIES
    ]

    def holds(world: World) -> None:
        erased.clear()
        run = check(saga, world.state, world.faults, world.policy, examples.booking_restored)
        outcome = run.outcome
        if erased:
            before, after = erased[0]
            raise Incorrect(
                f"{world}, your refund changed the charges from {before} to {after}: the "
                "charges are the card's history, and a refund is a new record beside its "
                "charge, in state['refunds']"
            )
        for dead in outcome.dead_letters:
            if dead.step == "charge_card" and not isinstance(dead.error, InjectedFault):
                raise Incorrect(f"{world}, {raised(dead.error, 'refund')}")
        if run.violations:
            kind = run.violations[0].split(":")[0]
            raise Incorrect(
                f"{world}: {kind} ({INVARIANTS.get(kind, kind)}). Before the run: "
                f"{_money(outcome.state_before)}; after it: {_money(outcome.state_after)}"
            )
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
                f"changed {_money(after)} to {_money(again)}: refund once"
            )

    tried = forall(cases + worlds(saga), holds, size=size)
    return (
        f"the explorer finds no broken invariant in {tried} runs, for new and returning "
        "customers, and a second call changes nothing."
    )


q1 = Exercise(
    id="11.1",
    title="Fix the flaw the explorer found",
    checker=_check_refund,
    answer_names=("refund",),
    hints=(
        "The refund is logged before the charge, so it runs even when the charge never "
        "happened. What must it look at first?",
        "The booking's charge is recorded in state['charges'] under the booking's own key, "
        "state['key']; a returning customer has other charges there too.",
        "Refund only what was charged under this booking's key, and only if no refund "
        "under that key exists yet.",
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
