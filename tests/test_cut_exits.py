"""A Ctrl-C as a ``with`` that holds something exits: contextlib's ``__exit__`` starts (an
instant CPython checks for a signal) and its generator is never resumed (attack55 F2, F3).
What it held (SQLite's write transaction, recover's hold on the file) is let go anyway."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from rollback_lessons import Rollback
from rollback_lessons.durable import exclusive, recovery
from rollback_lessons.durable import journal as journal_module
from rollback_lessons.durable.files import transaction
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry, compensation


class _CutAtExit:
    """``transaction``, whose ``with`` is cut by a Ctrl-C as its exit starts, once armed."""

    armed = False

    def __init__(self, con, written=None):
        self.inner = transaction(con, written)

    def __enter__(self):
        return self.inner.__enter__()

    def __exit__(self, *exc):
        if _CutAtExit.armed and exc[0] is None:
            _CutAtExit.armed = False
            raise KeyboardInterrupt  # (COMMIT never runs, the generator never resumes)
        return self.inner.__exit__(*exc)


def test_a_ctrl_c_as_a_journal_write_exits_leaves_no_transaction_open(tmp_path, monkeypatch):
    """attack55 F2: the commit's write cut as its ``with`` exited left BEGIN IMMEDIATE open
    for the process's life: another process's saga, ``recover`` and ``settle`` were locked
    out, the next saga of this process refused ("nothing ran"), and this process's journal
    read the saga committed while the file said running. Now the write is rolled back, and
    the journal read back says so: the run fails there, rolled back (attack70 F4)."""
    world: list[str] = []
    undo = compensation("undo_cut_exit", Registry())(lambda idempotency_key=None: None).bind()
    monkeypatch.setattr(journal_module, "transaction", _CutAtExit)
    path = str(tmp_path / "j.db")
    with Journal(path) as journal:
        rb = Rollback(journal=journal, run_id="r1")
        with pytest.raises(KeyboardInterrupt) as cut:
            with rb:
                rb.do("s1", lambda: world.append("do s1"), undo)
                _CutAtExit.armed = True  # (the commit's write, next)
        assert "committed" not in "\n".join(getattr(cut.value, "__notes__", ()))
        assert not journal._con.in_transaction
        assert rb.outcome.status.value == "rolled_back"  # (as the file says: never committed)
        assert journal.saga("r1").status == "rolled_back"
        other = sqlite3.connect(path, timeout=0.5)
        other.execute("BEGIN IMMEDIATE")  # (the write lock is free)
        other.rollback()
        other.close()
        with Rollback(journal=journal, run_id="r2") as rb2:
            rb2.do("n1", lambda: world.append("do n1"), undo)
        assert rb2.outcome.status.value == "committed"
    assert world == ["do s1", "do n1"]


def test_a_ctrl_c_as_recover_lets_the_file_go_leaves_it_free(tmp_path, monkeypatch):
    """attack55 F3: a Ctrl-C as recover's hold on the file exited left the mark set and the
    file's lock held: every later recover of the kernel was refused as "called from an
    undo" (``RecoveryNested``), one from another thread waited for ever."""
    real_exit = exclusive.recovering.__exit__
    armed = [True]

    def cut_exit(self, *exc):
        if armed[0]:
            armed[0] = False
            raise KeyboardInterrupt
        return real_exit(self, *exc)

    monkeypatch.setattr(exclusive.recovering, "__exit__", cut_exit)
    with Journal(str(tmp_path / "j.db")) as journal:
        with pytest.raises(KeyboardInterrupt):
            recovery.recover(journal, Registry())
        assert recovery.recover(journal, Registry()).recovered == ()  # (not RecoveryNested)
        done: list[object] = []
        other = threading.Thread(target=lambda: done.append(recovery.recover(journal, Registry())))
        other.start()
        other.join(10)
        assert done and not other.is_alive()


