"""attack127 F1: bytes overwritten inside a crashed saga's write-ahead log (``-wal``) were
not refused: SQLite takes a frame that fails its checksum as the log's end and drops the
frames after it, with the sagas they hold. ``recover`` said "recovered 0 sagas" (exit 0) with
effects standing, or marked a saga rolled back with nothing undone, and its checkpoint
deleted the log. Such a log is refused in one line, exit 2, the journal and its log left as
they were; a log a crash left (its last frame torn at most) is read as before."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rollback_lessons.cli import main
from rollback_lessons.durable.journal import Journal, JournalError
from rollback_lessons.durable.walcheck import wal_damage

REGISTRY = """
from pathlib import Path
from rollback_lessons.durable.registry import Registry
registry = Registry()
WORLD = Path(__file__).with_name("world.txt")
def unbook(item, idempotency_key=None):
    with WORLD.open("a") as world:
        world.write(f"undo {item}\\n")
UNBOOK = registry.add("unbook", unbook)
"""

CRASH = """
import os, sys
from rollback_lessons import Saga, Step
from rollback_lessons.durable.journal import Journal
from walreg import UNBOOK, WORLD

def book(item):
    def do(state):
        with WORLD.open("a") as world:
            world.write(f"do {item}\\n")
        if item == "s5":
            os._exit(9)
    return do

steps = [Step(f"s{i}", book(f"s{i}"), UNBOOK.bind(item=f"s{i}"), register="before")
         for i in range(6)]
Saga(steps).run({}, journal=Journal(sys.argv[1]), run_id="r1")
"""


@pytest.fixture(scope="module")
def crashed(tmp_path_factory) -> Path:
    """A journal whose saga's process died in its last step: the log not checkpointed."""
    folder = tmp_path_factory.mktemp("walcrash")
    (folder / "walreg.py").write_text(textwrap.dedent(REGISTRY))
    (folder / "crash.py").write_text(textwrap.dedent(CRASH))
    done = subprocess.run([sys.executable, "crash.py", "j.db"], cwd=folder, capture_output=True)
    assert done.returncode == 9, done.stderr
    assert (folder / "j.db-wal").stat().st_size > 8 * 4096
    return folder


def _copy(crashed: Path, to: Path, at: int | None) -> Path:
    for name in ("walreg.py", "j.db", "j.db-wal"):
        shutil.copy(crashed / name, to / name)
    (to / "world.txt").write_text("")
    if at is not None:
        log = bytearray((to / "j.db-wal").read_bytes())
        log[at : at + 8] = b"garbage!"
        (to / "j.db-wal").write_bytes(bytes(log))
    return to / "j.db"


