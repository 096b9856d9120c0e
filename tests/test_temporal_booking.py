"""The hand-written booking saga on Temporal's dev server: durable execution shown, not told.

A worker process is killed with SIGKILL in the middle of the saga's compensation; a new
worker takes over from the workflow's history and finishes it, and the world's own record
shows every effect undone exactly once. The email is the pivot (lesson 04): it is never
compensated and tried once; refused, the steps before it are compensated; timed out after it
went, nothing is, and a person decides; the step after it is retried forward, never undone.
"""

import asyncio
import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import a_part

from rollback_lessons.worlds.crashlab import world_report
from rollback_lessons.worlds.temporal_booking.demo import kill_a_worker_mid_rollback

pytestmark = pytest.mark.usefixtures("no_run_left_behind")

# A loaded machine's worker: the SDK core's warning, on the stdout the worker speaks on
NOISE = "WARN temporalio_sdk_core: [TMPRL1104] Workflow task duration exceeded 5 seconds"


@pytest.fixture
def noisy_workers(tmp_path, monkeypatch):
    """Worker processes (started by the demo) that write another line before each of their
    own, as the SDK core's warnings came before the pause under load: the demo must wait for
    the worker's line, not take the first one."""
    site = tmp_path / "noisy"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\n"
        "class Noisy:\n"
        "    def __init__(self, out):\n"
        "        self.out = out\n"
        "    def write(self, text):\n"
        "        if text.strip():\n"
        f"            self.out.write({NOISE!r} + '\\n')\n"
        "        return self.out.write(text)\n"
        "    def __getattr__(self, name):\n"
        "        return getattr(self.out, name)\n"
        "sys.stdout = Noisy(sys.stdout)\n"
    )
    paths = [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))


def test_a_worker_killed_mid_compensation_is_replaced_and_the_saga_finishes(
    tmp_path, on_temporal, noisy_workers
):
    """(Its workers say another line before each of theirs: ``noisy_workers``.)"""
    world = str(tmp_path / "world.db")
    takeover = on_temporal(lambda runner: kill_a_worker_mid_rollback(runner, world))
    # when the first worker died: the charge was refunded, the room not yet released
    assert takeover.before["effects"] == [("b1", "charge_card", 1), ("b1", "reserve_room", 0)]
    assert takeover.result.status == "rolled_back"
    assert takeover.result.undone == ["charge_card", "reserve_room"]  # the email has no undo
    after = takeover.after
    assert after["effects"] == [("b1", "charge_card", 1), ("b1", "reserve_room", 1)]
    assert sorted(after["undo_applied"]) == [("b1", "charge_card"), ("b1", "reserve_room")]
    # every undo ran once; nothing was called for the email
    assert sorted(after["undo_calls"]) == [("b1", "charge_card", 1), ("b1", "reserve_room", 1)]
    assert takeover.workers == 2  # two worker processes did the saga's work


def test_the_hand_written_saga_ends_as_the_engine_does_for_every_single_fault(
    tmp_path, on_temporal
):
    """Each single fault of the booking, on the dev server (Temporal's sandbox on) and in
    process (its twin in the engine, on a world file of its own): the same status, the same
    undos in the same order, the same dead letters, and the same world afterwards."""
    from rollback_lessons.worlds.temporal_booking.demo import run_bookings
    from rollback_lessons.worlds.temporal_booking.twin import booking_twin, faults_of, single_faults

    cases = [
        dataclasses.replace(case, world=str(tmp_path / f"remote{n}.db"), saga=f"b{n}")
        for n, case in enumerate(single_faults("", ""))
    ]

    results = on_temporal(lambda runner: run_bookings(runner, cases))
    assert len(results) == len(cases) == 8
    statuses = set()
    for case, result in zip(cases, results, strict=True):
        local_world = str(tmp_path / f"local-{case.saga}.db")
        twin = booking_twin(local_world, case.saga, points_down=case.points_down)
        local = twin.run({}, inject=faults_of(case))
        statuses.add(result.status)
        assert result.status == local.status, case
        assert result.undone == list(local.compensated), case
        assert result.dead_letters == [d.step for d in local.dead_letters], case
        assert result.pending == list(local.pending), case
        remote_world, local_world_report = world_report(case.world), world_report(local_world)
        assert remote_world == local_world_report, case
        # nothing is ever compensated at or after the email (the pivot)
        assert not {"send_email", "award_points"} & {s for _, s, _ in remote_world["undo_calls"]}
    assert statuses == {"committed", "rolled_back", "rollback_incomplete", "halted"}
    refused = results[[c.fail_at for c in cases].index("send_email")]  # the mail server said no
    assert (refused.status, refused.undone) == ("rolled_back", ["charge_card", "reserve_room"])


