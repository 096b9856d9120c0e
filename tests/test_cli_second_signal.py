"""attack66 F3, F5: a second signal once the command was interrupted.

F3: its line waiting to be written (stderr a pipe nobody reads yet), a second SIGTERM raised
in the write: a traceback, exit 1 (``journal show``), or a second line (``recover``). Now the
interrupt's line is written with a second signal held: one line, the first one's status.
F5: a second signal in an exit handler (a registry's client flushing) after an interrupted
command added "a SIGTERM came as the process ended, its command's work done and recorded":
false, and a second line. Now that line is said only when the command's work was done."""

import os
import select
import signal
import subprocess
import sys
import textwrap

import pytest
from test_cli_sigterm import _crashed, _states

from rollback_lessons.cli import main
from rollback_lessons.durable import recovery
from rollback_lessons.durable.journal import Journal


class _Stderr:
    """A standard error whose first write is cut by a second Ctrl-C (a real SIGINT)."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        if not self.text:
            signal.raise_signal(signal.SIGINT)
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("command", ["show", "recover"])
def test_a_second_ctrl_c_as_the_interrupts_line_is_written_keeps_one_line(
    tmp_path, monkeypatch, command
):
    path = _crashed(tmp_path)

    def cut(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(Journal, "table", cut)
    monkeypatch.setattr(recovery, "recover", cut)
    stderr = _Stderr()
    monkeypatch.setattr(sys, "stderr", stderr)
    argv = ["journal", "show", str(path)]
    if command == "recover":
        argv = ["recover", str(path), "--registry", "test_cli_sigterm"]
    try:
        status = main(argv)
    except KeyboardInterrupt:  # (the defect: out of main, a traceback)
        pytest.fail(f"the second Ctrl-C escaped main; stderr: {stderr.text!r}")
    assert status == 130
    assert len(stderr.text.splitlines()) == 1, stderr.text
    said = "recover interrupted (Ctrl-C); " if command == "recover" else "interrupted (Ctrl-C)"
    assert stderr.text.startswith(f"rollback-lessons: {said}"), stderr.text


# The child's registry: it stops at each of STOPS (a byte on READY_FD, then it waits for a
# signal): in the undo of b, then in an exit handler (a client library flushing at exit).
_REGISTRY = textwrap.dedent(
    """
    import atexit, os, signal
    from rollback_lessons.durable.registry import Registry

    def reached(where):
        if where in os.environ["STOPS"].split(","):
            os.write(int(os.environ["READY_FD"]), b"x")
            while True:
                signal.pause()

    registry = Registry()
    registry.add("term.undo", lambda step, idempotency_key=None: reached(f"undo {step}"))
    atexit.register(reached, "exit")
    """
)


def test_a_second_sigterm_in_an_exit_handler_after_an_interrupted_recover_adds_no_line(
    tmp_path,
):
    """F5: SIGTERM in b's undo (recover interrupted), a second in the registry's exit
    handler: one line (the first's, true), exit 143; the saga left for the next recover."""
    path = _crashed(tmp_path)
    (tmp_path / "stops_registry.py").write_text(_REGISTRY)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [sys.executable, "-m", "rollback_lessons", "recover", str(path),
               "--registry", "stops_registry"]  # fmt: skip
    ready, tell = os.pipe()
    try:
        child = subprocess.Popen(
            command, env={**env, "STOPS": "undo c,exit", "READY_FD": str(tell)},
            pass_fds=(tell,), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL),
        )  # fmt: skip
        os.close(tell)
        tell = -1
        for _ in range(2):  # (in c's undo, then in the exit handler)
            if select.select([ready], [], [], 60)[0] and os.read(ready, 1):
                child.send_signal(signal.SIGTERM)
            else:
                child.kill()
        out, err = child.communicate(timeout=60)
    finally:
        os.close(ready)
        if tell >= 0:
            os.close(tell)
    assert child.returncode == 143 and out == "", (out, err)
    assert err.splitlines() == [
        "rollback-lessons: recover interrupted (SIGTERM) during the undo of 'c' (saga 's'), not "
        "recorded done: it runs again next time (same idempotency key); what it undid before it "
        "is recorded, and left unfinished for the next recover: saga 's'"  # (attack75 F3)
    ], err
    assert _states(path)[0] == "rolling_back"
