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


def test_runs_whose_result_is_never_read_leave_nothing_hosted_on_temporal(on_temporal):
    """A ``start_saga`` run's saga and state (``hosted.RUNS``) stayed until its handle read
    the outcome: 30 runs never read, 30 kept. The workflow lets them go as it returns (its
    ``Hosted`` found while its handle holds it: ``hosted.OVER``); each handle, read later,
    still tells its run."""
    import asyncio

    from conftest import HaltOnAnythingButTimeouts
    from temporalio.client import WorkflowExecutionStatus

    steps = [Step("a", lambda s: s.update(a=1), lambda s: s.pop("a")),
             Step("b", lambda s: s.update(b=1), lambda s: s.pop("b"))]  # fmt: skip
    saga = Saga(steps, name="unread")

    async def scenario(runner):
        handles = []
        for i in range(3):
            policy = HaltOnAnythingButTimeouts() if i == 2 else "continue"
            handle = await runner.start_saga(saga, {}, policy=policy)
            handles.append(handle)
            while (await handle.workflow.describe()).status is WorkflowExecutionStatus.RUNNING:
                await asyncio.sleep(0.05)
        ids = {h.run_id for h in handles}
        kept = {"RUNS": ids & set(hosted.RUNS), "POLICIES": ids & set(hosted.POLICIES),
                "IN_FLIGHT": ids & set(activities.IN_FLIGHT)}  # fmt: skip
        outcomes = [await h.outcome() for h in handles]
        return kept, outcomes, ids & set(hosted.POLICIES), handles[2].run_id

    kept, outcomes, policies, in_code = on_temporal(scenario)
    # (a policy in code stays until read: a query replays the workflow, which asks it)
    assert kept == {"RUNS": set(), "POLICIES": {in_code}, "IN_FLIGHT": set()}
    assert policies == set()
    assert [(o.status.value, o.state_after) for o in outcomes] == [
        ("committed", {"a": 1, "b": 1})] * 3  # fmt: skip
