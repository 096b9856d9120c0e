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
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from . import free_port, reaper


@contextlib.contextmanager
def moto_server(
    config: Mapping[str, Any] | None = None,
    failed: Callable[[str], Exception] = RuntimeError,
) -> Iterator[str]:
    """Its URL once it answers (``config`` posted to its ``/moto-api/config`` first, which is
    also what it is asked); stopped on leaving. One that does not answer within 30 s, or
    exits, raises ``failed(message)``. Stopped too if this process is killed (``reaper``,
    from its first instant: ``reaper.launch``)."""
    port = free_port()
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    process: subprocess.Popen[bytes] | None = None
    try:  # (launched guarded from its first instant: attack56 F2, a SIGKILL then left it)
        process = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                os.path.abspath(reaper.__file__),
                "--launch",
                str(os.getpid()),
                *argv,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # (in a session of its own: a Ctrl-C to this terminal's group is not its, F5)
        url = f"http://127.0.0.1:{port}"
        data = json.dumps(dict(config)).encode() if config is not None else None
        deadline = time.monotonic() + 30
        while True:
            try:
                request = urllib.request.Request(
                    f"{url}/moto-api/" + ("config" if data is not None else ""),
                    data=data,
                    headers={"Content-Type": "application/json"},
                )
                urllib.request.urlopen(request, timeout=2).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise failed(f"moto_server did not start on {url}") from None
                time.sleep(0.1)
        yield url
    finally:
        if process is None:  # (a Ctrl-C as Popen returned: found by its command line)
            _stop_spawned(argv)
        else:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


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
