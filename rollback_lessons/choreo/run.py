"""The choreographed booking put together: three services, a relay, a queue, the guests'
requests, and the check of the services' own records afterwards.

There is no undo log anywhere: what the booking has done is the sum of the services'
records, and whether it is consistent can only be checked by reading all of them.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .events import ACTIONS, SERVICES, E, Message, Reaction
from .queues import Queue
from .services import Checkpoint, Relay, Service, connect, no_checkpoint, publish


class Crash(Exception):
    """The process dies here (the explorer's stand-in for SIGKILL)."""


@dataclass(frozen=True)
class Booking:
    """A guest's booking: ``card``/``email`` ``"bad"`` make payment/notification fail;
    ``cancel``: the guest cancels it right after asking."""

    id: str
    card: str = "ok"
    email: str = "ok"
    cancel: bool = False

    def __post_init__(self) -> None:
        """A booking the services and the checker read alike (attack202 F5: a card
        "declined" was charged by the services, whose rule fails only "bad", and judged
        not to complete by the checker: every run of the right services was broken)."""
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"a booking's id is a non-empty str, got {self.id!r}")
        for name in ("card", "email"):
            if getattr(self, name) not in ("ok", "bad"):
                raise ValueError(f"booking {self.id!r}: {name} is 'ok' or 'bad', got "
                                 f"{getattr(self, name)!r}")  # fmt: skip

    @property
    def should_complete(self) -> bool:
        return self.card == "ok" and self.email == "ok" and not self.cancel

    def requests(self) -> list[Message]:
        """The guest's messages, each id the booking's own (its idempotency key): a guest
        who sends a request again (a retry after a timeout, a double click, a restart) sends
        the same message, which an inbox absorbs (attack97 F1: a new id each time, reserved,
        charged and confirmed twice)."""
        data = {"card": self.card, "email": self.email}
        kinds = [E.BOOKING_REQUESTED] + ([E.CANCEL_REQUESTED] if self.cancel else [])
        return [Message(kind, self.id, data, f"{self.id}/{kind}") for kind in kinds]


def distinct(bookings: Iterable[Booking]) -> tuple[Booking, ...]:
    """``bookings``, one or more, each id once (two with one id are one message to the
    services, an inbox absorbs the second, and the checker judged both: F5), as a tuple
    taken once (attack225 F1: a generator was used up here, and nothing was sent or
    judged: "0 broken"); anything but Bookings is a TypeError naming them (F2)."""
    given = _each(bookings, Booking, "bookings", "Booking('b1')")
    ids = [b.id for b in given]
    if not ids:
        raise ValueError("bookings: one or more are needed")
    if twice := sorted({i for i in ids if ids.count(i) > 1}):
        raise ValueError(f"bookings: each id once, got {', '.join(map(repr, twice))} twice")
    return given


def variants_of(variants: Iterable[Variant]) -> tuple[Variant, ...]:
    """``variants``, one or more, as a tuple taken once (attack225 F1, F2)."""
    given = _each(variants, Variant, "variants", "SAFE, NAIVE or IN_ORDER")
    if not given:
        raise ValueError("variants: one or more are needed")
    return given


def _each(items: object, kind: type, name: str, such: str) -> tuple[Any, ...]:
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
        raise TypeError(f"{name}: a list of {kind.__name__} objects ({such}), got {items!r}")
    given = tuple(items)
    for item in given:
        if not isinstance(item, kind):
            raise TypeError(
                f"{name}: each a {kind.__name__} ({such}), got {item!r}, "
                f"{'an' if type(item).__name__[0] in 'aeiouAEIOU' else 'a'} "
                f"{type(item).__name__}"
            )
    return given


EVERY_PATH = (
    Booking("b1"),
    Booking("b2", card="bad"),
    Booking("b3", email="bad"),
    Booking("b4", cancel=True),
)
"""One booking down each path: completed, declined, bounced, cancelled by the guest."""


def plan(seed: int, n: int) -> tuple[Booking, ...]:
    """``n`` bookings drawn from ``seed`` (the crash trials' parent and child agree)."""
    rng = random.Random(seed)
    return tuple(
        Booking(
            f"b{i}",
            card="bad" if rng.random() < 0.2 else "ok",
            email="bad" if rng.random() < 0.2 else "ok",
            cancel=rng.random() < 0.3,
        )
        for i in range(1, n + 1)
    )


@dataclass(frozen=True)
class Handled:
    """One message a service handled, and its reaction (``None``: the inbox had it)."""

    service: str
    message: Message
    reaction: Reaction | None
    outbox: bool = True
    """Its events went to the service's outbox (for the relay), not straight to the queue."""


@dataclass(frozen=True)
class Variant:
    """How the services are written: with an outbox and an inbox (or the naive commit,
    then publish, no inbox), and remembering a cancellation that overtakes its action."""

    outbox: bool = True
    tombstones: bool = True

    def __str__(self) -> str:
        name = "outbox + inbox" if self.outbox else "naive"
        return name if self.tombstones else f"{name}, no tombstones"


SAFE, NAIVE, IN_ORDER = Variant(), Variant(outbox=False), Variant(tombstones=False)
"""The services as they should be; the dual write; a consumer that assumes order."""