def test_an_email_that_times_out_after_it_went_is_tried_once_and_left_to_a_person(
    tmp_path, on_temporal
):
    """The pivot rule (``machine.pivot_in_doubt``): the email's call times out after the
    mail server took it. It is not tried again, nothing is compensated while the saga waits
    for a person (as the engine's twin halts, with the same undos pending), and the person's
    Signal decides: "sent" carries the booking forward, "not sent" compensates."""
    from rollback_lessons.worlds.temporal_booking.demo import email_in_doubt
    from rollback_lessons.worlds.temporal_booking.twin import booking_twin, faults_of
    from rollback_lessons.worlds.temporal_booking.workflows import ANSWERS, BookingInput

    async def both(runner):
        return [await email_in_doubt(runner, str(tmp_path / f"{a}.db"), a) for a in ANSWERS]

    sent, not_sent = on_temporal(both)
    local_world = str(tmp_path / "local.db")
    twin = booking_twin(local_world, "b1")
    local = twin.run({}, inject=faults_of(BookingInput("", "b1", email_times_out=True)))
    assert local.status == "halted" and local.compensated == ()
    for doubt in (sent, not_sent):
        assert doubt.email_attempts == 1  # never tried again: it may have gone
        assert ("activity timed out", "action", "send_email") in doubt.history.rows
        assert doubt.asked == list(local.pending) == ["charge_card", "reserve_room"]
        # while the person is asked: the email went once, nothing was undone, as in process
        assert doubt.waiting == world_report(local_world)
        assert doubt.waiting["effects"] == [
            ("b1", "charge_card", 0), ("b1", "reserve_room", 0), ("b1", "send_email", 0),
        ]  # fmt: skip
        assert doubt.waiting["undo_calls"] == []
    assert ("signal resolve", "sent", "") in sent.history.rows
    assert sent.result.status == "committed" and sent.result.undone == []
    assert ("b1", "award_points", 0) in sent.after["effects"]
    assert sent.after["undo_calls"] == []
    assert ("signal resolve", "not sent", "") in not_sent.history.rows
    assert not_sent.result.status == "rolled_back"
    assert not_sent.result.undone == ["charge_card", "reserve_room"]
    assert ("b1", "award_points", 0) not in not_sent.after["effects"]


def test_after_the_email_the_points_are_retried_forward_and_never_undone(tmp_path, on_temporal):
    """The loyalty service down twice: Temporal's RetryPolicy gets the points through on
    the third attempt. Down for good: the saga halts for a person, and the room, the charge
    and the email all stay (nothing is compensated past the pivot)."""
    from rollback_lessons.worlds.temporal_booking.demo import run_bookings
    from rollback_lessons.worlds.temporal_booking.workflows import BookingInput

    back = BookingInput(str(tmp_path / "back.db"), "b1", points_down=2)
    down = BookingInput(str(tmp_path / "down.db"), "b2", fail_at="award_points")

    came_back, stayed_down = on_temporal(lambda runner: run_bookings(runner, [back, down]))
    assert came_back.status == "committed"
    assert ("b1", "award_points", 0) in world_report(back.world)["effects"]
    assert stayed_down.status == "halted" and stayed_down.pending == ["award_points"]
    assert stayed_down.undone == [] and stayed_down.dead_letters == []
    world = world_report(down.world)
    assert world["effects"] == [
        ("b2", "charge_card", 0), ("b2", "reserve_room", 0), ("b2", "send_email", 0),
    ]  # fmt: skip
    assert world["undo_calls"] == []


