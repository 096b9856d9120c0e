"""Starting a runner's own dev server: its ``db_file`` locked first (``dblock``), the server
spawned quietly on 127.0.0.1 and watched while it starts (``server``), refused unless it
listens on loopback only."""

from __future__ import annotations

import os

from temporalio.testing import WorkflowEnvironment

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


async def _spawn(
    binary: str,
    port: int,
    ui_port: int | None,
    db_file: str | os.PathLike[str] | None,
    lock: DbLock,
) -> WorkflowEnvironment:
    """``temporal server start-dev`` on 127.0.0.1, its output to its log, the lock passed."""
    try:
        with quiet_stdout(), lock.passed():  # its banner (random ports) is nobody's business
            start = WorkflowEnvironment.start_local(
                dev_server_existing_path=binary,
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
