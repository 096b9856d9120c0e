"""Only the command's own interrupt, handled by the package's own code, holds a second signal
(attack71 F1, F4). Before, ``_starting.handling`` held every signal heard while any Ctrl-C or
``sys.exit`` was in the exception being handled, and what it held was never raised: after an
undo's ``sys.exit`` recover's clean-up waited the journal's whole wait for a lock, deaf to a
Ctrl-C; an undo that caught a Ctrl-C and worked in its ``except`` made a SIGTERM vanish, and
recover went on to exit 0. Real signals, in the real command's process; no sleep."""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import subprocess
import sys
import termios
import textwrap
import time

import pytest
from test_cli_signal_held import _crashed

_REGISTRY = textwrap.dedent(
    """
    import os, signal, sqlite3, sys
    from rollback_lessons.durable.registry import Registry

    registry = Registry()
    calls = [0]
    kept = []

    def locked_exit():  # another connection holds the write lock, then a sys.exit
        con = sqlite3.connect(os.environ["JOURNAL"], isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        kept.append(con)

        def at_begin(frame, event, arg):  # a Ctrl-C as the clean-up begins to wait for it
            if event == "call" and frame.f_code.co_name == "begin":
                sys.setprofile(None)
                os.kill(os.getpid(), signal.SIGINT)

        sys.setprofile(at_begin)
        sys.exit(3)

    def caught():  # a Ctrl-C caught by the undo, a SIGTERM as it works in its except
        try:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
        except KeyboardInterrupt:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):
                pass

    def undo(step, idempotency_key=None):
        calls[0] += 1
        how = os.environ["HOW"]
        if calls[0] == (31 if how == "late" else 2):
            if how in ("int", "late"):  # (a Ctrl-C: its own handler's, in the undo)
                os.kill(os.getpid(), signal.SIGINT)
            {"exit": locked_exit, "catch": caught}.get(how, lambda: None)()
        with open(os.environ["UNDO_LOG"], "a") as f:
            f.write(f"undo {step}\\n")

    registry.add("sig2.undo", undo)
    """
)


def _recover(tmp_path, how: str) -> subprocess.CompletedProcess:
    path = tmp_path / "j.db"
    _crashed(path, 4)
    (tmp_path / "ownreg.py").write_text(_REGISTRY)
    env = {"HOW": how, "JOURNAL": str(path), "UNDO_LOG": str(tmp_path / "undos.log")}
    path_var = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "rollback_lessons", "recover", str(path), "--registry",
         "ownreg", "--wait", "5"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": path_var, **env},
    )  # fmt: skip


def test_a_ctrl_c_in_the_clean_up_after_an_undos_sys_exit_cuts_its_wait(tmp_path):
    """F4: an undo's ``sys.exit`` while another connection holds the lock, a Ctrl-C as the
    clean-up begins to wait for it: heard (exit 130, its line), not held through the whole
    wait (twice) to end as the sys.exit (exit 3)."""
    done = _recover(tmp_path, "exit")
    assert done.returncode == 130, done.stderr
    assert done.stderr.startswith("rollback-lessons: recover interrupted (Ctrl-C); ")


def test_a_sigterm_as_an_undo_works_in_the_except_of_a_ctrl_c_it_caught_is_heard(tmp_path):
    """F1: an undo catches a Ctrl-C and works in its ``except``; a SIGTERM then is heard
    (exit 143, the sagas left named), not dropped with recover going on to exit 0."""
    done = _recover(tmp_path, "catch")
    assert done.returncode == 143, done.stderr
    assert done.stderr == (
        "rollback-lessons: recover interrupted (SIGTERM) during the undo of 'a' (saga 's1'), not "
        "recorded done: it runs again next time (same idempotency key); what it undid before it "
        "is recorded, and left unfinished for the next recover: sagas 's1', 's2', 's3'\n"
    )
    assert (tmp_path / "undos.log").read_text() == "undo a\n"


