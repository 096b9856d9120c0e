"""attack305 (minor): a Ctrl-C landing in an unclosed journal's end (its finalizer, as the
program ends): Python printed it as "Exception ignored in atexit callback", a traceback, and
its teardown then closed the connection, the last, writing the -wal back into a file whose
mark stayed: the next `journal show` refused the file as a copy alone, though whole. Now the
end cut is said in one line, the connection left as a crash leaves it (the -wal beside the
file, read with it); mid-program (a journal collected unclosed) the Ctrl-C reaches the main
thread, never dropped."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(
    """
    import gc, sys, time
    import rollback_lessons.durable.writers as writers
    from rollback_lessons import Registry, Rollback
    from rollback_lessons.durable.journal import Journal

    registry = Registry()
    undo = registry.add("undo", lambda: print("undo"))
    journal = Journal(sys.argv[1])

    def gen():
        with Rollback(journal=journal, run_id="r1") as rb:
            rb.do("a", lambda: print("do a"), undo.bind())
            yield 1

    held = gen()
    next(held)  # (the block left open: the journal's mark stays in the file)
    stuck_keys = writers.stuck_keys

    def interrupted(path):  # (a Ctrl-C as the journal's end reads the marks)
        if sys._getframe(1).f_code.co_name == "_ending":
            raise KeyboardInterrupt
        return stuck_keys(path)

    writers.stuck_keys = interrupted
    if sys.argv[2] == "mid-program":
        del held  # (its rollback runs: the saga ends)
        del journal
        try:
            gc.collect()
            time.sleep(5)  # (the Ctrl-C passed on comes here)
        except KeyboardInterrupt:
            print("KeyboardInterrupt reached the main thread")
    print("the script ends", flush=True)
    """
)


@pytest.mark.parametrize("when", ["at-exit", "mid-program"])
def test_a_ctrl_c_in_an_unclosed_journals_end_is_one_line_and_leaves_the_file_readable(
    tmp_path, when
) -> None:
    at = str(tmp_path / "j.db")
    done = subprocess.run([sys.executable, "-c", CHILD, at, when], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "ignored" not in done.stderr, done.stderr
    said = [s for s in done.stderr.splitlines() if "as the journal" in s]
    assert said == [
        f"rollback-lessons: a KeyboardInterrupt as the journal {at} was ended unclosed (close it "
        "before the program ends): its end cut, its connection left as a crash leaves it, the "
        "-wal beside the file, read with it"
    ], done.stderr
    if when == "mid-program":
        assert "KeyboardInterrupt reached the main thread" in done.stdout, done
    show = subprocess.run([sys.executable, "-m", "rollback_lessons", "journal", "show", at],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert show.returncode == 0, show.stderr
    status = "rolled_back" if when == "mid-program" else "running"
    assert show.stdout.split("\n")[1].split()[:3] == ["r1", "rollback", status], show.stdout


AFTER_CLOSE = textwrap.dedent(
    """
    import gc, signal, sys, time
    import rollback_lessons.durable.writers as writers
    from rollback_lessons import Saga, Step
    from rollback_lessons.durable.journal import Journal
    from rollback_lessons.durable.registry import Registry

    def cut(step, idempotency_key=None):
        raise KeyboardInterrupt  # (a person's Ctrl-C in the undo: the saga let go)

    def fails(state):
        raise ValueError("b fails")

    undo = Registry().add("end_cut", cut)
    journal = Journal(sys.argv[1])
    try:
        Saga([Step("a", lambda s: None, undo.bind(step="a")), Step("b", fails)]).run(
            {}, journal=journal, run_id="r1")
    except KeyboardInterrupt:
        print("the run's Ctrl-C caught, as a notebook's cell", flush=True)
    tidy = writers._tidy

    def tidied(*args, **kwargs):  # (a Ctrl-C once its connection closed, as it tidies)
        signal.raise_signal(signal.SIGINT)
        return tidy(*args, **kwargs)

    writers._tidy = tidied
    try:
        del journal
        gc.collect()
        time.sleep(5)
    except KeyboardInterrupt:
        print("KeyboardInterrupt reached the main thread", flush=True)
    """
)


def test_a_ctrl_c_after_a_collected_journals_connection_closed_leaves_it_whole(tmp_path):
    """attack309 F8: a Ctrl-C as a journal collected unclosed tidied its file, its connection
    closed (the -wal written back): its marks of a saga awaiting recover stayed in a file
    with no -wal, refused; the line said the -wal was beside it. Now its end holds the
    Ctrl-C, then passes it on."""
    at = str(tmp_path / "j.db")
    done = subprocess.run([sys.executable, "-c", AFTER_CLOSE, at], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "KeyboardInterrupt reached the main thread" in done.stdout, done
    show = subprocess.run([sys.executable, "-m", "rollback_lessons", "journal", "show", at],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert show.returncode == 0, show.stderr


LOCKED_END = """
import atexit, os, signal, subprocess, sys, threading
from rollback_lessons import Registry, Saga, Step
from rollback_lessons.durable.journal import Journal

note = Registry().add("note", lambda name: None)
path = sys.argv[1]
journal = Journal(path)  # (never closed: ended as the program ends)
saga = Saga([Step("s1", lambda s: None, note.bind(name="s1"))], name="c")
print(saga.run({}, journal=journal, run_id="c1").status, flush=True)
locker = subprocess.Popen([sys.executable, "-c", f'''
import sqlite3, time
c = sqlite3.connect({path!r}, isolation_level=None, timeout=10); c.execute("BEGIN IMMEDIATE")
print("locked", flush=True); time.sleep(4)'''], stdout=subprocess.PIPE)
locker.stdout.readline()  # (the journal's end waits for its lock, 5 s at most)

def ctrl_c_soon():  # (atexit: before the journal's end; the Ctrl-C lands in its wait)
    threading.Timer(0.7, os.kill, (os.getpid(), signal.SIGINT)).start()

atexit.register(ctrl_c_soon)
"""


def test_a_ctrl_c_in_an_unclosed_journals_wait_for_a_lock_at_the_end_is_said(tmp_path):
    """attack310 F9: a real Ctrl-C in that wait (another process held the file's lock) cut
    it and was said nowhere, Python's own line held back too."""
    path = str(tmp_path / "j.db")
    done = subprocess.run([sys.executable, "-c", LOCKED_END, path], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.stdout == "committed\n", done
    [line] = done.stderr.splitlines()
    assert line == (
        f"rollback-lessons: a Ctrl-C as the journal {path} was ended unclosed at the "
        "program's end (close it before the program ends) cut its wait for another "
        "process's lock: nothing of this process is left in it"
    ), done.stderr
