"""A person settles a saga left for one (``journal settle``, ``Journal.settle``): recover then
stops naming it, and ``journal show`` says who settled it, when, and why (issue 25: before,
one halted saga made every later scheduled ``recover`` exit 1 for ever). Anything else is
refused in one line, nothing written."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import test_recover_waiting
from test_recover_waiting import cli_recover, ended_for_a_person

from rollback_lessons import Saga, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.settle import (
    AlreadySettled,
    NotWaiting,
    SettleRefused,
    UnknownSaga,
    settled,
)

reg = test_recover_waiting.reg  # its registry module and world, a fixture


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rollback_lessons", *args], capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def written(path) -> list:
    """Everything a settle could write: every saga's events and status."""
    with Journal(path, create=False, readonly=True) as journal:
        return [(s.status, journal.events(s.id)) for s in journal.sagas()]


@pytest.mark.parametrize("how", ["halted", "dead", "leaked"])
def test_a_settled_saga_is_no_longer_named_by_recover_and_show_says_who_and_why(
    tmp_path,
    reg,
    how,
):
    saga, faults = ended_for_a_person(reg, how)
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        saga.run({}, inject=faults, journal=journal, run_id="t1")
        saga.run({}, inject=faults, journal=journal, run_id="t2")  # left waiting
    assert cli_recover(tmp_path, path).returncode == 1
    done = cli("journal", "settle", str(path), "t1", "--note", "refunded by hand, ticket 42")
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    by = f"@{socket.gethostname()}"
    assert done.stdout.startswith("t1: ") and by in done.stdout and "ticket 42" in done.stdout
    again = cli_recover(tmp_path, path)
    assert again.returncode == 1 and "t2 (trip)" in again.stdout and "t1" not in again.stdout
    assert cli("journal", "settle", str(path), "t2", "--note", "checked").returncode == 0
    for _ in range(2):  # every later recover: nothing waits, exit 0
        quiet = cli_recover(tmp_path, path)
        assert (quiet.returncode, quiet.stdout, quiet.stderr) == (
            0, "recovered 0 sagas, left 0\n", ""
        )  # fmt: skip
    show = cli("journal", "show", str(path))
    assert show.returncode == 0, show.stderr
    rows = {line.split()[0]: line for line in show.stdout.splitlines()}
    assert ", settled" in rows["t1"] and ", settled" in rows["t2"]
    notes = [line for line in show.stdout.splitlines() if "settled by" in line]
    assert len(notes) == 2 and by in notes[0] and notes[0].endswith("refunded by hand, ticket 42")
    with Journal(path, create=False) as journal:
        assert recover(journal, reg.registry).waiting == ()
        assert journal.events("t1")[-1].kind == "settled"


def test_the_library_api_returns_the_record_and_refuses_a_second_settle(tmp_path, reg):
    saga, faults = ended_for_a_person(reg, "halted")
    with Journal(tmp_path / "j.db") as journal:
        saga.run({}, inject=faults, journal=journal, run_id="t1")
        settled = journal.settle("t1", "pivot checked with the bank")
        assert (settled.saga_id, settled.status, settled.note) == (
            "t1", "halted", "pivot checked with the bank"
        )  # fmt: skip
        assert settled.by.endswith(f"@{socket.gethostname()}")
        events = journal.events("t1")
        with pytest.raises(AlreadySettled, match="settled before"):
            journal.settle("t1", "again")
        assert journal.events("t1") == events  # (the first note stays)
        assert str(settled) in journal.table()


def test_what_cannot_be_settled_is_refused_in_one_line_with_nothing_written(tmp_path, reg):
    """Unknown, committed, rolled back, settled already: each refused, typed, exit 2."""
    path = tmp_path / "j.db"
    steps = [Step("a", reg.do("a"), reg.rm.bind(k="a")), Step("b", reg.do("b"))]
    with Journal(path) as journal:
        Saga(steps, name="trip").run({}, journal=journal, run_id="ok")
        Saga(steps, name="trip").run({}, inject={"b": "fail"}, journal=journal, run_id="back")
        saga, faults = ended_for_a_person(reg, "dead")
        saga.run({}, inject=faults, journal=journal, run_id="dl")
        saga.run({}, inject=faults, journal=journal, run_id="open")  # (waits for a person)
        journal.settle("dl", "done")
        for saga_id, error in [("nope", UnknownSaga), ("ok", NotWaiting), ("back", NotWaiting),
                               ("dl", AlreadySettled)]:  # fmt: skip
            with pytest.raises(error):
                journal.settle(saga_id, "x")
    before = written(path)
    for saga_id, said in [("nope", "no saga 'nope'"), ("ok", "is committed"),
                          ("back", "is rolled_back"), ("dl", "settled before")]:  # fmt: skip
        done = cli("journal", "settle", str(path), saga_id, "--note", "x")
        assert (done.returncode, done.stdout) == (2, ""), done.stderr
        assert len(done.stderr.splitlines()) == 1 and said in done.stderr
        assert "Traceback" not in done.stderr
    for note in ("", " ", "\u3000 ", "\u3164", "\u2800 \u3164"):  # (blank: attack42 F9, 43)
        bad_note = cli("journal", "settle", str(path), "open", "--note", note)
        assert bad_note.returncode == 2 and len(bad_note.stderr.splitlines()) == 1
        assert "settle note" in bad_note.stderr
    assert written(path) == before