@pytest.mark.parametrize("where", ["first frame's header", "a page early", "a page midway"])
def test_a_log_damaged_before_later_frames_is_refused_and_kept(
    crashed, tmp_path, monkeypatch, capsys, where
) -> None:
    size = (crashed / "j.db-wal").stat().st_size
    at = {"first frame's header": 40, "a page early": 6000, "a page midway": size // 2}[where]
    path = _copy(crashed, tmp_path, at)
    log = (tmp_path / "j.db-wal").read_bytes()
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "walreg", raising=False)
    assert main(["journal", "show", str(path)]) == 2
    assert main(["recover", str(path), "--registry", "walreg"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all("write-ahead log (-wal)" in line for line in err), err
    assert "fails its checksum" in err[0] and "it was not changed" in err[0]
    assert (tmp_path / "world.txt").read_text() == ""  # (nothing undone)
    assert (tmp_path / "j.db-wal").read_bytes() == log  # (kept: not checkpointed away)
    with pytest.raises(JournalError, match="write-ahead log"):  # (whoever opens it: a
        Journal(path)  # program's own open would drop the sagas and delete the log, 128 F3)
    assert (tmp_path / "j.db-wal").read_bytes() == log


def test_a_log_a_crash_left_is_read_whole(crashed, tmp_path, monkeypatch, capsys) -> None:
    path = _copy(crashed, tmp_path, None)
    assert wal_damage(path) is None
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "walreg", raising=False)
    assert main(["recover", str(path), "--registry", "walreg"]) == 0
    undone = (tmp_path / "world.txt").read_text().split("\n")
    assert undone[:-1] == [f"undo s{i}" for i in range(5, -1, -1)]


def test_a_torn_last_frame_is_a_crash_not_damage(crashed, tmp_path) -> None:
    """Only the last frames can be torn by a crash: no later frame of the log follows."""
    size = (crashed / "j.db-wal").stat().st_size
    path = _copy(crashed, tmp_path, size - 100)
    assert wal_damage(path) is None


def test_frames_a_write_cut_short_left_are_no_damage(tmp_path) -> None:
    """attack128 F1, F2: a write cut short (a full disk, a kill) leaves its frames; the next
    commit writes over their start only. They hold no commit: read as SQLite reads them."""
    import sqlite3

    path = tmp_path / "x.db"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("PRAGMA cache_size=5")  # (a big transaction spills its frames to the log)
    con.execute("CREATE TABLE t(a)")
    con.execute("BEGIN")
    for _ in range(100):
        con.execute("INSERT INTO t VALUES (?)", ("x" * 3000,))
    spilled = (tmp_path / "x.db-wal").stat().st_size
    con.execute("ROLLBACK")  # (as a write that failed)
    con.execute("INSERT INTO t VALUES ('small')")  # (over the first of them)
    copy = tmp_path / "copy.db"
    shutil.copy(path, copy)
    shutil.copy(tmp_path / "x.db-wal", tmp_path / "copy.db-wal")
    con.close()
    assert (tmp_path / "copy.db-wal").stat().st_size == spilled > 100 * 4096
    assert wal_damage(copy) is None
    reader = sqlite3.connect(copy)
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (1,)
    reader.close()


def test_a_fifo_at_the_log_s_path_is_refused_not_waited_on(crashed, tmp_path) -> None:
    """attack128 F9: opened for reading, a FIFO there waited for ever."""
    import os

    path = _copy(crashed, tmp_path, None)
    (tmp_path / "j.db-wal").unlink()
    os.mkfifo(tmp_path / "j.db-wal")
    assert wal_damage(path) == "its write-ahead log (-wal) is not a regular file"


def _logged(
    folder: Path, name: str, source: Path | None, rows: int, size: int, keep: str = "base"
) -> bytes:
    """The log after ``rows`` rows of ``size`` bytes, one transaction, on a copy of
    ``source`` (and its log) or a new file; read before the connection closes (its close
    would fold the log into the file)."""
    import sqlite3

    path = folder / f"{name}.db"
    if source is not None:
        shutil.copy(source, path)
        shutil.copy(source.with_name(source.name + "-wal"), folder / f"{name}.db-wal")
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("CREATE TABLE IF NOT EXISTS t(a)")
    con.execute("BEGIN")
    for _ in range(rows):
        con.execute("INSERT INTO t VALUES (?)", ("x" * size,))
    con.execute("COMMIT")
    log = (folder / f"{name}.db-wal").read_bytes()
    if keep:  # (kept as it is, for the copies)
        shutil.copy(path, folder / f"{keep}.db")
        (folder / f"{keep}.db-wal").write_bytes(log)
    con.close()
    return log


def test_a_commit_killed_before_it_counted_then_written_over_is_no_damage(tmp_path) -> None:
    """attack129 F1: a writer killed in its commit, its commit frame written but not yet
    counted (another process had the journal open), whose start the other's next commit
    wrote over: one commit among the frames left, after a commit. Read as SQLite reads it."""
    import sqlite3

    _logged(tmp_path, "first", None, 3, 100)
    killed = _logged(tmp_path, "killed", tmp_path / "base.db", 40, 3000, "")  # (many frames)
    over = _logged(tmp_path, "over", tmp_path / "base.db", 1, 10, "")  # (one frame)
    assert len(killed) > len(over)
    shutil.copy(tmp_path / "base.db", tmp_path / "mixed.db")
    (tmp_path / "mixed.db-wal").write_bytes(over + killed[len(over) :])
    assert wal_damage(tmp_path / "mixed.db") is None
    reader = sqlite3.connect(tmp_path / "mixed.db")
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (4,)  # (the killed: dropped)
    reader.close()
    # (the same bytes, one frame inside the first transaction damaged: refused)
    damaged = bytearray(over + killed[len(over) :])
    damaged[32 + 24 + 100 : 32 + 24 + 108] = b"garbage!"
    (tmp_path / "mixed.db-wal").write_bytes(bytes(damaged))
    assert wal_damage(tmp_path / "mixed.db") is not None


def test_a_log_without_its_journal_is_refused(crashed, tmp_path) -> None:
    """attack129 F2: the journal file emptied (or moved) with its log left: a program's
    ``Journal(path)`` took it for a new journal, and SQLite deleted the log and its sagas."""
    path = _copy(crashed, tmp_path, None)
    path.write_bytes(b"")
    with pytest.raises(JournalError, match="without the journal's file"):
        Journal(path)
    assert (tmp_path / "j.db-wal").stat().st_size > 0
    path.unlink()
    with pytest.raises(JournalError, match="without the journal's file"):
        Journal(path)


def test_a_write_cut_short_over_what_a_killed_commit_left_is_no_damage(tmp_path) -> None:
    """attack130 F1: after a killed commit's leftover (its commit frame written, not yet
    counted) another writer saved a step, then was killed in a big write that stopped
    partway over that leftover: two leftovers, one commit at most in each."""
    _logged(tmp_path, "first", None, 3, 100)
    killed = _logged(tmp_path, "killed", tmp_path / "base.db", 60, 3000, "")
    over = _logged(tmp_path, "over", tmp_path / "base.db", 1, 10, "after")
    cut = _logged(tmp_path, "cut", tmp_path / "after.db", 20, 3000, "")
    frame = 24 + 4096
    cut = cut[: len(over) + 10 * frame]  # (its first ten frames: no commit among them)
    assert len(killed) > len(cut) > len(over)
    shutil.copy(tmp_path / "base.db", tmp_path / "mixed.db")
    (tmp_path / "mixed.db-wal").write_bytes(cut + killed[len(cut) :])
    assert wal_damage(tmp_path / "mixed.db") is None


def test_a_journal_opened_by_a_symbolic_link_has_its_real_file_s_log_checked(
    crashed, tmp_path
) -> None:
    """attack130 F3: the log looked for beside the link; SQLite uses the real file's."""
    size = (crashed / "j.db-wal").stat().st_size
    real = _copy(crashed, tmp_path, size // 2)
    (tmp_path / "link.db").symlink_to(real)
    with pytest.raises(JournalError, match="write-ahead log"):
        Journal(tmp_path / "link.db")
