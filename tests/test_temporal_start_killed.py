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


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_two_starts_at_once_one_server_killed_the_others_output_and_this_process_s_kept(capfd):
    """attack177 F2: two runners of one process starting at once, the first one's server
    killed as it ran: the second's server (new since the first began) hid its death, and
    after 30 s the start blamed "a very busy machine". F3 (175 F2): each start pointed this
    process's descriptors 1 and 2 at the server's log, restored out of order: the process's
    own output went to the log for good, and any line printed during a start was lost."""
    binary, ports = server_binary(), (_free_port(), _free_port())
    before, killed = set(_server_processes(binary)), []
    terminal = os.readlink("/proc/self/fd/1"), os.readlink("/proc/self/fd/2")

    def kill_first() -> None:
        end = time.monotonic() + 20
        while not killed and time.monotonic() < end:
            for pid in set(_server_processes(binary)) - before:
                with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                    if str(ports[0]).encode() in cmdline.read().split(b"\0"):
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
            time.sleep(0.002)

    async def start(port: int, delay: float) -> TemporalRunner | BaseException:
        await asyncio.sleep(delay)
        try:
            return await TemporalRunner.start(port=port, task_queue=f"two-{port}")
        except TemporalUnavailable as exc:
            return exc

    async def talk() -> None:
        for n in range(20):
            print(f"line {n} of this process", flush=True)
            await asyncio.sleep(0.02)

    async def scenario() -> list[TemporalRunner | BaseException]:
        began = time.monotonic()
        first, second, _ = await asyncio.gather(start(ports[0], 0), start(ports[1], 0.3), talk())
        assert time.monotonic() - began < 15  # (never the 30 s start limit)
        if isinstance(second, TemporalRunner):
            print("the second started", flush=True)
            await second.close()
        return [first, second]

    killer = threading.Thread(target=kill_first)
    killer.start()
    first, second = asyncio.run(scenario())
    killer.join()
    assert killed, "the first server was never seen running"
    assert isinstance(first, TemporalUnavailable) and str(first).startswith(
        "Temporal's dev server exited as it started"
    ), first
    assert isinstance(second, TemporalRunner), second
    assert (os.readlink("/proc/self/fd/1"), os.readlink("/proc/self/fd/2")) == terminal
    said = capfd.readouterr().out
    assert all(f"line {n} of this process" in said for n in range(20)), said
    assert "the second started" in said


def test_overlapping_redirects_put_the_descriptors_back_once_the_last_ends(capfd):
    """Where no launcher can be written (not POSIX, a noexec temporary folder) the server
    inherits this process's descriptors, pointed at its log while it spawns: starts that
    overlap and end out of order (the first in, out first) leave them as they were."""
    from rollback_lessons.runners.temporal.local import quiet_stdout

    terminal = os.readlink("/proc/self/fd/1")
    first, second = quiet_stdout(), quiet_stdout()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert os.readlink("/proc/self/fd/1") != terminal  # (the second still spawning)
    second.__exit__(None, None, None)
    assert os.readlink("/proc/self/fd/1") == terminal
    print("after both", flush=True)
    assert "after both" in capfd.readouterr().out
