"""The booking world of exercises 04.2 and 06.2: a refund among other bookings' charges.

One world and one generator for both (each lesson builds its own state from a world), so
their feedback names a booking the same way. And the rule 04.2 and 11.1 both hold each call
of a learner's refund to, told in the same words (``refund_changes_only_refunds``)."""

from __future__ import annotations

import copy
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import Incorrect, generator


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """Each field that differs, as ``name old → new`` ("refunds {} → {'booking-1': 0}"),
    one added as ``added name = new``, one removed as ``removed name (it was old)`` (never
    a made-up old value: learn83 F2)."""
    return "; ".join(_changed(before, after) + _added(before, after)) or "nothing"


def changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """What a call did to the state, said after its subject ("your refund also ..."):
    "changed price 120 → 0", "added refunded = True", or both joined by "and"."""
    changed = _changed(before, after)
    parts = (["changed " + "; ".join(changed)] if changed else []) + _added(before, after)
    return " and ".join(parts) or "changed nothing"


def _changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    return [
        f"{k} {before[k]!r} → {after[k]!r}" for k in before if k in after and before[k] != after[k]
    ]


def _added(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    added = [f"added {k} = {after[k]!r}" for k in after if k not in before]
    return added + [f"removed {k} (it was {before[k]!r})" for k in before if k not in after]


def watched(
    refund: Callable[[Any], Any], calls: list[tuple[dict[str, Any], dict[str, Any]]]
) -> Callable[[Any], None]:
    """The learner's refund, each call's state before and after noted in ``calls`` (even a
    call that raises): what ``refund_amounts`` and ``refund_changes_only_refunds`` judge, in
    04.2 and 11.1 alike."""

    def call(state: Any) -> None:
        before = copy.deepcopy(dict(state))
        try:
            refund(state)
        finally:
            calls.append((before, copy.deepcopy(dict(state))))

    return call


def refund_amounts(
    world: object, before: Mapping[str, Any], after: Mapping[str, Any], what: str
) -> None:
    """One call of a learner's refund (as ``refund_changes_only_refunds``): each refund it
    wrote is a number, as the charge is (learn83 F1: a str '120' was told "at 120; it was
    charged 120" by 04.2, and broke 11.1's own arithmetic)."""
    was, now = before.get("refunds"), after.get("refunds")
    if not isinstance(now, Mapping):
        return  # (the refunds replaced: the checks that read them say so)
    for key, amount in now.items():
        if isinstance(was, Mapping) and key in was and was[key] == amount:
            continue  # (not written by this call)
        if isinstance(amount, bool) or not isinstance(amount, numbers.Number):
            raise Incorrect(
                f"{world}, {what} recorded the refund under {key!r} as {amount!r}, "
                f"{'an' if type(amount).__name__[0] in 'aeiou' else 'a'} "
                f"{type(amount).__name__}, not a number: record the amount that was charged "
                "under that key, as the number it is (state['charges'][key])"
            )


def refund_changes_only_refunds(
    world: object, before: Mapping[str, Any], after: Mapping[str, Any], what: str
) -> None:
    """One call of a learner's refund, from ``before`` to ``after`` (``what``: "your
    refund"): it may change ``state["refunds"]`` and nothing else. The price, the key, the
    room, the emails are not the charge's to undo (learn82 F4: 04.2 let a refund that also
    freed the room pass, which 11.1 refused)."""
    rest = {k: v for k, v in before.items() if k != "refunds"}
    changed = {k: v for k, v in after.items() if k != "refunds"}
    if rest != changed:
        raise Incorrect(
            f"{world}, {what} also {changes(rest, changed)}: a refund records a "
            "refund in state['refunds'] and changes nothing else (nothing else there is the "
            "charge's to undo)"
        )


BOOKING_FAULTS = {
    "fail": "the charge fails before charging anything",
    "fail_after_effect": "the charge times out after charging",
    "send_email": "the email fails after the charge",
}
"""What goes wrong in a booking world, and how its feedback says it."""


@dataclass(frozen=True)
class BookingWorld:
    """One booking a learner's refund must serve: its idempotency key and price, other
    bookings charged (and perhaps refunded) before it, others charged while it runs (often
    of the same amount: a refund finds its own charge by key, not by amount), and what goes
    wrong (a key of ``BOOKING_FAULTS``). Each lesson builds its own state from it."""

    key: str
    price: int
    before: tuple[tuple[str, int, bool], ...]  # other bookings: key, amount, refunded?
    after: tuple[tuple[str, int], ...]  # other bookings charged while this one runs
    fault: str

    def __str__(self) -> str:
        text = f"for a booking under key {self.key!r} priced {self.price}"
        if self.before:
            text += ", with " + " and ".join(
                f"{key!r} charged {amount}" + (" and refunded" if refunded else "")
                for key, amount, refunded in self.before
            )
            text += " before it"
        if self.after:
            text += (" and " if self.before else ", with ") + " and ".join(
                f"{key!r} charged {amount}" for key, amount in self.after
            )
            text += " while it ran"
        return f"{text}, when {BOOKING_FAULTS[self.fault]}"

    def size(self, key: str, price: int) -> tuple[int, ...]:
        """For ``forall``: fewer other bookings first, then the lesson's own key and price."""
        others = len(self.before) + len(self.after)
        fault = list(BOOKING_FAULTS).index(self.fault)
        return (others, self.key != key, self.price != price, fault)


def booking_worlds(seed: str, key: str, price: int, count: int = 150) -> list[BookingWorld]:
    """The lesson's booking (``key``, ``price``) under each fault, then ``count`` drawn ones:
    other keys and prices, up to four other bookings charged before it or while it runs."""
    rng = generator(seed)
    found = [BookingWorld(key, price, (), (), fault) for fault in BOOKING_FAULTS]
    for _ in range(count):
        mine = rng.choice((key, f"booking-{rng.randint(1, 60)}"))
        cost = rng.choice((price, rng.randint(5, 900)))
        pool = [f"booking-{n}" for n in range(1, 61) if f"booking-{n}" != mine]
        others = rng.sample(pool, rng.randint(0, 4))
        split = rng.randint(0, len(others))

        def amount(cost: int = cost) -> int:  # often the same price: by key, not amount
            return rng.choice((cost, rng.randint(5, 900)))

        before = tuple((k, amount(), rng.random() < 0.3) for k in others[:split])
        after = tuple((k, amount()) for k in others[split:])
        found.append(BookingWorld(mine, cost, before, after, rng.choice(list(BOOKING_FAULTS))))
    return found
