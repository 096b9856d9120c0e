"""attack175 F1: the dev server killed (SIGKILL) as ``TemporalRunner.start`` waits for it:
the SDK waited its whole start limit (30 s), then the runner blamed a busy machine ("did not
answer within 30 s of starting: is the machine very busy?"). Said as it is now, in seconds."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from rollback_lessons.runners.temporal import TemporalRunner
from rollback_lessons.runners.temporal.server import (
    TemporalUnavailable,
    _server_processes,
    server_binary,
)


def test_a_dev_server_killed_as_it_starts_is_said_so_at_once(tmp_path):
    binary, before = server_binary(), set(_server_processes(server_binary()))
    killed: list[int] = []

    def kill_it() -> None:  # (the new server, as soon as it runs)
        end = time.monotonic() + 20
        while not killed and time.monotonic() < end:
            for pid in set(_server_processes(binary)) - before:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.005)

    killer = threading.Thread(target=kill_it)
    killer.start()
    began = time.monotonic()
    with ThreadPoolExecutor(1) as pool, pytest.raises(TemporalUnavailable) as raised:
        pool.submit(lambda: asyncio.run(TemporalRunner.start(db_file=tmp_path / "t.db"))).result()
    killer.join()
    assert killed and time.monotonic() - began < 15
    assert str(raised.value).startswith(
        "Temporal's dev server exited as it started (killed, or it crashed): nothing was started"
    )


def test_a_server_gone_as_its_sockets_are_read_listens_on_nothing():
    """attack177 F4: the loopback check read another runner's server as it stopped: a start
    failed with a raw "[Errno 2] No such file or directory: '/proc/<pid>/fd'"."""
    import subprocess
    import sys

    from rollback_lessons.runners.temporal.server import listening_sockets

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # (reaped: its /proc entry is gone)
    assert listening_sockets(gone.pid) == []