@pytest.mark.parametrize("cut", ["register", "no_undo"])
def test_a_ctrl_c_as_a_steps_intent_row_is_written_leaves_it_written_not_run(
    tmp_path, monkeypatch, cut
):
    """attack55 F1: a Ctrl-C as the intent row of s2 was written (at its step_start, before
    its action) left the row unknown to the run: s2 "was not run" in process, but a second
    Ctrl-C as s1's undo's done was written left the saga to recover, which found s2's row
    an intent and reported s2 leaked, for a person to check: a step never called."""
    from rollback_lessons import Saga, Step
    from rollback_lessons.durable import records

    world: list[str] = []
    undo = compensation("undo_intent_cut", Registry())(
        lambda step, idempotency_key=None: world.append(f"undo {step}")
    )
    real = getattr(records.JournalRun, cut)

    def cut_as_it_returns(self, step, *args, **kwargs):
        written = real(self, step, *args, **kwargs)
        if step == "s2":
            raise KeyboardInterrupt  # (the row written, the call returning)
        return written

    real_write = journal_module.Journal.write

    def second_cut(self, statements, **kwargs):  # a second Ctrl-C as the undo's done is written
        if any("SET state = 'done'" in sql for sql, _ in statements):
            raise KeyboardInterrupt
        return real_write(self, statements, **kwargs)

    monkeypatch.setattr(records.JournalRun, cut, cut_as_it_returns)
    monkeypatch.setattr(journal_module.Journal, "write", second_cut)
    s2 = Step("s2", lambda s: world.append("do s2"), *(() if cut == "no_undo" else
                                                      (undo.bind(step="s2"),)))  # fmt: skip
    saga = Saga([Step("s1", lambda s: world.append("do s1"), undo.bind(step="s1")), s2,
                 Step("s3", lambda s: world.append("do s3"))])  # fmt: skip
    path = str(tmp_path / "j.db")
    with pytest.raises(KeyboardInterrupt) as raised:
        saga.run({}, journal=Journal(path), run_id="r1")
    assert "rollback: s2 was not run: the Ctrl-C came as it started" in raised.value.__notes__
    assert world == ["do s1", "undo s1"]
    rows = sqlite3.connect(path).execute("SELECT step, state FROM undos ORDER BY position")
    assert dict(rows.fetchall()).get("s2") == "not_run"


_SUSPENDED = """
import sys
from rollback_lessons import Rollback
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry

reg = Registry()
unbook = reg.add("unbook", lambda item, idempotency_key=None: open(sys.argv[2], "a").write(item))

def pipeline():  # a streamed response: the block stays suspended at its yield
    with Rollback(journal=Journal(sys.argv[1]), run_id="g1") as rb:
        rb.do("a", lambda: None, unbook.bind(item="a"))
        yield "paused"
        rb.do("b", lambda: None, unbook.bind(item="b"))

if sys.argv[4:] == ["thread"]:  # (an unrelated daemon thread alive at the end, a logger's)
    import threading, time
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
g = pipeline()
next(g)
if sys.argv[3] == "exit":
    sys.exit(0)
"""


