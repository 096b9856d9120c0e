"""The third attacker's breaks of the README's recovery promises (issue 25), on the durable,
recover and command line side, each as a test: a claim checked after a wait, undos run as
the run would have (awaited, timed out), an undo durable before the next step, recover's
exit when a person must look, damaged values, interrupts, unwritable output, paths, early
Ctrl-C and bad journal arguments."""

import asyncio
import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import types
import warnings

import pytest
from conftest import dead_pid

from rollback_lessons import AsyncRollback, RetryPolicy, Rollback, Saga, Status, Step, UndoPolicy
from rollback_lessons.durable import recovery
from rollback_lessons.durable.files import SCHEMA_VERSION
from rollback_lessons.durable.journal import Journal, JournalError, JournalTakenOver
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry
from rollback_lessons.events import Event, EventKind

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def orphan(path) -> None:
    """Its process is gone: recover takes the saga over."""
    con = sqlite3.connect(path)
    con.execute("UPDATE sagas SET owner_pid = ?, owner_started = NULL", (dead_pid(),))
    con.commit()
    con.close()


def crash_at_undo(event) -> None:
    """An on_event that stops the run (as a crash would) before its first undo."""
    if event.kind == EventKind.UNDO:
        raise KeyboardInterrupt


# -- A. a recover taken over while it waits to retry runs nothing after its wait ------------


def test_a_recover_taken_over_during_a_retry_wait_runs_no_undo_after_it(tmp_path, monkeypatch):
    """The defect: only the first undo was preceded by a check of the claim; a retry after
    the policy's backoff ran although another recover had taken the saga over (and undone
    it) during the wait: the refund ran twice."""
    reg, calls = Registry(), []

    def refund(card, idempotency_key=None):
        calls.append(card)
        if calls.count(card) == 1:
            raise ConnectionError("bank busy")

    refund_ = reg.add("refund", refund)
    release = reg.add("release", lambda room, idempotency_key=None: calls.append(room))
    path = tmp_path / "j.db"
    journal = Journal(path)
    run = journal.start("trip", "t", policy=UndoPolicy(RetryPolicy(max_attempts=3)))
    run.register("charge", refund_.bind(card="c1"), "pending")
    run.register("hold", release.bind(room="r1"), "pending")  # undone first: newest first
    run.flush()
    orphan(path)

    def wait(seconds):  # meanwhile, `recover --force` elsewhere claims the saga
        con = sqlite3.connect(path)
        con.execute("UPDATE sagas SET claim_gen = claim_gen + 1, claim_pid = 1, claim_host = 'b'")
        con.commit()
        con.close()

    monkeypatch.setattr(recovery, "time", types.SimpleNamespace(sleep=wait, time=time.time))
    with pytest.raises(JournalTakenOver, match="taken over"):
        recover(journal, reg)
    assert calls == ["r1", "c1"]  # the refund's retry never ran here
    journal.close()


# -- B. an async or generator compensation runs as the run would have run it ---------------


def _one_pending(path, undo) -> Journal:
    journal = Journal(path)
    journal.start("trip", "t").register("hold", undo, "pending")
    orphan(path)
    return journal


