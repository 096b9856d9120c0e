"""A business failure and a technical one, side by side (lesson 10 and its exercise 10.3).

A booking holds a room, charges the card through a payment gateway, then confirms by
email (the pivot). The gateway answers from a script: some failures first, then a charge.

- A **business failure** is an answer (the card is declined, the funds are short, the
  room is sold out): asking again gets the same answer, so the saga compensates at once.
- A **technical failure** says nothing about the answer (a timeout, a reset connection, a
  503): the next call may well work, so the step is retried, with backoff, first.

The charge step's ``RetryPolicy`` says which is which: ``no_retry_on`` the business
failures (or ``retry_on`` the technical ones).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._words import counted
from ..clock import VirtualClock
from ..outcome import Outcome
from ..policies import RetryPolicy
from ..saga import Saga, State, Step


class BusinessFailure(Exception):
    """An answer, not an accident: retrying will not change it."""


class CardDeclined(BusinessFailure):
    """The bank said no."""


class InsufficientFunds(BusinessFailure):
    """Not enough money on the card."""


class RoomSoldOut(BusinessFailure):
    """Someone else took the last room."""


class ServiceUnavailable(ConnectionError):
    """The gateway answered 503: it is down for a moment."""


BUSINESS: tuple[type[Exception], ...] = (CardDeclined, InsufficientFunds, RoomSoldOut)
TECHNICAL: tuple[type[Exception], ...] = (
    TimeoutError,
    ConnectionResetError,
    ConnectionRefusedError,
    ServiceUnavailable,
)
"""The technical failures a gateway call may raise (``ConnectionError``s and a timeout)."""

LESSON_POLICY = RetryPolicy(max_attempts=3, initial_delay=0.5, no_retry_on=(BusinessFailure,))
"""Lesson 10's charge policy: technical failures retried (3 attempts, 0.5 s then 1 s),
business ones never."""


@dataclass
class Gateway:
    """A payment gateway that raises its scripted failures in turn, then charges."""

    failures: list[Exception] = field(default_factory=list)
    calls: int = 0

    def charge(self, state: State) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        state["charged"] = state["price"]


def booking_state(price: int = 120) -> dict[str, Any]:
    return {"price": price, "room": None, "charged": 0, "emails": []}


def booking_saga(gateway: Gateway, retry: RetryPolicy | None) -> Saga:
    """Hold the room, charge the card through ``gateway`` (retried by ``retry``), confirm."""

    def hold(state: State) -> None:
        state["room"] = "held"

    def release(state: State) -> None:
        state["room"] = None

    def refund(state: State) -> None:
        state["charged"] = 0

    def confirm(state: State) -> None:
        state["emails"].append("Your booking is confirmed")

    return Saga(
        [
            Step("hold_room", hold, release, label="hold a room"),
            Step("charge_card", gateway.charge, refund, retry=retry, label="charge the card"),
            Step("send_email", confirm, kind="pivot", label="confirm by email"),
        ],
        name="booking",
    )


@dataclass(frozen=True)
class Tried:
    """One booking: the gateway's failures, how many calls it got, what the saga did."""

    failures: tuple[str, ...]
    calls: int
    waited: tuple[float, ...]
    outcome: Outcome

    def row(self) -> str:
        runs = [(name, len(list(group))) for name, group in itertools.groupby(self.failures)]
        said = ", then ".join(f"{name} x{n}" if n > 1 else name for name, n in runs) or "no failure"
        undone = ", ".join(self.outcome.compensated) or "-"
        return (
            f"{said:<20} {counted(self.calls, 'call')}, waited {sum(self.waited):g} s -> "
            f"{self.outcome.status} (undone: {undone})"
        )


def try_booking(failures: Sequence[Exception], retry: RetryPolicy | None) -> Tried:
    """Book once against a gateway that first raises ``failures`` (on a VirtualClock)."""
    gateway, clock = Gateway(list(failures)), VirtualClock()
    outcome = booking_saga(gateway, retry).run(booking_state(), clock=clock)
    names = tuple(type(e).__name__ for e in failures)
    return Tried(names, gateway.calls, tuple(clock.sleeps), outcome)