@pytest.mark.parametrize("thread", [[], ["thread"]], ids=["alone", "a daemon thread beside"])
@pytest.mark.parametrize("end", ["exit", "falls off"])
def test_a_block_left_suspended_as_python_exits_is_kept_for_recover(tmp_path, end, thread):
    """attack84 F3: Python closes a suspended generator as it shuts down; its block rolled
    back there, where `open` is gone: each undo a dead letter, exit 0, nothing said.
    attack251 F1: with any daemon thread alive at the end (a logging QueueListener), the
    journal kept its mark as the process ended: the whole file was refused, never recovered."""
    import subprocess
    import sys

    script, path, world = tmp_path / "s.py", tmp_path / "j.db", tmp_path / "world"
    script.write_text(_SUSPENDED)
    done = subprocess.run([sys.executable, str(script), str(path), str(world), end, *thread],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0 and not world.exists()
    assert done.stderr == (
        "rollback-lessons: saga 'g1': its Rollback block was ended by Python's shutdown "
        "(GeneratorExit); none of its undos ran there: the journal keeps it unfinished, and "
        "recover runs them\n"
    )
    reg = Registry()
    reg.add("unbook", lambda item, idempotency_key=None: world.write_text(item))
    with Journal(path) as journal:
        assert journal.saga("g1").status == "running"
        [back] = recovery.recover(journal, reg).recovered
    assert back.status.value == "rolled_back" and world.read_text() == "a"


def test_a_block_with_no_journal_left_suspended_as_python_exits_says_so(tmp_path):
    """attack85 F3: with no journal its undos run there (their only chance), with Python
    half torn down; what failed was seen by nobody, exit 0. It is said before they run."""
    import subprocess
    import sys

    script = tmp_path / "s.py"
    script.write_text(
        "from rollback_lessons import Rollback\n"
        "def pipeline():\n"
        "    with Rollback(run_id='g2') as rb:\n"
        "        rb.do('a', lambda: None, lambda: None)\n"
        "        yield 'paused'\n"
        "g = pipeline()\n"
        "next(g)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.stderr == (
        "rollback-lessons: saga 'g2': its Rollback block was ended by Python's shutdown "
        "(GeneratorExit); its undos run now, with Python half torn down, and no journal keeps "
        "what fails: end the block before the program exits, or give it a journal\n"
    )


_ASYNC_SUSPENDED = """
import asyncio, sys
from rollback_lessons import AsyncRollback
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry

journal = Journal(sys.argv[1]) if sys.argv[1] != "-" else None
reg = Registry()
unbook = reg.add("unbook", lambda item, idempotency_key=None: None)  # (recover's is the test's)

async def pipeline(world):  # a streamed response: the block stays suspended at its yield
    async def undone(item):  # (its world opened now: ``open`` is gone at Python's shutdown)
        await asyncio.sleep(0)  # (an await: it needs a loop)
        world.write(item)
        world.flush()

    def refused():
        raise ConnectionError("bank down")

    def undo(item):
        return unbook.bind(item=item) if journal else (lambda: undone(item))

    kw = {"journal": journal, "run_id": "ag1"} if journal else {"run_id": "ag1"}
    async with AsyncRollback(**kw) as rb:
        await rb.do("a", lambda: None, undo("a"))
        await rb.do("b", lambda: None, undo("b") if journal else refused)
        await rb.do("c", lambda: None, undo("c"))
        yield "paused"
        await rb.do("d", lambda: None, undo("d"))

loop = asyncio.new_event_loop()  # a loop of one's own, the generator left suspended
g = pipeline(open(sys.argv[2], "a"))

async def main():  # (the generator stepped from a coroutine of the caller's: attack294 F1)
    await g.__anext__()

loop.run_until_complete(main() if sys.argv[3] == "stepped" else g.__anext__())
if sys.argv[3] == "closed":
    loop.close()  # (closed without shutdown_asyncgens)
"""


@pytest.mark.parametrize("loop", ["left", "closed", "stepped"])
def test_an_async_block_left_suspended_as_python_exits_is_kept_for_recover(tmp_path, loop):
    """attack86 F5: an AsyncRollback ended by Python's shutdown imported asyncio first, which
    fails there: a raw "ImportError: sys.meta_path is None" traceback, no line. As
    Rollback's: none of its undos run there, said on stderr, kept for recover."""
    import subprocess
    import sys

    script, path, world = tmp_path / "s.py", tmp_path / "j.db", tmp_path / "world"
    script.write_text(_ASYNC_SUSPENDED)
    done = subprocess.run([sys.executable, str(script), str(path), str(world), loop],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0 and world.read_text() == ""
    assert done.stderr == (  # (said at the program's end, Python whole: attack294 F1)
        "rollback-lessons: saga 'ag1': its AsyncRollback block was left suspended in an async "
        "generator as the program ended, its event loop stopped; none of its undos ran (not "
        "known to be undone: c, b, a): the journal keeps it unfinished, and recover runs them\n"
    )  # (named: attack306 F2)
    reg = Registry()
    reg.add("unbook", lambda item, idempotency_key=None: world.write_text(world.read_text() + item))
    with Journal(path) as journal:
        assert journal.saga("ag1").status == "running"
        [back] = recovery.recover(journal, reg).recovered
    assert back.status.value == "rolled_back" and world.read_text() == "cba"


@pytest.mark.parametrize("loop", ["left", "closed", "stepped"])
def test_an_async_block_with_no_journal_left_suspended_as_python_exits_runs_its_undos(
    tmp_path, loop
):
    """attack86 F5: with no journal its undos never ran (the ImportError first), not a word.
    As Rollback's: said first, then run there (on a loop of their own: none runs there), a
    failing one a dead letter that leaves the others to run."""
    import subprocess
    import sys

    script, world = tmp_path / "s.py", tmp_path / "world"
    script.write_text(_ASYNC_SUSPENDED)
    done = subprocess.run([sys.executable, str(script), "-", str(world), loop],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.stderr == (  # (ended at the program's end, Python whole: attack294 F1)
        "rollback-lessons: saga 'ag1': its AsyncRollback block was left suspended in an async "
        "generator as the program ended, its event loop stopped: it is ended now, its undos "
        "run on an event loop of their own (end the block before the program exits)\n"
        "rollback-lessons: saga 'ag1' ended rollback_incomplete there (kept nowhere): dead "
        "letters: b (ConnectionError: bank down)\n"  # (what they left, said: attack296 F2)
    )
    assert done.returncode == 0 and world.read_text() == "ca"


_DAEMON = """
import atexit, sqlite3, sys, threading, time
path, backup, log, mode = sys.argv[1:5]
done = threading.Event()
atexit.register(lambda: done.wait(10))  # (a graceful end's hook, registered first: run last)
from rollback_lessons import Rollback
from rollback_lessons.durable import writers
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import compensation

refund = compensation("refund")(lambda key: open(log, "a").write(f"refund {key}\\n"))
journal, started = Journal(path), threading.Event()

def backup_at_the_end():
    while mode != "killed" and not writers._EXIT["now"]:  # (the main thread returned)
        time.sleep(0.01)
    time.sleep(60 if mode == "killed" else 0.3)  # (the journal's exit end has run)
    src, dst = sqlite3.connect(path), sqlite3.connect(backup)  # a .backup taken now
    src.backup(dst), dst.close(), src.close()

def worker():
    with Rollback(journal=journal, run_id="d1") as rb:
        rb.do("charge", lambda: None, refund.bind(key="c1"))
        if mode != "idle":
            started.set()
            backup_at_the_end()
        rb.do("ship", lambda: None, refund.bind(key="s1"))
    if mode == "idle":  # (its saga ended before the process did; the thread lives on)
        started.set()
        backup_at_the_end()
    done.set()

threading.Thread(target=worker, daemon=True).start()
started.wait()
"""


@pytest.mark.parametrize("mode", ["hook", "idle", "killed"])
def test_a_daemon_thread_writing_a_saga_as_the_process_ends_keeps_its_mark(tmp_path, mode):
    """attack250 F1: as the process ended, the journal took its mark away and let go of the
    saga a daemon thread (awaited by an exit hook) went on writing: a backup taken then was
    read and recover undid the committed saga. The mark stays while a saga's last writer
    lives ("hook"); it goes when that thread's saga had ended ("idle": the backup is read);
    a thread killed mid-saga leaves the file with its -wal, recovered ("killed")."""
    import subprocess
    import sys

    path, backup, log = tmp_path / "j.db", tmp_path / "b.db", tmp_path / "undos"
    script = tmp_path / "s.py"
    script.write_text(_DAEMON)
    done = subprocess.run([sys.executable, str(script), str(path), str(backup), str(log), mode],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    reg = Registry()
    reg.add("refund", lambda key: log.open("a").write(f"refund {key}\n"))
    if mode == "hook":
        with pytest.raises(journal_module.JournalError, match="which did not close it"):
            Journal(backup)
        with Journal(path) as journal:
            assert journal.saga("d1").status == "committed"
            assert not recovery.recover(journal, reg).recovered
    elif mode == "idle":
        with Journal(backup) as journal:
            assert journal.saga("d1").status == "committed"
    else:
        assert not backup.exists() and (tmp_path / "j.db-wal").exists()
        with Journal(path) as journal:
            [back] = recovery.recover(journal, reg).recovered
        assert back.status.value == "rolled_back"
    assert (log.read_text() if log.exists() else "") == ("refund c1\n" * (mode == "killed"))
