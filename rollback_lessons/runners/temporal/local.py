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
from collections.abc import Iterator

from temporalio.testing import WorkflowEnvironment

from .. import reaper
from .dblock import DbLock
from .server import (
    TemporalUnavailable,
    check_loopback_only,
    check_ports,
    client_options,
    quiet_stdout,
    start_failure,
    startup_timeout,
    watched,
)


async def start_local(
    binary: str, port: int, ui_port: int | None, db_file: str | os.PathLike[str] | None
) -> tuple[WorkflowEnvironment, DbLock]:
    """The dev server, started, and the lock of its ``db_file`` (let go once it stopped):
    a file another runner's server uses is refused before any server starts."""
    lock = await DbLock.take(db_file)
    try:
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
def own_session(binary: str) -> Iterator[str]:
    """A launcher of ``binary`` (``reaper.launch``: the same pid throughout, the SDK's child
    is the server) in a session of its own, so that a Ctrl-C a terminal or Jupyter's
    interrupt sends to this process's group does not stop the server too (attack51 F5:
    ``runner.run``'s compensation then had no server, ServerLost, everything in effect),
    and reaped from its first instant if this process dies (F7). Removed once the server
    started. Not POSIX, the package in a zip, or a temporary folder that cannot hold a
    program (``noexec``): ``binary`` itself, in this process's group."""
    if os.name != "posix" or not os.path.isfile(reaper.__file__):
        yield binary
        return
    folder = tempfile.mkdtemp(prefix="rollback-lessons-")
    try:
        if os.statvfs(folder).f_flag & os.ST_NOEXEC:
            yield binary
            return
        launcher = os.path.join(folder, "temporal")
        with open(launcher, "w", encoding="utf-8") as script:
            python, launch, server = map(
                shlex.quote, (sys.executable, os.path.abspath(reaper.__file__), binary)
            )
            script.write(
                f'#!/bin/sh\nexec {python} -I -S {launch} --launch {os.getpid()} {server} "$@"\n'
            )
        os.chmod(launcher, 0o700)
        yield launcher
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def _spawn(
    binary: str,
    port: int,
    ui_port: int | None,
    db_file: str | os.PathLike[str] | None,
    lock: DbLock,
) -> WorkflowEnvironment:
    """``temporal server start-dev`` on 127.0.0.1, its output to its log, the lock passed."""
    try:  # its banner (random ports) is nobody's business
        with quiet_stdout(), lock.passed(), own_session(binary) as launcher:
            start = WorkflowEnvironment.start_local(
                dev_server_existing_path=launcher,
                ip="127.0.0.1",
                port=port,
                ui=ui_port is not None,
                ui_port=ui_port,
                dev_server_database_filename=str(db_file) if db_file is not None else None,
                dev_server_log_level="error",
                dev_server_extra_args=(
                    ["--ui-disable-news-fetch"] if ui_port is not None else ["--headless"]
                ),
                dev_server_startup_timeout=startup_timeout(),
                **client_options(),
            )
            return await watched(start, db_file)  # (one that exits at once: said so)
    except TemporalUnavailable:
        raise
    except Exception as exc:
        check_ports({"the server's port": port, "the Web UI's port": ui_port})  # taken since?
        raise start_failure(binary, exc) from None
