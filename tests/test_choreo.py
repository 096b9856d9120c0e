"""The choreographed booking (issue 28): three services, outbox, inbox, relay, on an
in-memory queue and on SQS (moto), checked on the services' own records."""

import subprocess
import sys

import pytest

from rollback_lessons.choreo import (
    EVERY_PATH,
    IN_ORDER,
    NAIVE,
    SAFE,
    Booking,
    Choreography,
    EventType,
    MemoryQueue,
    Message,
    book,
    violations,
)

E = EventType


def test_importing_the_engine_does_not_load_the_choreography():
    code = "import sys, rollback_lessons; print('rollback_lessons.choreo' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("variant", [SAFE, NAIVE, IN_ORDER], ids=str)
def test_without_faults_every_path_ends_as_the_guest_asked(variant):
    choreo = book(MemoryQueue(), EVERY_PATH, variant)
    effects = choreo.effects()
    assert violations(effects, EVERY_PATH) == {}
    assert effects["room"] == [
        ("b1", "reserve"),
        ("b2", "reserve"),
        ("b3", "reserve"),
        ("b4", "reserve"),
        ("b4", "release"),
        ("b2", "release"),
        ("b3", "release"),
    ]
    assert {b for b, e in effects["payment"] if e == "charge"} == {"b1", "b3", "b4"}  # b2 declined
    assert effects["notification"] == [
        ("b1", "confirm"),
        ("b4", "confirm"),
        ("b4", "cancel_notice"),
    ]
    assert {n: choreo.queue.depth(n) for n in ("room", "payment", "notification")} == dict.fromkeys(
        ("room", "payment", "notification"), 0
    )
    if variant.outbox:
        assert all(s.unsent() == [] for s in choreo.services.values())


def test_the_check_finds_what_is_wrong():
    booking = [Booking("b1"), Booking("b2", cancel=True)]
    fine = {"room": [("b1", "reserve")], "payment": [("b1", "charge")]}
    assert violations({**fine, "notification": [("b1", "confirm")]}, booking[:1]) == {}
    assert violations(fine, booking[:1]) == {
        "b1": ["stuck: reserve, charge neither completed nor compensated"]
    }
    assert violations(
        {
            "room": [("b1", "reserve")] * 2,
            "payment": [("b1", "charge")],
            "notification": [("b1", "confirm")],
        },
        booking[:1],
    ) == {"b1": ["reserve x2"]}
    assert violations({"room": [("b2", "release")]}, booking[1:]) == {
        "b2": ["release without reserve"]
    }
    assert violations({}, booking[:1]) == {"b1": ["not completed, although nothing failed"]}
    done = {
        "room": [("b2", "reserve")],
        "payment": [("b2", "charge")],
        "notification": [("b2", "confirm")],
    }
    assert violations(done, booking) == {
        "b1": ["not completed, although nothing failed"],
        "b2": ["completed, but it should have been compensated"],
    }


def _one_message(variant):
    choreo = Choreography(MemoryQueue(), variant)
    message = Message(E.BOOKING_REQUESTED, "b1", {"card": "ok", "email": "ok"})
    return choreo, choreo.services["room"], message


def test_a_redelivered_message_changes_nothing_with_an_inbox():
    _, room, message = _one_message(SAFE)
    assert room.handle(message).effects == ("reserve",)
    assert room.handle(message) is None  # the inbox knows its id
    assert room.effects() == [("b1", "reserve")]
    assert [m.type for m in room.unsent()] == [E.ROOM_RESERVED]  # one event, not two


def test_without_an_inbox_a_redelivered_message_is_acted_on_twice():
    choreo, room, message = _one_message(NAIVE)
    room.handle(message)
    room.handle(message)
    assert room.effects() == [("b1", "reserve"), ("b1", "reserve")]
    assert [m.message.type for m in _drain(choreo.queue, "payment")] == [E.ROOM_RESERVED] * 2


def _drain(queue, name):
    got = []
    while (delivery := queue.receive(name)) is not None:
        queue.delete(name, delivery)
        got.append(delivery)
    return got


def test_the_outbox_holds_events_until_the_relay_publishes_them():
    choreo, room, message = _one_message(SAFE)
    room.handle(message)
    assert choreo.queue.depth("payment") == 0  # committed, not published
    assert choreo.relay.pump(room) == 1
    assert choreo.queue.depth("payment") == 1 and room.unsent() == []
    assert choreo.relay.pump(room) == 0  # marked sent


