"""A service with its own SQLite database, and the relay that empties its outbox.

The point is the local transaction: the service's state change, the record of its effect,
the message id in its **inbox** and its outgoing events in its **outbox** are committed
together, or not at all. Nothing is published inside it; the **relay** publishes what is
committed and marks it sent afterwards, so a crash anywhere loses no event (it may publish
one twice, which the receiver's inbox absorbs).

``outbox=False`` is the naive service most of us write first: commit, then publish
directly, and no inbox. Between the commit and the publish is the *dual write*: a crash
there loses the event; and a redelivered message is acted on twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from ..durable.wal import connect_wal
from .events import SUBSCRIBERS, Message, Reaction, react
from .queues import Queue

Checkpoint = Callable[[str], None]
"""Called at each moment a crash can strike (``"committed"``, ``"relayed"``...): the
crash trials kill the process there, the explorer raises ``Crash``."""


def no_checkpoint(moment: str) -> None:
    """No crash anywhere (a run in production)."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS bookings (booking TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS effects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, booking TEXT NOT NULL, effect TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS inbox (message_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL, sent INTEGER NOT NULL DEFAULT 0)
"""


def connect(path: str | Path) -> sqlite3.Connection:
    """A service's database (``":memory:"`` for a run that needs no file)."""
    return connect_wal(path, _SCHEMA, synchronous="NORMAL")  # (SIGKILL-safe, not power loss)


class Service:
    """One of room, payment, notification: reacts to an event in one local transaction
    (``events.react`` says how)."""

    def __init__(
        self,
        name: str,
        con: sqlite3.Connection,
        queue: Queue,
        *,
        outbox: bool = True,
        tombstones: bool = True,
        checkpoint: Checkpoint = no_checkpoint,
    ) -> None:
        self.name, self.con, self.queue = name, con, queue
        self.outbox, self.tombstones, self.checkpoint = outbox, tombstones, checkpoint

    def handle(self, message: Message) -> Reaction | None:
        """React to ``message``; ``None`` if the inbox says it was handled already."""
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        try:
            if self.outbox:
                seen = con.execute("INSERT OR IGNORE INTO inbox VALUES (?)", (message.id,)).rowcount
                if not seen:
                    con.execute("ROLLBACK")
                    return None
            row = con.execute(
                "SELECT state FROM bookings WHERE booking = ?", (message.booking,)
            ).fetchone()
            state = row[0] if row else None
            reaction = react(
                self.name, message.type, state, message.data, tombstones=self.tombstones
            )
            if reaction.state is not None:
                con.execute(
                    "INSERT OR REPLACE INTO bookings VALUES (?, ?)",
                    (message.booking, reaction.state),
                )
            for effect in reaction.effects:
                con.execute(
                    "INSERT INTO effects (booking, effect) VALUES (?, ?)", (message.booking, effect)
                )
            out = [Message(t, message.booking, message.data) for t in reaction.emit]
            if self.outbox:
                for event in out:
                    con.execute(
                        "INSERT INTO outbox (message_id, body) VALUES (?, ?)",
                        (event.id, event.to_json()),
                    )
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        self.checkpoint("committed")
        if not self.outbox:  # the dual write: the commit above, the publish here
            for event in out:
                publish(self.queue, event)
        return reaction

    def state(self, booking: str) -> str | None:
        row = self.con.execute(
            "SELECT state FROM bookings WHERE booking = ?", (booking,)
        ).fetchone()
        return None if row is None else str(row[0])

    def effects(self) -> list[tuple[str, str]]:
        """(booking, effect) in the order applied: the service's own record."""
        return [
            (b, e) for b, e in self.con.execute("SELECT booking, effect FROM effects ORDER BY seq")
        ]

    def unsent(self) -> list[Message]:
        rows = self.con.execute("SELECT body FROM outbox WHERE sent = 0 ORDER BY seq")
        return [Message.from_json(body) for (body,) in rows]


def publish(queue: Queue, message: Message) -> None:
    """Send ``message`` to every queue subscribed to its type."""
    for subscriber in SUBSCRIBERS[message.type]:
        queue.send(subscriber, message)


class Relay:
    """Publishes a service's committed outbox rows, oldest first, and marks each sent
    after publishing it: a crash in between publishes it again (at least once)."""

    def __init__(self, queue: Queue, checkpoint: Checkpoint = no_checkpoint) -> None:
        self.queue, self.checkpoint = queue, checkpoint

    def pump(self, service: Service) -> int:
        """Publish every unsent row of ``service``'s outbox; how many."""
        rows = service.con.execute(
            "SELECT seq, body FROM outbox WHERE sent = 0 ORDER BY seq"
        ).fetchall()
        for seq, body in rows:
            publish(self.queue, Message.from_json(body))
            self.checkpoint("relayed")
            service.con.execute("UPDATE outbox SET sent = 1 WHERE seq = ?", (seq,))
        return len(rows)
