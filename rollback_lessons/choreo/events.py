"""The booking's events, who listens to each, and what each service does on each: the
whole choreography as data (h11-style), so that no rule is restated in the services.

Nobody holds the saga: the room, payment and notification services each react to the
events they subscribe to. The forward chain is room -> payment -> notification; a failure
travels back (``PaymentFailed``, ``NotificationFailed`` -> ``PaymentRefunded``), and the
guest's cancellation travels forward (``RoomCancelled``, ``PaymentCancelled``), each
service undoing its own effect.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    """Every message of the choreographed booking, by who sends it."""

    BOOKING_REQUESTED = "BookingRequested"
    """guest -> room: book a room (its data carries the card and the email address)."""
    CANCEL_REQUESTED = "CancelRequested"
    """guest -> room: cancel the booking, wherever it has got to."""
    ROOM_RESERVED = "RoomReserved"
    """room -> payment: a room is held; charge the card."""
    ROOM_CANCELLED = "RoomCancelled"
    """room -> payment: the guest cancelled and the room is released; refund if charged."""
    PAYMENT_CHARGED = "PaymentCharged"
    """payment -> notification: charged; confirm to the guest."""
    PAYMENT_FAILED = "PaymentFailed"
    """payment -> room: the card was declined; release the room (a compensating event)."""
    PAYMENT_CANCELLED = "PaymentCancelled"
    """payment -> notification: cancelled and refunded; tell the guest if confirmed."""
    NOTIFICATION_FAILED = "NotificationFailed"
    """notification -> payment: the address bounced; refund (a compensating event)."""
    PAYMENT_REFUNDED = "PaymentRefunded"
    """payment -> room: refunded after a failure downstream; release the room."""
    BOOKING_CONFIRMED = "BookingConfirmed"
    """notification -> guest: the booking is complete."""


E = EventType

SUBSCRIBERS: Mapping[EventType, tuple[str, ...]] = {
    E.BOOKING_REQUESTED: ("room",),
    E.CANCEL_REQUESTED: ("room",),
    E.ROOM_RESERVED: ("payment",),
    E.ROOM_CANCELLED: ("payment",),
    E.PAYMENT_CHARGED: ("notification",),
    E.PAYMENT_FAILED: ("room",),
    E.PAYMENT_CANCELLED: ("notification",),
    E.NOTIFICATION_FAILED: ("payment",),
    E.PAYMENT_REFUNDED: ("room",),
    E.BOOKING_CONFIRMED: ("guest",),
}
"""Which queues a published event goes to (a topic fanned out to queues, as SNS to SQS)."""

SERVICES = ("room", "payment", "notification")

ACTIONS = {"reserve": "release", "charge": "refund", "confirm": "cancel_notice"}
"""Each service's effect and the effect that compensates it (a cancellation notice is a
semantic compensation: a confirmation sent cannot be unsent)."""


@dataclass(frozen=True)
class Message:
    """One event on the wire. ``id`` is what an inbox remembers: a redelivery, or the
    relay publishing the same outbox row twice, carries the same id."""

    type: EventType
    booking: str
    data: Mapping[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_json(self) -> str:
        return json.dumps(
            {"id": self.id, "type": str(self.type), "booking": self.booking, "data": self.data},
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Message:
        raw = json.loads(text)
        return cls(EventType(raw["type"]), raw["booking"], raw["data"], raw["id"])


@dataclass(frozen=True)
class Reaction:
    """What a service does with one event: its booking's new state, the effects it
    applies (each recorded), and the events it emits. ``None`` state: unchanged."""

    state: str | None = None
    effects: tuple[str, ...] = ()
    emit: tuple[EventType, ...] = ()


NOTHING = Reaction()
Rule = Callable[[str | None, Mapping[str, Any]], Reaction]
CANCELLED = "cancelled"
"""A tombstone: the cancellation came first; the late action is refused."""
FINAL = ("released", "refunded", "declined", "failed", "noticed", CANCELLED, "refused")


def react(
    service: str,
    event: EventType,
    state: str | None,
    data: Mapping[str, Any],
    *,
    tombstones: bool = True,
) -> Reaction:
    """The whole choreography: what ``service`` does on ``event`` for a booking in
    ``state`` (``None``: never heard of it). A forward action is refused after a
    cancellation or a compensation (``FINAL`` states); it is NOT refused when already done:
    redeliveries are the inbox's job, and the naive variant, without one, does it twice.
    ``tombstones=False`` forgets a cancellation that comes before its action (the bug of
    a consumer that assumes messages arrive in order)."""
    rule = _RULES.get((service, event))
    reaction = NOTHING if rule is None else rule(state, data)
    return NOTHING if reaction.state == CANCELLED and not tombstones else reaction


def _forward(
    effect: str,
    emit: EventType,
    *,
    fails_when: str = "",
    then: str = "",
    tell: EventType | None = None,
) -> Rule:
    """Do ``effect`` and emit ``emit``; when the booking's data has ``fails_when`` set
    (``card``/``email`` = ``"bad"``), do nothing, enter ``then`` and emit ``tell``."""

    def rule(state: str | None, data: Mapping[str, Any]) -> Reaction:
        if state == CANCELLED:
            return Reaction("refused")
        if state in FINAL:
            return NOTHING
        if fails_when and data.get(fails_when) == "bad":
            return Reaction(then, emit=(tell,) if tell else ())
        return Reaction(_DONE[effect], (effect,), (emit,))

    return rule


_DONE = {"reserve": "reserved", "charge": "charged", "confirm": "confirmed"}


def _undo(
    effect: str, new_state: str, emit: tuple[EventType, ...] = (), *, tombstone: bool
) -> Rule:
    """Compensate ``effect`` if it was done; else remember the cancellation (tombstone)
    when this event may overtake the action it cancels."""

    def rule(state: str | None, data: Mapping[str, Any]) -> Reaction:
        if state == _DONE[effect]:
            return Reaction(new_state, (ACTIONS[effect],), emit)
        if state is None and tombstone:
            return Reaction(CANCELLED)
        return NOTHING

    return rule


_RULES = {
    ("room", E.BOOKING_REQUESTED): _forward("reserve", E.ROOM_RESERVED),
    ("room", E.CANCEL_REQUESTED): _undo("reserve", "released", (E.ROOM_CANCELLED,), tombstone=True),
    ("room", E.PAYMENT_FAILED): _undo("reserve", "released", tombstone=False),
    ("room", E.PAYMENT_REFUNDED): _undo("reserve", "released", tombstone=False),
    ("payment", E.ROOM_RESERVED): _forward(
        "charge", E.PAYMENT_CHARGED, fails_when="card", then="declined", tell=E.PAYMENT_FAILED
    ),
    ("payment", E.ROOM_CANCELLED): _undo(
        "charge", "refunded", (E.PAYMENT_CANCELLED,), tombstone=True
    ),
    ("payment", E.NOTIFICATION_FAILED): _undo(
        "charge", "refunded", (E.PAYMENT_REFUNDED,), tombstone=False
    ),
    ("notification", E.PAYMENT_CHARGED): _forward(
        "confirm",
        E.BOOKING_CONFIRMED,
        fails_when="email",
        then="failed",
        tell=E.NOTIFICATION_FAILED,
    ),
    ("notification", E.PAYMENT_CANCELLED): _undo("confirm", "noticed", tombstone=True),
}
