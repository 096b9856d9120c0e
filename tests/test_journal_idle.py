"""A journal's mark goes with the end of the last saga it had open, and comes back with its
next write: a file found alone (a copy, a backup, the -wal gone after a process was killed
with nothing open) is whole for every process that had no saga open at that instant, and
refused while one had one open. The invariant the marks keep, checked at every commit of
random runs: a saga of this process shown unfinished in the file is never without its
mark (else recover, given the file alone, would undo a saga that ended since)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import examples
from test_journal_alone import _marks

from rollback_lessons import Rollback, Saga, Step
from rollback_lessons.durable.journal import Journal, JournalError
from rollback_lessons.durable.records import AWAITING
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry, compensation
from rollback_lessons.durable.writers import PREFIX

REGISTRY = Registry()
WORLD: list[str] = []


@compensation("idle_undo", REGISTRY)
def undo(step: str, fails: bool = False, idempotency_key: str | None = None) -> None:
    if fails:
        raise OSError(f"undo of {step} refused")
    WORLD.append(f"undo {step}")


def _alone(journal: Journal, to: Path) -> Path:
    """The journal's file as a copy of it alone would be: every commit written back first
    (a checkpoint, as SQLite's own come), then the file copied without its -wal."""
    journal._con.execute("PRAGMA wal_checkpoint(FULL)")
    to.mkdir(exist_ok=True)
    return Path(shutil.copy(journal.path, to / "j.db"))


def _steps(names: str, fail: str = "", undo_fails: str = "") -> list[Step]:
    def act(name: str):
        def do(state: dict) -> None:
            if name == fail:
                raise LookupError(f"{name} refused")
            WORLD.append(f"do {name}")

        return do

    return [Step(n, act(n), undo.bind(step=n, fails=n in undo_fails)) for n in names]


def test_a_copy_alone_taken_while_its_writer_idles_opens_one_taken_mid_saga_is_refused(tmp_path):
    """Each saga's end takes the mark away (a backup of a service's journal between its
    sagas is whole: it was refused while the service ran); one taken while a saga is open
    is refused, and recover given it undoes nothing."""
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        outcome = Saga(_steps("ab")).run({}, journal=journal, run_id="first")
        assert str(outcome.status) == "committed" and _marks(path) == []
        with Journal(_alone(journal, tmp_path / "idle"), readonly=True) as copy:
            assert {s.id: s.status for s in copy.sagas()} == {"first": "committed"}
        with Rollback(journal=journal, run_id="second") as rb:
            rb.do("x", lambda: WORLD.append("do x"), undo.bind(step="x"))
            assert len(_marks(path)) == 1
            during = _alone(journal, tmp_path / "during")
            with pytest.raises(JournalError, match="which runs on, writes it"):
                Journal(during)
        assert _marks(path) == []
    WORLD.clear()
    with pytest.raises(JournalError, match="which runs on, writes it"):
        recover(Journal(during), REGISTRY)
    assert WORLD == []  # (the committed 'second' never undone)


def test_the_mark_stays_until_the_last_open_saga_of_the_journal_ends(tmp_path):
    """Two blocks open at once on one journal: the first's end leaves the mark (the other
    is open), the second's takes it away."""
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        first = Rollback(journal=journal, run_id="first")
        second = Rollback(journal=journal, run_id="second")
        with first as one:
            one.do("a", lambda: None, undo.bind(step="a"))
            with second as two:
                two.do("b", lambda: None, undo.bind(step="b"))
            assert len(_marks(path)) == 1  # (the second ended, the first is open)
            with pytest.raises(JournalError, match="which runs on, writes it"):
                Journal(_alone(journal, tmp_path / "one open"))
        assert _marks(path) == []
        journal.write([("UPDATE meta SET value = value WHERE key = 'app'", ())])
        assert len(_marks(path)) == 1  # (a write of no saga's: marked until its close)
    assert _marks(path) == []


KILLED_IDLE = """
import os, signal, sys
from rollback_lessons import Saga, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import compensation

@compensation("idle_undo")
def undo(step, fails=False, idempotency_key=None):
    pass

journal = Journal(sys.argv[1])
saga = Saga([Step(n, lambda s: None, undo.bind(step=n)) for n in "ab"])
assert str(saga.run({}, journal=journal, run_id="done").status) == "committed"
if sys.argv[2] == "mid-saga":
    def die(state):
        os.kill(os.getpid(), signal.SIGKILL)
    Saga([Step("c", lambda s: None, undo.bind(step="c")), Step("d", die)]).run(
        {}, journal=journal, run_id="cut")
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("when", ["idle", "mid-saga"])
def test_a_process_killed_idle_leaves_a_whole_file_one_killed_mid_saga_a_refused_one(
    tmp_path, when
):
    """A worker killed between sagas (a pool terminated, a container stopped) left its mark:
    once another program closed the file last (the -wal written back), every open refused
    the whole file. Killed idle it is read at once; killed mid-saga it is refused until the
    journal, with its -wal, is recovered."""
    path = tmp_path / "j.db"
    killed = subprocess.run([sys.executable, "-c", KILLED_IDLE, str(path), when], check=False)
    assert killed.returncode == -signal.SIGKILL
    other = sqlite3.connect(path)  # (the sqlite3 shell, say: closed last, the -wal written
    other.execute("SELECT count(*) FROM sagas").fetchall()  # back and removed)
    other.close()
    assert not Path(f"{path}-wal").exists()
    if when == "idle":
        with Journal(path, readonly=True) as journal:
            assert {s.id: s.status for s in journal.sagas()} == {"done": "committed"}
        return
    with pytest.raises(JournalError, match="did not close it"):
        Journal(path)


def _crashed_saga(path: Path) -> None:
    """A saga left running by a process killed mid-saga, its -wal beside the file."""
    killed = subprocess.run([sys.executable, "-c", KILLED_IDLE, str(path), "mid-saga"],
                            check=False)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL


def _checked(journal: Journal, seen: list[bool]) -> None:
    """After every write of ``journal``: a saga of this process (begun or claimed) shown
    unfinished in the file is never without this journal's mark; and every saga shown
    unfinished names a journal whose mark is there, or awaits recover (attack245: none
    is left named by nobody while the file is open, but one the file showed so at first)."""
    write, me = journal.write, os.getpid()
    unheld = "SELECT id FROM sagas WHERE status IN ('running', 'rolling_back') AND (writer IS"
    unheld += f" NULL OR writer != '{AWAITING}' AND writer NOT IN (SELECT key FROM meta))"
    at_first = set(journal._con.execute(unheld).fetchall())

    def checked_write(*args, **kwargs):
        try:
            return write(*args, **kwargs)
        finally:
            with journal._lock:
                con = journal._con
                unfinished = con.execute(
                    "SELECT id FROM sagas WHERE status IN ('running', 'rolling_back')"
                    " AND (owner_pid = ? AND claim_pid IS NULL OR claim_pid = ?)",
                    (me, me),
                ).fetchall()
                marked = con.execute(
                    "SELECT 1 FROM meta WHERE key = ?", (journal._mark.key,)
                ).fetchone()
                named = set(con.execute(unheld).fetchall()) <= at_first
                seen.append((not unfinished or bool(marked)) and named)  # (an assert here
                # would be a failed write to the run, which goes on: read after)

    journal.write = checked_write  # type: ignore[method-assign]


async def _paused(action, state: dict) -> None:
    await asyncio.sleep(0)
    action(state)


async def _together(journal: Journal, rng: random.Random, n: int) -> None:
    async def one(i: int) -> None:
        names = "".join(rng.sample("abcdef", rng.randint(1, 4)))
        fail = rng.choice([*names, "", ""])
        steps = [  # (each step awaits: the sagas' writes interleave)
            Step(s.name, lambda state, s=s: _paused(s.action, state), s.undo)
            for s in _steps(names, fail)
        ]
        saga = Saga(steps, policy=rng.choice(["continue", "halt"]))
        await saga.arun({}, journal=journal, run_id=f"async-{n}-{i}")

    await asyncio.gather(*(one(i) for i in range(rng.randint(2, 4))))


@pytest.mark.parametrize("seed", range(examples(6)))
def test_no_commit_shows_a_saga_of_this_process_unfinished_without_its_mark(tmp_path, seed):
    """Random runs on one journal: sagas run, rolled back, halted, dead-lettered, run
    together with arun, blocks nested, and a recover of a crashed saga among them; after
    every write, the invariant; at the end, no mark of a journal left with nothing open."""
    rng, seen = random.Random(seed), []  # (per write: marked, or none open)
    path = tmp_path / "j.db"
    if seed % 2:
        _crashed_saga(path)
    with Journal(path) as journal:
        _checked(journal, seen)
        for n in range(rng.randint(3, 6)):
            kind = rng.choice(["run", "arun", "block", "recover"])
            names = "".join(rng.sample("abcdef", rng.randint(1, 4)))
            fail = rng.choice([*names, "", ""])
            if kind == "run":
                policy = rng.choice(["continue", "halt"])
                undo_fails = rng.choice(["", names[:1]])
                saga = Saga(_steps(names, fail, undo_fails), policy=policy)
                saga.run({}, journal=journal, run_id=f"run-{n}")
            elif kind == "arun":
                asyncio.run(_together(journal, rng, n))
            elif kind == "block":
                with pytest.raises(LookupError) if fail else _nothing():
                    with Rollback(journal=journal, run_id=f"block-{n}") as rb:
                        for step in _steps(names, fail):
                            rb.do(step.name, lambda step=step: step.action({}), step.undo)
            else:
                recover(journal, REGISTRY)
        assert seen and all(seen), f"unmarked after write {seen.index(False) + 1} of {len(seen)}"
    assert _marks(path) == []


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


HOLDS_OPEN = """
import os, sys, time
from rollback_lessons import Rollback
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import compensation

@compensation("idle_undo")
def undo(step, fails=False, idempotency_key=None):
    pass

path, inside, go = sys.argv[1:4]
with Journal(path) as journal:
    with Rollback(journal=journal, run_id="open") as rb:
        rb.do("a", lambda: None, undo.bind(step="a"))
        open(inside, "w").close()
        while not os.path.exists(go):
            time.sleep(0.02)
    if sys.argv[4:] == ["kill"]:  # (committed, then killed: its -wal's writes left there)
        os.kill(os.getpid(), 9)
"""


def test_a_checkpoint_truncate_beside_a_live_saga_neither_loses_its_mark_nor_reads_it_whole(
    tmp_path,
):
    """attack241 F1: a checkpoint(TRUNCATE) by another connection leaves an empty -wal while a
    writer has a saga open; another journal closing then took that for its own close being
    the last (SQLite removes the -wal only then) and took away every mark, the live writer's
    too: a copy of the file alone was read, and recover undid the saga its writer then
    committed. Now a journal's close tidies only where the -wal is gone, and only the marks
    it saw as it closed. F2: the live journal found with its -wal empty is refused in a line
    that says its writer runs on (not to delete its mark)."""
    path, inside, go = tmp_path / "j.db", tmp_path / "inside", tmp_path / "go"
    writer = subprocess.Popen([sys.executable, "-c", HOLDS_OPEN, str(path), str(inside), str(go)])
    try:
        _until(inside, writer)
        other = Journal(path)
        truncate = sqlite3.connect(path)
        truncate.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        truncate.close()
        assert Path(f"{path}-wal").stat().st_size == 0
        with pytest.raises(
            JournalError, match=f"process {writer.pid} on .*, which runs on, writes it"
        ):
            Journal(path, readonly=True)
        other.close()
        assert len(_marks(path)) == 1  # (the writer's, its saga open)
        (tmp_path / "copy").mkdir()
        copy = Path(shutil.copy(path, tmp_path / "copy" / "j.db"))
    finally:
        go.touch()
        assert writer.wait(30) == 0
    WORLD.clear()
    with pytest.raises(JournalError, match="did not close it"):
        recover(Journal(copy), REGISTRY)
    assert WORLD == []  # (the committed saga 'open' never undone)
    with Journal(path, readonly=True) as journal:
        assert {s.id: s.status for s in journal.sagas()} == {"open": "committed"}


def test_a_saga_let_go_and_ended_by_another_recover_leaves_the_mark_with_the_next_end(tmp_path):
    """attack241 F3: a saga this process let go (a Ctrl-C caught as its rollback began: it
    writes nothing more of it, another process's recover ends it) stayed open here for
    good: no later end took the mark away, every backup between sagas refused."""
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        _let_go(journal, "let go")
        with Journal(path) as elsewhere:  # (as another process's recover would)
            assert [r.saga_id for r in recover(elsewhere, REGISTRY).recovered] == ["let go"]
        Saga(_steps("b")).run({}, journal=journal, run_id="next")
        assert _marks(path) == []
        backup = sqlite3.connect(tmp_path / "backup.db")
        with sqlite3.connect(path) as source:
            source.backup(backup)
        backup.close()
        with Journal(tmp_path / "backup.db", readonly=True) as copy:
            assert {s.id: s.status for s in copy.sagas()} == {
                "let go": "rolled_back",
                "next": "committed",
            }


def test_a_copy_torn_across_a_checkpoint_is_refused_by_the_saga_it_shows_held(tmp_path):
    """attack244 F1: a copy read as SQLite wrote pages back (cp, 128 KiB at a time) paired
    an old page of meta, no mark, with a newer page of sagas, one open: read, and recover
    undid a saga its writer then committed (3 of 900 copies). Each unfinished saga names
    the journal holding it (sagas.writer), so the tear shows: refused. Emulated here: a
    copy of the moment a saga is open, its meta page as it was before (no mark)."""
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        with Rollback(journal=journal, run_id="open") as rb:
            rb.do("a", lambda: None, undo.bind(step="a"))
            torn = tmp_path / "torn.db"
            source, target = sqlite3.connect(path), sqlite3.connect(torn)
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")
            target.execute(f"DELETE FROM meta WHERE key LIKE '{PREFIX}%'")  # (meta as before)
            target.commit()
            source.close()
            target.close()
    WORLD.clear()
    for readonly in (False, True):
        with pytest.raises(JournalError, match="'open' is shown unfinished, held by a journal"):
            Journal(torn, readonly=readonly)
    assert WORLD == []


def test_a_close_after_the_wal_was_deleted_keeps_a_running_writers_mark(tmp_path):
    """attack244 F2: the -wal deleted while a writer runs (it writes on into the unlinked
    one); another journal's close found no -wal and took its close for the last: the running
    writer's mark went, and recover undid the saga it then committed, exit 0. A close never
    takes away the mark of a process that runs."""
    path, inside, go = tmp_path / "j.db", tmp_path / "inside", tmp_path / "go"
    Journal(path).close()  # (made)
    other = Journal(path)  # (opened, never written: it leaves no mark of its own)
    writer = subprocess.Popen(
        [sys.executable, "-c", HOLDS_OPEN, str(path), str(inside), str(go), "kill"]
    )
    try:
        _until(inside, writer)
        checkpoint = sqlite3.connect(path)  # (the writer's saga in the file, its mark too)
        checkpoint.execute("PRAGMA wal_checkpoint(PASSIVE)")
        checkpoint.close()
        Path(f"{path}-wal").unlink()
        other.close()
        assert any(json.loads(v)["pid"] == writer.pid for v in _mark_values(path))
    finally:
        go.touch()
        assert writer.wait(30) == -signal.SIGKILL  # (its commit in the -wal deleted)
    WORLD.clear()
    with pytest.raises(JournalError, match="did not close it"):
        recover(Journal(path), REGISTRY)
    assert WORLD == []  # (the committed saga 'open' never undone)


def _mark_values(path: Path) -> list[str]:
    con = sqlite3.connect(f"file:{path}?immutable=1", uri=True)  # (the file alone, as it is)
    try:
        return [v for k, v in con.execute("SELECT key, value FROM meta") if k.startswith(PREFIX)]
    finally:
        con.close()


def test_a_recover_that_takes_a_dead_writers_saga_takes_its_mark_away(tmp_path):
    """attack244 F3: a service with the journal open recovers the saga of a writer killed
    meanwhile, and runs on: the dead writer's mark stayed (marks of the dead went only as a
    journal opened or closed), and every backup was refused though every saga had ended."""
    path = tmp_path / "j.db"
    with Journal(path) as service:
        service.write([("UPDATE meta SET value = value WHERE key = 'app'", ())])
        _crashed_saga(path)  # (killed after the service opened: not among its ended marks)
        assert [r.saga_id for r in recover(service, REGISTRY).recovered] == ["cut"]
        Saga(_steps("b")).run({}, journal=service, run_id="after")
        assert _marks(path) == []  # (the dead writer's gone with the claim, its own with
        service.write([("UPDATE meta SET value = value WHERE key = 'app'", ())])  # the end)
        assert _marks(path) == [service._mark.key]
    assert _marks(path) == []


def test_a_writer_killed_as_another_journal_closes_last_leaves_no_mark(tmp_path, monkeypatch):
    """attack248 F1: a process with a saga open, killed while another journal's close waited
    (it had read that process running): the close, the last, wrote the -wal back and left
    the dead process's mark, and the whole file was refused until a statement was run by
    hand. Whether a process runs is asked again as the marks are tidied: the file opens,
    and recover finishes the saga."""
    from rollback_lessons.durable import writers

    path, inside, go = tmp_path / "j.db", tmp_path / "inside", tmp_path / "go"
    closing = Journal(path)  # (made: its mark, which its close takes away first)
    writer = subprocess.Popen([sys.executable, "-c", HOLDS_OPEN, str(path), str(inside), str(go)])
    _until(inside, writer)
    out = writers._out

    def killed_first(keys, *then):  # (as the closing journal takes its own mark away: A dies)
        if writer.poll() is None:
            writer.kill()
            writer.wait(30)
        return out(keys, *then)

    monkeypatch.setattr(writers, "_out", killed_first)
    closing.close()
    monkeypatch.setattr(writers, "_out", out)
    assert writer.returncode == -signal.SIGKILL and not Path(f"{path}-wal").exists()
    assert _marks(path) == []
    WORLD.clear()
    with Journal(path) as journal:
        assert [r.saga_id for r in recover(journal, REGISTRY).recovered] == ["open"]
    assert WORLD == ["undo a"]


def _let_go(journal: Journal, run_id: str) -> None:
    """A saga let go: a Ctrl-C caught as its rollback began (step a done, its undo pending)."""

    def ctrl_c(event) -> None:
        if event.kind == "rollback_start":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with Rollback(journal=journal, run_id=run_id, on_event=ctrl_c) as rb:
            rb.do("a", lambda: None, undo.bind(step="a"))
            raise ValueError("declined")


def _until(flag: Path, process: subprocess.Popen) -> None:
    """Until ``process`` says where it is (``flag`` made); it must not end first."""
    while not flag.exists():
        assert process.poll() is None
        time.sleep(0.02)


def _killed_holding(path: Path) -> None:
    """Saga 'open' (step a done) of a process killed as it holds it: its mark left."""
    inside, go = path.with_name("inside"), path.with_name("go")
    owner = subprocess.Popen([sys.executable, "-c", HOLDS_OPEN, str(path), str(inside), str(go)])
    try:
        _until(inside, owner)
    finally:  # (never left waiting for its go, the test failed)
        owner.kill()
        owner.wait(30)


@pytest.mark.parametrize("unheld", ["its owner killed", "let go"])
def test_a_copy_alone_of_a_saga_awaiting_recover_is_refused_while_the_journal_is_open(
    tmp_path, unheld
):
    """attack245 F1, F2: a saga no journal held (its owner killed, its mark taken away by
    another journal's write; or let go after a caught Ctrl-C) was unfinished with no writer
    and no mark in a checkpointed file; a recover then ended it in the -wal while a service
    kept the journal open, and a copy of the file alone was read: recover ran its undo a
    second time. Such a saga is named awaiting recover until the last close: the copy is
    refused; after that close the file is whole, and read."""
    path = tmp_path / "j.db"
    if unheld == "its owner killed":
        _killed_holding(path)
    service = Journal(path)
    try:
        if unheld == "let go":
            _let_go(service, "open")
        Saga(_steps("b")).run({}, journal=service, run_id="next")  # (the service's own)
        service._con.execute("PRAGMA wal_checkpoint(FULL)")  # (SQLite's own, some time)
        WORLD.clear()
        with Journal(path) as elsewhere:  # (another process's recover: ends it in the -wal)
            assert [r.saga_id for r in recover(elsewhere, REGISTRY).recovered] == ["open"]
        assert WORLD == ["undo a"]
        copy = Path(shutil.copy(path, tmp_path / "copy.db"))
        with pytest.raises(JournalError, match="its saga 'open' awaits recover"):
            Journal(copy)
    finally:
        service.close()
    assert not Path(f"{path}-wal").exists()  # (the last close: whole, said so)
    with Journal(Path(shutil.copy(path, tmp_path / "after.db")), readonly=True) as after:
        assert {s.id: s.status for s in after.sagas()}["open"] == "rolled_back"


ENDS_UNCLOSED = """
import os, sys, time
from rollback_lessons import Rollback, Saga, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import compensation

undo = compensation("idle_undo")(lambda step, fails=False, idempotency_key=None: None)
journal = Journal(sys.argv[1])  # (never closed: the process's end leaves it)
if sys.argv[2] == "suspended":  # (a block of its own left suspended as Python exits)
    def pipeline():
        with Rollback(journal=journal, run_id="suspended") as rb:
            rb.do("s", lambda: None, undo.bind(step="s"))
            yield
    left = pipeline()
    next(left)
else:  # (a saga of its own: its write takes the dead owner's mark away)
    Saga([Step("t", lambda s: None)]).run({}, journal=journal, run_id=sys.argv[2])
while len(sys.argv) > 3 and not os.path.exists(sys.argv[3]):  # (to end with another)
    time.sleep(0.001)
"""


@pytest.mark.parametrize("beside", ["alone", "a reader", "two ending together"])
def test_processes_ending_unclosed_leave_a_saga_awaiting_recover_readable(tmp_path, beside):
    """Services that took a dead owner's mark away (its saga awaiting recover) and ended
    without closing their journal. attack257 F1: each checked as it ended whether another
    process held the file; two ending at once (or a reader closing just after) each saw the
    other, then Python's teardown closed the last connection and wrote the -wal back: the
    whole file refused as a copy alone. Their connections are left open at the end: the -wal
    stays, as after a crash, and recover reads the file with it, undoing the saga once."""
    path, go = tmp_path / "j.db", tmp_path / "go"
    _killed_holding(path)
    holder = Journal(path, readonly=True) if beside == "a reader" else None
    try:
        if holder is not None:
            holder.sagas()  # (its connection open on the file)
        ids = ["b1", "b2"] if beside == "two ending together" else ["b1"]
        services = [
            subprocess.Popen([sys.executable, "-c", ENDS_UNCLOSED, str(path), i, str(go)])
            for i in ids
        ]
        while _sagas(path) & set(ids) != set(ids) and all(p.poll() is None for p in services):
            time.sleep(0.01)
        go.touch()  # (they end at the same moment)
        assert [p.wait(60) for p in services] == [0] * len(services)
        if holder is not None:
            copy = Path(shutil.copy(path, tmp_path / "copy.db"))  # (the file alone)
            with contextlib.closing(sqlite3.connect(path)) as other:  # (as SQLite's own
                other.execute("PRAGMA wal_checkpoint(FULL)")  # checkpoints come)
            with pytest.raises(JournalError, match="its saga 'open' awaits recover"):
                Journal(Path(shutil.copy(path, copy)))
    finally:
        if holder is not None:
            holder.close()
    WORLD.clear()
    with Journal(path) as journal:
        assert [r.saga_id for r in recover(journal, REGISTRY).recovered] == ["open"]
    assert WORLD == ["undo a"]
    assert not Path(f"{path}-wal").exists()  # (the last close: whole, and said so)
    with Journal(Path(shutil.copy(path, tmp_path / "after.db")), readonly=True) as after:
        assert after.saga("open").status == "rolled_back"


def test_a_block_left_suspended_at_exit_awaits_recover_while_another_holds_the_file(tmp_path):
    """attack257 F2: a process ending with a journalled block left suspended (its saga open)
    let it go with no name while another process held the file: a copy of the file alone
    was read after a recover ended the saga in the -wal, and its undo ran a second time."""
    path = tmp_path / "j.db"
    Journal(path).close()  # (made: the holder's open writes nothing, leaves no mark)
    with Journal(path) as holder:
        holder.sagas()
        done = subprocess.run([sys.executable, "-c", ENDS_UNCLOSED, str(path), "suspended"],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        holder._con.execute("PRAGMA wal_checkpoint(FULL)")
        WORLD.clear()
        with Journal(path) as elsewhere:
            assert [r.saga_id for r in recover(elsewhere, REGISTRY).recovered] == ["suspended"]
        assert WORLD == ["undo s"]
        with pytest.raises(JournalError, match="its saga 'suspended' awaits recover"):
            Journal(Path(shutil.copy(path, tmp_path / "copy.db")))


def _sagas(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
        return {saga for (saga,) in con.execute("SELECT id FROM sagas")}


OPENS_THEN_ENDS = """
import os, sys, time
from rollback_lessons.durable.journal import Journal

journal = Journal(sys.argv[1])  # (never closed, never written)
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.01)
sys.exit(0)
"""


def test_a_process_ending_unclosed_names_a_dead_owners_saga_awaiting_recover(tmp_path):
    """attack256 F1: a process ending with its journal unclosed took a dead owner's mark away
    and left that owner's saga named by nobody while another process held the file: a copy
    of the file alone (or a .backup) was read after that one's recover ended the saga, and
    its undo ran a second time."""
    path, inside, go, ready = (tmp_path / n for n in ("j.db", "inside", "go", "ready"))
    owner = subprocess.Popen([sys.executable, "-c", HOLDS_OPEN, str(path), str(inside), str(go)])
    ending = None
    try:
        _until(inside, owner)
        ending = subprocess.Popen([sys.executable, "-c", OPENS_THEN_ENDS, str(path),
                                   str(ready), str(go)])  # fmt: skip
        _until(ready, ending)
    finally:  # (none left waiting for its go, the test failed)
        owner.kill()
        owner.wait(30)
        if ending is not None and not ready.exists():
            ending.kill()
    with Journal(path) as holder:
        holder.sagas()
        go.touch()
        assert ending.wait(60) == 0
        holder._con.execute("PRAGMA wal_checkpoint(FULL)")
        copy = Path(shutil.copy(path, tmp_path / "copy.db"))
        WORLD.clear()
        assert [r.saga_id for r in recover(holder, REGISTRY).recovered] == ["open"]
        assert WORLD == ["undo a"]
        with pytest.raises(JournalError, match="its saga 'open' awaits recover"):
            Journal(copy)


def test_a_recovers_claim_given_back_is_no_longer_its_journals_to_mark(tmp_path):
    """attack256 F2: a service's recover whose registry failed gave its claim back (the saga
    awaiting recover) but kept it open in its journal's mark for the service's whole life:
    once another recover ended it and the service's own sagas ended, a backup between
    sagas was still refused. A claim given back counts as that saga's end here."""

    class Failing(Registry):  # (its lookup answers as it claims, then its service is down)
        calls = 0

        def resolve(self, name):
            Failing.calls += 1
            if Failing.calls > 1:
                raise ConnectionError("registry service down")
            return REGISTRY.resolve(name)

        def __contains__(self, name):
            return name in REGISTRY

    path = tmp_path / "j.db"
    _killed_holding(path)
    with Journal(path) as service:
        with pytest.raises(Exception, match="registry service down"):
            recover(service, Failing())
        assert service.saga("open").status == "running"
        WORLD.clear()
        with Journal(path) as elsewhere:
            assert [r.saga_id for r in recover(elsewhere, REGISTRY).recovered] == ["open"]
        assert WORLD == ["undo a"]
        Saga(_steps("b")).run({}, journal=service, run_id="own")
        assert _marks(path) == []


