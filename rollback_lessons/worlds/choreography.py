"""Lesson 13's booking, orchestrated and choreographed, and the faults that bite a
choreography: each function runs something real (``rollback_lessons.choreo``) and returns
a table to show."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, MutableMapping, Sequence
from typing import Any

from ..choreo import (
    IN_ORDER,
    NAIVE,
    SAFE,
    Booking,
    Choreography,
    EventType,
    MemoryQueue,
    Variant,
    book,
    run_crashing,
    violations,
)
from ..choreo.run import COMPENSATION, Handled
from ..choreo.trial import crash_trial
from ..outcome import Outcome, Table
from ..saga import Saga, Step

BOUNCES = Booking("b3", email="bad")
"""The booking whose confirmation bounces: the charge and the room must be undone."""
COMPLETES = Booking("b1")
"""A booking that goes through."""


def _set(key: str, value: Any) -> Callable[[MutableMapping[str, Any]], None]:
    def change(state: MutableMapping[str, Any]) -> None:
        state[key] = value

    return change


def orchestrated() -> Outcome:
    """The same booking as a ``Saga`` (a conductor with an undo log): the confirmation
    fails."""
    saga = Saga(
        [
            Step("reserve", _set("room", "held"), _set("room", "free")),
            Step("charge", _set("card", "charged"), _set("card", "refunded")),
            Step("confirm", _set("email", "sent")),
        ],
        name="booking",
    )
    return saga.run({"room": "free", "card": "", "email": ""}, inject={"confirm": "fail"})


def _did(handled: Handled) -> str:
    reaction = handled.reaction
    if reaction is None:
        return "nothing: its inbox had this message"
    what = ", ".join(reaction.effects) or "no effect"
    return f"{what} ({reaction.state})" if reaction.state else what


def trace(log: Sequence[Handled], service: str = "") -> Table:
    """What each service got, did and sent, in order (one service's only, if named)."""
    rows = [
        (str(i), h.service, str(h.message.type), _did(h), _sent(h))
        for i, h in enumerate(log, 1)
        if not service or h.service == service
    ]
    return Table(("#", "service", "got", "did", "sent"), tuple(rows))


def _sent(handled: Handled) -> str:
    if handled.reaction is None:
        return "-"
    return ", ".join(str(t) for t in handled.reaction.emit) or "-"


def side_by_side() -> Table:
    """Orchestration against choreography on the booking whose confirmation bounces:
    who knows the saga, where its undo log lives, what was undone, in which order."""
    outcome = orchestrated()
    choreo = book(MemoryQueue(), [BOUNCES])
    undone = [COMPENSATION[e] for h in choreo.log if h.reaction for e in h.reaction.effects
              if e in COMPENSATION]  # fmt: skip
    records = {name: len(s.effects()) for name, s in choreo.services.items()}
    return Table(
        ("", "orchestrated (Saga.run)", "choreographed (three services)"),
        (
            ("who knows the whole saga", "the conductor", "nobody: each service its events"),
            (
                "where the undo log lives",
                "the conductor's list of undos",
                "each service's own records and outbox",
            ),
            ("undone, in order", ", ".join(outcome.compensated), ", ".join(undone)),
            (
                "how you know how it ended",
                f"its Outcome: {outcome.status}",
                f"read all three databases: {_verdict(choreo, [BOUNCES])}",
            ),
            ("messages", "none (calls)", f"{len(choreo.log)} handled"),
            ("records", "1 undo log", ", ".join(f"{n}: {c}" for n, c in records.items())),
        ),
    )


def _verdict(choreo: Choreography, bookings: Sequence[Booking]) -> str:
    broken = violations(choreo.effects(), bookings)
    return "; ".join(f"{b}: {', '.join(v)}" for b, v in broken.items()) or "nothing wrong"


DECLINED = Booking("b2", card="bad")


def dual_write() -> Table:
    """The card is declined and committed; the process dies before ``PaymentFailed`` is
    published. Naive, then with the outbox."""
    rows = []
    for variant in (NAIVE, SAFE):
        choreo = run_crashing(
            MemoryQueue(),
            [DECLINED],
            variant,
            "committed",
            lambda c: c.services["payment"].state("b2") == "declined",
        )
        rows.append(
            (
                str(variant),
                choreo.crashed,
                str(choreo.services["room"].state("b2")),
                _verdict(choreo, [DECLINED]),
            )
        )
    return Table(("services", "process", "room", "checked"), tuple(rows))


def relay_crash(booking: Booking = COMPLETES) -> Choreography:
    """The relay publishes ``RoomReserved`` and dies before marking it sent: after the
    restart it publishes it again."""
    return run_crashing(
        MemoryQueue(),
        [booking],
        SAFE,
        "relayed",
        lambda c: c.queue.depth("payment") == 1,
    )


CANCELLED = Booking("b4", cancel=True)


def overtaken() -> Table:
    """The guest's ``BookingRequested`` is late: the cancellation reaches the room first."""
    rows = []
    for variant in (SAFE, IN_ORDER):
        queue = MemoryQueue()
        queue.hold(lambda m: m.type == EventType.BOOKING_REQUESTED)
        choreo = Choreography(queue, variant)
        choreo.ask([CANCELLED])
        choreo.run()  # the held request goes through once nothing else moves
        got = " then ".join(str(h.message.type) for h in choreo.log if h.service == "room")
        effects = [e for records in choreo.effects().values() for _, e in records]
        rows.append(
            (
                _name(variant),
                got,
                ", ".join(effects) or "none",
                _verdict(choreo, [CANCELLED]),
            )
        )
    return Table(("room service", "room got", "effects", "checked"), tuple(rows))


def both_ways() -> bytes:
    """The bounced booking orchestrated (the conductor's run) and choreographed (its
    messages, the relay dying once after publishing ``RoomReserved``), side by side."""
    from ..lab.sequence import side_by_side_png

    return side_by_side_png(orchestrated(), relay_crash(BOUNCES).log)


def killed(seed: int = 0) -> Table:
    """One crash trial per variant (``choreo.trial``): six bookings in a real process,
    SIGKILLed, started again, the records checked."""
    rows = []
    for variant in ("naive", "safe"):
        with tempfile.TemporaryDirectory(prefix="choreo-trial-") as folder:
            trial = crash_trial(folder, variant, seed)
        checked = "; ".join(f"{b}: {', '.join(v)}" for b, v in trial.broken.items())
        rows.append((str(trial.variant), ", ".join(trial.kills), checked or "nothing wrong"))
    return Table(("services", "killed", "checked (6 bookings)"), tuple(rows))


def _name(variant: Variant) -> str:
    return "remembers the cancellation" if variant.tombstones else "assumes order"
