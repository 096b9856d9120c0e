"""A journal made on a disk with no room left for SQLite's ``-wal`` and ``-shm`` files is a
``JournalError`` in one line, never a raw ``sqlite3.OperationalError`` out of
``Journal.__init__`` (attack12's minor: on a 1 MiB tmpfs filled to within 40-60 KiB,
``PRAGMA journal_mode=WAL`` failed with "disk I/O error" once the journal had been made)."""

from __future__ import annotations

import sqlite3

import pytest

from rollback_lessons import Status
from rollback_lessons.cli import main
from rollback_lessons.durable import journal as journal_module
from rollback_lessons.durable.journal import Journal, JournalError
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry


@pytest.fixture
def no_room_for_the_wal(monkeypatch):
    """The connection ``Journal`` opens to write (``mode=rw``) fails to switch to WAL, as
    SQLite does when the ``-shm`` file cannot be made (a full disk); creating a journal
    (``mode=rwc``) and reading one (``mode=ro``) still work. The connections made, kept;
    the disk fills when the test says (``filled``)."""
    real = sqlite3.connect

    class Full:
        def __init__(self, con):
            self.con, self.closed = con, False

        def execute(self, sql, *args):
            if sql == "PRAGMA journal_mode=WAL":
                raise sqlite3.OperationalError("disk I/O error")
            return self.con.execute(sql, *args)

        def close(self):
            self.closed = True
            self.con.close()

        def __getattr__(self, name):  # (the rest, the connection's: a journal's end reads
            return getattr(self.con, name)  # ``in_transaction``, raised in its finalizer)

    class Disk(list):
        filled = False

    disk = Disk()

    def connect(database, *args, **kwargs):
        con = real(database, *args, **kwargs)
        if not disk.filled or not str(database).endswith("?mode=rw"):
            return con
        disk.append(Full(con))
        return disk[-1]

    monkeypatch.setattr(journal_module.sqlite3, "connect", connect)
    return disk


@pytest.mark.parametrize("new", [True, False])
def test_a_journal_that_cannot_be_opened_for_want_of_room_is_one_typed_line(
    tmp_path, no_room_for_the_wal, new
):
    path = tmp_path / "j.db"
    if not new:  # an existing journal, opened again on a disk that filled meanwhile
        Journal(path).close()
    no_room_for_the_wal.filled = True
    with pytest.raises(
        JournalError, match=r"cannot open the journal .*disk I/O error; a full disk\?"
    ) as caught:
        Journal(path, create=new)
    assert len(str(caught.value).splitlines()) == 1
    assert no_room_for_the_wal and all(con.closed for con in no_room_for_the_wal)


def test_recover_on_a_disk_with_no_room_says_so_in_one_line(tmp_path, no_room_for_the_wal, capsys):
    Journal(tmp_path / "j.db").close()
    no_room_for_the_wal.filled = True
    assert main(["recover", str(tmp_path / "j.db"), "--registry", "json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rollback-lessons: cannot open the journal") and err.count("\n") == 1


def test_a_file_size_limit_is_named_not_only_a_disk_io_error(tmp_path):
    """attack154 F1: under ``ulimit -f`` SQLite's writes past the limit fail (EFBIG) with
    "disk I/O error", which named neither the limit nor room: the line names the limit."""
    import resource
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from rollback_lessons.durable.journal import Journal, JournalError\n"
        "try:\n"
        "    Journal(sys.argv[1])\n"
        "except JournalError as exc:\n"
        "    print(exc)\n"
    )

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))

    path = tmp_path / "small.db"
    done = subprocess.run([sys.executable, "-c", code, str(path)], preexec_fn=limited,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.stdout.strip() == (
        f"cannot create the journal {path}: disk I/O error; this process may write no file "
        "past 8192 bytes (its file-size limit, ulimit -f), and SQLite's files for small.db "
        "may need more: raise it and run it again"
    ), done.stderr
    assert list(tmp_path.iterdir()) == []  # (nothing left behind)


def test_a_file_size_limit_far_above_the_journals_files_is_not_blamed(tmp_path):
    """attack211 F2: under any ``ulimit -f`` (1 GiB, for files of 100 KB), a "disk I/O
    error" of another cause (a -wal deleted under a running saga) said "raise it and run it
    again", which could change nothing. The limit is named only when one of the journal's
    files is within one transaction's writes of it."""
    import resource
    import subprocess
    import sys

    from rollback_lessons.durable.journal import Journal

    with Journal(tmp_path / "j.db"):
        pass
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from rollback_lessons.durable.room import no_room\n"
        "print(repr(no_room(Path(sys.argv[1]), 'disk I/O error')))\n"
    )
    said = {}
    for limit in (2**30, 8192):

        def limited(limit: int = limit) -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        command = [sys.executable, "-c", code, str(tmp_path / "j.db")]
        done = subprocess.run(
            command, preexec_fn=limited, capture_output=True, text=True, timeout=60
        )
        said[limit] = done.stdout.strip()
    assert said[2**30] == "''", said
    assert "past 8192 bytes (its file-size limit, ulimit -f)" in said[8192], said


