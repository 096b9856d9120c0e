"""Issue #25 on Temporal: what the activities keep of a run in this process. Each call of a
run is tracked while it runs (``activities.IN_FLIGHT``, so that an undo waits for a call
still running); once the run's last call ended, the run's table went empty but stayed, one
per run for the life of the process (a ``start_saga`` handle never read: 30 runs, 30)."""

from rollback_lessons import Saga, Step
from rollback_lessons.runners import hosted
from rollback_lessons.runners.temporal import activities


def test_a_runs_calls_leave_nothing_once_ended():
    saga = Saga([Step("a", lambda s: None, lambda s: None)])
    run = hosted.Hosted(saga, {}, {})
    first = activities._start(run, "in-flight-1", ("action", "a", 1), lambda: None)
    second = activities._start(run, "in-flight-1", ("undo", "a", 1), lambda: None)
    assert first.result(30) is None and second.result(30) is None
    assert "in-flight-1" not in activities.IN_FLIGHT
    assert sorted(run.calls) == [("action", "a", True), ("undo", "a", True)]
