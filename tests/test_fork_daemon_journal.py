"""attack307 F1: a step that daemonizes (it forks, the parent exits, the child returns into
the engine): the child is told `recover` finishes the saga, but as the child ended normally,
Python's end closed the SQLite connection it inherited; SQLite, seeing no other process's
lock, wrote the -wal back and removed it, the dead parent's mark left in a whole file:
`recover` and `journal show` refused it as a copy, the saga's steps never undone. A fork
now never closes the connections its parent had open for writing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rollback_lessons import Status
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry

CHILD = textwrap.dedent(
    """
    import os, sys
    from rollback_lessons import Rollback, Saga, Step
    from rollback_lessons.durable.journal import Journal
    from rollback_lessons.durable.registry import Registry

    at, form, close = sys.argv[1], sys.argv[2], sys.argv[3] == "close"
    undo = Registry().add("fork_u", lambda step, idempotency_key=None: None)

    def act(n):
        def f(state=None):
            if n == "s3" and os.fork():
                os._exit(0)  # (the parent exits: a daemonizing fork)
            if n == "s3":
                open(at + ".child", "w").write(str(os.getpid()))
        return f

    journal = Journal(at)
    names = ["s1", "s2", "s3", "s4"]
    try:
        if form == "saga":
            Saga([Step(n, act(n), undo.bind(step=n)) for n in names]).run(
                {}, journal=journal, run_id="r1")
        else:
            with Rollback(journal=journal, run_id="r1") as rb:
                for n in names:
                    rb.do(n, act(n), undo.bind(step=n))
    except Exception as exc:
        print(type(exc).__name__, flush=True)
    if close:
        journal.close()
    """
)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("form", ["saga", "block"])
@pytest.mark.parametrize("close", ["close", "open"])
def test_a_daemonizing_forks_end_leaves_the_journal_to_recover(tmp_path, form, close) -> None:
    at = str(tmp_path / "j.db")
    subprocess.run([sys.executable, "-c", CHILD, at, form, close], timeout=60, check=True)
    for _ in range(200):  # (the child, on its own, ends a moment later)
        child = Path(at + ".child")
        if child.exists() and _gone(int(child.read_text() or 0)):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the forked child did not end")
    assert os.path.exists(at + "-wal")  # (left as a crash leaves it, read with it)
    ran: list[str] = []
    registry = Registry()
    registry.add("fork_u", lambda step, idempotency_key=None: ran.append(step))
    with Journal(at) as journal:
        [back] = recover(journal, registry).recovered
    assert ran == ["s2", "s1"] and back.status is Status.ROLLBACK_INCOMPLETE, back
    assert back.leaked == ("s3",)


UNDO_FORKS = textwrap.dedent(
    """
    import os, sys
    from rollback_lessons import Saga, Step
    from rollback_lessons.durable.journal import Journal
    from rollback_lessons.durable.registry import Registry

    def undo(step, idempotency_key=None):
        if step == "s2" and os.fork():
            os._exit(0)  # (the parent exits: a daemonizing fork, in an undo)

    u = Registry().add("fork_undo", undo)

    def boom(state):
        raise RuntimeError("boom")

    out = Saga([Step("s1", lambda s: None, u.bind(step="s1")),
                Step("s2", lambda s: None, u.bind(step="s2")), Step("s3", boom)]).run(
        {}, journal=Journal(sys.argv[1]), run_id="r1")
    open(sys.argv[1] + ".notes", "w").write(" ".join(out.notes))
    """
)


def test_a_daemonizing_fork_in_an_undo_says_recover_finishes_it(tmp_path) -> None:
    """attack310 F10: its note said "the process that took the saga over finishes its
    rollback": nobody took it over."""
    at = str(tmp_path / "j.db")
    subprocess.run([sys.executable, "-c", UNDO_FORKS, at], timeout=60, check=True)
    notes = Path(at + ".notes")
    for _ in range(200):
        if notes.exists() and notes.read_text():
            break
        time.sleep(0.05)
    said = notes.read_text()
    assert "took the saga over" not in said and "`recover` finishes its rollback" in said, said