def test_recover_awaits_an_async_compensation(tmp_path):
    """The defect: recover called it, dropped the coroutine ("never awaited") and recorded
    the undo done: rolled_back, the room still held."""
    reg, released = Registry(), []

    async def release(room, idempotency_key=None):
        await asyncio.sleep(0)
        released.append((room, idempotency_key))

    journal = _one_pending(tmp_path / "j.db", reg.add("release", release).bind(room="r1"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine ... was never awaited" fails the test
        [done] = recover(journal, reg)
    assert released == [("r1", "t:hold")]
    assert done.status is Status.ROLLED_BACK and journal.saga("t").status == "rolled_back"


def test_recover_awaits_an_async_compensation_from_inside_a_running_loop(tmp_path):
    reg, released = Registry(), []

    async def release(room, idempotency_key=None):
        await asyncio.sleep(0)
        released.append(room)

    journal = _one_pending(tmp_path / "j.db", reg.add("release", release).bind(room="r1"))

    async def in_a_notebook():  # (a running loop, as in a Jupyter cell)
        return recover(journal, reg)

    [done] = asyncio.run(in_a_notebook())
    assert released == ["r1"] and done.status is Status.ROLLED_BACK


def test_a_generator_compensation_is_a_dead_letter_in_recover_as_in_process(tmp_path):
    """The defect: its body never ran, and recover said rolled_back."""
    reg, ran = Registry(), []

    def release(room, idempotency_key=None):
        ran.append(room)
        yield

    undo = reg.add("release", release)
    in_process = Saga([Step("hold", lambda s: None, undo.bind(room="r1"), register="before"),
                       Step("pay", lambda s: 1 / 0)])  # fmt: skip
    o = in_process.run({}, journal=Journal(tmp_path / "in.db"))
    journal = _one_pending(tmp_path / "j.db", undo.bind(room="r1"))
    [done] = recover(journal, reg)
    assert ran == []
    assert done.status is o.status is Status.ROLLBACK_INCOMPLETE
    assert [str(d.error) for d in done.dead_letters] == [str(d.error) for d in o.dead_letters]
    assert "its body never ran" in str(done.dead_letters[0].error)


@pytest.mark.parametrize("kind", ["async", "plain"])
@pytest.mark.parametrize("driver", ["run", "arun", "Rollback"])
def test_a_generator_undo_is_a_dead_letter_in_every_driver_and_in_recover(tmp_path, driver, kind):
    """attack84 F2: an undo that gives an async generator (a registered ``async def`` that
    yields, or a plain undo returning one) was reported undone: its body never ran; so was a
    plain generator in ``saga.arun``."""
    reg, ran = Registry(), []

    async def agen(room, idempotency_key=None):
        ran.append(room)
        yield

    def gen(room, idempotency_key=None):
        ran.append(room)
        yield

    release = agen if kind == "async" else gen
    said = f"returned {'an async generator' if kind == 'async' else 'a generator'}: its body"

    undo = reg.add("release", release)
    if driver == "Rollback":  # (no journal: a plain undo that returns one)
        with pytest.raises(ZeroDivisionError), Rollback() as rb:
            rb.do("hold", lambda: None, lambda: release("r1"))
            raise ZeroDivisionError
        o = rb.outcome
    else:
        saga = Saga([Step("hold", lambda s: None, undo.bind(room="r1"), register="before"),
                     Step("pay", lambda s: 1 / 0)])  # fmt: skip
        journal = Journal(tmp_path / "in.db")
        o = saga.run({}, journal=journal) if driver == "run" else asyncio.run(
            saga.arun({}, journal=journal))  # fmt: skip
        assert journal.saga(o.run_id).status == "rollback_incomplete"
        [done] = recover(_one_pending(tmp_path / "j.db", undo.bind(room="r1")), reg)
        assert done.status is Status.ROLLBACK_INCOMPLETE
        assert said in str(done.dead_letters[0].error)
    assert ran == [] and o.status is Status.ROLLBACK_INCOMPLETE and o.compensated == ()
    assert said in str(o.dead_letters[0].error)


# -- C. undo timeouts: the policy's and the step's own apply in recover as in process -------

HANG = 1.0


def _hung_saga(reg, how):
    hung = reg.add("hung", lambda room, idempotency_key=None: time.sleep(HANG))
    if how == "policy":
        policy = UndoPolicy(RetryPolicy(max_attempts=2, initial_delay=0.01, timeout=0.1))
        step = Step("hold", lambda s: None, hung.bind(room="r1"))
    else:
        policy = "continue"
        step = Step("hold", lambda s: None, hung.bind(room="r1"), undo_timeout=0.1)
    return Saga([step, Step("pay", lambda s: 1 / 0)], policy=policy)


@pytest.mark.parametrize("how", ["policy", "undo_timeout"])
def test_recover_times_out_each_undo_attempt_as_the_run_did(tmp_path, how):
    """The defect: recover applied neither RetryPolicy(timeout=...) (kept in the journal)
    nor Step(undo_timeout=...) (not kept): a hung undo hung recover, which said
    rolled_back where the run said rollback_incomplete."""
    reg = Registry()
    saga = _hung_saga(reg, how)
    in_process = saga.run({}, journal=Journal(tmp_path / "in.db"))
    journal = Journal(tmp_path / "j.db")
    with pytest.raises(KeyboardInterrupt):
        saga.run({}, journal=journal, run_id="t", on_event=crash_at_undo)
    orphan(tmp_path / "j.db")
    start = time.monotonic()
    [done] = recover(journal, reg)
    took = time.monotonic() - start
    assert done.status is in_process.status is Status.ROLLBACK_INCOMPLETE
    assert [(d.step, d.attempts) for d in done.dead_letters] == [
        (d.step, d.attempts) for d in in_process.dead_letters
    ]
    assert isinstance(done.dead_letters[0].error, TimeoutError)
    assert took < HANG * len(done.dead_letters) * (2 if how == "policy" else 1)


def test_the_steps_own_undo_timeout_is_kept_in_the_journal(tmp_path):
    reg = Registry()
    undo = reg.add("u", lambda n, idempotency_key=None: None)
    saga = Saga([Step("a", lambda s: None, undo.bind(n=1), undo_timeout=2.5),
                 Step("b", lambda s: None, undo.bind(n=2), register="before"),
                 Step("c", lambda s: 1 / 0)])  # fmt: skip
    journal = Journal(tmp_path / "j.db")
    with pytest.raises(KeyboardInterrupt):
        saga.run({}, journal=journal, run_id="t", on_event=crash_at_undo)
    assert {u.step: u.timeout for u in journal.pending_undos()["t"]} == {"a": 2.5, "b": None}
    assert SCHEMA_VERSION == 8


def test_a_schema_4_journal_gains_the_undo_timeout_column_and_recovers(tmp_path):
    path = tmp_path / "old.db"
    reg = Registry()
    undo = reg.add("u", lambda n, idempotency_key=None: None)
    journal = _one_pending(path, undo.bind(n=1))
    journal.close()
    con = sqlite3.connect(path)  # as schema 4 wrote it: no timeout
    con.execute("ALTER TABLE undos DROP COLUMN timeout")
    con.execute("ALTER TABLE sagas DROP COLUMN graph")  # (schema 6)
    con.execute("ALTER TABLE sagas DROP COLUMN owner_space")  # (schema 7)
    con.execute("ALTER TABLE sagas DROP COLUMN claim_space")
    con.execute("ALTER TABLE sagas DROP COLUMN writer")  # (schema 8)
    con.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with Journal(path, readonly=True) as old:  # read as it is
        assert [u.timeout for u in old.pending_undos()["t"]] == [None]
    with Journal(path) as journal:  # (its owner's PID namespace unrecorded: --force)
        [done] = recover(journal, reg, force=True)
    assert done.status is Status.ROLLED_BACK


# -- D. an undo logged after its step is in the file before the next step starts -----------


def test_an_undo_logged_after_its_step_is_written_before_the_next_step(tmp_path):
    """The defect: its confirmation waited for the journal's next write; a step with no undo
    writes nothing, so a process killed during it left `book` an intent: recover said it
    leaked and undid nothing, though its undo had been logged."""
    reg = Registry()
    undo = reg.add("cancel", lambda room, idempotency_key=None: None)
    path = tmp_path / "j.db"
    seen = []

    def check(state):  # what another process (recover) reads while this step runs
        with Journal(path, readonly=True) as other:
            seen.extend((u.step, u.state) for u in other.undos(other.sagas()[0].id))

    saga = Saga([Step("book", lambda s: None, undo.bind(room="r1")), Step("check", check)])
    assert saga.run({}, journal=Journal(path)).status is Status.COMMITTED
    assert seen == [("book", "pending")]


# -- E. recover's exit when it leaves a saga for a person ----------------------------------


def _cli(*args, env=None, **kw):
    return subprocess.run(
        [sys.executable, "-m", "rollback_lessons", *args], capture_output=True, text=True,
        env=dict(os.environ, **(env or {})), **kw,
    )  # fmt: skip


REG = textwrap.dedent(
    """
    import os
    from rollback_lessons.durable.registry import Registry
    registry = Registry()

    def release(room, idempotency_key=None):
        how = os.environ.get("HOW", "")
        if how == "cancelled":
            import asyncio
            raise asyncio.CancelledError()
        if how == "abort":
            raise Abort("the worker pool is shutting down")

    class Abort(BaseException):
        pass

    RELEASE = registry.add("release", release)
    """
)


@pytest.fixture
def reg_module(tmp_path, monkeypatch):
    (tmp_path / "reg3.py").write_text(REG)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    import reg3

    importlib.reload(reg3)
    return reg3


@pytest.mark.parametrize("left", ["pivot started", "step leaked"])
def test_recover_exits_non_zero_when_it_leaves_a_saga_for_a_person(tmp_path, reg_module, left):
    """The defect: exit 0 and nothing on stderr, so a script calling recover saw success."""
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        run = journal.start("trip", "t")
        run.register("hold", reg_module.RELEASE.bind(room="r1"), "pending")
        if left == "pivot started":
            run.pivot("mail", "started")
        else:
            run.register("charge", reg_module.RELEASE.bind(room="c1"), "intent")
        run.flush()
    orphan(path)
    done = _cli("recover", str(path), "--registry", "reg3", env={"PYTHONPATH": str(tmp_path)})
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.splitlines()
    assert "a person must" in line and "1 saga " in line
    status = "halted" if left == "pivot started" else "rollback_incomplete"
    assert done.stdout.startswith(f"t (trip): {status}")


# -- F. damaged values are refused before any undo; names printed on one line --------------

S, U = "UPDATE sagas SET", "UPDATE undos SET"
DAMAGE = {
    "policy, one byte": f"{S} policy = replace(policy, 'dead_letter', 'dead_lettex')",
    "policy, bad JSON": f"{S} policy = replace(policy, 'null', 'nulm')",
    "policy, a retry field": f"{S} policy = replace(policy, 'max_attempts', 'max_attempt')",
    "owner pid a text": f"{S} owner_pid = 'x'",
    "claimer pid a text": f"{S} claim_pid = 'x', claim_host = '{socket.gethostname()}'",
    "undo order": f"{S} undo_order = 'reversf'",
    "undo timeout": f"{U} timeout = -1",
    "undo attempts": f"{U} attempts = 'x'",
    "event number": "UPDATE events SET seq = 'x'",
    # attack45 F7: an OverflowError, os.kill(-5) asking about a process group, and graphs
    # read only after another saga was undone (tracebacks)
    "owner pid too big": f"{S} owner_pid = 99999999999999",
    "owner pid below 1": f"{S} owner_pid = -5",
    "claimer pid too big": f"{S} claim_pid = 99999999999999, claim_host = 'h'",
    "graph an object": f"""{S} graph = '{{"a": ["zz"]}}'""",
    "graph of numbers": f"{S} graph = '[1]'",
    "graph, a dependency a number": f"""{S} graph = '[["a", [1]]]'""",
    "graph, a pair of three": f"""{S} graph = '[["a", [], 3]]'""",
    "event details not JSON": "UPDATE events SET details = '{'",
    "event details a list": "UPDATE events SET details = '[]'",
    "a step_start naming no step": "UPDATE events SET step = NULL",
    # attack48 F1: tracebacks after another saga's undos ran
    "graph, a dependency on no step": f"""{S} graph = '[["a", ["zz"]]]'""",
    "graph leaving out a step with an undo": f"""{S} graph = '[["b", []]]'""",
    "graph with a self-loop": f"""{S} graph = '[["a", ["a"]]]'""",
    "graph with a cycle": f"""{S} graph = '[["a", ["b"]], ["b", ["a"]]]'""",
    "graph naming a step twice": f"""{S} graph = '[["a", []], ["a", []]]'""",
    "undo error a blob": f"{U} state = 'dead', error = x'00ff'",
    "saga error a blob": f"{S} error = x'00ff'",
    # attack48 F13: the claim bumped it past SQLite's integers: the file refused ever after
    "claim generation at its maximum": f"{S} claim_gen = 9223372036854775807",
    # attack127 F3: recover added one to it, a REAL: the journal refused ever after
    "an undo's attempts at SQLite's maximum": f"{U} attempts = 9223372036854775807",
    # attack50 F6: its undo rows then named no saga: rolled_back with nothing undone, exit 0
    "a saga's id, one byte": f"{S} id = 'saga3'",
    "a saga's id with a colon": f"{S} id = 'saga:1'",
    "a claimer pid with no host": f"{S} claim_pid = 1, claim_host = NULL",  # ("ran on None")
    # attack86 F6: a blob not UTF-8 naming an undo's saga (a raw sqlite3.OperationalError),
    # text not UTF-8 in any column (the same); values read without a word
    "an undo's saga a blob": f"{U} saga_id = x'ff'",
    "an undo's saga a blob, UTF-8": f"{U} saga_id = CAST('saga1' AS BLOB)",
    "an event's saga a blob": "UPDATE events SET saga_id = x'ff'",
    "a saga's name not UTF-8": f"{S} name = CAST(x'ff' AS TEXT)",
    "an undo's arguments not UTF-8, past a NUL": f"{U} args = CAST(x'7b7d00ff' AS TEXT)",
    "an owner pid not UTF-8": f"{S} owner_pid = CAST(x'ff' AS TEXT)",
    "an undo's timeout not UTF-8": f"{U} timeout = CAST(x'c328' AS TEXT)",
    "a saga's start time a text": f"{S} started = 'zz'",
    "a saga's end time a blob": f"{S} ended = x'00'",
    "a saga's claim time a text": f"{S} claimed_at = 'zz'",
    "an event's kind unknown": "UPDATE events SET kind = 'zz'",
    "an event's kind empty": "UPDATE events SET kind = ''",
    "an event's kind a number": "UPDATE events SET kind = 1.5",
    "an owner namespace garbage": f"{S} owner_space = 'zz'",
    "an owner namespace a number": f"{S} owner_space = -1",
    "an owner namespace with a token not hex": f"{S} owner_space = 'pid:[1] boot 0a life zz'",
    "a claimer namespace garbage": f"{S} claim_space = 'running'",
    # attack86 F14: one of the pair written at once, erased: compensated across a pivot done
    "a pivot erased, its state kept": f"{S} pivot = NULL, pivot_state = 'done'",
    "a pivot state erased, its pivot kept": f"{S} pivot = 'a', pivot_state = NULL",
    # attack253 F2: valid JSON to SQLite, never written by bind: the undo called with inf,
    # or with the last of a key written twice
    "an undo's argument out of a float's range": f"""{U} args = '{{"room": 1e999}}'""",
    "an undo's argument keyed twice": f"""{U} args = '{{"room": "a1", "room": "z"}}'""",
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_value_of_any_saga_is_refused_before_any_undo(tmp_path, damage, capsys):
    """The defect: the kept policy of the second saga, changed by one byte, was read only
    after the first saga was undone (a traceback); a pid stored as text, a TypeError."""
    from rollback_lessons.cli import main

    reg, undone = Registry(), []
    undo = reg.add("u", lambda room, idempotency_key=None: undone.append(room))
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        for i in range(2):
            run = journal.start("s", f"saga{i}", policy=UndoPolicy(RetryPolicy(max_attempts=2)))
            run.event(Event(1, EventKind.STEP_START, "a", {}))
            run.register("a", undo.bind(room=f"a{i}"), "pending")
    orphan(path)
    con = sqlite3.connect(path)
    sql = DAMAGE[damage]
    con.execute(sql + (" WHERE id = 'saga1'" if sql.startswith(S) else " WHERE saga_id = 'saga1'"))
    assert con.total_changes
    con.commit()
    con.close()
    with Journal(path) as journal, pytest.raises(JournalError, match="never writes"):
        recover(journal, reg)
    assert undone == []
    sys.modules["attacks3_reg"] = types.SimpleNamespace(registry=reg)
    try:
        assert main(["recover", str(path), "--registry", "attacks3_reg"]) == 2
    finally:
        del sys.modules["attacks3_reg"]
    err = capsys.readouterr().err
    assert undone == [] and len(err.splitlines()) == 1 and "no undo was run" in err


def test_a_saga_name_with_a_line_break_is_one_row_of_recovers_report(tmp_path):
    reg = Registry()
    undo = reg.add("u", lambda room, idempotency_key=None: None)
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        journal.start("s", "saga1").register("a", undo.bind(room="a"), "pending")
    con = sqlite3.connect(path)  # a journal written before names were checked
    con.execute("UPDATE sagas SET name = 's' || char(10) || 'saga9 (s): rolled_back; undone a'")
    con.commit()
    con.close()
    orphan(path)
    with Journal(path) as journal:
        report = recover(journal, reg)
    lines = str(report).splitlines()
    assert len(lines) == 2 and "recovered 1" in lines[1]
    assert lines[0].startswith("saga1 ('s\\nsaga9")


# -- G. an undo raising another BaseException during recover: one line, saga kept ----------


@pytest.mark.parametrize("how", ["cancelled", "abort"])
def test_an_undo_raising_a_base_exception_leaves_the_saga_for_the_next_recover(
    tmp_path, reg_module, how
):
    """The defect: a 26-line traceback (asyncio's CancelledError, a library's own
    BaseException subclass). An undo's own CancelledError (no task being cancelled) is a
    failure, as in process (attack174 F1): a dead letter, and the saga ends."""
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        journal.start("trip", "t").register("hold", reg_module.RELEASE.bind(room="r1"), "pending")
    orphan(path)
    env = {"PYTHONPATH": str(tmp_path), "HOW": how}
    done = _cli("recover", str(path), "--registry", "reg3", env=env)
    if how == "cancelled":
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert done.stdout.startswith("t (trip): rollback_incomplete; undone -; dead letters hold")
        with Journal(path) as journal:
            assert journal.saga("t").status == "rollback_incomplete"
        return
    assert done.returncode == 2 and "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert "the undo of 'hold'" in line and "next recover" in line
    with Journal(path) as journal:
        assert journal.saga("t").status == "running"
    again = _cli("recover", str(path), "--registry", "reg3", env={"PYTHONPATH": str(tmp_path)})
    assert again.returncode == 0 and again.stdout.startswith("t (trip): rolled_back")


def test_an_awaited_undos_own_cancel_is_a_dead_letter_as_in_process(tmp_path):
    """(It was an interrupt: recover stopped there for good, attack174 F1.)"""
    reg = Registry()

    async def release(room, idempotency_key=None):
        raise asyncio.CancelledError

    journal = _one_pending(tmp_path / "j.db", reg.add("release", release).bind(room="r1"))
    [outcome] = recover(journal, reg).recovered
    assert outcome.status is Status.ROLLBACK_INCOMPLETE
    assert [d.step for d in outcome.dead_letters] == ["hold"]
    assert journal.saga("t").status == "rollback_incomplete"


# -- H. an output that cannot be written: one line that says so, never the journal's fault --


def _shell(cmd, tmp_path):
    return subprocess.run(
        cmd, shell=True, capture_output=True, text=True, cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(tmp_path)),
    )  # fmt: skip


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("command", ["journal show j.db", "recover j.db --registry reg3", "demo"])
@pytest.mark.parametrize("redirect", [">&-", "> /dev/full"])
def test_an_unwritable_stdout_is_one_line_never_blamed_on_the_journal(
    tmp_path, reg_module, command, redirect
):
    """The defect: tracebacks (AttributeError for a closed stdout, OSError at exit for a
    full one), and `journal show > /dev/full` said "cannot use j.db"."""
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        journal.start("trip", "t").register("hold", reg_module.RELEASE.bind(room="r1"), "pending")
    orphan(path)
    done = _shell(f"{sys.executable} -m rollback_lessons {command} {redirect}", tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert "standard output" in line and "j.db" not in line.split(";")[0]
    with Journal(path, readonly=True) as journal:
        status = journal.saga("t").status
    if command.startswith("recover"):  # closed: refused before anything; full: done, said
        assert status == ("running" if redirect == ">&-" else "rolled_back")
        assert redirect == ">&-" or "recorded in" in line


# -- I. paths: any byte names its file; a file that is not a regular file is refused -------


def test_a_file_name_that_is_not_utf_8_names_that_file(tmp_path):
    """The defect: UnicodeEncodeError (a traceback in the CLI)."""
    odd = tmp_path / os.fsdecode(b"\xffjournal.db")
    Journal(odd).close()
    assert os.fsencode(odd.name) in os.listdir(os.fsencode(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "rollback_lessons", "journal", "show", os.fsencode(odd)],
        capture_output=True,
    )
    assert done.returncode == 0 and done.stdout.startswith(b"saga")


def test_a_path_with_two_leading_slashes_is_that_path(tmp_path):
    """The defect: "invalid uri authority" (SQLite read `//tmp` as a host)."""
    twice = "/" + str(tmp_path / "j.db")
    with Journal(twice) as journal:
        journal.start("s", "one").flush()
    with Journal(tmp_path / "j.db", readonly=True) as same:
        assert [s.id for s in same.sagas()] == ["one"]


@pytest.mark.parametrize("what", ["/dev/null", "fifo"])
def test_a_file_that_is_not_a_regular_file_is_refused_in_one_line(tmp_path, what):
    """The defect: SQLite's "disk I/O error", which named nothing."""
    path = what
    if what == "fifo":
        path = str(tmp_path / "fifo")
        os.mkfifo(path)
    for readonly in (False, True):
        with pytest.raises(JournalError, match=f"{path} is not a regular file"):
            Journal(path, readonly=readonly)
    done = _cli("journal", "show", path)
    assert done.returncode == 2 and "is not a regular file" in done.stderr


# -- J. a Ctrl-C while the command is still importing --------------------------------------


def _ctrl_c_default() -> None:
    """The child hears Ctrl-C as from a terminal, even when this run was started in the
    background (a shell starts background jobs with SIGINT ignored, and children inherit it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


EARLY_CTRL_C = textwrap.dedent(
    """
    import os, runpy, signal, sys

    class CtrlC:  # the Ctrl-C lands while the package imports its engine
        def find_spec(self, name, path=None, target=None):
            if name == "rollback_lessons.events":
                os.kill(os.getpid(), signal.SIGINT)
            return None

    sys.meta_path.insert(0, CtrlC())
    sys.orig_argv = [sys.executable, "-m", "rollback_lessons", "demo"]  # as it was started
    sys.argv = ["-m", "demo"]
    runpy.run_module("rollback_lessons", run_name="__main__", alter_sys=True)
    """
)


def test_a_ctrl_c_while_the_command_imports_is_one_line_and_exit_130():
    """The defect: a KeyboardInterrupt traceback and exit -2 (the command's handler was
    installed only once the package had been imported)."""
    done = subprocess.run(
        [sys.executable, "-c", EARLY_CTRL_C], capture_output=True, text=True,
        preexec_fn=_ctrl_c_default,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (130, "rollback-lessons: interrupted (Ctrl-C)\n")


def test_importing_the_package_elsewhere_changes_no_signal_handler():
    code = (
        "import signal, rollback_lessons, rollback_lessons.cli;"
        "assert signal.getsignal(signal.SIGINT) is signal.default_int_handler"
    )
    subprocess.run([sys.executable, "-c", code], check=True, preexec_fn=_ctrl_c_default)


def test_the_command_catches_a_ctrl_c_itself_once_started(monkeypatch, capsys):
    from rollback_lessons import _starting, cli

    # (_starting uses _signal, the module Python loads before any script, as ``signal``)
    monkeypatch.setattr(_starting.signal, "getsignal", lambda s: _starting._interrupted)
    restored = []
    monkeypatch.setattr(_starting.signal, "signal", lambda s, h: restored.append(h))

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_main", interrupted)
    assert cli.main(["demo"]) == 130
    assert restored[0] == _starting._interrupt  # (a KeyboardInterrupt, or held: attack68)
    assert capsys.readouterr().err == "rollback-lessons: interrupted (Ctrl-C)\n"


# -- K. bad journal arguments: a typed error before anything happens -----------------------


@pytest.mark.parametrize(
    "timeout, error", [("30", TypeError), (True, TypeError), (math.nan, ValueError),
                       (-1.0, ValueError), (math.inf, ValueError)]
)  # fmt: skip
def test_a_bad_journal_timeout_is_refused_before_the_file_is_made(tmp_path, timeout, error):
    """The defect: the file was created, then TypeError; NaN and -1 were accepted."""
    with pytest.raises(error, match="timeout"):
        Journal(tmp_path / "j.db", timeout=timeout)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("wait", ["nan", "-1", "inf", "soon"])
def test_the_clis_wait_must_be_a_number_of_seconds(tmp_path, wait):
    Journal(tmp_path / "j.db").close()
    done = _cli("journal", "show", str(tmp_path / "j.db"), "--wait", wait)
    assert done.returncode == 2 and "not a number of seconds" in done.stderr


@pytest.mark.parametrize("how", ["read-only", "closed"])
def test_a_journal_that_cannot_record_is_refused_before_any_step(tmp_path, how):
    """The defect: the run went ahead and said rolled_back (its first write failed)."""
    reg, ran = Registry(), []
    undo = reg.add("u", lambda n, idempotency_key=None: None)
    saga = Saga([Step("a", lambda s: ran.append("a"), undo.bind(n=1)), Step("b", lambda s: None)])
    Journal(tmp_path / "j.db").close()
    if how == "read-only":
        journal = Journal(tmp_path / "j.db", readonly=True)
    else:
        journal = Journal(tmp_path / "j.db")
        journal.close()
    with pytest.raises(ValueError, match=how.replace("read-only", "opened read-only")):
        saga.run({}, journal=journal)
    assert ran == []
    with pytest.raises(ValueError, match="nothing was claimed"):
        recover(journal, reg)


def test_an_undo_row_renamed_to_another_steps_name_is_refused_before_any_undo(tmp_path):
    """attack45 F7: a KeyError after another saga's undos ran (a step done whose undo row
    was renamed to another step's: its undo would run twice, the renamed one's never)."""
    reg, undone = Registry(), []
    undo = reg.add("u", lambda room, idempotency_key=None: undone.append(room))
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        run = journal.start("s", "s1")
        for i, step in enumerate("ab"):
            run.event(Event(2 * i + 1, EventKind.STEP_START, step, {"register": "before"}))
            run.register(step, undo.bind(room=step), "pending")
            run.event(Event(2 * i + 2, EventKind.STEP_DONE, step, {}))
    orphan(path)
    con = sqlite3.connect(path)
    con.execute("UPDATE undos SET step = 'b' WHERE step = 'a'")
    con.commit()
    con.close()
    with Journal(path) as journal, pytest.raises(JournalError, match="an undo's step is 'b'"):
        recover(journal, reg)
    assert undone == []


def test_a_dead_letters_error_text_is_read_whatever_it_holds(tmp_path):
    """attack48 F1: ast.literal_eval of 'ValueError(1+1+...+1)' (RecursionError), of
    'ValueError(---...1)' (MemoryError): after another saga's undos ran."""
    reg, undone = Registry(), []
    undo = reg.add("u", lambda room, idempotency_key=None: undone.append(room))
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        for i in range(2):
            run = journal.start("s", f"saga{i}")
            run.event(Event(1, EventKind.STEP_START, "a", {}))
            run.register("a", undo.bind(room=f"a{i}"), "pending")
            run.register("b", undo.bind(room=f"b{i}"), "pending")
    orphan(path)
    con = sqlite3.connect(path)
    deep = "ValueError(" + "1+" * 50000 + "1)"
    con.execute("UPDATE undos SET state = 'dead', error = ? WHERE saga_id = 'saga1' AND step = 'a'",
                (deep,))  # fmt: skip
    con.commit()
    con.close()
    with Journal(path) as journal:
        report = recover(journal, reg)
    assert sorted(undone) == ["a0", "b0", "b1"]
    [dead] = next(r for r in report.recovered if r.saga_id == "saga1").dead_letters
    assert dead.error.type_name == "ValueError" and str(dead.error).startswith("1+1+")


@pytest.mark.parametrize("given", ["coroutine", "generator", "async generator"])
@pytest.mark.parametrize("driver", ["arun", "arun timed", "AsyncRollback", "recover"])
def test_an_awaited_undo_that_gives_back_a_body_never_run_is_a_dead_letter(tmp_path, driver, given):
    """attack85 F2: ``async def undo(...): return refund(...)`` (an await missing) was
    awaited, its result dropped: reported undone, the refund never made."""
    ran: list[str] = []

    async def inner_coro():
        ran.append("refund")

    def inner_gen():
        ran.append("refund")
        yield

    async def inner_agen():
        ran.append("refund")
        yield

    inner = {"coroutine": inner_coro, "generator": inner_gen, "async generator": inner_agen}

    async def refund(idempotency_key=None):
        return inner[given]()

    reg = Registry()
    undo = reg.add("refund", refund).bind()
    timed = {"undo_timeout": 1.0} if driver == "arun timed" else {}
    said = f"gave back a{'n' if given[0] == 'a' else ''} {given} when awaited: its body never ran"
    if driver == "AsyncRollback":

        async def block():
            with pytest.raises(ZeroDivisionError):
                async with AsyncRollback() as rb:
                    await rb.do("a", lambda: None, refund)
                    raise ZeroDivisionError
            return rb.outcome

        o = asyncio.run(block())
    elif driver == "recover":
        saga = Saga(
            [Step("a", lambda s: None, undo, register="before"), Step("b", lambda s: 1 / 0)]
        )
        with Journal(tmp_path / "j.db") as journal:
            with pytest.raises(KeyboardInterrupt):  # (arun: saga.run refuses an async
                asyncio.run(  # def compensation before anything runs, attack91 F2)
                    saga.arun({}, journal=journal, run_id="s", on_event=_dies_at_undo)
                )
            journal.write([("UPDATE sagas SET owner_pid = ?", (dead_pid(),))])
            [o] = recover(journal, reg).recovered
    else:
        saga = Saga([Step("a", lambda s: None, lambda s: refund(), **timed),
                     Step("b", lambda s: 1 / 0)])  # fmt: skip
        o = asyncio.run(saga.arun({}))
    assert ran == [] and o.status is Status.ROLLBACK_INCOMPLETE and o.compensated == ()
    assert said in str(o.dead_letters[0].error)


def _dies_at_undo(event):
    if event.kind == "undo":
        raise KeyboardInterrupt


@pytest.mark.parametrize("given", ["coroutine", "async generator"])
def test_an_awaited_action_that_gives_back_a_body_never_run_fails_its_step(given):
    """attack85 F2: a pivot whose action forgot an await committed, the email never sent.
    What ran before it gave the coroutine back may have had its effect (attack88 F10): the
    pivot in doubt, nothing is compensated across it; halted for a person."""
    sent: list[str] = []

    async def send():
        sent.append("email")

    async def send_agen():
        sent.append("email")
        yield

    async def email(state):
        return send() if given == "coroutine" else send_agen()

    saga = Saga([Step("charge", lambda s: None, lambda s: sent.append("refund")),
                 Step("email", lambda s: email(s), None, kind="pivot")])  # fmt: skip
    o = asyncio.run(saga.arun({}))  # (what ran before it may have sent: the pivot in doubt,
    assert o.status is Status.HALTED and sent == [] and o.completed == ("charge",)  # attack88
    assert "when awaited: its body never ran" in str(o.error)  # F10: left for a person)


@pytest.mark.parametrize("role", ["undo", "action"])
def test_a_task_a_synchronous_run_is_given_is_cancelled_before_it_runs(role):
    """attack85 F7: a sync run inside async code given an asyncio Task (scheduled already)
    said "cannot await it", then the Task ran at the loop's next turn: a refund done under a
    dead letter, a charge done under rolled_back. It is cancelled now, before it runs."""
    world: list[str] = []

    async def effect(what):
        world.append(what)

    async def main():
        if role == "undo":
            with pytest.raises(ZeroDivisionError), Rollback() as rb:
                rb.do("a", lambda: None, lambda: asyncio.ensure_future(effect("refund")))
                raise ZeroDivisionError
        else:
            with pytest.raises(TypeError), Rollback() as rb:
                rb.do("charge", lambda: asyncio.ensure_future(effect("charge")))
        await asyncio.sleep(0.05)  # (the loop's next turns: a Task left would run now)
        return rb.outcome

    o = asyncio.run(main())
    assert world == []
    said = "returned an asyncio Task that no loop can run here (cancelled now, before it ran)"
    if role == "undo":
        assert o.status is Status.ROLLBACK_INCOMPLETE and said in str(o.dead_letters[0].error)
    else:
        assert o.status is Status.ROLLED_BACK and said in str(o.error)


@pytest.mark.parametrize("driver", ["run", "arun", "arun timed", "Rollback"])
@pytest.mark.parametrize("refund_fails", [False, True])
def test_an_undo_that_hands_its_work_to_a_pool_is_that_work(driver, refund_fails):
    """attack85 F7: ``lambda: pool.submit(refund)`` was reported undone whatever the refund
    did. The run waits for it (the async drivers await it): its error is the undo's."""
    from concurrent.futures import ThreadPoolExecutor

    world: list[str] = []

    def refund():
        time.sleep(0.05)
        if refund_fails:
            raise ConnectionError("refund refused")
        world.append("refund")

    with ThreadPoolExecutor(1) as pool:
        undo = lambda s=None: pool.submit(refund)  # noqa: E731
        if driver == "Rollback":
            with pytest.raises(ZeroDivisionError), Rollback() as rb:
                rb.do("a", lambda: None, undo)
                raise ZeroDivisionError
            o = rb.outcome
        else:
            timed = {"undo_timeout": 5.0} if driver == "arun timed" else {}
            saga = Saga([Step("a", lambda s: None, undo, **timed), Step("b", lambda s: 1 / 0)])
            o = saga.run({}) if driver == "run" else asyncio.run(saga.arun({}))
    if refund_fails:
        assert o.status is Status.ROLLBACK_INCOMPLETE and world == []
        assert "refund refused" in str(o.dead_letters[0].error)
    else:
        assert o.status is Status.ROLLED_BACK and world == ["refund"]


def test_an_undo_s_attempts_at_the_most_the_journal_takes_stays_one_it_reads(tmp_path):
    """attack128 F6 (attack127 F3 moved): attempts at the most a journal takes (10^9) was
    taken, recover counted a failed attempt past it, and the journal was refused as damaged
    ever after. The count stops there."""
    reg = Registry()

    def fails(room, idempotency_key=None):
        raise ConnectionError("down")

    undo = reg.add("u", fails)
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        run = journal.start("s", "saga1", policy=UndoPolicy(RetryPolicy(max_attempts=2)))
        run.event(Event(1, EventKind.STEP_START, "a", {}))
        run.register("a", undo.bind(room="a"), "pending")
    orphan(path)
    con = sqlite3.connect(path)
    con.execute("UPDATE undos SET attempts = 1000000000")
    con.commit()
    con.close()
    with Journal(path) as journal:
        recover(journal, reg)
    with Journal(path) as journal:
        assert journal.quick_check() == "ok"
        [attempts] = journal._rows("SELECT attempts FROM undos")[0]
    assert attempts == 1000000000
