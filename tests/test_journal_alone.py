"""attack211 F1: SQLite copies the -wal's writes back into the journal's file from time to
time (a checkpoint), so the file alone (a copy of it, or the file whose -wal was deleted) is
the journal as of the last checkpoint: a saga begun before it shows unfinished though it
committed since, and recover undid a committed saga (exit 0). Each Journal open for writing
now leaves a mark in the file until it closes: a file found without its -wal that holds the
mark of a process that ended is refused in one line, nothing undone; the same file with its
-wal, after a crash, is recovered as before, and afterwards found alone, whole, is read."""

from __future__ import annotations

import gc
import json
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from rollback_lessons.durable.journal import Journal, JournalError
from rollback_lessons.durable.writers import PREFIX, lone

REGISTRY = """
import os
from rollback_lessons.durable.registry import Registry, compensation
registry = Registry()

@compensation("undo", registry)
def undo(step, idempotency_key=None):
    with open(os.environ["ALONE_WORLD"], "a") as world:
        world.write(f"undo {idempotency_key}\\n")
"""

OWNER = """
import os, signal, sqlite3, sys
from alone_reg import undo
from rollback_lessons import Saga, Step
from rollback_lessons.durable.journal import Journal

path = sys.argv[1]

def checkpoint(state):  # (SQLite's own, as a long-running process's writes bring it)
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(PASSIVE)")
    con.close()

journal = Journal(path)
for run_id, middle in (("first", None), ("second", checkpoint)):
    steps = [Step("a", lambda s: None, undo.bind(step="a")),
             Step("b", middle or (lambda s: None), undo.bind(step="b")),
             Step("c", lambda s: None, undo.bind(step="c"))]
    run_id = sys.argv[3] + run_id
    outcome = Saga(steps, name="alone").run({}, journal=journal, run_id=run_id)
    assert str(outcome.status) == "committed", outcome
if sys.argv[2] == "kill marked":  # (a write of no saga's: its mark stays until its close)
    journal.write([("UPDATE meta SET value = value WHERE key = 'app'", ())])
if sys.argv[2].startswith("kill"):
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _owner(tmp_path: Path, end: str, prefix: str = "") -> subprocess.CompletedProcess[str]:
    (tmp_path / "alone_reg.py").write_text(REGISTRY)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path[1:]]),
           "ALONE_WORLD": str(tmp_path / "world")}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-c", OWNER, str(tmp_path / "j.db"), end, prefix],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip


def _recover(tmp_path: Path, path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path[1:]]),
           "ALONE_WORLD": str(tmp_path / "world")}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "rollback_lessons", "recover", str(path), "--registry", "alone_reg"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip


def _undone(tmp_path: Path) -> list[str]:
    world = tmp_path / "world"
    return world.read_text().splitlines() if world.exists() else []


@pytest.mark.parametrize("how", ["copy of the file alone", "-wal deleted", "-wal emptied"])
def test_a_killed_writers_file_without_its_wal_is_refused_and_nothing_is_undone(tmp_path, how):
    killed = _owner(tmp_path, "kill")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    path = tmp_path / "j.db"
    assert Path(f"{path}-wal").stat().st_size > 32  # (the second saga's end lives there)
    if how == "-wal deleted":
        Path(f"{path}-wal").unlink()
        alone = path
    elif how == "-wal emptied":
        os.truncate(f"{path}-wal", 0)
        alone = path
    else:
        (tmp_path / "copy").mkdir()
        alone = Path(shutil.copy(path, tmp_path / "copy" / "j.db"))
    seen = sqlite3.connect(f"file:{alone}?mode=ro", uri=True)  # (the file as SQLite reads it:
    [(status,)] = seen.execute("SELECT status FROM sagas WHERE id = 'second'").fetchall()
    seen.close()  # the checkpoint in its step b left it running there, though it committed)
    assert status == "running"
    for readonly in (False, True):
        with pytest.raises(JournalError, match="could not take its mark away as it did, and its"):
            Journal(alone, readonly=readonly)
    done = _recover(tmp_path, alone)
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert "a copy of the file alone, a backup taken while it ran, or its -wal was deleted" in line
    assert "Traceback" not in line
    assert _undone(tmp_path) == []  # (it undid the committed 'second': a, b, c)
    if how == "copy of the file alone":  # the journal itself, with its -wal: nothing to do
        done = _recover(tmp_path, path)
        assert done.returncode == 0 and "recovered 0 sagas" in done.stdout, done
        assert not Path(f"{path}-wal").exists()  # (closed last: written back, whole)
        with Journal(path, readonly=True) as journal:  # found alone now, and read
            assert {s.id: s.status for s in journal.sagas()} == {
                "first": "committed",
                "second": "committed",
            }
        assert _undone(tmp_path) == []


def test_the_refusal_says_how_to_accept_a_file_another_program_wrote_back(tmp_path):
    """The sqlite3 shell, say, opened the journal last after the crash: it wrote the -wal
    back and removed it, the file is whole, and the mark of the killed process stayed. The
    line says what to run; run, the journal is read, and recover finishes nothing twice."""
    assert _owner(tmp_path, "kill marked").returncode == -signal.SIGKILL
    path = tmp_path / "j.db"
    other = sqlite3.connect(path)
    other.execute("SELECT count(*) FROM sagas").fetchall()
    other.close()  # (SQLite's last close: the -wal written back, and deleted)
    assert not Path(f"{path}-wal").exists()
    with pytest.raises(JournalError) as refused:
        Journal(path)
    said = str(refused.value).rsplit("say so: ", 1)[1]
    assert said == (
        f"sqlite3 {path} \"DELETE FROM meta WHERE key LIKE '{PREFIX}%'; "
        'UPDATE sagas SET writer = NULL"'
    )
    said = said.split(" ", 2)[2]
    other = sqlite3.connect(path)
    other.executescript(said.strip('"'))
    other.commit()
    other.close()
    done = _recover(tmp_path, path)
    assert done.returncode == 0 and "recovered 0 sagas" in done.stdout, done
    assert _undone(tmp_path) == []


@pytest.mark.parametrize("name", ["file:x.db", ":memory:", "-d.db", "a b's.db"])
def test_the_statement_the_refusal_gives_names_that_very_file(tmp_path, monkeypatch, name):
    """attack291 F1: for a journal named ``file:x.db``, ``:memory:`` or ``-d.db`` the line's
    statement, pasted into a shell, opened another database in the sqlite3 shell (a URI, one
    in memory) or was refused as an option: the journal stayed refused, with no way given."""
    assert _owner(tmp_path, "kill marked").returncode == -signal.SIGKILL
    monkeypatch.chdir(tmp_path)
    for end in ("", "-wal", "-shm"):  # (moved together: the same journal, by another name)
        if Path(f"j.db{end}").exists():
            os.rename(f"j.db{end}", f"{name}{end}")
    other = sqlite3.connect(f"./{name}")  # (the sqlite3 shell, say, closing it last)
    other.execute("SELECT count(*) FROM sagas").fetchall()
    other.close()
    with pytest.raises(JournalError) as refused:
        Journal(Path(name))
    said = str(refused.value).rsplit("say so: ", 1)[1]
    program, file, _ = shlex.split(said)
    assert program == "sqlite3" and Path(file).resolve() == (tmp_path / name).resolve(), said
    if shutil.which("sqlite3") is None:  # (the shell's own reading of its argument: a URI,
        pytest.skip("no sqlite3 shell here")  # :memory:, an option)
    ran = subprocess.run(said, shell=True, capture_output=True, text=True, check=False)
    assert ran.returncode == 0 and ran.stderr == "", ran
    assert not Path("x.db").exists()  # (no other database made: file:x.db's URI)
    Journal(Path(name)).close()  # (whole, said so: read)


def test_marks_are_taken_away_however_a_journal_ends(tmp_path):
    """Closed, collected unclosed, or left open as its process ends: no mark stays, and the
    file found alone then is read. A killed writer's mark is taken away by the next journal
    opened with its -wal there (its writes all read: whole)."""
    path = tmp_path / "j.db"

    def marks() -> list[str]:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return [k for (k,) in con.execute("SELECT key FROM meta") if k.startswith(PREFIX)]
        finally:
            con.close()

    with Journal(path) as journal:  # (made: its mark written with the schema)
        assert len(marks()) == 1
        with Journal(path) as reader:
            assert len(marks()) == 1  # (a journal only read leaves none, and waits for no
            reader.write([("UPDATE meta SET value = value WHERE key = 'app'", ())])  # lock)
            assert len(marks()) == 2  # (written: its mark with its first write)
        assert len(marks()) == 1
    assert marks() == []
    journal = Journal(path)
    journal.write([("UPDATE meta SET value = value WHERE key = 'app'", ())])
    assert len(marks()) == 1
    del journal  # (collected unclosed: its finalizer)
    gc.collect()
    assert marks() == []
    assert _owner(tmp_path, "exit").returncode == 0  # (its journal never closed: its mark
    assert marks() == []  # taken away as the process ended, by the finalizer)
    assert _owner(tmp_path, "kill marked", "again-").returncode == -signal.SIGKILL
    assert len(marks()) == 1  # (the killed one's, beside its -wal)
    with Journal(path):  # (only read: the killed one's taken away as it closes)
        assert len(marks()) == 1
    assert marks() == [] and lone(path)  # (found alone: whole, read)
    Journal(path, readonly=True).close()


def test_a_ctrl_c_as_a_journal_closes_leaves_no_mark(tmp_path, monkeypatch):
    """Held while its mark is taken away and its connection closed, raised after: cut
    between the two, the mark stayed in a file SQLite then closed whole (refused alone)."""
    from rollback_lessons.durable import writers

    real = writers._who

    def cut(value):
        signal.raise_signal(signal.SIGINT)  # (a Ctrl-C as its marks are read)
        return real(value)

    journal = Journal(tmp_path / "j.db")  # (made: its mark written with the schema)
    monkeypatch.setattr(writers, "_who", cut)
    with pytest.raises(KeyboardInterrupt):
        journal.close()
    assert journal.closed
    monkeypatch.undo()
    assert _marks(tmp_path / "j.db") == [] and lone(tmp_path / "j.db")
    Journal(tmp_path / "j.db").close()


def test_a_writer_killed_while_another_ran_on_leaves_a_whole_file_that_opens(tmp_path):
    """Two processes write one journal; one is killed, the other runs on and closes last,
    writing the -wal back: the killed one's mark went with it (its writes all there), so
    the file found alone is read and recovered, never refused as a copy."""
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        journal.write([("UPDATE meta SET value = value WHERE key = 'app'", ())])  # (marked)
        assert _owner(tmp_path, "kill").returncode == -signal.SIGKILL
    assert lone(path)
    done = _recover(tmp_path, path)
    assert done.returncode == 0 and "recovered 0 sagas" in done.stdout, done
    with Journal(path, readonly=True) as journal:
        assert {s.id: s.status for s in journal.sagas()} == {
            "first": "committed",
            "second": "committed",
        }


def test_a_copy_taken_while_its_writer_runs_on_is_refused(tmp_path):
    """attack213 F4: the file alone, copied while the process that wrote it runs on with it
    open (a checkpoint had copied its mark and a saga's start in), was read: the writer
    alive, its mark was no refusal, and recover undid a saga ended since, again."""
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        journal.write([("UPDATE meta SET value = value WHERE key = 'app'", ())])  # (marked)
        other = sqlite3.connect(path)
        other.execute("PRAGMA wal_checkpoint(PASSIVE)")
        other.close()
        (tmp_path / "copy").mkdir()
        copy = Path(shutil.copy(path, tmp_path / "copy" / "j.db"))
        with pytest.raises(
            JournalError, match=f"process {os.getpid()} on .*, which runs on, writes it"
        ):
            Journal(copy)


def _marks(path: Path) -> list[str]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [k for (k,) in con.execute("SELECT key FROM meta") if k.startswith(PREFIX)]
    finally:
        con.close()


@pytest.mark.parametrize("writes", [False, True])
def test_a_journal_closing_last_takes_away_every_other_processs_mark(tmp_path, writes):
    """attack213 F1, F5: a writer killed while a service held the journal open (reading
    only, or writing), or one of another PID namespace or boot (its process cannot be
    checked from here), left its mark when the service closed last and wrote the -wal back:
    every later open refused the whole file. No other process has it open as it closes
    (SQLite's own test, the -shm's lock), so every other process's mark goes."""
    path = tmp_path / "j.db"
    stranger = json.dumps({"pid": 1, "host": "elsewhere", "started": None,
                           "space": "pid:[1] boot another"})  # fmt: skip
    Journal(path).close()  # (made)
    with Journal(path) as service:
        by_hand = sqlite3.connect(path)  # (as that other process wrote it)
        by_hand.execute("INSERT INTO meta VALUES ('writer elsewhere', ?)", (stranger,))
        by_hand.commit()
        by_hand.close()
        if writes:
            service.write([("UPDATE meta SET value = value WHERE key = 'app'", ())])
        assert _owner(tmp_path, "kill marked").returncode == -signal.SIGKILL
        assert len(_marks(path)) == 2 + writes  # (the stranger's, the killed one's, its own)
    assert _marks(path) == [] and lone(path)
    Journal(path).close()


def test_a_closing_journal_of_no_wait_waits_for_a_moments_lock(tmp_path):
    """attack213 F1 (d): ``Journal(path, timeout=0)`` closing while another process held the
    write lock for a moment left its mark (the DELETE failed, silently): a whole file was
    refused once that process had closed it last."""
    path = tmp_path / "j.db"
    journal = Journal(path, timeout=0)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "holding\n"
        journal.close()
    finally:
        holder.wait(30)
    assert _marks(path) == []


HOLD = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN IMMEDIATE")
print("holding", flush=True)
time.sleep(1)
con.execute("ROLLBACK")
con.close()
"""


def test_a_forked_worker_that_forgets_close_leaves_no_mark_behind(tmp_path):
    """attack213 F1 (c): a multiprocessing worker (fork) opening a journal of its own and
    ending without closing it (os._exit: no finalizer runs) left its mark; the parent's
    journal, closing last, wrote the -wal back, and the whole file was refused. (Forked
    while the parent had it open, the worker is refused: attack215 F1, below.)"""
    import multiprocessing

    path = tmp_path / "j.db"
    Journal(path).close()

    def worker() -> None:
        kept = Journal(path)
        kept.write([("UPDATE meta SET value = value WHERE key = 'app'", ())])
        os._exit(0)

    child = multiprocessing.get_context("fork").Process(target=worker)
    child.start()
    child.join(30)
    assert child.exitcode == 0 and len(_marks(path)) == 1
    with Journal(path) as parent:
        parent.write([("UPDATE meta SET value = value WHERE key = 'app'", ())])
    assert _marks(path) == [] and lone(path)
    Journal(path).close()


@pytest.mark.parametrize("readonly", [False, True])
def test_a_fork_of_a_process_with_the_journal_open_cannot_open_it_again(tmp_path, readonly):
    """attack215 F1: SQLite's locks do not pass to a fork; the child's inherited connection
    stands for them, so a journal the child opened took none, and the parent's close (the
    last, as SQLite counted) took the -wal from under it: the child's committed sagas were
    lost, later children read "corrupt?". Refused in one line, before any file is touched."""
    import multiprocessing

    path, said = tmp_path / "j.db", tmp_path / "said"

    def worker() -> None:
        try:
            Journal(path)
        except JournalError as exc:
            said.write_text(str(exc))
        os._exit(0)

    Journal(path).close()
    with Journal(path, readonly=readonly):  # (read-only too: attack216 F1)
        child = multiprocessing.get_context("fork").Process(target=worker)
        child.start()
        child.join(30)
    line = said.read_text()
    assert "was forked from process" in line and "spawn or forkserver" in line
    assert Journal(path).close() is None  # (closed: its file let go here)
    assert "\n" not in line


def test_a_claim_writes_the_mark_with_it(tmp_path):
    """attack215 F2: a claim (recover's), a settle and a migration were written without the
    writer's mark, which came with its next write: a checkpoint between them left a file
    alone with no mark, and a copy of it was recovered again (its ended sagas undone again).
    A claim of a saga writes its mark with it; one of nothing leaves none (attack244 F4:
    an idle service's recover refused every backup until it closed)."""
    path = tmp_path / "j.db"
    with Journal(path) as owner:
        owner.start("s", "left")  # (closed with it open: let go, awaiting recover)
    with Journal(path) as journal:
        assert _marks(path) == []
        journal.claim(lambda saga, undos: "not this one")
        assert _marks(path) == []
        [claimed], _ = journal.claim(lambda saga, undos: None)
        assert claimed.saga.id == "left" and len(_marks(path)) == 1


@pytest.mark.parametrize("trial", range(4))
def test_a_journal_left_open_to_a_daemon_thread_ends_with_its_process(tmp_path, trial):
    """attack215 F3: a journal left unclosed while a daemon thread wrote on it: its end at
    the process's exit rolled back and closed the connection under the thread (SIGSEGV, or
    the thread's raw traceback). At exit it waits for the journal's lock, and leaves the
    connection to the process's end."""
    done = subprocess.run(
        [sys.executable, "-c", DAEMON, str(tmp_path / "j.db")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and done.stderr == "", done.stderr[-2000:]
    with Journal(tmp_path / "j.db") as journal:
        assert journal.sagas() and journal.quick_check() == "ok"


DAEMON = """
import sys, threading, time
from rollback_lessons import Saga, Step
from rollback_lessons.durable.journal import Journal

journal = Journal(sys.argv[1])

def sagas():
    n = 0
    while True:
        n += 1
        Saga([Step("a", lambda s: None)], name="d").run({}, journal=journal, run_id=f"d{n}")

threading.Thread(target=sagas, daemon=True).start()
time.sleep(0.3)
"""


def test_a_fork_after_its_parent_closed_the_journal_opens_it(tmp_path):
    """Closed before the fork (read-only or not), the parent holds nothing of the file."""
    import multiprocessing

    path, said = tmp_path / "j.db", tmp_path / "said"
    Journal(path).close()
    Journal(path, readonly=True).close()

    def worker() -> None:
        with Journal(path) as mine:
            mine.write([("UPDATE meta SET value = value WHERE key = 'app'", ())])
        said.write_text("opened")
        os._exit(0)

    child = multiprocessing.get_context("fork").Process(target=worker)
    child.start()
    child.join(30)
    assert said.read_text() == "opened"


KEPT: list[Journal] = []
"""A pool worker's journal, kept open to its end (as a worker's global would be)."""


@pytest.mark.parametrize("pool", ["Pool", "ProcessPoolExecutor"])
def test_a_fork_pools_workers_journals_leave_no_mark_and_a_backup_after_opens(tmp_path, pool):
    """attack217 F1: a fork pool's workers, each with a journal of its own kept open, end
    with os._exit after multiprocessing's exit function, never atexit's: their marks stayed,
    and after ``.backup`` (its sqlite3 connection closing last, the -wal written back) the
    copy and the file itself were refused, though whole and no process wrote. Their marks
    now go as the workers end, the pool closed and joined as ever."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from rollback_lessons import Saga, Step

    path = tmp_path / "j.db"
    Journal(path).close()

    def init() -> None:
        KEPT.append(Journal(path))
        outcome = Saga([Step("a", lambda s: None)], name="w").run({}, journal=KEPT[-1])
        assert str(outcome.status) == "committed"

    context = multiprocessing.get_context("fork")
    if pool == "Pool":
        workers = context.Pool(2, initializer=init)
        workers.map(abs, range(4))
        workers.close()
        workers.join()
    else:
        with ProcessPoolExecutor(2, mp_context=context, initializer=init) as executor:
            list(executor.map(abs, range(4)))
    assert _marks(path) == []
    copy = tmp_path / "copy.db"
    source, target = sqlite3.connect(path), sqlite3.connect(copy)
    source.backup(target)
    target.close()
    source.close()  # (the last connection: the -wal written back and removed)
    assert lone(path)
    for whole in (path, copy):
        with Journal(whole, readonly=True) as journal:
            assert [s.status for s in journal.sagas()] == ["committed"] * len(journal.sagas())
            assert journal.sagas()


@pytest.mark.parametrize("run_id", [None, "mine"])
def test_a_saga_begun_in_a_fork_through_its_parents_journal_is_refused_before_any_step(
    tmp_path, run_id
):
    """attack217 F2: with a run_id its first write raised JournalForked told as "an undo or
    a step forked"; without one, its run ended halted. Refused alike, before any step."""
    from rollback_lessons import Saga, Step

    path, said = tmp_path / "j.db", tmp_path / "said"
    ran: list[str] = []
    with Journal(path) as journal:
        pid = os.fork()
        if pid == 0:  # the child never returns into pytest
            try:
                saga = Saga([Step("a", lambda s: ran.append("a"))], name="f")
                outcome = saga.run({}, journal=journal, run_id=run_id)
                said.write_text(f"returned {outcome.status} {ran}")
            except BaseException as exc:
                said.write_text(f"{type(exc).__name__}: {exc} {ran}")
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        assert journal.sagas() == []
    line = said.read_text()
    assert line.startswith("JournalForked: process ") and line.endswith("nothing ran []"), line
    assert "a saga cannot be journalled through a Journal a fork inherited" in line


def test_a_settle_in_a_fork_through_its_parents_journal_is_refused(tmp_path):
    """attack221 F2: it wrote through the parent's connection, no JournalForked; once the
    parent had closed, it said "settled", exit 0, and the settle was lost."""
    path, said = tmp_path / "j.db", tmp_path / "said"
    with Journal(path) as journal:
        pid = os.fork()
        if pid == 0:  # the child never returns into pytest
            try:
                journal.settle("r1", "refunded by hand")
                said.write_text("settled")
            except BaseException as exc:
                said.write_text(f"{type(exc).__name__}: {exc}")
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
    line = said.read_text()
    assert line.startswith("JournalForked: process ") and line.endswith("nothing was settled")
    assert "a saga cannot be settled through a Journal a fork inherited" in line


HOLD_LONG = HOLD.replace("time.sleep(1)", "time.sleep(3)")


@pytest.mark.parametrize("how", ["its wait ran out", "interrupted"])
def test_a_close_after_its_wait_ran_out_or_an_interrupt_tries_its_marks_once(tmp_path, how):
    """attack229 F1: ``recover --wait 30`` given a Ctrl-C ended only when another process let
    go of the lock, 18 s on (a second Ctrl-C unheard), and ``--wait W`` took W + max(W, 5) s:
    the close waited again, signals held, to take the marks away. After an interrupt, or its
    own wait run out, it tries once: its mark is left (the safe side) while the other holds
    the lock, where it waited for that one to let go."""
    path = tmp_path / "j.db"
    journal = Journal(path, timeout=0.3)
    journal.write([("UPDATE meta SET value = value WHERE key = 'app'", ())])  # (its mark)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LONG, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "holding\n"
        if how == "its wait ran out":
            with pytest.raises(Exception, match="locked"):
                journal.write([("UPDATE meta SET value = value WHERE key = 'app'", ())])
            journal.close()
        else:
            with pytest.raises(KeyboardInterrupt), journal:
                raise KeyboardInterrupt
        left = _marks(path)
    finally:
        holder.wait(30)
    assert len(left) == 1, left


HOLD_MOMENT = HOLD.replace("time.sleep(1)", "time.sleep(0.5)")


@pytest.mark.parametrize("how", ["a commit after its wait ran out", "a generator's close"])
def test_a_close_that_is_no_interrupt_still_waits_for_a_moments_lock(tmp_path, how):
    """attack232: a wait once run out kept the close from waiting for good (F1), and a close
    in a generator's close (or a task's cancel) was taken for an interrupt's (F2): the mark
    was left in a whole file, refused once another connection closed it last."""
    path = tmp_path / "j.db"
    journal = Journal(path, timeout=0.3)
    touch = [("UPDATE meta SET value = value WHERE key = 'app'", ())]
    journal.write(touch)
    if how.startswith("a commit"):
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(Exception, match="locked"):
            journal.write(touch)
        blocker.execute("ROLLBACK")
        blocker.close()
        journal.write(touch)  # (its wait no longer ran out)

    def closing_in_a_generator():
        try:
            yield
        finally:
            journal.close()

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_MOMENT, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "holding\n"
        if how.startswith("a commit"):
            journal.close()
        else:
            closer = closing_in_a_generator()
            next(closer)
            closer.close()  # (GeneratorExit in flight as it closes)
    finally:
        holder.wait(30)
    assert _marks(path) == []


HOLD_TEN = HOLD.replace("time.sleep(1)", "time.sleep(10)")
UNCLOSED = """
import signal, sys, time
from rollback_lessons.durable.journal import Journal
journal = Journal(sys.argv[1], timeout=60)
journal.write([("UPDATE meta SET value = value WHERE key = 'app'", ())])
print("written", flush=True)
sys.stdin.readline()  # (until the other holds the lock)
if sys.argv[2] != "exit":  # (a Ctrl-C, or a SIGTERM, as its end waits)
    which = signal.SIGINT if sys.argv[2] == "signal" else signal.SIGTERM
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    signal.signal(signal.SIGALRM, lambda *a: signal.raise_signal(which))
sys.exit(1)
"""


@pytest.mark.parametrize("how", ["sys.exit", "a Ctrl-C as it waits", "a SIGTERM as it waits"])
def test_a_journal_left_unclosed_at_exit_waits_for_a_lock_5_s_at_most(tmp_path, how):
    """attack235 F1, F2: left unclosed, a journal's end at the process's exit waited its
    whole timeout (30 s, or what it was given) for another process's lock, and a Ctrl-C in
    that wait was a traceback ("Exception ignored in atexit callback"). It waits 5 s at most
    (LEAVE_WAIT), a signal ending it, said in one line (attack310 F9: said nowhere): the
    process ends with its own status."""
    path = tmp_path / "j.db"
    ending = subprocess.Popen(
        [sys.executable, "-c", UNCLOSED, str(path),
         {"sys.exit": "exit", "a Ctrl-C as it waits": "signal"}.get(how, "term")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert ending.stdout.readline() == "written\n"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_TEN, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "holding\n"
        _, err = ending.communicate("go\n", timeout=30)
        held_on = holder.poll() is None  # (it ended while the other still held the lock)
    finally:
        holder.kill()
        holder.wait(30)
    # (a SIGTERM left to its default ends the process as it would have: attack237 F1)
    assert ending.returncode == (-15 if "SIGTERM" in how else 1), err
    said = ("" if how == "sys.exit" else f"rollback-lessons: a {how.split()[1]} as the journal "
            f"{path} was ended unclosed at the program's end (close it before the program "
            "ends) cut its wait for another process's lock: ")  # fmt: skip
    assert err.startswith(said) and err.count("\n") == (how != "sys.exit"), err
    assert held_on


def test_the_refusals_statement_fits_a_journal_of_schema_7(tmp_path):
    """attack248 F2: a journal written before sagas named their writer (schema 7), refused
    alone, was told a statement that failed there (no such column: writer, exit 1, half of
    it done). The statement is the schema's own; run, the journal opens (and is upgraded)."""
    assert _owner(tmp_path, "kill marked").returncode == -signal.SIGKILL
    path = tmp_path / "j.db"
    old = sqlite3.connect(path)  # (closed last: whole; then as schema 7 left it)
    old.execute("ALTER TABLE sagas DROP COLUMN writer")
    old.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    old.commit()
    old.close()
    with pytest.raises(JournalError) as refused:
        Journal(path)
    said = str(refused.value).rsplit("say so: ", 1)[1]
    assert said == f"sqlite3 {path} \"DELETE FROM meta WHERE key LIKE '{PREFIX}%'\""
    other = sqlite3.connect(path)
    other.executescript(said.split(" ", 2)[2].strip('"'))
    other.close()
    Journal(path).close()


def test_a_name_a_command_reads_as_an_option_is_given_with_dot_slash():
    """The hints a line gives (``rollback-lessons journal show ...``, ``sqlite3 ...``): a
    name starting with "-" is an option to both; "file:" and ":memory:" the sqlite3 shell's
    own (attack291 F1). A path that is absolute, or plain, is left as it is."""
    from rollback_lessons.durable.shell import for_shell

    assert for_shell("-d.db") == "./-d.db" and for_shell("-d.db", sqlite3=True) == "./-d.db"
    assert for_shell("file:x.db") == "file:x.db"
    assert for_shell("file:x.db", sqlite3=True) == "./file:x.db"
    assert for_shell(":memory:", sqlite3=True) == "./:memory:"
    assert for_shell("/j/file:x.db", sqlite3=True) == "/j/file:x.db"
    assert for_shell("orders #2.db") == "'orders #2.db'"
