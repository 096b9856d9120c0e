"""A ``moto_server`` of this process's own, on 127.0.0.1 only: what the Step Functions runner
(``"moto_server"``) and the choreography's SQS queue (``choreo.sqs.on_moto_server``) share."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from . import free_port, reaper

GRACE = 5.0
"""Seconds the server has to end after SIGTERM, then after SIGKILL, before ``stop`` gives up."""
COMMAND = ("-m", "moto.server")
"""What the interpreter runs (then ``-H 127.0.0.1 -p PORT``): a test's stand-in may swap it."""


class MotoServer:
    """One ``moto_server``: ``start()`` launches it and answers its URL once it answers,
    ``stop()`` stops it. ``stop`` may be called any number of times, from the first instant
    (nothing started: nothing to do) and again after a Ctrl-C cut it (attack59 M1): it goes on
    where it was. Its waits are by pid and bounded, never ``Popen``'s (a Ctrl-C inside
    ``Popen.poll`` leaves its lock held, and its ``wait()`` then blocks for ever: M3)."""

    def __init__(
        self,
        config: Mapping[str, Any] | None = None,
        failed: Callable[[str], Exception] = RuntimeError,
    ) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._argv = [sys.executable, *COMMAND, "-H", "127.0.0.1", "-p", str(port)]
        self._config, self._failed = config, failed
        self._launching = False
        self._process: subprocess.Popen[bytes] | None = None
        self._ended = False

    def start(self) -> str:
        """Its URL once it answers (``config`` posted to its ``/moto-api/config`` first, which
        is also what it is asked). One that does not answer within 30 s, or exits, raises
        ``failed(message)``. Stopped too if this process is killed (``reaper``, from its first
        instant: ``reaper.launch``; attack56 F2, a SIGKILL then left it)."""
        self._launching = True  # (from here, ``stop`` looks for it: a Ctrl-C as Popen returns)
        self._process = process = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                os.path.abspath(reaper.__file__),
                "--launch",
                str(os.getpid()),
                "-",
                *self._argv,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # (in a session of its own: a Ctrl-C to this terminal's group is not its, F5)
        data = json.dumps(dict(self._config)).encode() if self._config is not None else None
        deadline = time.monotonic() + 30
        while True:
            try:
                request = urllib.request.Request(
                    f"{self.url}/moto-api/" + ("config" if data is not None else ""),
                    data=data,
                    headers={"Content-Type": "application/json"},
                )
                urllib.request.urlopen(request, timeout=2).read()
                return self.url
            except OSError:
                if self._reaped(process) or time.monotonic() > deadline:
                    raise self._failed(f"moto_server did not start on {self.url}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop it (SIGTERM, SIGKILL after ``GRACE`` s) and wait for it, ``GRACE`` s at most
        each (past that, a warning: its reaper stops it with this process)."""
        if self._ended or not self._launching:
            return
        process = self._process
        if process is None:  # (a Ctrl-C as Popen returned: found by its command line)
            _stop_spawned(self._argv)
        else:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                if not self._reaped(process):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(process.pid, sig)
                deadline = time.monotonic() + GRACE
                while not self._reaped(process) and time.monotonic() < deadline:
                    time.sleep(0.02)
                if self._reaped(process):
                    break
            else:
                warnings.warn(
                    f"moto_server (pid {process.pid}) did not end {GRACE:g} s after SIGKILL; "
                    "its reaper stops it when this process ends",
                    RuntimeWarning,
                    stacklevel=2,
                )
                return
        self._ended = True

    def __enter__(self) -> MotoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @staticmethod
    def _reaped(process: subprocess.Popen[bytes]) -> bool:
        """Has ``process`` ended, and been waited for (now, by pid: never Popen's lock)?"""
        if process.returncode is not None:
            return True
        try:
            pid, status = os.waitpid(process.pid, os.WNOHANG)
        except ChildProcessError:  # (waited for already: a Ctrl-C cut the last call after it)
            process.returncode = -1
            return True
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)  # (Popen: no ResourceWarning)
        return bool(pid)


@contextlib.contextmanager
def moto_server(
    config: Mapping[str, Any] | None = None,
    failed: Callable[[str], Exception] = RuntimeError,
) -> Iterator[str]:
    """A ``MotoServer``'s URL once it answers; stopped on leaving."""
    server = MotoServer(config, failed)
    try:  # (stopped on leaving ``with``, then again: a Ctrl-C cuts one of the two at most)
        with server:  # (a ``with``: a ``try`` line in a ``try`` is in neither of them)
            yield server.start()
    finally:
        server.stop()


def _stop_spawned(argv: list[str]) -> None:
    """Stop this process's child running ``argv`` (or still its launcher), whose ``Popen``
    a Ctrl-C cut as it returned (attack56 F2: left running in its own session for good)."""
    wanted = "\0".join(argv).encode()
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                parent = int(stat.read().rsplit(b")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as line:
                command = line.read()
        except (OSError, ValueError, IndexError):
            continue
        if parent == os.getpid() and wanted in command:
            pid = int(entry)
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(OSError):
                    os.kill(pid, sig)
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    with contextlib.suppress(ChildProcessError):
                        if os.waitpid(pid, os.WNOHANG)[0]:
                            return
                    time.sleep(0.05)