def test_a_recover_that_claims_nothing_leaves_no_mark_but_an_open_sagas(tmp_path):
    """attack244 F4: a service's recover that found nothing to claim marked the file until
    the journal closed: every backup of an idle service refused. A claim of nothing takes
    the mark away, unless a saga of this journal is open (then it stays, as ever)."""
    path = tmp_path / "j.db"
    with Journal(path) as service:
        Saga(_steps("a")).run({}, journal=service, run_id="done")
        assert not recover(service, REGISTRY).recovered
        assert _marks(path) == []
        with Rollback(journal=service, run_id="open") as rb:
            rb.do("x", lambda: None, undo.bind(step="x"))
            assert not recover(service, REGISTRY).recovered  # (its own saga is not taken)
            assert len(_marks(path)) == 1
        assert _marks(path) == []


def test_a_journal_opened_as_another_closes_last_is_read_once_that_close_says_it_whole(
    tmp_path, monkeypatch
):
    """attack258 F1: the last close writes the -wal back, then clears the names of sagas
    awaiting recover (``_tidy``, another transaction): a journal opened between the two found
    the file alone naming one and was refused, the journal itself (4 opens in 10). A refusal
    of a file alone is looked at again for a moment: that close says it whole."""
    from rollback_lessons.durable import writers

    path = tmp_path / "j.db"
    journal = Journal(path)
    _let_go(journal, "open")
    real, opened = writers._tidy, []

    def opening() -> None:
        try:
            opened.append(Journal(path))
        except JournalError as exc:
            opened.append(exc)

    def tidy_late(*args) -> None:  # (another process opens in the window)
        other = threading.Thread(target=opening)
        other.start()
        time.sleep(0.3)
        real(*args)
        other.join(30)

    monkeypatch.setattr(writers, "_tidy", tidy_late)
    journal.close()
    [other] = opened
    assert isinstance(other, Journal), other
    with other:
        assert other.saga("open").status in ("running", "rolling_back")
