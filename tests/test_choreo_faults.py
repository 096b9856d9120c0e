"""Faults where they bite, in process (issue 28): a crash between a service's commit and
its publish, a relay crash between publishing and marking sent, and the explorer running
the choreography under every single fault. The crash is ``Crash`` raised at the moment,
then a restart on the same databases and queue."""

import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from rollback_lessons.choreo import (
    EVERY_PATH,
    IN_ORDER,
    NAIVE,
    SAFE,
    Booking,
    Choreography,
    EventType,
    MemoryQueue,
    book,
    run_crashing,
    violations,
)
from rollback_lessons.choreo.explore import Fault, explore_choreography, run_once, single_faults

E = EventType
DECLINED = Booking("b2", card="bad")


def _declined(choreo):
    return choreo.services["payment"].state("b2") == "declined"


def test_a_crash_between_commit_and_publish_loses_the_event_without_an_outbox():
    """The card is declined and committed; the process dies before publishing
    PaymentFailed. The message comes back, but the decline is done: nothing to publish.
    The room is held for ever."""
    choreo = run_crashing(MemoryQueue(), [DECLINED], NAIVE, "committed", _declined)
    assert choreo.crashed == "crashed at committed"
    assert choreo.services["room"].state("b2") == "reserved"
    assert violations(choreo.effects(), [DECLINED]) == {
        "b2": ["stuck: reserve neither completed nor compensated"]
    }


def test_with_an_outbox_the_relay_sends_it_after_the_restart():
    choreo = run_crashing(MemoryQueue(), [DECLINED], SAFE, "committed", _declined)
    assert choreo.crashed == "crashed at committed"
    assert choreo.services["room"].state("b2") == "released"
    assert violations(choreo.effects(), [DECLINED]) == {}


def test_a_relay_crash_after_publishing_sends_the_event_twice_and_the_inbox_absorbs_it():
    def room_reserved_published(choreo):
        return choreo.queue.depth("payment") == 1

    choreo = run_crashing(MemoryQueue(), [Booking("b1")], SAFE, "relayed", room_reserved_published)
    assert choreo.crashed == "crashed at relayed"
    payment = [h for h in choreo.log if h.service == "payment"]
    assert [(h.message.type, h.reaction is not None) for h in payment[:2]] == [
        (E.ROOM_RESERVED, True),
        (E.ROOM_RESERVED, False),  # the same id again: the inbox had it
    ]
    assert payment[0].message == payment[1].message
    assert choreo.services["payment"].effects() == [("b1", "charge")]
    assert violations(choreo.effects(), [Booking("b1")]) == {}


def test_the_explorer_finds_nothing_with_outbox_inbox_and_tombstones():
    exploration = explore_choreography(EVERY_PATH, [SAFE])
    kinds = {run.fault.family for run in exploration.runs if run.fault}
    assert kinds == {
        "crash at received",
        "crash at committed",
        "crash at handled",
        "crash at relayed",
        "duplicate",
        "delay",
    }
    assert len(exploration.runs) > 80
    assert exploration.failures == []


def test_the_explorer_finds_the_dual_write_and_the_missing_tombstone():
    exploration = explore_choreography(EVERY_PATH, [NAIVE, IN_ORDER])
    broken = {(str(r.variant), r.fault.family) for r in exploration.failures}
    assert broken == {
        ("naive", "crash at committed"),  # lost (stuck) or redone (x2)
        ("naive", "crash at handled"),  # redelivered before its ack: x2
        ("naive", "duplicate"),
        ("outbox + inbox, no tombstones", "delay"),  # a cancellation overtook its booking
    }
    problems = " ".join(r.describe() for r in exploration.failures)
    assert "stuck" in problems and "x2" in problems and "should have been compensated" in problems
    table = exploration.table(only_failures=True)
    assert table.header == ("variant", "fault", "violated") and len(table.rows) == len(
        exploration.failures
    )
    assert str(exploration.summary()).splitlines()[0].split() == [
        "variant",
        "fault",
        "runs",
        "broken",
    ]


bookings = st.lists(
    st.tuples(st.sampled_from(["ok", "bad"]), st.sampled_from(["ok", "bad"]), st.booleans()),
    min_size=1,
    max_size=4,
).map(lambda bs: [Booking(f"b{i}", *b) for i, b in enumerate(bs, 1)])


