"""Lesson 10's business and technical failures, and the worlds exercise 10.3 is checked on:
generated, covering every kind of failure (kinds the lesson never names too) and every
outage length, not a few hand-picked cases."""

from hypothesis import given, settings
from hypothesis import strategies as st

from rollback_lessons import RetryPolicy
from rollback_lessons.lab.exercises import lesson10
from rollback_lessons.worlds.failures import (
    BUSINESS,
    LESSON_POLICY,
    TECHNICAL,
    BusinessFailure,
    CardDeclined,
    ServiceUnavailable,
    try_booking,
)


def test_the_generated_gateways_cover_every_kind_and_outage_length():
    worlds = lesson10._worlds()
    kinds = {type(e) for failures, _ in worlds for e in failures}
    assert set(lesson10._BUSINESS) | set(lesson10._TECHNICAL) <= kinds
    assert {lesson10.FraudSuspected, lesson10.ReadTimedOut} <= kinds  # never named in the lesson
    outages = {sum(1 for e in f if not isinstance(e, BusinessFailure)) for f, _ in worlds}
    assert outages == set(range(lesson10.OUTAGE + 1))  # up to three calls
    assert len({str(e) for f, _ in worlds for e in f}) > 50  # messages vary
    assert {answered for _, answered in worlds} == {True, False}


failures_of = st.lists(st.sampled_from(TECHNICAL), max_size=2).flatmap(
    lambda outage: st.one_of(st.just(outage), st.sampled_from(BUSINESS).map(lambda b: [*outage, b]))
)


@settings(max_examples=80, deadline=None, derandomize=True, database=None)
@given(failures_of)
def test_the_lesson_policy_compensates_an_answer_at_once_and_retries_an_outage(kinds):
    failures = [kind("boom") for kind in kinds]
    tried = try_booking(failures, LESSON_POLICY)
    answered = bool(kinds) and issubclass(kinds[-1], BusinessFailure)
    assert tried.calls == (len(failures) if answered else len(failures) + 1)
    assert tried.outcome.status == ("rolled_back" if answered else "committed")
    assert tried.outcome.compensated == (("hold_room",) if answered else ())


def test_retrying_everything_asks_a_declined_card_again():
    declined = [CardDeclined("no")] * 3
    tried = try_booking(declined, RetryPolicy(max_attempts=3, initial_delay=0.5))
    assert tried.calls == 3 and sum(tried.waited) == 1.5
    assert tried.outcome.status == "rolled_back"
    assert try_booking([ServiceUnavailable("503")], None).outcome.status == "rolled_back"
