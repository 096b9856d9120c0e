"""The lesson-06 tools behave like the real ones where it matters, and the email is real SMTP."""

import pytest

from rollback_lessons import Status
from rollback_lessons.worlds.mailserver import MailServer
from rollback_lessons.worlds.services import Calendar, Payments, Sheet, booking_saga, new_world


@pytest.fixture(scope="module")
def mail():
    with MailServer() as server:
        assert server.host == "127.0.0.1"
        yield server
    assert not server.running


def test_payments_are_idempotent_by_key():
    payments = Payments()
    first = payments.charge(240, "k1")
    assert payments.charge(240, "k1") == first  # a retried charge is the same charge
    assert payments.charged == 240
    assert payments.refund("nothing-charged") == 0
    assert payments.refund("k1") == 240
    assert payments.refund("k1") == 0
    assert payments.refunded == 240 and payments.refund_calls == 3


def test_calendar_deletes_by_id_and_sheet_marks_reverted():
    calendar = Calendar()
    keep, drop = calendar.create("standup", "Mon"), calendar.create("stay", "Fri")
    calendar.delete(drop)
    assert calendar.titles() == ["standup"] and keep == "evt-1"
    with pytest.raises(KeyError, match="no calendar event 'evt-2'"):
        calendar.delete(drop)
    sheet = Sheet()
    row = sheet.append(guest="ada")
    sheet.mark_reverted(row)
    assert sheet.rows == [{"id": "row-1", "guest": "ada", "status": "reverted"}]
    assert sheet.active() == []


def test_a_booking_sends_a_real_email(mail):
    before = len(mail.messages)
    outcome = booking_saga().run(new_world(mail.host, mail.port))
    assert outcome.status is Status.COMMITTED
    message = mail.messages[before]
    assert message["Subject"] == "Booking confirmed" and message["To"] == "ada@example.test"
    assert "2 nights" in message.get_payload()


@pytest.mark.parametrize("step", ["append_row", "create_event", "charge_card", "send_email"])
def test_any_failure_puts_every_tool_back(mail, step):
    before = len(mail.messages)
    world = new_world(mail.host, mail.port)
    outcome = booking_saga().run(world, inject={step: "fail"})
    assert outcome.status is Status.ROLLED_BACK
    assert world["calendar"].titles() == ["Team standup"]
    assert world["sheet"].active() == []
    assert world["payments"].charged == world["payments"].refunded
    assert len(mail.messages) == before


def test_the_email_cannot_be_unsent_only_corrected(mail):
    before = len(mail.messages)
    outcome = booking_saga(email_first=True).run(
        new_world(mail.host, mail.port), inject={"charge_card": "fail"}
    )
    # the correction is a semantic compensation: right, but not as it was
    assert outcome.status is Status.ROLLBACK_INCOMPLETE
    assert outcome.semantic == ("send_email",) and "send_email" in outcome.compensated
    subjects = [m["Subject"] for m in mail.messages[before:]]
    assert subjects == ["Booking confirmed", "Booking cancelled"]


def test_the_email_first_order_ends_the_same_in_lessons_04_and_06(mail):
    from rollback_lessons.worlds import examples

    bad = ["verify_card", "reserve_room", "send_email", "charge_card"]
    lesson04 = examples.booking_saga(bad, allow_unsafe_order=True).run(
        examples.booking_state(), inject={"charge_card": "fail"}
    )
    lesson06 = booking_saga(email_first=True).run(
        new_world(mail.host, mail.port), inject={"charge_card": "fail"}
    )
    assert lesson04.status is lesson06.status is Status.ROLLBACK_INCOMPLETE
    assert lesson04.leaked == ("send_email",) and lesson06.semantic == ("send_email",)


def test_a_timeout_after_the_charge_is_refunded_once(mail):
    world = new_world(mail.host, mail.port)
    outcome = booking_saga().run(world, inject={"charge_card": "fail_after_effect"})
    assert outcome.status is Status.ROLLED_BACK
    assert world["payments"].charged == world["payments"].refunded == 240
    leak = booking_saga(charge_register="after").run(
        new_world(mail.host, mail.port), inject={"charge_card": "fail_after_effect"}
    )
    assert leak.status is Status.ROLLBACK_INCOMPLETE
    assert leak.state_after["charged"] == 240 and leak.state_after["refunded"] == 0


def test_a_booking_that_fails_at_any_step_sends_no_mail(mail):
    """Lesson 06 says so beside its loop: a failing step, the email included, sends none."""
    before = len(mail.messages)
    for step in booking_saga().names:
        outcome = booking_saga().run(new_world(mail.host, mail.port), inject={step: "fail"})
        assert outcome.status is Status.ROLLED_BACK
    assert mail.messages[before:] == []