@settings(max_examples=examples(30))
@given(bookings, st.data())
def test_any_bookings_under_any_single_fault_end_right(bs, data):
    fault = data.draw(st.sampled_from(single_faults(bs, SAFE)))
    run, _, _ = run_once(bs, fault, SAFE)
    assert run.broken == {}, str(fault)


@settings(max_examples=examples(30))
@given(bookings, st.sets(st.integers(1, 40)), st.sets(st.integers(1, 40)))
def test_any_bookings_with_many_duplicates_and_delays_end_right(bs, duplicate, delay):
    queue = MemoryQueue(duplicate=frozenset(duplicate), delay=frozenset(delay))
    choreo = Choreography(queue, SAFE)
    choreo.ask(bs)
    choreo.run()
    assert violations(choreo.effects(), bs) == {}


def test_a_fault_reads_as_what_it_is():
    assert str(Fault("crash", 3, "relayed")) == "crash at relayed #3"
    assert str(Fault("delay", 2)) == "delay message #2"
    assert Fault("crash", 3, "relayed").family == "crash at relayed"


def test_a_compensation_a_service_applied_before_its_effect_is_a_violation():
    """attack202 F4: the records were counted, not read in order: ``release, reserve`` (the
    room reserved at the end) passed as a compensated booking."""
    from rollback_lessons.choreo.run import violations

    cancelled = [Booking("b1", cancel=True)]
    right = {"hotel": [("b1", "reserve"), ("b1", "release")],
             "payment": [("b1", "charge"), ("b1", "refund")]}  # fmt: skip
    assert violations(right, cancelled) == {}
    wrong = {name: records[::-1] for name, records in right.items()}
    assert violations(wrong, cancelled) == {
        "b1": ["release before reserve", "refund before charge"]
    }


@pytest.mark.parametrize(
    "made, said",
    [
        (lambda: Booking("z", card="declined"), "card is 'ok' or 'bad'"),
        (lambda: Booking("z", email="yes"), "email is 'ok' or 'bad'"),
        (lambda: Booking(""), "non-empty str"),
        (lambda: explore_choreography([Booking("x"), Booking("x", card="bad")]), "'x' twice"),
        (lambda: explore_choreography([]), "one or more"),
        (lambda: explore_choreography(variants=()), "one or more"),
        (lambda: explore_choreography(variants=iter(())), "one or more"),  # (attack225 F1)
    ],
)
def test_bookings_it_cannot_judge_are_refused_before_any_run(made, said):
    """attack202 F5: a card "declined" (the services fail only "bad", the checker asked for
    "ok") and two bookings of one id made every run of the right services "broken"; no
    bookings, no variants: "0 broken" of nothing."""
    with pytest.raises(ValueError, match=said):
        made()


@pytest.mark.parametrize(
    "made, said",
    [
        (lambda: explore_choreography(variants=("naive",)), "variants: each a Variant"),
        (lambda: explore_choreography(variants="SAFE"), "variants: a list of Variant"),
        (lambda: explore_choreography(variants=(None,)), "got None, a NoneType"),
        (lambda: explore_choreography([Booking("b1"), "b2"]), "bookings: each a Booking"),
        (lambda: explore_choreography(Booking("b1")), "bookings: a list of Booking"),
        (lambda: book(MemoryQueue(), ["b1"]), "got 'b1', a str"),
        (lambda: book(MemoryQueue(), variant="naive"), "variants: each a Variant"),
    ],
)
def test_what_is_not_a_booking_or_a_variant_is_a_typed_error_naming_it(made, said):
    """attack225 F2: a bare AttributeError ("'str' object has no attribute 'outbox'")."""
    with pytest.raises(TypeError, match=said):
        made()


def test_bookings_given_once_through_are_all_sent_and_judged():
    """attack225 F1: a generator of bookings was used up by the id check: nothing was sent,
    nothing judged, and the naive variant read "1 run, 0 broken" (90 runs, 32 broken as a
    list); ``book`` handled no message."""
    listed = explore_choreography(list(EVERY_PATH), variants=(NAIVE,)).runs
    once = explore_choreography((b for b in EVERY_PATH), variants=iter((NAIVE,))).runs
    assert len(once) == len(listed) > 1
    assert [bool(r.broken) for r in once] == [bool(r.broken) for r in listed] and any(
        r.broken for r in once
    )
    effects = book(MemoryQueue(), (b for b in EVERY_PATH)).effects()
    assert {
        booking for _, booking_effects in effects.items() for booking, _ in booking_effects
    } == {b.id for b in EVERY_PATH}
    assert violations(effects, EVERY_PATH) == {}
