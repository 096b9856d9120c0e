"""A second signal from the first one's handler on (attack68 F1, F2, F3, L1): the command's
handler holds (only notes) a Ctrl-C or SIGTERM heard while an interrupt is being handled, or
as the first one's handler runs. Before, one that landed after the first interrupt was raised
and before ``held`` was entered cut recover's clean-up (its claims kept, the line naming the
second signal, "the sagas it did not finish"), was a traceback in ``cli.main``, or replaced
settle's line by a bare "interrupted (SIGTERM)". Real signals, in the real command's process
(``python -m rollback_lessons``); only their instant is a stand-in (the registry's undo, or a
``sitecustomize`` that wraps the call the instant is at), never a sleep."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest
import test_recover_waiting
from conftest import orphan
from test_recover_waiting import ended_for_a_person

from rollback_lessons import Saga, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry

reg = test_recover_waiting.reg  # its registry module and world, a fixture

registry = Registry()
UNDO = registry.add("sig2.undo", lambda step, idempotency_key=None: None)

# The moment of the second signal, in the command's process (SIGNAL_AT says which).
_HOOK = textwrap.dedent(
    """
    import os, signal, sys, time

    AT = os.environ.get("SIGNAL_AT", "")

    def kill(*names):  # (both pending at once, then let in: heard together)
        sigs = {getattr(signal, "SIG" + n) for n in names}
        signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
        for n in names:
            os.kill(os.getpid(), getattr(signal, "SIG" + n))
        signal.pthread_sigmask(signal.SIG_UNBLOCK, sigs)

    def term_as_held_swaps():  # a SIGTERM just as ``held`` has swapped SIGINT's handler
        real = signal.signal
        def swapped(which, handler):
            old = real(which, handler)
            if which == signal.SIGINT and getattr(handler, "__name__", "") == "<lambda>":
                signal.signal = real
                kill("TERM")
            return old
        signal.signal = swapped

    class _Err:  # stderr: a SIGTERM as the first interrupt's line is written
        def __init__(self, real):
            self.real, self.armed = real, True
        def write(self, text):
            if self.armed and "interrupted" in text:
                self.armed = False
                kill("TERM")
            return self.real.write(text)
        def __getattr__(self, name):
            return getattr(self.real, name)

    class _Finder:  # a signal as a module begins to import
        def find_spec(self, name, path=None, target=None):
            if AT.startswith("import ") and name == AT.split()[2]:
                kill(AT.split()[1])
            return None

    if AT.startswith("import "):
        sys.meta_path.insert(0, _Finder())
    elif AT:
        import importlib
        from rollback_lessons import cli
        from rollback_lessons.durable import journal

        def table(self):  # ``journal show``: a Ctrl-C as it reads
            term_as_held_swaps()
            kill("INT")
            time.sleep(60)  # (not reached)

        journal.Journal.table = table
        said = []  # (where the command takes ``_say`` from: cli, or _output)
        for name in ("rollback_lessons.cli", "rollback_lessons._output"):
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            if hasattr(module, "_say"):
                said.append(module)
        real_say = said[0]._say

        def nested(frame, event, arg):  # a SIGTERM as the Ctrl-C's handler begins
            if event == "call" and frame.f_code.co_name == "_interrupt":
                sys.setprofile(None)
                kill("TERM")

        def say(*lines):  # settle's line, once the settle is written: a Ctrl-C
            if AT == "settle nested":
                sys.setprofile(nested)
            kill("INT")
            return real_say(*lines)

        for module in said:
            module._say = say
        if AT == "settle line":
            sys.stderr = _Err(sys.stderr)
        if AT == "settle returned":  # a SIGTERM once the command returned, its line told
            class _Out:
                def flush(self):
                    kill("TERM")
                def __getattr__(self, name):
                    return getattr(real_out, name)
            real_out, cli.STDOUT = cli.STDOUT, _Out()
    """
)

# The recover's registry: at its undo number AT, a Ctrl-C in it, and the second signal as
# SECOND says: as ``held`` swaps SIGINT's handler, or heard together with it.
_REGISTRY = textwrap.dedent(
    """
    import os, signal, time
    from rollback_lessons.durable.registry import Registry
    from sig2hook import kill, term_as_held_swaps

    registry = Registry()
    calls = [0]

    def undo(step, idempotency_key=None):
        calls[0] += 1
        if calls[0] == int(os.environ["AT"]):
            if os.environ["SECOND"] == "together":
                kill("INT", "TERM")
            else:
                term_as_held_swaps()
                kill("INT")
            time.sleep(60)  # (not reached)
        with open(os.environ["UNDO_LOG"], "a") as f:
            f.write(f"undo {step}\\n")

    registry.add("sig2.undo", undo)
    """
)


def _command(tmp_path, args: list[str], **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "sig2hook.py").write_text(_HOOK)
    (tmp_path / "sig2reg.py").write_text(_REGISTRY)
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text("from sig2hook import *\n")
    path = os.pathsep.join([str(hook), str(tmp_path), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "rollback_lessons", *args], capture_output=True, text=True,
        timeout=120, cwd=tmp_path, env={**os.environ, "PYTHONPATH": path, **env},
    )  # fmt: skip


def _crashed(path, n: int, name: str = "s{}") -> None:
    """``n`` sagas (s0, s1, ...: ``name``) of one step each, crashed before their undo."""

    def crash(event):
        if event.kind == "undo":
            raise KeyboardInterrupt

    saga = Saga([Step("a", lambda s: None, UNDO.bind(step="a")), Step("z", lambda s: 1 / 0)])
    with Journal(path) as journal:
        for i in range(n):
            with pytest.raises(KeyboardInterrupt):
                saga.run({}, journal=journal, run_id=name.format(i), on_event=crash)
    for i in range(n):
        orphan(path, name.format(i))


@pytest.mark.parametrize("second", ["as held swaps", "together"])
def test_a_second_signal_as_recovers_clean_up_begins_is_held(tmp_path, second):
    """F1: a Ctrl-C in the second saga's undo, a SIGTERM right behind it: the Ctrl-C's line
    (exit 130), the sagas left named, every claim given back, what it undid recorded."""
    path = tmp_path / "j.db"
    _crashed(path, 4)
    log = tmp_path / "undos.log"
    done = _command(tmp_path, ["recover", str(path), "--registry", "sig2reg"],
                    AT="2", SECOND=second, UNDO_LOG=str(log))  # fmt: skip
    assert done.returncode == 130, done.stderr
    assert done.stderr == (
        "rollback-lessons: recover interrupted (Ctrl-C) during the undo of 'a' (saga 's1'), not "
        "recorded done: it runs again next time (same idempotency key); what it undid before it "
        "is recorded, and left unfinished for the next recover: sagas 's1', 's2', 's3'\n"
    )
    assert done.stdout.startswith("s0 (")
    con = sqlite3.connect(path)
    try:
        status = dict(con.execute("SELECT id, status FROM sagas"))
        claims = con.execute(
            "SELECT count(*) FROM sagas WHERE claim_pid IS NOT NULL AND status != 'rolled_back'"
        )
        assert claims.fetchone()[0] == 0  # (given back: the next recover takes them at once)
        done_undos = con.execute("SELECT saga_id FROM undos WHERE state = 'done'").fetchall()
    finally:
        con.close()
    assert status["s0"] == "rolled_back" and done_undos == [("s0",)]
    assert log.read_text() == "undo a\n"


def test_a_second_signal_as_the_commands_line_begins_is_no_traceback(tmp_path):
    """F2: ``journal show`` cut by a Ctrl-C, a SIGTERM as ``cli.main`` begins to hold them
    to write its line: one line, the Ctrl-C's, exit 130 (was a traceback, exit 1)."""
    path = tmp_path / "j.db"
    _crashed(path, 1)
    done = _command(tmp_path, ["journal", "show", str(path)], SIGNAL_AT="show")
    assert (done.returncode, done.stderr) == (130, "rollback-lessons: interrupted (Ctrl-C)\n")


