"""An operator's mistakes at the terminal: a wrong flag or a bad file never finalises, loses
or doubles work, and every error is one clear line with a non-zero exit, never a traceback."""

import os
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import orphan

from rollback_lessons import Saga, Status, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry, compensation
from rollback_lessons.worlds.crashlab import world_report


def cli(*args: str, cwd=None, env=None, user=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rollback_lessons", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        user=user,
        timeout=120,
    )


def one_clear_line(done: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("rollback-lessons: ")
    return lines[0]


CRASHLAB = "rollback_lessons.worlds.crashlab"


@pytest.mark.parametrize(
    ("module", "says"),
    [
        ("json", "module 'json' has no `registry`"),
        ("nosuchmodule", "no module named 'nosuchmodule'"),
        ("rollback_lessons.worlds.nosuch", "no module named 'rollback_lessons.worlds.nosuch'"),
    ],
)
def test_a_wrong_registry_module_finalises_nothing(crashed, module, says):
    journal, world = crashed
    done = cli("recover", str(journal), "--registry", module)
    assert done.returncode == 2
    assert says in one_clear_line(done)
    with Journal(journal) as j:
        assert [s.status for s in j.sagas()] == ["running"]
        assert {u.state for u in j.undos("saga-1")} == {"pending"}
    ok = cli("recover", str(journal), "--registry", CRASHLAB)  # the right one still can
    assert ok.returncode == 0, ok.stderr
    assert "recovered 1 saga, left 0" in ok.stdout
    assert world_report(world)["undo_applied"] == [("saga-1", "step1"), ("saga-1", "step2")]


def test_a_registry_without_the_names_leaves_the_saga_for_the_right_one(crashed, tmp_path):
    journal, world = crashed
    (tmp_path / "other_registry.py").write_text(
        "from rollback_lessons import Registry\nregistry = Registry()\n"
    )
    done = cli("recover", str(journal), "--registry", "other_registry", env={
        "PYTHONPATH": str(tmp_path)})  # fmt: skip
    assert done.returncode == 1
    assert "no compensation named 'crashlab.undo_effect'" in done.stdout
    assert "1 saga left unfinished" in one_clear_line(done)
    assert world_report(world)["undo_calls"] == []
    assert cli("recover", str(journal), "--registry", CRASHLAB).returncode == 0
    assert len(world_report(world)["undo_applied"]) == 2


def test_an_empty_or_missing_file_is_refused_and_stays_as_it_was(tmp_path):
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    for args in (("journal", "show", str(empty)), ("recover", str(empty), "--registry", CRASHLAB)):
        done = cli(*args)
        assert done.returncode == 2
        assert "an empty file, not a journal" in one_clear_line(done)
    assert empty.read_bytes() == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]
    done = cli("journal", "show", str(tmp_path / "nope.db"))
    assert "no journal at" in one_clear_line(done)
    assert not (tmp_path / "nope.db").exists()


def _corrupt_a_page(path) -> None:
    """Overwrite the last pages (records); the header, schema and meta stay readable. (The
    -wal written back here by hand first, which the journal is told, as its refusal of a
    file found without one says: ``writers``.)"""
    con = sqlite3.connect(path)
    con.execute("UPDATE sagas SET writer = NULL")
    con.execute("DELETE FROM meta WHERE key LIKE 'writer %'")
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    pages = con.execute("PRAGMA page_count").fetchone()[0]
    con.close()
    data = bytearray(path.read_bytes())
    assert pages >= 3
    for page in range(pages - 1, pages + 1):  # the last two: records, not the schema or meta
        start = (page - 1) * page_size
        data[start + 8 : start + page_size - 8] = b"\xff" * (page_size - 16)
    path.write_bytes(bytes(data))


def test_a_corrupt_journal_gives_one_line_and_no_undo_runs(crashed):
    journal, world = crashed
    _corrupt_a_page(journal)
    for args in (("journal", "show", str(journal)), ("recover", str(journal), "--registry",
                                                      CRASHLAB)):  # fmt: skip
        done = cli(*args)
        assert done.returncode == 2
        line = one_clear_line(done)
        assert "damaged" in line or "malformed" in line or "not a readable journal" in line
    assert world_report(world)["undo_calls"] == []  # nothing ran and went unrecorded


