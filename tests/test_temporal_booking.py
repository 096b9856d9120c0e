"""The hand-written booking saga on Temporal's dev server: durable execution shown, not told.

A worker process is killed with SIGKILL in the middle of the saga's compensation; a new
worker takes over from the workflow's history and finishes it, and the world's own record
shows every effect undone exactly once.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from rollback_lessons.runners.temporal import TemporalRunner
from rollback_lessons.worlds.temporal_booking.demo import kill_a_worker_mid_rollback


def test_a_worker_killed_mid_compensation_is_replaced_and_the_saga_finishes(tmp_path):
    world = str(tmp_path / "world.db")

    async def main():
        async with await TemporalRunner.start() as runner:
            return await kill_a_worker_mid_rollback(runner, world)

    with ThreadPoolExecutor(1) as pool:
        takeover = pool.submit(lambda: asyncio.run(main())).result()
    # when the first worker died: the charge was refunded, the room not yet released
    assert takeover.before["effects"] == [("b1", "charge_card", 1), ("b1", "reserve_room", 0)]
    assert takeover.result.status == "rolled_back"
    assert takeover.result.undone == ["send_email", "charge_card", "reserve_room"]
    after = takeover.after
    assert after["effects"] == [("b1", "charge_card", 1), ("b1", "reserve_room", 1)]
    assert sorted(after["undo_applied"]) == [("b1", "charge_card"), ("b1", "reserve_room")]
    # every undo ran once, send_email's harmlessly (its step never had an effect)
    assert sorted(after["undo_calls"]) == [
        ("b1", "charge_card", 1), ("b1", "reserve_room", 1), ("b1", "send_email", 0),
    ]  # fmt: skip
    assert takeover.workers == 2  # two worker processes did the saga's work
