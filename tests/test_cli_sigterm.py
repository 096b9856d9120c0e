"""s57 fixops 1 (attack60): a SIGTERM (a service manager's stop, ``kill``, a CI timeout) to
``recover`` or ``journal settle`` ended it with no line at all (exit -15, the default action).
Now it is heard as a Ctrl-C is there: one line saying what was done and what is left, exit 143,
claims left for the next recover, nothing finalised that was not done; heard once the command
had finished, said so, its status a failure's own, else 143 (as at the process's end). Real
signals, sent at instants the child says it reached (a byte on a pipe), never guessed with a
sleep."""

import os
import select
import signal
import subprocess
import sys
import textwrap

import pytest
from conftest import crash_at_first_undo

from rollback_lessons import Saga, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry
from rollback_lessons.durable.settle import settled as settled_in

registry = Registry()
COMP = registry.add("term.undo", lambda step, idempotency_key=None: None)


def _fails(idempotency_key=None):
    raise RuntimeError("the refund service is down")


BAD = registry.add("term.bad", _fails)

# The child's registry: its undos logged; it stops where STOP_AT says (reached: a byte on
# READY_FD, then it waits for a signal) -- at its import, in the undo of a step, at exit.
_REGISTRY = textwrap.dedent(
    """
    import atexit, os, signal
    from rollback_lessons.durable.registry import Registry

    STOP = os.environ.get("STOP_AT", "")

    def reached(where):
        if STOP == where:
            os.write(int(os.environ["READY_FD"]), b"x")
            while True:
                signal.pause()

    def log(line):
        with open(os.environ["TERM_LOG"], "a") as f:
            f.write(line + "\\n")

    reached("import")
    registry = Registry()

    def undo(step, idempotency_key=None):
        reached(f"undo {step}")
        log(f"undo {step}")

    registry.add("term.undo", undo)

    atexit.register(reached, "exit")
    """
)


def _crashed(tmp_path):
    """A journal whose saga (undos of a, b, c by term.undo, then z failing) crashed before
    its first undo: all three pending, its owner dead."""
    path = tmp_path / "j.db"
    saga = Saga([Step(k, lambda s: None, COMP.bind(step=k)) for k in "abc"]
                + [Step("z", lambda s: 1 / 0)])  # fmt: skip
    crash_at_first_undo(path, saga)
    return path


def _term_at(command: list[str], env: dict[str, str], stop: str) -> tuple[int, str, str]:
    """Run ``command`` until it reaches ``stop``, send it a real SIGTERM; its status and
    output. (SIGTERM as the parent left it: default, as a service manager starts it.)"""
    ready, tell = os.pipe()
    try:
        child = subprocess.Popen(
            command, env={**env, "STOP_AT": stop, "READY_FD": str(tell)}, pass_fds=(tell,),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL),
        )  # fmt: skip
        os.close(tell)
        tell = -1
        if select.select([ready], [], [], 60)[0] and os.read(ready, 1):
            child.send_signal(signal.SIGTERM)
        else:
            child.kill()
        out, err = child.communicate(timeout=60)
    finally:
        os.close(ready)
        if tell >= 0:
            os.close(tell)
    return child.returncode, out, err


def _env(tmp_path) -> dict[str, str]:
    (tmp_path / "term_registry.py").write_text(_REGISTRY)
    path = f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    return {**os.environ, "PYTHONPATH": path, "TERM_LOG": str(tmp_path / "undos.log")}


def _recover(path) -> list[str]:
    return [sys.executable, "-m", "rollback_lessons", "recover", str(path),
            "--registry", "term_registry"]  # fmt: skip


def _undone(tmp_path) -> list[str]:
    log = tmp_path / "undos.log"
    return log.read_text().splitlines() if log.exists() else []


def _states(path) -> tuple[str, int | None, list[str]]:
    with Journal(path, create=False) as journal:
        saga = journal.saga("s")
        return saga.status, saga.claim_pid, [u.state for u in journal.undos("s")]


