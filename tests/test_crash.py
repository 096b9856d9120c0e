"""Crash trials: real processes run sagas and are killed with SIGKILL at random moments
(during steps, between steps, during their rollback, inside SQLite commits, during
``recover`` itself), then ``recover`` runs, sometimes twice at once. Every trial checks the
journal's promise on the world's own record of effects and undo calls.

``make test`` runs 10 trials (each kind twice); ``make soak`` runs 300 (SOAK_TRIALS).
"""

import collections
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from conftest import dead_pid

from rollback_lessons.durable.journal import FINISHED, Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.worlds.crashlab import registry, world_report

TRIALS = int(os.environ.get("SOAK_TRIALS", "10"))
SAGAS, STEPS = 4, 3
# Before and after each effect and each undo: a committed saga has 3 effects (6 moments);
# a failing one (every 2nd) has 2 effects and 3 undos (10): the trial picks one of them.
CHECKPOINTS = (SAGAS // 2) * 6 + (SAGAS // 2) * 10
REGISTRY = ("--registry", "rollback_lessons.worlds.crashlab")
KINDS = ("exact", "timed", "logged after", "kill recover", "two recovers")


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


def recover_command(tmp_path, *flags: str) -> list[str]:
    journal = str(tmp_path / "journal.db")
    return [sys.executable, "-m", "rollback_lessons", "recover", journal, *REGISTRY, *flags]


def recover_process(tmp_path, **env: str) -> subprocess.Popen:
    """``rollback-lessons recover`` in its own process (checkpoints set by CRASHLAB_*)."""
    return subprocess.Popen(
        recover_command(tmp_path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def check_world(tmp_path, *, crashes: int = 1) -> dict[str, str]:
    """The invariants, after a last ``recover``; returns each saga's final status.

    ``crashes``: how many processes died (an undo cut short reruns once per crash).
    """
    with Journal(tmp_path / "journal.db") as journal:
        assert journal.integrity_check() == "ok"
        first = recover(journal, registry)
        assert first.skipped == ()
        statuses = {s.id: s.status for s in journal.sagas()}
        assert set(statuses.values()) <= set(FINISHED), statuses
        again = recover(journal, registry)  # recovering twice changes nothing
        assert (again.recovered, again.skipped) == ((), ())
        rows = {(s, u.step): u for s in statuses for u in journal.undos(s)}
    report = world_report(tmp_path / "world.db")
    assert report["integrity"] == "ok"
    effects = {(saga, step): undone for saga, step, undone in report["effects"]}
    applied = report["undo_applied"]
    assert len(applied) == len(set(applied)), "an effect was undone twice"
    assert set(applied) <= set(effects), "an undo changed the world for an effect that never was"
    calls = collections.Counter((saga, step) for saga, step, _ in report["undo_calls"])
    for (saga, step), count in calls.items():
        assert count <= 1 + crashes, f"{saga}/{step}: {count} undo calls after {crashes} crash(es)"
        if (saga, step) not in effects:  # only an undo logged before its step may run so
            assert rows[(saga, step)].state in ("done", "dead"), (saga, step)
    for (saga, step), undone in effects.items():
        assert saga in statuses, f"{saga} has effects but the journal does not know it"
        if statuses[saga] == "committed":
            assert undone == 0, f"{saga}/{step} undone although its saga committed"
        elif not undone:  # never silently lost: a dead letter, or reported leaked
            state = rows[(saga, step)].state if (saga, step) in rows else "no record"
            assert state in ("dead", "leaked"), f"{saga}/{step} lost ({statuses[saga]}, {state})"
            assert statuses[saga] == "rollback_incomplete"
    for saga, status in statuses.items():
        if status == "committed":
            assert all((saga, f"step{i}") in effects for i in range(1, STEPS + 1))
    assert {r.saga_id for r in first} <= set(statuses)
    return statuses


def _run_and_kill(tmp_path, rng, *extra: str) -> None:
    if rng.random() < 0.5:  # die exactly at a chosen moment: before/after an effect or undo
        process = child(tmp_path, "--kill-at", str(rng.randint(1, CHECKPOINTS)), *extra)
        process.wait(timeout=60)
    else:  # die whenever the clock says, possibly inside a SQLite commit
        process = child(tmp_path, "--sagas", "80", *extra)  # about half a second of work
        time.sleep(rng.uniform(0.12, 0.45))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    _out, err = process.communicate()
    assert process.returncode in (0, -signal.SIGKILL), err


@pytest.mark.parametrize("trial", range(TRIALS))
def test_crash_trial(tmp_path, trial):
    rng = random.Random(trial)
    kind = KINDS[trial % len(KINDS)]
    extra: list[str] = []
    if kind == "logged after":
        extra = ["--register", rng.choice(["after", "mixed"]), "--undo-fails-every", "3"]
    elif kind != "exact" and kind != "timed":
        extra = ["--register", rng.choice(["before", "after", "mixed"])]
    if kind == "exact":
        process = child(tmp_path, "--kill-at", str(rng.randint(1, CHECKPOINTS)))
        process.wait(timeout=60)
        assert process.returncode in (0, -signal.SIGKILL), process.communicate()[1]
    else:
        _run_and_kill(tmp_path, rng, *extra)
    if not (tmp_path / "journal.db").exists():
        return  # killed before it wrote anything: nothing happened, nothing to undo
    crashes = 1
    if kind == "kill recover":  # recover itself dies at one of its undos
        killer = recover_process(tmp_path, CRASHLAB_KILL_AT=str(rng.randint(1, 6)))
        _out, err = killer.communicate(timeout=60)
        assert killer.returncode in (0, 1, -signal.SIGKILL), err
        crashes = 2
    elif kind == "two recovers":  # both at once: each undo still runs once
        first, second = recover_process(tmp_path), recover_process(tmp_path)
        for process in (first, second):
            _out, err = process.communicate(timeout=60)
            assert process.returncode in (0, 1), err
            assert "Traceback" not in err
    check_world(tmp_path, crashes=crashes)


def test_a_process_killed_while_creating_its_journal_leaves_none_half_made(tmp_path, monkeypatch):
    """The instant that made ``recover`` exit 2 in a "kill recover" trial: the saga process
    died after SQLite made the file, before the schema was in it; recover then refused it
    as "not a rollback-lessons journal". Now a journal exists whole or not at all."""
    import sqlite3

    from rollback_lessons.durable import journal as journal_module

    class Killed(BaseException):
        pass

    real = sqlite3.connect

    class Dying:
        def __init__(self, con):
            self.con = con

        def execute(self, sql, *args):
            if "CREATE TABLE" in sql:
                raise Killed
            return self.con.execute(sql, *args)

        def close(self):
            pass  # (a killed process closes nothing)

    monkeypatch.setattr(journal_module.sqlite3, "connect", lambda *a, **k: Dying(real(*a, **k)))
    with pytest.raises(Killed):
        Journal(tmp_path / "journal.db")
    monkeypatch.undo()
    assert not (tmp_path / "journal.db").exists()
    recovered = subprocess.run(recover_command(tmp_path), capture_output=True, text=True)
    assert recovered.returncode == 2 and "no journal at" in recovered.stderr
    with Journal(tmp_path / "journal.db") as journal:  # the next run makes it whole
        assert journal.sagas() == []


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


def test_a_step_whose_undo_is_logged_after_it_is_reported_leaked_not_lost(tmp_path):
    process = child(tmp_path, "--sagas", "1", "--register", "after", "--pause-at", "after step2")
    assert process.stdout.readline().strip() == "paused at after step2"
    process.kill()  # step2 happened; its undo was to be logged right after: it never was
    process.wait()
    with Journal(tmp_path / "journal.db") as journal:
        [report] = recover(journal, registry)
        assert report.status == "rollback_incomplete"
        assert report.undone == ("step1",)
        assert report.leaked == ("step2",)
        assert "leaked (may have happened, no undo logged) step2" in str(report)
    assert world_report(tmp_path / "world.db")["effects"] == [
        ("saga-1", "step1", 1),
        ("saga-1", "step2", 0),  # the documented window: reported, not silently lost
    ]


def test_recover_never_compensates_across_a_pivot_that_happened(tmp_path):
    process = child(tmp_path, "--sagas", "1", "--pivot", "--pause-at", "before ship")
    assert process.stdout.readline().strip() == "paused at before ship"
    process.kill()  # the email went out; the process dies while shipping
    process.wait()
    with Journal(tmp_path / "journal.db") as journal:
        [report] = recover(journal, registry)
        assert report.status == "halted"
        assert "irreversible step 'email' happened" in report.reason
        assert journal.saga("saga-1").status == "halted"
        assert journal.undos("saga-1")[0].state == "pending"  # the charge is left for a person
    report = world_report(tmp_path / "world.db")
    assert report["undo_calls"] == []  # no refund after the customer was emailed
    assert ("saga-1", "charge", 0) in report["effects"]


def test_a_pivot_that_started_but_may_not_have_happened_also_halts(tmp_path):
    process = child(tmp_path, "--sagas", "1", "--pivot", "--pause-at", "before email")
    assert process.stdout.readline().strip() == "paused at before email"
    process.kill()
    process.wait()
    with Journal(tmp_path / "journal.db") as journal:
        [report] = recover(journal, registry)
        assert report.status == "halted"
        assert "'email' started, and may have happened" in report.reason
    assert world_report(tmp_path / "world.db")["undo_calls"] == []


def _unfinished_sagas(tmp_path, count: int) -> None:
    """``count`` sagas left mid-way by a process that died (its undos all pending): each
    committed, then set back to the file as a kill just before its commit's write leaves it
    (no commit, no ``committed`` event: a saga running with that event in its file is one the
    journal never writes, attack91 F1)."""
    process = child(tmp_path, "--sagas", str(count), "--fail-every", "0")
    process.communicate(timeout=60)
    assert process.returncode == 0
    with Journal(tmp_path / "journal.db") as journal:
        statements = [
            ("UPDATE sagas SET status = 'running', ended = NULL, owner_pid = ?,"
             " owner_started = NULL", (dead,))
            for dead in [dead_pid()]
        ]  # fmt: skip
        journal.write([*statements, ("DELETE FROM events WHERE kind = 'committed'", ())])


def test_two_recovers_at_once_run_each_undo_once_and_neither_crashes(tmp_path):
    _unfinished_sagas(tmp_path, 13)  # 13 sagas x 3 effects = 39 effects to undo
    first = recover_process(tmp_path, CRASHLAB_PAUSE_AT="before undo step2")
    assert first.stdout.readline().strip() == "paused at before undo step2"  # holds its claims
    second = recover_process(tmp_path)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 1, err
    assert "Traceback" not in err
    assert "being recovered by process" in out and "recovered 0 sagas, left 13" in out
    first.stdin.write("\n")
    first.stdin.flush()
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert "recovered 13 sagas, left 0" in out
    calls = world_report(tmp_path / "world.db")["undo_calls"]
    assert len(calls) == 39 and all(changed == 1 for *_, changed in calls)
    check_world(tmp_path, crashes=0)


def test_a_recover_killed_mid_way_is_taken_over_by_the_next(tmp_path):
    _unfinished_sagas(tmp_path, 3)
    killed = recover_process(tmp_path, CRASHLAB_KILL_AT="4")  # dies during its 2nd undo
    killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    with Journal(tmp_path / "journal.db") as journal:
        claimed = [s for s in journal.sagas() if s.claim_pid == killed.pid]
        assert claimed  # its claims outlive it, and are stale now
    statuses = check_world(tmp_path, crashes=1)
    assert set(statuses.values()) == {"rolled_back"}


def test_force_never_takes_over_a_live_owner_and_the_owner_finishes(tmp_path):
    process = child(tmp_path, "--sagas", "2", "--pause-at", "after step2")
    assert process.stdout.readline().strip() == "paused at after step2"
    done = subprocess.run(
        recover_command(tmp_path, "--force"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"its process {process.pid} is still running" in done.stdout
    process.stdin.write("\n")
    process.stdin.flush()
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err  # the owner never crashes on a recover
    assert out.splitlines()[-1].split() == ["committed", "rolled_back"]
    check_world(tmp_path, crashes=0)


def test_a_reused_owner_pid_is_recognised(tmp_path):
    _unfinished_sagas(tmp_path, 1)
    with Journal(tmp_path / "journal.db") as journal:  # the owner's pid now names this process
        journal.write([("UPDATE sagas SET owner_pid = ?, owner_started = 1.0", (os.getpid(),))])
        [report] = recover(journal, registry)
        assert report.status == "rolled_back"


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
    check_world(tmp_path, crashes=0)


@pytest.mark.parametrize(
    "flags",
    [["--dbos", "d.sqlite", "--pivot"], ["--journal", "j.db", "--graph"],
     ["--journal", "j.db", "--at-once"], ["--dbos", "d.sqlite", "--at-once"],
     ["--dbos", "d.sqlite", "--graph", "--steps", "5"], ["--journal", "j.db", "--resume"]],
)  # fmt: skip
def test_crashlab_refuses_a_flag_its_mode_would_drop(tmp_path, flags):
    """A sixth attacker's find: ``--dbos --pivot`` ran the plain saga and ``--journal --graph``
    the list, silently. A flag the mode cannot take is refused before anything runs."""
    flags = [str(tmp_path / f) if f.endswith((".db", ".sqlite")) else f for f in flags]
    done = subprocess.run(
        [sys.executable, "-m", "rollback_lessons.worlds.crashlab", *flags,
         "--world", str(tmp_path / "w.db")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "cannot be used in this mode" in done.stderr
    assert "Traceback" not in done.stderr and not list(tmp_path.iterdir())
