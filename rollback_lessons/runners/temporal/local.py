"""Starting a runner's own dev server: its ``db_file`` locked first (``dblock``), the server
spawned quietly on 127.0.0.1 and watched while it starts (``server``), refused unless it
listens on loopback only."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from .. import reaper
from .dblock import DbLock
from .server import (
    TemporalUnavailable,
    _open_log,
    check_loopback_only,
    check_ports,
    client_options,
    server_log,
    start_failure,
    startup_timeout,
    watched,
)


async def start_local(
    binary: str, port: int, ui_port: int | None, db_file: str | os.PathLike[str] | None
) -> tuple[WorkflowEnvironment, DbLock]:
    """The dev server, started, and the lock of its ``db_file`` (let go once it stopped):
    a file another runner's server uses is refused before any server starts."""
    lock = await DbLock.take(db_file)  # (a dead runner's server on it: stopped first, then
    try:  # its port is free: attack206 F1, "in use: another program", refused at once)
        check_ports({"the server's port": port, "the Web UI's port": ui_port})
        env = await _spawn(binary, port, ui_port, db_file, lock)
    except BaseException:
        lock.let_go()
        raise
    try:
        check_loopback_only(binary)
        await lock.started(f"127.0.0.1:{port}")
    except BaseException:
        try:
            await env.shutdown()
        finally:
            lock.let_go()
        raise
    return env, lock


@contextlib.contextmanager
def own_session(binary: str) -> Iterator[tuple[str, Path | None]]:
    """A launcher of ``binary`` (``reaper.launch``: the same pid throughout, the SDK's child
    is the server) in a session of its own, so that a Ctrl-C a terminal or Jupyter's
    interrupt sends to this process's group does not stop the server too (attack51 F5:
    ``runner.run``'s compensation then had no server, ServerLost, everything in effect),
    and reaped from its first instant if this process dies (F7); and the file it writes its
    pid to first (``server.watched`` follows that process). Its output goes to the server's
    log. Removed once the server started. Not POSIX, the package in a zip, or a temporary
    folder that cannot hold a program (``noexec``): ``binary`` itself, in this process's
    group, its output to the log through this process's own descriptors (``quiet_stdout``)."""
    if os.name != "posix" or not os.path.isfile(reaper.__file__):
        with quiet_stdout():
            yield binary, None
        return
    folder = tempfile.mkdtemp(prefix="rollback-lessons-")
    try:
        if os.statvfs(folder).f_flag & os.ST_NOEXEC:
            with quiet_stdout():
                yield binary, None
            return
        os.close(_open_log())  # (made here, never through a symlink: refused at once)
        launcher, pid_file = os.path.join(folder, "temporal"), Path(folder, "pid")
        with open(launcher, "w", encoding="utf-8") as script:
            python, launch, server, log, pid = map(
                shlex.quote,
                (sys.executable, os.path.abspath(reaper.__file__), binary, str(server_log()),
                 str(pid_file)),
            )  # fmt: skip
            script.write(
                f"#!/bin/sh\necho $$ >{pid}\n"
                f'exec {python} -I -S {launch} --launch {os.getpid()} {log} {server} "$@"\n'
            )
        os.chmod(launcher, 0o700)
        yield launcher, pid_file
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class _Redirect:
    """Descriptors 1 and 2 as they were (``saved``) while ``depth`` starts are in."""

    lock = threading.Lock()
    depth = 0
    saved: tuple[int, int] = (-1, -1)


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """While the server is spawned, file descriptors 1 and 2 point at server_log(): the server
    inherits them, so its banner and its logs stay out of a notebook's output. Starts that
    overlap (runners of one process) share it: the first in saves them, the last out puts
    them back (attack177 F3: restored out of order, the log kept the process's output)."""
    with _Redirect.lock:
        if not _Redirect.depth:
            sys.stdout.flush()
            sys.stderr.flush()
            log = _open_log()
            _Redirect.saved = (os.dup(1), os.dup(2))
            try:
                os.dup2(log, 1)
                os.dup2(log, 2)
            finally:
                os.close(log)
        _Redirect.depth += 1
    try:
        yield
    finally:
        with _Redirect.lock:
            _Redirect.depth -= 1
            if not _Redirect.depth:
                for fd, was in enumerate(_Redirect.saved, start=1):
                    os.dup2(was, fd)
                    os.close(was)


# The server's timer queue fires no timer sooner than now + history.timerProcessorMaxTimeShift
# (default 1 s: a 0.1 s retry backoff waited 1.02 s, its event saying 0.1; attack188): 10 ms
# makes a backoff wait what the policy asks, as in process.
TIMERS_ON_TIME = ["--dynamic-config-value", 'history.timerProcessorMaxTimeShift="10ms"']


async def _spawn(
    binary: str,
    port: int,
    ui_port: int | None,
    db_file: str | os.PathLike[str] | None,
    lock: DbLock,
) -> WorkflowEnvironment:
    """``temporal server start-dev`` on 127.0.0.1, its output to its log, the lock passed."""
    try:  # its banner (random ports) is nobody's business
        with lock.passed(), own_session(binary) as (launcher, pid_file):
            start = WorkflowEnvironment.start_local(
                dev_server_existing_path=launcher,
                ip="127.0.0.1",
                port=port,
                ui=ui_port is not None,
                ui_port=ui_port,
                dev_server_database_filename=str(db_file) if db_file is not None else None,
                dev_server_log_level="error",
                dev_server_extra_args=[
                    *(["--ui-disable-news-fetch"] if ui_port is not None else ["--headless"]),
                    *TIMERS_ON_TIME,
                ],
                dev_server_startup_timeout=startup_timeout(),
                **client_options(),
            )
            return await watched(start, db_file, pid_file)  # (one that exits at once: said)
    except TemporalUnavailable:
        raise
    except Exception as exc:
        check_ports({"the server's port": port, "the Web UI's port": ui_port})  # taken since?
        raise start_failure(binary, exc) from None