def test_a_locked_journal_is_one_line_after_the_wait(crashed):
    journal, world = crashed
    holder = sqlite3.connect(journal, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        done = cli("recover", str(journal), "--registry", CRASHLAB, "--wait", "0.2")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert done.returncode == 2
    assert "locked" in one_clear_line(done)
    assert world_report(world)["undo_calls"] == []


def _read_only(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the CLI with ``folder`` read-only: by its modes, or (root writes anything) as a
    read-only bind mount in a private mount namespace."""
    command = [sys.executable, "-m", "rollback_lessons", *args]
    if os.geteuid() != 0:
        os.chmod(folder, 0o555)
        (folder / "j.db").chmod(0o444)
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=120)
        finally:
            os.chmod(folder, 0o755)
    script = (
        f"mount --bind {shlex.quote(str(folder))} {shlex.quote(str(folder))} && "
        f"mount -o remount,ro,bind {shlex.quote(str(folder))} && exec {shlex.join(command)}"
    )
    return subprocess.run(
        ["unshare", "--mount", "sh", "-c", script], capture_output=True, text=True, timeout=120
    )


def test_a_read_only_journal_is_shown_but_not_recovered(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    with Journal(folder / "j.db") as j:
        j.start("x", "s1").flush()
    shown = _read_only(folder, "journal", "show", str(folder / "j.db"))
    recovering = _read_only(folder, "recover", str(folder / "j.db"), "--registry", CRASHLAB)
    assert shown.returncode == 0, shown.stderr
    assert "s1" in shown.stdout
    assert recovering.returncode == 2, recovering.stderr
    assert "read-only" in one_clear_line(recovering)


def test_a_reused_owner_pid_no_longer_hides_a_saga(tmp_path):
    registry_ = Registry()
    ran = []
    undo = compensation("op.undo", registry_)(lambda idempotency_key=None: ran.append(1))
    with Journal(tmp_path / "j.db") as journal:
        journal.start("x", "s1").register("a", undo.bind())
        orphan(tmp_path / "j.db", "s1")
        journal.write([("UPDATE sagas SET owner_pid = ?, owner_started = -5", (os.getpid(),))])
        [done] = recover(journal, registry_)
    assert done.status == "rolled_back" and ran == [1]


def test_a_take_over_never_crashes_the_owner_and_it_undoes_nothing(tmp_path):
    """A saga claimed by another host's recover (--force there): the owner neither writes
    nor runs an undo (the new holder does), never crashes, and says so."""
    undone = []
    undo = compensation("op.undo2", Registry())(
        lambda step, idempotency_key=None: undone.append(step)
    )
    path = tmp_path / "j.db"

    def taken_over(state):
        con = sqlite3.connect(path)
        con.execute(
            "UPDATE sagas SET claim_pid = 1, claim_host = 'elsewhere', claim_gen = claim_gen + 1"
        )
        con.commit()
        con.close()

    saga = Saga(
        [
            Step("a", lambda s: None, undo.bind(step="a")),
            Step("grab", taken_over),
            Step("b", lambda s: None, undo.bind(step="b"), register="before"),
        ]
    )
    with Journal(path) as journal:
        outcome = saga.run({}, journal=journal, run_id="s1")
        # b never begun; a's undo was written when a returned, before grab began (issue
        # 25, attack 06): the new holder finds it pending and undoes it
        assert [u.state for u in journal.undos("s1")] == ["pending"]
    # found when grab returned (the owner checks its claim after each step): b never began
    assert outcome.failed_step is None and outcome.completed == ("a", "grab")
    assert "step 'grab' returned after" in str(outcome.error)
    assert "taken over by process 1 on elsewhere" in repr(outcome.error)
    assert undone == [] and outcome.status is Status.HALTED
    assert outcome.pending == ("a",)
