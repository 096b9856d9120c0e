"""Events a log system can use: a run id to group by, times to order by, levels by meaning."""

import json
import logging

from rollback_lessons import Retry, RetryPolicy, Saga, Step, VirtualClock
from rollback_lessons.clock import EPOCH, SystemClock
from rollback_lessons.events import level_of


def _saga():
    return Saga(
        [
            Step("a", lambda s: s.update(a=1), lambda s: s.update(a=0)),
            Step("b", lambda s: s.update(b=1), lambda s: s.update(b=0)),
            Step("c", lambda s: s.update(c=1)),
        ],
        name="order",
    )


def test_every_event_carries_the_run_id_and_ordered_times():
    clock = VirtualClock()
    policy = Retry(RetryPolicy(max_attempts=2, initial_delay=2.0))
    outcome = _saga().run({}, inject={"c": "fail", "a": "undo_fails_once"}, policy=policy,
                          clock=clock)  # fmt: skip
    ids = {e.run_id for e in outcome.events}
    assert ids == {"order-1"} and outcome.run_id == "order-1"
    assert [e.offset for e in outcome.events] == sorted(e.offset for e in outcome.events)
    assert outcome.events[0].offset == 0 and outcome.events[-1].offset == 2.0  # one backoff
    assert outcome.events[-1].at == EPOCH + 2.0
    line = json.loads(outcome.events[-1].to_json())
    assert line["run_id"] == "order-1"
    assert line["at"] == "2026-01-01T00:00:02.000Z" and line["offset"] == 2.0
    assert _saga().run({}, clock=clock).run_id == "order-2"  # the next run of the same saga


def test_real_runs_get_unique_ids_and_real_times():
    first, second = _saga().run({}), _saga().run({})
    assert first.run_id != second.run_id and first.run_id.startswith("order-")
    assert abs(first.events[0].at - SystemClock().time()) < 60


def test_timestamps_and_ids_do_not_make_equal_runs_unequal():
    assert _saga().run({}).events == _saga().run({}, clock=VirtualClock()).events


def test_log_levels_follow_meaning(caplog):
    clock = VirtualClock()
    retry_then_give_up = Retry(RetryPolicy(max_attempts=2, initial_delay=0))
    with caplog.at_level(logging.DEBUG, logger="rollback_lessons"):
        _saga().run({}, inject={"c": "fail", "a": "undo_fails"}, policy=retry_then_give_up,
                    clock=clock)  # fmt: skip
    levels = [(r.event, r.details.get("then") or r.details.get("status"), r.levelname)
              for r in caplog.records if r.event in ("undo_failed", "rollback_done")]  # fmt: skip
    assert levels == [
        ("undo_failed", "retry", "WARNING"),  # will be retried: nobody needs waking
        ("undo_failed", "dead_letter", "ERROR"),  # given up on: a person must act
        ("rollback_done", "rollback_incomplete", "ERROR"),
    ]
    assert all(r.run_id == "order-1" for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="rollback_lessons"):
        _saga().run({}, inject={"c": "fail"}, clock=clock)
    done = [r for r in caplog.records if r.event == "rollback_done"]
    assert [r.levelname for r in done] == ["INFO"]


def test_level_of_a_halted_rollback_is_error():
    assert level_of("rollback_done", {"status": "halted"}) == logging.ERROR
    assert level_of("undo_failed", {"then": "halt"}) == logging.ERROR


def test_a_complete_rollback_is_info_cancelled_or_not_and_an_incomplete_one_error():
    """Cancelled promises what rolled_back does (the world as it was): nobody is paged."""
    for status in ("rolled_back", "cancelled"):
        assert level_of("rollback_done", {"status": status}) == logging.INFO
    assert level_of("rollback_done", {"status": "rollback_incomplete"}) == logging.ERROR
