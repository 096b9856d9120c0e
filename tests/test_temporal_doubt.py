"""A step's action in doubt (still running past ``step_timeout``) after a step with an undo.
attack69 F3: the earlier undo waits for that call, which never ends; its activity timed out
and was asked again, as an end unknown, without limit: the run never ended, and
``runner.run`` never returned. Now an end unheard a second time counts as a failed attempt,
which the policy retries or dead-letters (README). F4: closing a server that keeps nothing
then named the call still running nowhere in ``SagasLost``."""

import asyncio
import threading

import pytest

from rollback_lessons import Saga, Status, Step

pytestmark = pytest.mark.usefixtures("no_run_left_behind")


def _saga(world: list[str], release: threading.Event, name: str) -> Saga:
    """a (undone by its undo), then b, whose action runs until ``release`` is set."""

    def b(state):
        world.append("do b")
        release.wait(120)

    return Saga(
        [Step("a", lambda s: world.append("do a"), lambda s: world.append("undo a")),
         Step("b", b, lambda s: world.append("undo b"))],
        name=name,
    )  # fmt: skip


def test_an_undo_waiting_on_a_call_in_doubt_is_asked_again_once_then_counted_failed(
    on_temporal,
):
    world: list[str] = []
    release = threading.Event()

    async def scenario(runner):
        handle = await runner.start_saga(_saga(world, release, "doubt-undo"), {}, step_timeout=1)
        try:  # (the bound only turns a hang into a failure: it ends within seconds)
            return await asyncio.wait_for(handle.outcome(), 90), await handle.history()
        finally:
            release.set()

    outcome, history = on_temporal(scenario)
    assert outcome.status is Status.ROLLBACK_INCOMPLETE, (outcome.status, outcome.notes)
    assert outcome.leaked == ("b",)  # in doubt, its undo logged after it
    assert [d.step for d in outcome.dead_letters] == ["a"]  # (it waited for b: never called)
    assert world == ["do a", "do b"]
    asks = [row for row in history.rows if row[-3:] == ("activity scheduled", "undo", "a")]
    assert 1 <= len(asks) <= 2, history  # (asked again once if the server timed it out)
