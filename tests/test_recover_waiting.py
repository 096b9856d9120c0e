"""``recover`` names every saga the journal shows waiting for a person, not only those it
ended itself (attack12 B9: a saga halted for a person, its process gone, gave "recovered 0
sagas, left 0" and exit 0), and a Ctrl-C in a wait to retry after a step's effect leaves
that effect reported in the journal (attack12 B2, with a journal)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import textwrap

import pytest
from test_attempt_effect import WaitClock

from rollback_lessons import Kind, RetryPolicy, Saga, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover

REGISTRY = textwrap.dedent(
    """
    import os, sqlite3
    from rollback_lessons import Registry, compensation

    registry = Registry()

    def world():
        db = sqlite3.connect(os.environ["H13_WORLD"], isolation_level=None)
        db.execute("create table if not exists fx(k text primary key)")
        return db

    def do(k):
        def act(state):
            world().execute("insert or ignore into fx values (?)", (k,))
        return act

    @compensation("h13_rm", registry)
    def rm(k, idempotency_key=None):
        world().execute("delete from fx where k=?", (k,))
    """
)


@pytest.fixture
def reg(tmp_path, monkeypatch):
    """A registry module in tmp_path (importable by the CLI's process too) and its world."""
    (tmp_path / "h13reg.py").write_text(REGISTRY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("H13_WORLD", str(tmp_path / "w.db"))
    monkeypatch.delitem(sys.modules, "h13reg", raising=False)
    import h13reg

    return h13reg


def cli_recover(tmp_path, path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", "rollback_lessons", "recover", str(path), "--registry", "h13reg"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def effects(reg) -> list[str]:
    return sorted(k for (k,) in reg.world().execute("select k from fx"))


@pytest.mark.parametrize("register", ["before", "after"])
def test_a_ctrl_c_in_the_wait_after_an_effect_is_reported_in_the_journal_and_by_recover(
    tmp_path, reg, register
):
    """attack12 B2 (ctrlc_retry_wait): journal show said rolled_back and recover "recovered
    0" (exit 0) while s0's effect stayed. Now the run's notes name it, the journal keeps the
    saga rollback_incomplete with s0 leaked, and recover names it, exit 1; with its undo
    logged before it, the run undoes it before the Ctrl-C goes on."""
    saga = Saga(
        [Step("s0", reg.do("s0"), reg.rm.bind(k="s0"), register=register,
              retry=RetryPolicy(max_attempts=3, initial_delay=1.0)),
         Step("s1", reg.do("s1"), reg.rm.bind(k="s1"))],
        name="kwj",
    )  # fmt: skip
    path, clock = tmp_path / "j.db", WaitClock(1, ctrl_c=True)
    with Journal(path) as journal, pytest.raises(KeyboardInterrupt) as caught:
        saga.run({}, inject={"s0": "fail_after_effect"}, journal=journal, run_id="r1",
                 clock=clock, on_event=clock.on_event)  # fmt: skip
    if register == "before":
        with Journal(path, create=False) as journal:
            assert journal.saga("r1").status == "rolled_back" and journal.leaked("r1") == []
        assert effects(reg) == [] and cli_recover(tmp_path, path).returncode == 0
        return
    assert any("s0" in note for note in caught.value.__notes__)
    with Journal(path, create=False) as journal:
        assert journal.saga("r1").status == "rollback_incomplete"
        assert journal.leaked("r1") == ["s0"]
    done = cli_recover(tmp_path, path)
    assert done.returncode == 1, done.stderr
    assert "r1 (kwj): rollback_incomplete earlier (leaked s0)" in done.stdout
    assert len(done.stderr.splitlines()) == 1 and "journal show" in done.stderr
    assert effects(reg) == ["s0"]  # (it stands: reported, not lost)


def ended_for_a_person(reg, how: str) -> tuple[Saga, dict]:
    """A journalled run that ends needing a person: ``halted`` (a retriable step after the
    pivot fails: attack12's recover_silent_halted), with a ``dead`` letter, or ``leaked``."""
    if how == "halted":
        steps = [Step("c", reg.do("c"), reg.rm.bind(k="c")),
                 Step("p", reg.do("p"), kind=Kind.PIVOT),
                 Step("r", reg.do("r"), kind=Kind.RETRIABLE)]  # fmt: skip
        return Saga(steps, name="trip"), {"r": "fail"}
    steps = [Step("a", reg.do("a"), reg.rm.bind(k="a")), Step("b", reg.do("b"), reg.rm.bind(k="b"))]
    faults = {"dead": {"a": "undo_fails", "b": "fail"}, "leaked": {"b": "fail_after_effect"},
              "policy": {"a": "undo_fails", "b": "fail"}}  # fmt: skip
    return Saga(steps, name="trip", policy="halt" if how == "policy" else "continue"), faults[how]


@pytest.mark.parametrize(
    ("how", "said"),
    [("halted", "t1 (trip): halted earlier (failed after an irreversible step; forward r (after "
                "the pivot: finish by hand); undos left, not to run (its pivot happened) c); "
                "waits"),
     # which undo its policy halted at, its error, what is pending (attack40 F1, attack41 F1)
     ("policy", "t1 (trip): halted earlier (the undo of a failed (InjectedFault("),
     ("policy", "and the undo policy halts for a person; pending a); waits"),
     ("dead", "t1 (trip): rollback_incomplete earlier (dead letters a); waits"),
     ("leaked", "t1 (trip): rollback_incomplete earlier (leaked b); waits")],
)  # fmt: skip
def test_recover_names_a_saga_ended_earlier_for_a_person_every_time(tmp_path, reg, how, said):
    saga, faults = ended_for_a_person(reg, how)
    (tmp_path / "my journal; rm x").mkdir()  # (the hint's path, quoted for a shell: attack41)
    path = tmp_path / "my journal; rm x" / "j.db"
    with Journal(path) as journal:
        outcome = saga.run({}, inject=faults, journal=journal, run_id="t1")
        assert outcome.status.value == journal.saga("t1").status != "committed"
        saga.run({}, journal=journal, run_id="t2")  # committed: nobody waits for it
        report = recover(journal, reg.registry)
    assert len(report) == 0 and report.skipped == ()
    assert [w.saga_id for w in report.waiting] == ["t1"]
    assert str(report) == "recovered 0 sagas, left 0"  # (what this recover did)
    for _ in range(2):  # until a person settles it (test_settle.py), every recover names it
        done = cli_recover(tmp_path, path)
        assert done.returncode == 1, done.stderr
        assert said in done.stdout and "t2" not in done.stdout
        assert done.stderr.startswith("rollback-lessons: 1 saga ended earlier still waits")
        assert len(done.stderr.splitlines()) == 1
        assert f"journal show {shlex.quote(str(path))}`" in done.stderr


def test_recover_is_quiet_and_exits_0_when_nothing_waits(tmp_path, reg):
    saga, _ = ended_for_a_person(reg, "dead")
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        saga.run({}, journal=journal, run_id="t1")
        saga.run({}, inject={"b": "fail"}, journal=journal, run_id="t2")  # rolled_back
    done = cli_recover(tmp_path, path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "recovered 0 sagas, left 0\n", "")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_settle_whose_line_cannot_be_printed_says_the_saga_is_settled(tmp_path, reg):
    """attack41 F3: `journal settle > /dev/full` settled the saga, then said only "cannot
    write to standard output" (exit 2): the operator read a failure and tried again."""
    saga, faults = ended_for_a_person(reg, "policy")
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        saga.run({}, inject=faults, journal=journal, run_id="t1")
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "rollback_lessons", "journal", "settle", str(path), "t1",
             "--note", "undone by hand"], stdout=full, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "cannot write to standard output" in done.stderr
    assert done.stderr.rstrip().endswith(f"; the saga is settled ({path}: journal show)")
    with Journal(path, readonly=True) as journal:
        assert "settled" in journal.table()


@pytest.mark.parametrize("name", ["new\nline.db", "bad\udcff.db", "tab\there 'q'.db"])
def test_the_journal_show_hint_pasted_into_a_shell_names_the_same_file(tmp_path, reg, name):
    """attack42 F9: a journal named with a line break or a byte that is not UTF-8 got a hint
    a shell does not take back (``'new\\nline.db'``): "no journal at new\\nline.db"."""
    import re

    saga, faults = ended_for_a_person(reg, "dead")
    path = os.path.join(os.fsencode(tmp_path), os.fsencode(name))
    with Journal(os.fsdecode(path)) as journal:
        saga.run({}, inject=faults, journal=journal, run_id="t1")
    done = cli_recover(tmp_path, os.fsdecode(path))
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done.stderr
    hint = re.search(r"`rollback-lessons (journal show .*)` lists (?:it|them)", done.stderr)
    assert hint is not None, done.stderr
    shown = subprocess.run(
        ["bash", "-c", f"exec {sys.executable} -m rollback_lessons {hint.group(1)}"],
        capture_output=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert b"t1" in shown.stdout and b"rollback_incomplete" in shown.stdout
