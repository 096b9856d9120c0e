"""Local stand-ins for the tools of a real pipeline, with the behaviour that matters.

A sheet whose rows are marked reverted (never deleted: people read sheets), a calendar
whose events are deleted by id, a payment API with idempotency keys for charges and
refunds, and a mailer that speaks real SMTP. Lesson 06 runs its pipeline on these.
"""

from __future__ import annotations

import itertools
import smtplib
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from ..saga import Saga, State, Step


class Sheet:
    """Rows with ids; an undo marks its row reverted, so the history stays readable."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    def append(self, **values: Any) -> str:
        row_id = f"row-{next(self._ids)}"
        self.rows.append({"id": row_id, **values, "status": "active"})
        return row_id

    def mark_reverted(self, row_id: str) -> None:
        for row in self.rows:
            if row["id"] == row_id:
                row["status"] = "reverted"
                return
        raise KeyError(f"no row {row_id!r} in the sheet")

    def active(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] == "active"]


class Calendar:
    """Events by id. Deleting an id that is gone is an error, as with real calendar APIs."""

    def __init__(self) -> None:
        self.events: dict[str, dict[str, str]] = {}
        self._ids = itertools.count(1)

    def create(self, title: str, when: str) -> str:
        event_id = f"evt-{next(self._ids)}"
        self.events[event_id] = {"title": title, "when": when}
        return event_id

    def delete(self, event_id: str) -> None:
        if event_id not in self.events:
            raise KeyError(f"no calendar event {event_id!r}")
        del self.events[event_id]

    def titles(self) -> list[str]:
        return [e["title"] for e in self.events.values()]


@dataclass
class Payments:
    """Charges and refunds keyed by an idempotency key: a retry never charges twice."""

    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    refund_calls: int = 0

    def charge(self, amount: int, idempotency_key: str) -> str:
        if idempotency_key not in self.charges:
            charge_id = f"ch-{len(self.charges) + 1}"
            self.charges[idempotency_key] = {"id": charge_id, "amount": amount, "refunded": 0}
        return self.charges[idempotency_key]["id"]

    def refund(self, idempotency_key: str) -> int:
        """Refund what was charged under the key; returns the amount refunded by this call."""
        self.refund_calls += 1
        charge = self.charges.get(idempotency_key)
        if charge is None or charge["refunded"]:
            return 0  # nothing charged, or already refunded: safe to call again
        charge["refunded"] = charge["amount"]
        return charge["amount"]

    @property
    def charged(self) -> int:
        return sum(c["amount"] for c in self.charges.values())

    @property
    def refunded(self) -> int:
        return sum(c["refunded"] for c in self.charges.values())


class Mailer:
    """Sends mail over SMTP. Once the server has it, there is no taking it back."""

    def __init__(self, host: str, port: int, sender: str = "bookings@example.test") -> None:
        self.host, self.port, self.sender = host, port, sender
        self.sent: list[str] = []

    def send(self, to: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.sender, to, subject
        message.set_content(body)
        if not self.held:
            with smtplib.SMTP(self.host, self.port, timeout=10) as smtp:
                smtp.send_message(message)
        self.sent.append(subject)

    held = False  # True: a rehearsal's (``World.rehearsal``): the mail stays here, unsent


class World(dict):
    """The services of one run, and the ids that run created (under ``"booking"``)."""

    def rehearsal(self) -> World:
        """This world with its mail held in the kernel, unsent (every other service here
        lives in memory): the panel draws the runs one change away on it while the learner
        looks, and no mail leaves for a run nobody asked for. A run the learner makes is on
        the real world; its picture is the one drawn ahead only if its events are the same
        (``timeline_run.run_key``)."""
        mailer: Mailer = self["mailer"]
        held = Mailer(mailer.host, mailer.port, mailer.sender)
        held.held = True
        return World(self, mailer=held)

    def snapshot(self) -> dict[str, Any]:
        payments: Payments = self["payments"]
        return {
            "sheet rows": [f"{r['id']}:{r['status']}" for r in self["sheet"].rows],
            "calendar": self["calendar"].titles(),
            "charged": payments.charged,
            "refunded": payments.refunded,
            "emails sent": list(self["mailer"].sent),
        }


def new_world(mail_host: str, mail_port: int, *, standup: bool = True) -> World:
    """Fresh services; the calendar already holds someone else's event, to be left alone."""
    calendar = Calendar()
    if standup:
        calendar.create("Team standup", "Mon 09:00")
    return World(
        sheet=Sheet(),
        calendar=calendar,
        payments=Payments(),
        mailer=Mailer(mail_host, mail_port),
        booking={"key": "booking-42", "guest": "ada@example.test"},
    )