@pytest.mark.parametrize(
    "stop, said, undone",
    [("import", "; what it undid is recorded, and the sagas it did not finish are left for "
      "the next recover", []),
     ("undo b", " during the undo of 'b' (saga 's'), not recorded done: it runs again next time"
      " (same idempotency key); what it undid before it is recorded, and left unfinished for"
      " the next recover: saga 's'", ["undo c"])],
    ids=["before-the-claim", "mid-undo"],
)  # fmt: skip
def test_a_sigterm_during_recover_is_one_line_143_and_leaves_the_rest(tmp_path, stop, said,
                                                                      undone):  # fmt: skip
    path, env = _crashed(tmp_path), _env(tmp_path)
    status, out, err = _term_at(_recover(path), env, stop)
    assert (status, out) == (143, ""), err
    said = f"recover interrupted (SIGTERM){said}"  # (the undo cut named: attack75 F3)
    assert err == f"rollback-lessons: {said}\n"
    assert _undone(tmp_path) == undone  # (the undo cut is not recorded done: run again)
    left = ["pending"] * (3 - len(undone)) + ["done"] * len(undone)  # (a, b, c: c undone first)
    assert _states(path)[::2] == ("rolling_back", left)
    again = subprocess.run(_recover(path), env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert _undone(tmp_path) == ["undo c", "undo b", "undo a"]  # (none twice, none lost)
    assert _states(path)[0] == "rolled_back"


def test_a_sigterm_at_recovers_exit_handlers_is_said_the_work_done(tmp_path):
    """In an exit handler (the registry's), the saga rolled back and said: one line saying
    the work is done; the status a Ctrl-C there has (130, attack39 F1), SIGTERM's: 143."""
    path, env = _crashed(tmp_path), _env(tmp_path)
    status, out, err = _term_at(_recover(path), env, "exit")
    assert status == 143 and out.startswith("s (saga): rolled_back"), (out, err)
    assert err == (
        "rollback-lessons: a SIGTERM came as the process ended, its command's work done "
        "and recorded\n"
    )
    assert _undone(tmp_path) == ["undo c", "undo b", "undo a"]
    assert _states(path)[0] == "rolled_back"


# A command's inner call wrapped before the command starts (as the command: ``sys.orig_argv``),
# stopping before it (STOP_AT=before) or once it returned (after): WRAP=module:name.
_WRAPPED = textwrap.dedent(
    """
    import importlib, os, runpy, signal, sys
    sys.orig_argv = [sys.executable, "-m", "rollback_lessons", *sys.argv[1:]]
    where, _, name = os.environ["WRAP"].partition(":")
    owner = importlib.import_module(where)
    *path, attr = name.split(".")
    for part in path:
        owner = getattr(owner, part)
    real = getattr(owner, attr)

    def reached():
        os.write(int(os.environ["READY_FD"]), b"x")
        while True:
            signal.pause()

    def wrapped(*args, **kwargs):
        if os.environ["STOP_AT"] == "before":
            reached()
        done = real(*args, **kwargs)
        reached()

    setattr(owner, attr, wrapped)
    sys.argv = ["-m", *sys.argv[1:]]
    runpy.run_module("rollback_lessons", run_name="__main__", alter_sys=True)
    """
)


def _wrapped(wrap: str, *argv: str) -> tuple[list[str], dict[str, str]]:
    return [sys.executable, "-c", _WRAPPED, *argv], {**os.environ, "WRAP": wrap}


def test_a_sigterm_once_recover_had_finished_says_so_and_is_143(tmp_path):
    """Its report said, its work done (``durable.command.DONE``): said so, exit 143, as a
    moment later, at the process's end (attack299 F3: exit 0 there, a stop said to have
    never happened)."""
    path = _crashed(tmp_path)
    command, env = _wrapped("rollback_lessons.durable.command:journal_command", *_recover(path)[3:])
    env["PYTHONPATH"] = _env(tmp_path)["PYTHONPATH"]
    status, out, err = _term_at(command, {**env, "TERM_LOG": str(tmp_path / "undos.log")}, "after")
    assert (status, out.splitlines()[-1]) == (143, "recovered 1 saga, left 0"), (out, err)
    assert err == (
        "rollback-lessons: interrupted (SIGTERM) once the command had finished: recover "
        f"finished (its report above; {path})\n"
    )
    assert _states(path)[::2] == ("rolled_back", ["done", "done", "done"])


@pytest.mark.parametrize(
    "stop, said, settled",
    [("before", "before the settle was written: nothing was settled", False),
     ("after", "once the settle was written: the saga is settled", True)],
)  # fmt: skip
def test_a_sigterm_during_settle_says_whether_it_was_settled(tmp_path, stop, said, settled):
    path = tmp_path / "j.db"
    saga = Saga([Step("a", lambda s: None, BAD.bind()), Step("z", lambda s: 1 / 0)],
                policy="halt")  # fmt: skip
    with Journal(path) as journal:
        saga.run({}, journal=journal, run_id="s")
        assert journal.saga("s").status == "halted"
    argv = ("journal", "settle", str(path), "s", "--note", "n")
    command, env = _wrapped("rollback_lessons.durable.journal:Journal.settle", *argv)
    status, _, err = _term_at(command, env, stop)
    assert status == (0 if settled else 143), err  # (the status says it: attack286 F4)
    assert err == f"rollback-lessons: interrupted (SIGTERM) {said}\n", err
    with Journal(path, create=False) as journal:
        assert [s.saga_id for s in settled_in(journal)] == ["s"] * settled


_EARLY = textwrap.dedent(
    """
    import os, runpy, signal, sys

    class Term:  # the SIGTERM lands while the package imports its engine
        def find_spec(self, name, path=None, target=None):
            if name == "rollback_lessons.events":
                os.kill(os.getpid(), signal.SIGTERM)
            return None

    sys.meta_path.insert(0, Term())
    sys.orig_argv = [sys.executable, "-m", "rollback_lessons", "demo"]  # as it was started
    sys.argv = ["-m", "demo"]
    runpy.run_module("rollback_lessons", run_name="__main__", alter_sys=True)
    """
)


def test_a_sigterm_while_the_command_imports_is_one_line_and_exit_143():
    done = subprocess.run(
        [sys.executable, "-c", _EARLY], capture_output=True, text=True, timeout=120,
        preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL),
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (143, "rollback-lessons: interrupted (SIGTERM)\n")


def test_a_sigterm_the_parent_ignores_stays_ignored_and_elsewhere_none_is_set():
    """A SIGTERM ignored by whoever started the command (``nohup``-like) is not taken back;
    importing the package in another program sets no SIGTERM handler."""
    code = (
        "import signal, sys; sys.orig_argv = [sys.executable, '-m', 'rollback_lessons'];"
        "import rollback_lessons, rollback_lessons.cli;"
        "assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120,
                   preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN))  # fmt: skip
    code = "import signal, rollback_lessons; assert signal.getsignal(signal.SIGTERM) == 0"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120,
                   preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))  # fmt: skip