@pytest.mark.parametrize("at", ["settle line", "settle nested", "settle returned"])
def test_a_second_signal_as_settle_says_it_is_settled_is_held(tmp_path, reg, at):
    """F3: the settle written, a Ctrl-C as its line is printed, and a SIGTERM as the
    interrupt's line is written, or as the Ctrl-C's handler begins (Python calls the second
    handler there, before the first has raised), or once the command returned: the Ctrl-C's
    line alone (was a bare "interrupted (SIGTERM)", exit 143); exit 0, it is settled."""
    saga, faults = ended_for_a_person(reg, "halted")
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        saga.run({}, inject=faults, journal=journal, run_id="t1")
    args = ["journal", "settle", str(path), "t1", "--note", "by hand"]
    done = _command(tmp_path, args, SIGNAL_AT=at)
    assert (done.returncode, done.stderr) == (
        0,  # (settled: the status says so, attack286 F4)
        "rollback-lessons: interrupted (Ctrl-C) once the settle was written: the saga is settled\n",
    )


@pytest.mark.parametrize(
    ("sig", "why", "status"), [("TERM", "SIGTERM", 143), ("INT", "Ctrl-C", 130)]
)
def test_a_signal_as_settle_loads_its_modules_says_nothing_was_settled(
    tmp_path, reg, sig, why, status
):
    """L1: a signal as ``journal_command`` imports what it uses: said whether the saga is
    settled (nothing was), not a bare "interrupted"."""
    saga, faults = ended_for_a_person(reg, "halted")
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        saga.run({}, inject=faults, journal=journal, run_id="t1")
    args = ["journal", "settle", str(path), "t1", "--note", "by hand"]
    done = _command(tmp_path, args, SIGNAL_AT=f"import {sig} rollback_lessons.durable.report")
    assert (done.returncode, done.stderr) == (
        status,
        f"rollback-lessons: interrupted ({why}) before the settle was written: nothing was "
        "settled\n",
    )