def test_compensations_run_backwards_in_the_order_the_events_imply():
    """The address bounces: notification -> payment refunds -> room releases, each on
    the event the one after it published."""
    moments = []

    def watch(moment):
        if moment == "committed":
            moments.append(
                (choreo.services["room"].state("b3"), choreo.services["payment"].state("b3"))
            )

    choreo = Choreography(MemoryQueue(), SAFE, checkpoint=watch)
    choreo.ask([Booking("b3", email="bad")])
    choreo.run()
    changes = [m for i, m in enumerate(moments) if i == 0 or m != moments[i - 1]]
    assert changes == [
        ("reserved", None),
        ("reserved", "charged"),
        ("reserved", "refunded"),  # refunded while the room is still held
        ("released", "refunded"),
    ]
    assert choreo.services["notification"].state("b3") == "failed"


def _cancel_overtakes(variant):
    queue = MemoryQueue()
    queue.hold(lambda m: m.type == E.BOOKING_REQUESTED)  # the request is late
    choreo = Choreography(queue, variant)
    choreo.ask([Booking("b4", cancel=True)])
    choreo.run()  # the cancellation first, then (released when idle) the request
    return choreo


def test_a_cancellation_that_overtakes_its_booking_is_remembered_and_the_booking_refused():
    choreo = _cancel_overtakes(SAFE)
    assert choreo.services["room"].state("b4") == "refused"
    assert choreo.effects() == {"room": [], "payment": [], "notification": []}
    assert violations(choreo.effects(), [Booking("b4", cancel=True)]) == {}


def test_a_consumer_that_assumes_order_books_what_the_guest_cancelled():
    choreo = _cancel_overtakes(IN_ORDER)
    assert violations(choreo.effects(), [Booking("b4", cancel=True)]) == {
        "b4": ["completed, but it should have been compensated"]
    }


@pytest.mark.parametrize("where", ["moto", "moto_server"])
def test_on_sqs_every_path_ends_right_and_a_relay_crash_duplicate_is_absorbed(where):
    from rollback_lessons.choreo.sqs import on_moto, on_moto_server

    with on_moto() if where == "moto" else on_moto_server() as queue:
        choreo = Choreography(queue, SAFE)
        room = choreo.services["room"]
        choreo.ask(EVERY_PATH)
        delivery = queue.receive("room")
        room.handle(delivery.message)
        queue.restart()  # died before deleting: SQS delivers it again
        again = queue.receive("room")
        assert again.message == delivery.message  # (SQS order is not promised: b1 first here)
        assert room.handle(again.message) is None
        queue.delete("room", again)
        choreo.run()
        assert violations(choreo.effects(), EVERY_PATH) == {}
        assert len(choreo.effects()["room"]) == 7
        assert [queue.depth(n) for n in ("room", "payment", "notification", "guest")] == [
            0,
            0,
            0,
            2,
        ]


def test_the_trace_tells_what_each_service_got_did_and_sent():
    from rollback_lessons.worlds.choreography import BOUNCES, relay_crash, trace

    rows = trace(book(MemoryQueue(), [BOUNCES]).log).rows
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [
        ("room", "BookingRequested", "reserve (reserved)", "RoomReserved"),
        ("payment", "RoomReserved", "charge (charged)", "PaymentCharged"),
        ("notification", "PaymentCharged", "no effect (failed)", "NotificationFailed"),
        ("payment", "NotificationFailed", "refund (refunded)", "PaymentRefunded"),
        ("room", "PaymentRefunded", "release (released)", "-"),
    ]
    payment = trace(relay_crash().log, "payment").rows
    assert [r[3] for r in payment] == ["charge (charged)", "nothing: its inbox had this message"]


def test_a_guest_who_sends_a_request_again_is_served_once():
    """attack97 F1: a guest's request sent again (a retry after a lost answer, a double
    click) had a new message id: the inbox let it through, the room reserved, the card
    charged and the guest confirmed twice. Its id is its booking's now: absorbed."""
    choreo = Choreography(MemoryQueue(), SAFE)
    choreo.ask(EVERY_PATH)
    choreo.ask(EVERY_PATH)  # (every request again, in the same order)
    choreo.run()
    assert violations(choreo.effects(), EVERY_PATH) == {}
