"""Choreography: the booking saga with no conductor, and the transactional outbox.

A layer above the engine, like ``durable/``: the room, payment and notification services
each react to events in one local SQLite transaction that also writes their outgoing
events to an **outbox** and the message id to an **inbox**; a **relay** publishes the
outbox to a queue (in memory, a SQLite file, or SQS on moto). ``outbox=False`` is the
naive form (commit, then publish; no inbox) that loses and doubles effects under crashes.
"""

from .events import ACTIONS, SUBSCRIBERS, EventType, Message, react
from .queues import Delivery, MemoryQueue, Queue, SqliteQueue
from .run import (
    EVERY_PATH,
    IN_ORDER,
    NAIVE,
    SAFE,
    Booking,
    Choreography,
    Crash,
    Variant,
    book,
    plan,
    run_crashing,
    violations,
)
from .services import Relay, Service

__all__ = [
    "ACTIONS",
    "EVERY_PATH",
    "IN_ORDER",
    "NAIVE",
    "SAFE",
    "SUBSCRIBERS",
    "Booking",
    "Choreography",
    "Crash",
    "Delivery",
    "EventType",
    "MemoryQueue",
    "Message",
    "Queue",
    "Relay",
    "Service",
    "SqliteQueue",
    "Variant",
    "book",
    "plan",
    "react",
    "run_crashing",
    "violations",
]