class Choreography:
    """Room, payment and notification on ``queue``, each with its own database (files in
    ``folder``, or in memory), written as ``variant`` says."""

    def __init__(
        self,
        queue: Queue,
        variant: Variant = SAFE,
        *,
        folder: str | Path | None = None,
        checkpoint: Checkpoint = no_checkpoint,
    ) -> None:
        self.queue, self.variant, self.checkpoint = queue, variant, checkpoint
        self.services = {
            name: Service(
                name,
                connect(Path(folder) / f"{name}.db" if folder else ":memory:"),
                queue,
                outbox=variant.outbox,
                tombstones=variant.tombstones,
                checkpoint=checkpoint,
            )
            for name in SERVICES
        }
        self.relay = Relay(queue, checkpoint)
        self.crashed = ""
        self.log: list[Handled] = []
        """Every message handled, in order (this process's view: a lesson's trace)."""

    def ask(self, bookings: Iterable[Booking]) -> None:
        """The guests' requests go on the queue (the guest is outside: no outbox)."""
        for booking in bookings:
            for message in booking.requests():
                publish(self.queue, message)

    def step(self) -> bool:
        """One round: the relay empties every outbox, then each service takes one
        message. ``False`` when nothing happened."""
        moved = sum(self.relay.pump(s) for s in self.services.values()) > 0
        for name, service in self.services.items():
            delivery = self.queue.receive(name)
            if delivery is None:
                continue
            self.checkpoint("received")
            reaction = service.handle(delivery.message)
            self.log.append(Handled(name, delivery.message, reaction, self.variant.outbox))
            self.checkpoint("handled")
            self.queue.delete(name, delivery)
            moved = True
        return moved

    def run(self, max_rounds: int = 100_000) -> None:
        """Until nothing moves and nothing is held back."""
        for _ in range(max_rounds):
            if not self.step() and not self.queue.release():
                return
        raise RuntimeError(f"still moving after {max_rounds} rounds")

    def restart(self) -> None:
        """After a crash: an open transaction is gone, received messages come back."""
        for service in self.services.values():
            if service.con.in_transaction:
                service.con.execute("ROLLBACK")
        self.queue.restart()

    def effects(self) -> dict[str, list[tuple[str, str]]]:
        return {name: s.effects() for name, s in self.services.items()}

    def close(self) -> None:
        for service in self.services.values():
            service.con.close()


def run_crashing(
    queue: Queue,
    bookings: Sequence[Booking],
    variant: Variant,
    moment: str,
    when: Callable[[Choreography], bool],
) -> Choreography:
    """Run ``bookings``; the process dies at the first ``moment`` at which ``when`` holds,
    starts again on the same databases and queue, and runs to the end. Its ``crashed``
    says where it died (empty if it never did)."""
    choreo: Choreography

    def checkpoint(name: str) -> None:
        if name == moment and not choreo.crashed and when(choreo):
            choreo.crashed = f"crashed at {name}"
            raise Crash(choreo.crashed)

    choreo = Choreography(queue, variant, checkpoint=checkpoint)
    choreo.ask(bookings)
    try:
        choreo.run()
    except Crash:
        choreo.restart()
        choreo.run()
    return choreo


COMPENSATION = {undo: action for action, undo in ACTIONS.items()}


def violations(
    effects: Mapping[str, Sequence[tuple[str, str]]], bookings: Iterable[Booking]
) -> dict[str, list[str]]:
    """What is wrong, booking by booking, on the services' own records: every effect
    either completed (reserve, charge, confirm, nothing undone) or compensated, none
    twice, no compensation of an effect that never was, and the end the guest asked for.
    """
    done: dict[str, Counter[str]] = {}
    early: dict[str, list[str]] = {}  # a compensation a service applied before its effect
    for records in effects.values():  # (each service's, in the order applied: attack202 F4)
        for booking_id, effect in records:
            seen = done.setdefault(booking_id, Counter())
            action = COMPENSATION.get(effect)
            if action is not None and not seen[action] and (booking_id, action) in records:
                early.setdefault(booking_id, []).append(f"{effect} before {action}")
            seen[effect] += 1
    found: dict[str, list[str]] = {}
    for booking in bookings:
        seen = done.get(booking.id, Counter())
        wrong = [f"{e} x{n}" for e, n in sorted(seen.items()) if n > 1] + early.get(booking.id, [])
        wrong += [f"{u} without {a}" for u, a in COMPENSATION.items() if seen[u] and not seen[a]]
        completed = all(seen[a] for a in ACTIONS) and not any(seen[u] for u in COMPENSATION)
        left = [a for a, u in ACTIONS.items() if seen[a] and not seen[u]]
        if not completed and left:
            wrong.append("stuck: " + ", ".join(left) + " neither completed nor compensated")
        elif completed and not booking.should_complete:
            wrong.append("completed, but it should have been compensated")
        elif not completed and booking.should_complete:
            wrong.append("not completed, although nothing failed")
        if wrong:
            found[booking.id] = wrong
    return found


def book(
    queue: Queue, bookings: Iterable[Booking] = EVERY_PATH, variant: Variant = SAFE
) -> Choreography:
    """Run ``bookings`` to the end in memory (for a lesson): the choreography, stopped."""
    bookings = distinct(bookings)
    (variant,) = variants_of((variant,))
    choreo = Choreography(queue, variant)
    choreo.ask(bookings)
    choreo.run()
    return choreo