def append_row(world: State) -> None:
    world["booking"]["row"] = world["sheet"].append(guest=world["booking"]["guest"], nights=2)


def revert_row(world: State) -> None:
    """mark the row reverted, found by its row id"""
    world["sheet"].mark_reverted(world["booking"]["row"])


def create_event(world: State) -> None:
    world["booking"]["event"] = world["calendar"].create("Ada arrives", "Fri 15:00")


def delete_event(world: State) -> None:
    """delete the event, found by its event id (other events stay)"""
    world["calendar"].delete(world["booking"]["event"])


def charge(world: State) -> None:
    world["payments"].charge(240, world["booking"]["key"])


def refund(world: State) -> None:
    """refund by the booking's idempotency key (once, and only what was charged)"""
    world["payments"].refund(world["booking"]["key"])  # idempotent: safe before a charge too


def send_confirmation(world: State) -> None:
    b = world["booking"]
    world["mailer"].send(b["guest"], "Booking confirmed", "Your room is booked for Fri, 2 nights.")


def send_correction(world: State) -> None:
    """send a correction: a new email, not an unsent one"""
    b = world["booking"]
    world["mailer"].send(b["guest"], "Booking cancelled", "Sorry: we could not complete it.")


def booking_saga(
    *,
    email_first: bool = False,
    undo_event: Callable[[State], Any] = delete_event,
    refund_charge: Callable[[State], Any] = refund,
    charge_register: str = "before",
    **options: Any,
) -> Saga:
    """Sheet row, calendar event, card charge, confirmation email.

    ``email_first=True`` is the unsafe order: the email goes out before the charge, so its
    only "undo" is a correction email. The other options swap in a learner's own parts.
    """
    row = Step("append_row", append_row, revert_row, label="sheet: add a row")
    event = Step("create_event", create_event, undo_event, label="calendar: add the stay")
    pay = Step(
        "charge_card",
        charge,
        refund_charge,
        register=charge_register,  # type: ignore[arg-type]
        label="card: charge 240",
    )
    if email_first:  # its "undo" is a correction: a new email, not an unsent one
        email = Step(
            "send_email", send_confirmation, send_correction, semantic=True, label="email: confirm"
        )
        return Saga([row, event, email, pay], name="booking", **options)
    email = Step("send_email", send_confirmation, kind="pivot", label="email: confirm")
    return Saga([row, event, pay, email], name="booking", **options)


@dataclass(frozen=True)
class ActionUndoTable:
    """Each step's action and its undo, read from the steps themselves (lesson 06):
    a table in a notebook, aligned text when printed."""

    rows: tuple[tuple[str, str, str, str], ...]

    HEADER = ("step", "action", "undo", "undo logged")

    def _repr_markdown_(self) -> str:
        lines = ["| " + " | ".join(self.HEADER) + " |", "| --- | --- | --- | --- |"]
        lines += [f"| `{a}` | {b} | {c} | {d} |" for a, b, c, d in self.rows]
        return "\n".join(lines)

    def __repr__(self) -> str:
        table = [self.HEADER, *self.rows]
        widths = [max(len(row[i]) for row in table) for i in range(4)]
        return "\n".join(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in table
        )


def action_undo_table(saga: Saga) -> ActionUndoTable:
    """The source lesson's action/undo table for ``saga``'s own tools."""
    rows = []
    for step in saga.steps:
        if step.undo is None:
            undo, logged = f"none: the {step.kind}, it cannot be taken back", "-"
        else:
            doc = getattr(step.undo, "__doc__", None) or getattr(step.undo, "__name__", "")
            undo, logged = str(doc).strip(), step.register
        rows.append((step.name, step.label, undo, logged))
    return ActionUndoTable(tuple(rows))
