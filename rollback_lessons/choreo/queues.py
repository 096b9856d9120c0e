"""The queue between the services: an interface and its in-memory and SQLite forms (SQS
on moto is in ``sqs.py``).

Every implementation delivers *at least once*, as SQS does: a message received is only
gone once deleted; a consumer that dies first gets it again. Consumers must therefore
expect duplicates, which is what the inbox is for.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..durable.wal import connect_wal
from .events import Message

_MESSAGES = """CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, body TEXT NOT NULL)"""


@dataclass(frozen=True)
class Delivery:
    """A message handed to a consumer, and the receipt that deletes it (SQS's
    ReceiptHandle)."""

    message: Message
    receipt: str


class Queue(Protocol):
    """Named queues (one per subscriber), at-least-once."""

    def send(self, queue: str, message: Message) -> None: ...

    def receive(self, queue: str) -> Delivery | None:
        """The next visible message, hidden from other receives until deleted or
        ``restart`` (a visibility timeout that expired); ``None`` when none is visible."""

    def delete(self, queue: str, delivery: Delivery) -> None: ...

    def restart(self) -> None:
        """A consumer died: what it received and did not delete becomes visible again."""

    def depth(self, queue: str) -> int:
        """Messages not yet deleted (visible or in flight)."""

    def release(self) -> bool:
        """Let through what a fault held back; ``True`` if there was any."""


@dataclass
class _Entry:
    message: Message
    receipt: str
    in_flight: bool = False
    held: bool = False


@dataclass
class MemoryQueue:
    """Fast and deterministic (first in, first out), with faults on command: the ``n``-th
    message sent (from 1) can be ``duplicate``d (delivered twice) or ``delay``ed (held
    until nothing else is deliverable), and ``hold``/``release`` hold back any message by a
    test of one's own (reordering)."""

    duplicate: frozenset[int] = frozenset()
    delay: frozenset[int] = frozenset()
    sent: int = 0
    _queues: dict[str, list[_Entry]] = field(default_factory=dict)
    _receipts: itertools.count[int] = field(default_factory=itertools.count)
    _hold: Callable[[Message], bool] | None = None

    def send(self, queue: str, message: Message) -> None:
        self.sent += 1
        copies = 2 if self.sent in self.duplicate else 1
        for _ in range(copies):
            held = self.sent in self.delay or (self._hold is not None and self._hold(message))
            entry = _Entry(message, f"r{next(self._receipts)}", held=held)
            self._queues.setdefault(queue, []).append(entry)

    def receive(self, queue: str) -> Delivery | None:
        for entry in self._queues.get(queue, []):
            if not entry.in_flight and not entry.held:
                entry.in_flight = True
                return Delivery(entry.message, entry.receipt)
        return None

    def delete(self, queue: str, delivery: Delivery) -> None:
        entries = self._queues.get(queue, [])
        entries[:] = [e for e in entries if e.receipt != delivery.receipt]

    def restart(self) -> None:
        for entry in self._all():
            entry.in_flight = False

    def depth(self, queue: str) -> int:
        return len(self._queues.get(queue, []))

    def hold(self, test: Callable[[Message], bool]) -> None:
        """Hold back every message sent from now on for which ``test`` is true."""
        self._hold = test

    def release(self) -> bool:
        """Let every held message through; ``True`` if there was one."""
        held = [e for e in self._all() if e.held]
        for entry in held:
            entry.held = False
        self._hold = None
        return bool(held)

    def waiting(self) -> list[tuple[str, Message]]:
        """Every message not yet deleted, by queue (for a lesson to show)."""
        return [(q, e.message) for q, entries in self._queues.items() for e in entries]

    def _all(self) -> list[_Entry]:
        return [e for entries in self._queues.values() for e in entries]


class SqliteQueue:
    """A durable queue in one SQLite file, for processes that get killed: a message sent
    is committed; one received but not deleted when the process dies is there for the
    next. With ``rng``, each receive picks any waiting message of the queue (SQS standard
    queues promise no order); without, the oldest."""

    def __init__(self, path: str | Path, rng: random.Random | None = None) -> None:
        # A SIGKILL loses nothing the OS already has; FULL is for power loss, not tested.
        self.con = connect_wal(path, _MESSAGES, synchronous="NORMAL")
        self.rng = rng
        self._in_flight: set[int] = set()

    def send(self, queue: str, message: Message) -> None:
        self.con.execute(
            "INSERT INTO messages (queue, body) VALUES (?, ?)", (queue, message.to_json())
        )

    def receive(self, queue: str) -> Delivery | None:
        rows = [
            row
            for row in self.con.execute(
                "SELECT seq, body FROM messages WHERE queue = ? ORDER BY seq", (queue,)
            )
            if row[0] not in self._in_flight
        ]
        if not rows:
            return None
        seq, body = self.rng.choice(rows) if self.rng else rows[0]
        self._in_flight.add(seq)
        return Delivery(Message.from_json(body), str(seq))

    def delete(self, queue: str, delivery: Delivery) -> None:
        self.con.execute("DELETE FROM messages WHERE seq = ?", (int(delivery.receipt),))
        self._in_flight.discard(int(delivery.receipt))

    def restart(self) -> None:
        self._in_flight.clear()

    def depth(self, queue: str) -> int:
        return int(
            self.con.execute("SELECT count(*) FROM messages WHERE queue = ?", (queue,)).fetchone()[
                0
            ]
        )

    def release(self) -> bool:
        return False

    def close(self) -> None:
        self.con.close()
