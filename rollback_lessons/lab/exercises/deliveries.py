"""Exercise 13.1's deliveries: what the queue hands the payment service, in which order,
with crashes inside the handler and after it, and other bookings' charges already in its
database (``Db``, ``Ledger``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...choreo.events import EventType, Message
from . import generator
from .ledger import Db, Ledger


@dataclass(frozen=True)
class Delivery:
    """The queue hands ``message`` (its index in the world) to the service; ``crash``:
    ``"inside"`` (the handler's transaction rolls back) or ``"after"`` (it committed, the
    message is not yet deleted): either way the message is delivered again later."""

    message: int
    crash: str = ""


@dataclass(frozen=True)
class World:
    messages: tuple[Message, ...]
    deliveries: tuple[Delivery, ...]
    before: tuple[tuple[str, int], ...]  # other bookings' charges already in db

    def label(self, i: int) -> str:
        m = self.messages[i]
        return f"{m.id} ({m.booking}, {m.data['amount']})"

    def story(self) -> str:
        seen: set[int] = set()
        parts = []
        for d in self.deliveries:
            again = " again" if d.message in seen else ""
            seen.add(d.message)
            crash = {
                "inside": ", the process dies at your handler's write to db['charges'], if "
                "it writes (its writes to db rolled back)",
                "after": ", a crash after your handler committed (the queue delivers it again)",
            }.get(d.crash, "")
            parts.append(f"{self.label(d.message)}{again}{crash}")
        before = f" (db['charges'] held {list(self.before)} before)" if self.before else ""
        return "; ".join(parts) + before


def make_message(rng: Any, booking: str, amount: int) -> Message:
    return Message(
        EventType.ROOM_RESERVED, booking, {"amount": amount}, id=f"msg-{rng.randrange(16**4):04x}"
    )


def worlds() -> list[World]:
    """The lesson's duplicate (one message twice), a second room at the same price (same
    content, another id), a redelivery after another message, crashes inside and after
    the handler, and drawn ones."""
    rng = generator("13.1")
    a = make_message(rng, "b1", 120)
    b = make_message(rng, "b1", 120)  # a second room of the same booking, the same price
    c = make_message(rng, "b2", 80)
    found = [
        World((a,), (Delivery(0), Delivery(0)), ()),
        World((a, b), (Delivery(0), Delivery(1)), ()),
        World((a, c), (Delivery(0), Delivery(1), Delivery(0)), ()),
        World((a,), (Delivery(0, "inside"), Delivery(0)), ()),
        World((a, c), (Delivery(0, "after"), Delivery(1), Delivery(0)), (("b0", 95),)),
    ]
    for _ in range(120):
        messages: list[Message] = []
        for _ in range(rng.randint(1, 4)):
            if messages and rng.random() < 0.35:  # same booking and amount, another id
                twin = rng.choice(messages)
                messages.append(make_message(rng, twin.booking, twin.data["amount"]))
            else:
                messages.append(
                    make_message(rng, f"b{rng.randint(1, 9)}", rng.choice((80, 95, 120, 240)))
                )
        order = list(range(len(messages))) + [
            rng.randrange(len(messages)) for _ in range(rng.randint(0, 3))
        ]
        rng.shuffle(order)
        deliveries: list[Delivery] = []
        later: list[Delivery] = []
        for i in order:
            crash = rng.choice(("", "", "", "inside", "after"))
            deliveries.append(Delivery(i, crash))
            if crash:  # the queue delivers it again, now or after the others
                (deliveries if rng.random() < 0.5 else later).append(Delivery(i))
        deliveries += later
        before = tuple(
            (f"b{rng.randint(10, 19)}", rng.choice((80, 120))) for _ in range(rng.randint(0, 2))
        )
        found.append(World(tuple(messages), tuple(deliveries), before))
    return found


def size(world: World) -> tuple[int, ...]:
    return (len(world.messages), len(world.deliveries), len(world.before))


def fresh_db(world: World) -> dict[str, Any]:
    return Db(charges=Ledger(world.before))