RUN_UNDER_A_LIMIT = """
import os, resource, signal, sys
from rollback_lessons import Registry, Saga, Step
from rollback_lessons.durable.journal import Journal, JournalError

undo = Registry().add("u", lambda **k: None)
journal = Journal(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # (EFBIG, as SQLite's writes meet it)
limit = os.path.getsize(sys.argv[1]) + int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
saga = Saga([Step(n, lambda s: None, undo.bind(n=n)) for n in "abcdefgh"], name="s")
try:
    print(*saga.run({}, journal=journal, run_id="r").notes, sep="\\n")
except JournalError as exc:
    print(exc)
"""


@pytest.mark.parametrize("room", [0, 8000], ids=["its first write", "a later write"])
def test_a_runs_journal_write_past_a_file_size_limit_names_the_limit(tmp_path, room):
    """attack253 F1: a run's own journal write refused by ``ulimit -f`` said only "disk I/O
    error" (its first write's JournalError, a later one's note): the limit is named, as
    recover and opening a journal name it."""
    import subprocess
    import sys

    path = tmp_path / "j.db"
    Journal(path).close()
    done = subprocess.run([sys.executable, "-c", RUN_UNDER_A_LIMIT, str(path), str(room)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert "disk I/O error" in done.stdout, (done.stdout, done.stderr)
    said = [line for line in done.stdout.splitlines() if "disk I/O error" in line]
    assert all("(its file-size limit, ulimit -f)" in line for line in said), said
    assert all(line.count("ulimit -f") == 1 for line in said), said


CRASH_IN_B = """
import os, sys
from rollback_lessons import Registry, Saga, Step
from rollback_lessons.durable.journal import Journal

undo = Registry().add("full_u", lambda **k: None)
def crash(state):
    os._exit(9)  # (killed in b: a's undo pending, the -wal and its mark left)
Saga([Step("a", lambda s: None, undo.bind(n="a")), Step("b", crash)], name="s").run(
    {}, journal=Journal(sys.argv[1]), run_id="r")
"""
RECOVER_UNDER_A_LIMIT = """
import os, resource, sys
from rollback_lessons import Registry
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover

reg = Registry()
reg.add("full_u", lambda **k: print("undo", k["n"]))
path = sys.argv[1]
limit = max(os.path.getsize(path), os.path.getsize(path + "-wal"))  # (no file may grow)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
try:
    with Journal(path) as journal:
        print(recover(journal, reg))
except Exception as exc:
    print(type(exc).__name__, exc)
"""


def test_a_recover_out_of_room_after_a_crash_leaves_the_journal_to_the_next(tmp_path):
    """attack265 F1: a recover run after a crash with no room to write (a full disk, ``ulimit
    -f``) failed in one line, rightly, but its close, the last, wrote the -wal back into a
    file that still named the dead owner's mark it could not take away: every recover and
    ``journal show`` after refused it as a copy alone, even with room again. Now a close
    that cannot take marks away for want of room leaves its connection open: the -wal stays
    beside the file, as after the crash, and the next recover (room again) undoes a."""
    import subprocess
    import sys

    path = tmp_path / "j.db"
    crashed = subprocess.run([sys.executable, "-c", CRASH_IN_B, str(path)], timeout=60)
    assert crashed.returncode == 9 and (tmp_path / "j.db-wal").exists()
    done = subprocess.run([sys.executable, "-c", RECOVER_UNDER_A_LIMIT, str(path)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert "disk I/O error" in done.stdout and "undo" not in done.stdout, done
    assert "file-size limit, ulimit -f" in done.stdout, done  # (the claim's error named)
    assert (tmp_path / "j.db-wal").exists()  # (as the crash left it)
    calls: list[str] = []
    reg = Registry()
    reg.add("full_u", lambda **k: calls.append(k["n"]))
    with Journal(path) as journal:
        report = recover(journal, reg)
    back = report.recovered[0]  # (b, killed in its call with no undo, may have happened)
    assert calls == ["a"] and back.status is Status.ROLLBACK_INCOMPLETE, report
    assert back.leaked == ("b",), back


CLOSE_OUT_OF_ROOM = """
import resource, sqlite3, sys
from rollback_lessons import Registry, Saga, Step
from rollback_lessons.durable.journal import Journal

path = sys.argv[1]
undo = Registry().add("full_v", lambda **k: None)
journal = Journal(path)
journal.write([("INSERT OR IGNORE INTO meta (key, value) VALUES ('a note', 'kept')", ())])
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)  # (a write of no saga: marked)
resource.setrlimit(resource.RLIMIT_FSIZE, (1, hard))  # (no byte past the first)
journal.close()  # (its mark cannot go: no room)
marks = "SELECT count(*) FROM meta WHERE key LIKE 'writer %'"
print(sqlite3.connect(path).execute(marks).fetchone()[0], flush=True)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # (room back)
with Journal(path) as again:
    Saga([Step("a", lambda s: None, undo.bind(n="a"))], name="s").run({}, journal=again)
print("ready", flush=True)
sys.stdin.readline()  # (alive, idle, every saga ended, as the test takes its backup)
"""


def test_a_mark_a_full_disk_kept_goes_with_the_processs_next_write(tmp_path):
    """attack267 F1: a service whose journal's close met a full disk kept that mark (its
    connection left open, attack265 F1) for as long as it lived: every ``.backup`` taken
    between its sagas, room back, was refused ("a saga of it may be running"). The next
    write of a journal of that file in the process takes it away."""
    import sqlite3
    import subprocess
    import sys

    path = tmp_path / "j.db"
    Journal(path).close()
    child = subprocess.Popen([sys.executable, "-c", CLOSE_OUT_OF_ROOM, str(path)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "1"  # (kept)
        assert child.stdout.readline().strip() == "ready"
        with sqlite3.connect(path) as source, sqlite3.connect(tmp_path / "copy.db") as copy:
            source.backup(copy)
        source.close()
        copy.close()
        with Journal(tmp_path / "copy.db", readonly=True) as read:
            assert "committed" in read.table()
    finally:
        child.communicate("go\n", timeout=60)
    assert child.returncode == 0


FULL_FOR_A_MOMENT = """
import os, resource, sys
from rollback_lessons import Registry, Saga, Step
from rollback_lessons.durable.journal import Journal

path, room_back = sys.argv[1], sys.argv[2]
INF = resource.RLIM_INFINITY
undo = Registry().add("moment_u", lambda **k: print("undone", k["n"], flush=True))
def fill(state):  # (no file of the journal's may grow from here: the disk is full)
    size = max(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, INF))
def fail(state):
    raise RuntimeError("declined")
steps = [Step("a", lambda s: None, undo.bind(n="a")), Step("b", fill, undo.bind(n="b")),
         Step("c", fail)]
journal = Journal(path)
Saga([Step("w", lambda s: None)], name="w").run({}, journal=journal, run_id="w")
out = Saga(steps, name="s").run({}, journal=journal, run_id="s")
print(out.status, "owed" if "once that is written" in out.notes[-1] else out.notes, flush=True)
resource.setrlimit(resource.RLIMIT_FSIZE, (INF, INF))  # (room again)
if room_back == "next write":
    Saga([Step("x", lambda s: None)], name="x").run({}, journal=journal, run_id="x")
    print(journal.saga("s").status, flush=True)
journal.close()
"""


@pytest.mark.parametrize("room_back", ["next write", "close"])
def test_a_disk_full_for_a_moment_leaves_the_saga_as_it_ran(tmp_path, room_back):
    """attack270 F1: a disk full only while one saga rolled back (its last batch failed
    three times), then room again: the run's end was dropped for good, the saga left
    ``running`` for the process's life (every backup refused) and after it, recover ran
    the undo of 'a' again and named 'b', undone, leaked. The journal writes them with its
    next write, or as it closes: recover then finds the saga rolled back, nothing to do."""
    import subprocess
    import sys

    path = tmp_path / "j.db"
    ran = subprocess.run([sys.executable, "-c", FULL_FOR_A_MOMENT, str(path), room_back],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    said = ran.stdout.split("\n")
    assert said[:3] == ["undone b", "undone a", "rolled_back owed"], ran.stdout
    if room_back == "next write":
        assert said[3] == "rolled_back", ran.stdout  # (written before the next saga's)
    with Journal(path, readonly=True) as read:
        assert read.saga("s").status == "rolled_back"
        assert {row.step: row.state for row in read.undos("s")} == {"a": "done", "b": "done"}
    calls: list[str] = []
    reg = Registry()
    reg.add("moment_u", lambda **k: calls.append(k["n"]))
    with Journal(path) as journal:
        report = recover(journal, reg)
    assert calls == [] and not report.recovered and not report.skipped, report


GROWN_LOG = """
import os, sqlite3, sys
from rollback_lessons import Registry, Saga, Step
from rollback_lessons.durable.journal import Journal

path = sys.argv[1]
journal = Journal(path)
saga = Saga([Step("a", lambda s: None, Registry().add("u", lambda: None).bind())])
saga.run({}, journal=journal, run_id="s0")
reader = sqlite3.connect(path)  # (a long backup's snapshot: the log cannot start over)
reader.execute("BEGIN")
reader.execute("SELECT count(*) FROM sagas").fetchone()
for i in range(1, 400):
    saga.run({}, journal=journal, run_id=f"s{i}")
os._exit(9)  # (as the disk filled: the log there, its last pages not yet in the file)
"""


def _grown_log(tmp_path):
    """A journal whose process died as ``GROWN_LOG``'s, and its -wal's (size, growth)."""
    import subprocess
    import sys

    from rollback_lessons.durable.walcheck import growth

    path = tmp_path / "j.db"
    crash = subprocess.run([sys.executable, "-c", GROWN_LOG, str(path)], timeout=120)
    assert crash.returncode == 9
    grown = growth(path)
    assert grown is not None
    return path, grown


def test_a_disk_the_journals_own_wal_fills_says_what_room_writing_it_back_takes(
    tmp_path, monkeypatch
):
    """attack285 F3: a reader's snapshot (a long .backup) let the -wal grow till the disk
    was full; the log is given back only once written into the file, which must grow for
    that: with no room, never, and the line said "free some space" of a disk the journal
    alone filled. Now it names the log and the room writing it back takes."""
    from types import SimpleNamespace

    from rollback_lessons.durable import room

    path, (size, need) = _grown_log(tmp_path)
    assert 0 < need < size and size == (tmp_path / "j.db-wal").stat().st_size
    with monkeypatch.context() as patch:  # (its disk full)
        patch.setattr(room.os, "statvfs", lambda _: SimpleNamespace(f_bavail=0, f_frsize=4096))
        said = room.no_room(path, "database or disk is full")
    assert said.startswith("; no room on its disk (0 bytes free): its own j.db-wal ")
    assert f"({size} bytes) takes it" in said and f"needs {need} bytes more" in said
    assert "free some space" not in said
    before = path.stat().st_size  # (and so much it takes: written back, with room)
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    finally:
        con.close()
    assert path.stat().st_size - before == need


def test_a_wal_that_fills_its_disk_is_written_back_before_a_command_writes(tmp_path, monkeypatch):
    """attack286 F9: given the room the line asked for, recover's first write went into the
    -wal too (SQLite appends before it writes the log back) and took it: the line asked for
    it again. Now a command that writes first writes the log back (room.written_back), the
    -wal given back whole."""
    from types import SimpleNamespace

    from rollback_lessons.durable import room

    path, (_, need) = _grown_log(tmp_path)
    before = path.stat().st_size
    with Journal(path) as journal:
        with monkeypatch.context() as patch:  # (the room asked for, and no more)
            free = SimpleNamespace(f_bavail=need + 4096, f_frsize=1)
            patch.setattr(room.os, "statvfs", lambda _: free)
            room.written_back(journal)
        assert (tmp_path / "j.db-wal").stat().st_size == 0
        assert path.stat().st_size - before == need
        assert len(journal.sagas()) == 400  # (all of it there)