def test_a_saga_still_running_or_held_by_a_recover_is_refused(crashed, reg):
    """A run in progress (its own process asks), a saga whose process died (recover's, not a
    person's), and one a live recover claimed: none has ended, so none can be settled; the
    recover holding it wins."""
    path, _ = crashed
    with Journal(path, create=False) as journal:
        [saga] = journal.unfinished()
        with pytest.raises(NotWaiting, match="has not ended"):
            journal.settle(saga.id, "x")
        seen = []

        def asks(state):
            with pytest.raises(NotWaiting, match="is running"):
                journal.settle("live", "x")
            seen.append("asked")

        steps = [Step("a", reg.do("a"), reg.rm.bind(k="a")), Step("s", asks)]  # (a: written)
        Saga(steps, name="live").run({}, journal=journal, run_id="live")
        assert seen == ["asked"]
        claimed, _ = journal.claim(lambda s, undos: None if s.id == saga.id else "not this one")
        assert [c.saga.id for c in claimed] == [saga.id]
        before = journal.events(saga.id)
    with Journal(path, create=False) as other:  # (another connection: the claim is seen)
        with pytest.raises(SettleRefused, match="has not ended"):
            other.settle(saga.id, "x")
        assert other.events(saga.id) == before


_CTRL_C = """
import contextlib, sys
from rollback_lessons.durable import journal, settle

when = sys.argv[1]
if when == "as its line was printed":  # (attack50 F2: the plain "interrupted" line)

    def cut(self):
        raise KeyboardInterrupt

    settle.Settled.__str__ = cut
elif when == "as the call returned":  # (attack14's settle_ctrlc_after_commit.py)
    real = journal.Journal.settle

    def settle_then_ctrl_c(self, *args):
        real(self, *args)
        raise KeyboardInterrupt

    journal.Journal.settle = settle_then_ctrl_c
else:
    real_transaction = settle.transaction

    @contextlib.contextmanager
    def transaction(con, written=None):
        if when == "before the write":
            raise KeyboardInterrupt
        with real_transaction(con, written):
            yield
        raise KeyboardInterrupt  # as COMMIT returned

    settle.transaction = transaction
from rollback_lessons.cli import main

sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize(
    "when",
    ["as COMMIT returned", "as the call returned", "before the write", "as its line was printed"],
)
def test_a_ctrl_c_during_settle_says_whether_the_saga_is_settled(tmp_path, reg, when):
    """attack14 N-a: a Ctrl-C once the settle had committed printed only "interrupted
    (Ctrl-C)", though the saga was settled. Now the line says which it is (the commit known
    from the write, or read back), and so does the status: 0 settled, 130 not."""
    saga, faults = ended_for_a_person(reg, "halted")
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        saga.run({}, inject=faults, journal=journal, run_id="t1")
    args = ["journal", "settle", str(path), "t1", "--note", "refunded by hand"]
    done = subprocess.run([sys.executable, "-c", _CTRL_C, when, *args], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    with Journal(path, create=False, readonly=True) as journal:
        is_settled = [s.saga_id for s in settled(journal)] == ["t1"]
    assert is_settled == (when != "before the write")
    assert done.returncode == (0 if is_settled else 130), done.stderr  # (attack286 F4)
    if is_settled:
        if when != "as its line was printed":
            assert done.stdout.startswith("t1: halted, settled by ")
            assert "refunded by hand" in done.stdout
        assert done.stderr == (
            "rollback-lessons: interrupted (Ctrl-C) once the settle was written: the saga is "
            "settled\n"
        )
    else:
        assert done.stdout == ""
        assert done.stderr == (
            "rollback-lessons: interrupted (Ctrl-C) before the settle was written: nothing "
            "was settled\n"
        )


_CTRL_C_AT_THE_END = """
import atexit, os, signal, sys, time

sys.argv = ["rollback-lessons", *sys.argv[1:]]  # (the command: its own handlers)
from rollback_lessons import cli

def ctrl_c():  # (registered first: run last, as the process ends)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)

atexit.register(ctrl_c)
cli.run()
"""


def test_a_ctrl_c_as_the_process_ends_after_a_settle_keeps_its_status_0(tmp_path, reg):
    """attack285 F2: a Ctrl-C (or SIGTERM) heard once ``journal settle`` had written and said
    the settle, as the process ended, gave exit 130 (143): a script trusting the status
    retried the settle, refused (settled already). The README says such a one ends with the
    command's own status, 0."""
    saga, faults = ended_for_a_person(reg, "halted")
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        saga.run({}, inject=faults, journal=journal, run_id="t1")
    args = ["journal", "settle", str(path), "t1", "--note", "refunded by hand"]
    done = subprocess.run([sys.executable, "-c", _CTRL_C_AT_THE_END, *args],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.stdout.startswith("t1: halted, settled by "), done
    assert (done.returncode, done.stderr) == (0, (
        "rollback-lessons: a Ctrl-C came as the process ended, its command's work done and "
        "recorded\n"
    ))  # fmt: skip
    with Journal(path, create=False, readonly=True) as journal:
        assert [s.saga_id for s in settled(journal)] == ["t1"]