def test_a_server_restarted_mid_compensation_keeps_the_saga_and_it_finishes(
    tmp_path, noisy_workers
):
    """Stop the server while the saga is in an undo, start a new server process on the same
    database file, and the saga finishes its compensation, each undo applied once.

    The server stays down longer than the undo's timeout, as it does whenever a loaded
    machine restarts it slowly (CI): the new server times out the attempt it never heard
    end, and the retry must finish the undo, not make it a dead letter. (A slower machine
    only keeps the server down longer: nothing here waits for less than the time given.)
    Its worker says another line before each of its own (``noisy_workers``)."""
    from rollback_lessons.worlds.temporal_booking.demo import restart_the_server_mid_rollback
    from rollback_lessons.worlds.temporal_booking.workflows import ACTIVITY_TIMEOUT

    world = str(tmp_path / "world.db")
    down = ACTIVITY_TIMEOUT.total_seconds() + 1
    with ThreadPoolExecutor(1) as pool:
        restart = pool.submit(
            lambda: asyncio.run(
                restart_the_server_mid_rollback(tmp_path / "temporal.db", world, down=down)
            )
        ).result()
    assert restart.before["effects"] == [("b1", "charge_card", 1), ("b1", "reserve_room", 0)]
    assert restart.port_closed  # the first server really was gone
    assert restart.result.status == "rolled_back"
    assert restart.result.undone == ["charge_card", "reserve_room"]
    assert restart.after["effects"] == [("b1", "charge_card", 1), ("b1", "reserve_room", 1)]
    assert sorted(restart.after["undo_applied"]) == [("b1", "charge_card"), ("b1", "reserve_room")]
    # the new server's history holds the whole saga, from before the restart too
    assert ("activity scheduled", "action", "reserve_room") in restart.history.rows
    assert restart.history.rows[-1] == ("activity completed", "undo", "reserve_room")


def test_a_worker_killed_after_each_effect_leaves_the_booking_committed_each_effect_once(
    tmp_path, on_temporal
):
    """attack11's B5: the worker SIGKILLed right after a step's effect, before Temporal
    heard the activity end. Temporal retries the activity on the next worker; its action
    was an INSERT, so the retry failed (UNIQUE constraint) and a booking that commits
    uninterrupted was rolled back, or halted with the points awarded. The action is
    idempotent now (as the undos are): the retry finds its own effect and carries on. The
    email is tried once (a retry could send it twice): killed after it, it times out, and a
    person who looks at the mail server answers "sent". make test kills it once in each
    phase (after a compensable step, one of the two in turn: conftest's a_part; after the
    email; after a step retried forward), make soak after every step."""
    from rollback_lessons.worlds.temporal_booking.demo import kill_a_worker_at
    from rollback_lessons.worlds.temporal_booking.workflows import (
        COMPENSABLE,
        FORWARD,
        PIVOT,
        STEPS,
        BookingInput,
    )

    def person(world):  # looks at the mail server's own record
        sent = any(step == "send_email" for _, step, _ in world["effects"])
        return "sent" if sent else "not sent"

    async def each(runner):
        # a TaskGroup, not gather: one that fails cancels the others, whose workers are then
        # killed (gather left them running on the module's loop, and pytest -x left them behind)
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(kill_a_worker_at(
                    runner, world, f"after {step}", BookingInput(world, "b1"), answer=person
                ))
                for step, world in worlds.items()
            ]  # fmt: skip
        return [task.result() for task in tasks]

    killed = [*a_part(list(COMPENSABLE), 2, name="a worker killed after"), PIVOT, *FORWARD]
    worlds = {step: str(tmp_path / f"{step}.db") for step in STEPS if step in killed}
    takeovers = on_temporal(each)
    for (step, world), takeover in zip(worlds.items(), takeovers, strict=True):
        assert ("b1", step, 0) in takeover.before["effects"], step  # killed after it
        assert takeover.result.status == "committed", (step, takeover)
        assert takeover.result.undone == [] and takeover.result.pending == []
        after = world_report(world)
        assert after["effects"] == sorted(("b1", s, 0) for s in STEPS), step  # each once
        assert after["undo_calls"] == [], step
