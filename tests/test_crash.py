"""Crash trials: a real process runs sagas and is killed with SIGKILL at random moments
(during steps, between steps, during its rollback, inside SQLite commits); then
``recover`` runs. Every trial checks the journal's promise on the world it left behind.

``make test`` runs 30 trials; ``make soak`` runs 300 (SOAK_TRIALS)."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from rollback_lessons.durable.journal import FINISHED, Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.worlds.crashlab import registry, world_report

TRIALS = int(os.environ.get("SOAK_TRIALS", "30"))
SAGAS, STEPS = 4, 3
# Before and after each effect and each undo: a committed saga has 3 effects (6 moments);
# a failing one (every 2nd) has 2 effects and 3 undos (10): the trial picks one of them.
CHECKPOINTS = (SAGAS // 2) * 6 + (SAGAS // 2) * 10


def child(tmp_path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rollback_lessons.worlds.crashlab",
            "--journal",
            str(tmp_path / "journal.db"),
            "--world",
            str(tmp_path / "world.db"),
            "--sagas",
            str(SAGAS),
            "--steps",
            str(STEPS),
            "--fail-every",
            "2",
            *extra,
        ],
        stdin=subprocess.PIPE,  # a paused child waits on it (for its killer, not a clock)
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def check_world(tmp_path) -> dict[str, str]:
    """The invariants; returns each saga's final status."""
    with Journal(tmp_path / "journal.db") as journal:
        assert journal.integrity_check() == "ok"
        first = recover(journal, registry)
        statuses = {s.id: s.status for s in journal.sagas()}
        assert set(statuses.values()) <= set(FINISHED), statuses
        assert recover(journal, registry) == []  # recovering twice changes nothing
    report = world_report(tmp_path / "world.db")
    assert report["integrity"] == "ok"
    effects = {(saga, step): undone for saga, step, undone in report["effects"]}
    applied = report["undo_applied"]
    assert len(applied) == len(set(applied)), "an undo was applied twice"
    assert set(applied) <= set(effects), "an undo was applied to an effect that never happened"
    for (saga, step), undone in effects.items():
        assert saga in statuses, f"{saga} has effects but the journal does not know it"
        if statuses[saga] == "committed":
            assert undone == 0, f"{saga}/{step} undone although its saga committed"
        else:
            assert undone == 1, f"{saga}/{step} happened and was never undone ({statuses[saga]})"
    for saga, status in statuses.items():
        if status == "committed":
            assert all((saga, f"step{i}") in effects for i in range(1, STEPS + 1))
    assert {r.saga_id for r in first} <= set(statuses)
    return statuses


@pytest.mark.parametrize("trial", range(TRIALS))
def test_crash_trial(tmp_path, trial):
    rng = random.Random(trial)
    if trial % 2 == 0:  # die exactly at a chosen moment: before/after an effect or an undo
        process = child(tmp_path, "--kill-at", str(rng.randint(1, CHECKPOINTS)))
        process.wait(timeout=60)
    else:  # die whenever the clock says, possibly inside a SQLite commit
        process = child(tmp_path, "--sagas", "80")  # about half a second of work
        time.sleep(rng.uniform(0.12, 0.45))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    _out, err = process.communicate()
    assert process.returncode in (0, -signal.SIGKILL), err
    if not (tmp_path / "journal.db").exists():
        return  # killed before it wrote anything: nothing happened, nothing to undo
    check_world(tmp_path)


def test_a_kill_between_steps_and_one_during_the_rollback_are_both_recovered(tmp_path):
    between = tmp_path / "between"
    between.mkdir()
    process = child(between, "--sagas", "1", "--pause-at", "after step2")
    assert process.stdout.readline().strip() == "paused at after step2"
    process.kill()
    process.wait()
    assert check_world(between) == {"saga-1": "rolled_back"}
    assert world_report(between / "world.db")["undo_applied"] == [
        ("saga-1", "step1"),
        ("saga-1", "step2"),
    ]

    during = tmp_path / "during"
    during.mkdir()  # saga 2 fails at step3 and is killed after undoing step2, before step1
    process = child(during, "--sagas", "2", "--pause-at", "after undo step2")
    line = process.stdout.readline().strip()
    assert line == "paused at after undo step2"
    process.kill()
    process.wait()
    with Journal(during / "journal.db") as journal:
        assert journal.saga("saga-2").status == "rolling_back"
        assert [u.state for u in journal.undos("saga-2")] == ["pending", "pending", "done"]
    assert check_world(during) == {"saga-1": "committed", "saga-2": "rolled_back"}


def test_processes_share_a_journal(tmp_path):
    processes = [
        child(tmp_path, "--prefix", f"p{p}", "--sagas", "12", "--fail-every", "3") for p in range(3)
    ]
    outputs = [p.communicate(timeout=120)[0].split() for p in processes]
    assert all(p.returncode == 0 for p in processes)
    with Journal(tmp_path / "journal.db") as journal:
        sagas = journal.sagas()
        assert len(sagas) == 36
        for saga in sagas:
            events = journal.events(saga.id)
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            assert len(journal.undos(saga.id)) == 3  # each step logs its undo before it runs
    assert sum(o.count("committed") for o in outputs) == 24
    check_world(tmp_path)