def test_a_further_signal_as_the_interrupts_output_blocks_ends_it(tmp_path):
    """F2: a Ctrl-C, then the finished sagas it prints fill a pipe nobody reads; a SIGTERM
    then ends it with the Ctrl-C's status and line (was: deaf to every signal, a hang)."""
    path = tmp_path / "j.db"
    _crashed(path, 40, name="s{}-" + "x" * 300)  # (a long line each: a pipe filled by few)
    (tmp_path / "ownreg.py").write_text(_REGISTRY)
    env = {"HOW": "late", "JOURNAL": str(path), "UNDO_LOG": str(tmp_path / "undos.log"),
           "PYTHONUNBUFFERED": "1"}  # fmt: skip
    path_var = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    read, write = os.pipe()
    fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, 4096)  # (filled by a few finished sagas)
    with open(tmp_path / "err", "wb") as err:
        child = subprocess.Popen(
            [sys.executable, "-m", "rollback_lessons", "recover", str(path), "--registry",
             "ownreg"], stdout=write, stderr=err, cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": path_var, **env},
        )  # fmt: skip
    os.close(write)
    try:
        deadline = time.monotonic() + 60
        while not _unread(read) and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)  # (no event says a pipe is written: its fill is read; one line
        assert _unread(read) > 0  # fills most of it, the next blocks)
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=30) == 130
    finally:
        child.kill()
        child.wait()
        os.close(read)
    assert (
        (tmp_path / "err")
        .read_text()
        .startswith(
            "rollback-lessons: recover interrupted (Ctrl-C) during the undo of 'a' (saga 's30-x"
        )
    )


def _unread(fd: int) -> int:
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]


@pytest.mark.parametrize("out", ["closed", "full"])
def test_a_ctrl_c_in_recover_with_stdout_closed_or_full_says_its_line(tmp_path, out):
    """F3: its finished sagas cannot be printed (a reader gone, a full disk): the Ctrl-C's
    line is still said, exit 130 (was exit 1 and nothing, or 2 "cannot write")."""
    path = tmp_path / "j.db"
    _crashed(path, 4)
    (tmp_path / "ownreg.py").write_text(_REGISTRY)
    env = {"HOW": "int", "JOURNAL": str(path), "UNDO_LOG": str(tmp_path / "undos.log")}
    path_var = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    read, write = os.pipe()
    os.close(read)
    with open("/dev/full", "wb") as full:
        done = subprocess.run(
            [sys.executable, "-m", "rollback_lessons", "recover", str(path), "--registry",
             "ownreg"], stdout=write if out == "closed" else full, stderr=subprocess.PIPE,
            text=True, timeout=120, cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": path_var, **env},
        )  # fmt: skip
    os.close(write)
    assert (done.returncode, done.stderr) == (
        130,
        "rollback-lessons: recover interrupted (Ctrl-C) during the undo of 'a' (saga 's1'), not "
        "recorded done: it runs again next time (same idempotency key); what it undid before it "
        "is recorded, and left unfinished for the next recover: sagas 's1', 's2', 's3'\n",
    )


def test_a_further_signal_as_the_interrupts_line_blocks_ends_it(tmp_path):
    """F2 (``journal show ... 2>&1 | a stalled reader``): its table fills the pipe, a Ctrl-C,
    its line blocks too; a further SIGTERM ends it, exit 130 (was deaf to every signal)."""
    path = tmp_path / "j.db"
    _crashed(path, 40, name="s{}-" + "x" * 300)
    read, write = os.pipe()
    fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, 4096)
    child = subprocess.Popen(
        [sys.executable, "-m", "rollback_lessons", "journal", "show", str(path)],
        stdout=write, stderr=write, cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    os.close(write)
    try:
        deadline = time.monotonic() + 60
        while not _unread(read) and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)  # (its table is being written: it blocks there)
        child.send_signal(signal.SIGINT)
        while child.poll() is None and time.monotonic() < deadline:
            child.send_signal(signal.SIGTERM)  # (further ones, until it ends)
            time.sleep(0.05)
        assert child.wait(timeout=1) == 130
    finally:
        child.kill()
        child.wait()
        os.close(read)