_CUT_AT = """
import sys
from rollback_lessons import _starting, cli
from rollback_lessons.durable import command
from rollback_lessons.durable.journal import Journal

Journal(sys.argv[1]).close()  # (an empty journal: recover finds nothing, and ends 0)
sys.argv = ["rollback-lessons", "recover", sys.argv[1], "--registry",
            "rollback_lessons.worlds.crashlab"]
where, real = __import__("os").environ["CUT"], None

def cut(*args):  # (a SIGTERM landing there: its handler raises Terminated)
    real(*args)
    raise _starting.Terminated()

if where == "main":  # (as main returned, before run's try: attack299 F1)
    real, cli.main = cli.main, cut
else:  # (its work done and said, before main returned: F3)
    real, command.journal_command = command.journal_command, cut
cli.run()
"""


@pytest.mark.parametrize("where", ["main", "journal_command"])
def test_a_sigterm_as_recover_returns_is_one_line_and_143(tmp_path, where):
    """attack299 F1: a SIGTERM as ``main`` returned, before ``run``'s ``try``: a traceback
    (``Terminated``), exit 1. F3: one as the command ended, its work done: "interrupted
    (SIGTERM) once the command had finished", exit 0, a stop said to have never happened."""
    done = subprocess.run(
        [sys.executable, "-c", _CUT_AT, str(tmp_path / "j.db")], capture_output=True, text=True,
        timeout=120, env={**os.environ, "CUT": where},
    )  # fmt: skip
    assert done.returncode == 143 and "Traceback" not in done.stderr, done
    assert done.stderr == (
        "rollback-lessons: interrupted (SIGTERM) once the command had finished: recover "
        f"finished (its report above; {tmp_path / 'j.db'})\n"
    ), done.stderr
