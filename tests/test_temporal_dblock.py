"""One dev server per ``db_file`` (attack46's F8): a second runner on a file a live runner's
server uses started a second server on it (nothing refused), or was told it was "another
program's SQLite database? Give a new file". Now it is refused before any server starts, in
one line naming the holder (pid, and the server's address in this process); the lock goes
with the server: closed, or its runner's process killed (the reaper stops the server), the
next start takes the file."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("temporalio")

from rollback_lessons.runners import reaper
from rollback_lessons.runners.temporal import DbFileInUse, TemporalRunner, TemporalUnavailable
from rollback_lessons.runners.temporal.dblock import WAIT_DEAD
from rollback_lessons.runners.temporal.server import _server_processes, server_binary


def _servers(but: frozenset[int] = frozenset()) -> int:
    """This process's dev servers, but those it ran before (another test file's, kept for
    the session by the same worker: CI on a30fad4 counted one)."""
    return len(set(_server_processes(server_binary())) - but)


def _running() -> frozenset[int]:
    return frozenset(_server_processes(server_binary()))


def test_a_second_runner_on_a_live_servers_db_file_is_refused_in_one_line(tmp_path):
    db, alias = tmp_path / "t.db", tmp_path / "alias.db"

    async def scenario():
        before = _running()
        first = await TemporalRunner.start(db_file=db)  # a new file: locked once made
        try:
            alias.symlink_to(db)
            refused = []
            for name in (db, alias):
                with pytest.raises(DbFileInUse) as caught:
                    await TemporalRunner.start(db_file=name)
                refused.append(str(caught.value))
            servers = _servers(before)
        finally:
            await first.close()
        again = await TemporalRunner.start(db_file=db)  # an existing file: its server holds it
        try:
            with pytest.raises(DbFileInUse) as caught:
                await TemporalRunner.start(db_file=db)
            refused.append(str(caught.value))
            address = again.address
        finally:
            await again.close()
        last = await TemporalRunner.start(db_file=db)  # let go with the server
        await last.close()
        return first.address, address, refused, servers

    first, address, refused, servers = asyncio.run(scenario())
    assert servers == 1  # no second server was started
    for line, at in zip(refused, (first, first, address), strict=True):
        assert "\n" not in line and f"pid {os.getpid()}" in line and at in line, line
        assert "another program" not in line and "new file" not in line
        assert f"TemporalRunner.start({at!r}) then handle_for" in line
        assert "nothing was started" in line
    assert issubclass(DbFileInUse, TemporalUnavailable)


@pytest.mark.parametrize("names", ["one name", "a symlink from another folder"])
def test_starts_at_once_on_a_new_db_file_start_one_server(tmp_path, names):
    """attack212 F2: while the file does not exist its folder is locked, the folder of the
    name as given: a symlink from another folder took that folder's lock, and two servers
    were started on one new file (the second stopped on SQLite's lock, blamed on "a server
    not started by a runner"). The target's folder is locked, by any name."""
    db = tmp_path / "new.db"
    other = tmp_path / "other"
    other.mkdir()
    (other / "link.db").symlink_to(db)
    given = [db, db, db] if names == "one name" else [db, other / "link.db", other / "link.db"]

    async def scenario():
        before = _running()
        got = await asyncio.gather(
            *(TemporalRunner.start(db_file=name) for name in given), return_exceptions=True
        )
        servers = _servers(before)
        for runner in got:
            if isinstance(runner, TemporalRunner):
                await runner.close()
        return got, servers

    got, servers = asyncio.run(scenario())
    assert sorted(type(r).__name__ for r in got) == ["DbFileInUse"] * 2 + ["TemporalRunner"]
    assert servers == 1


HOLDER = """
import asyncio, sys
from rollback_lessons.runners.temporal import TemporalRunner
async def main():
    runner = await TemporalRunner.start(db_file=sys.argv[1])
    print(runner.address, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, input)
asyncio.run(main())
"""


@pytest.mark.skipif(not reaper.supported(), reason="the reaper needs pidfds (Linux)")
@pytest.mark.parametrize("existing", [True, False])
def test_a_killed_runners_db_file_is_taken_by_the_next_start(tmp_path, existing):
    """Its process SIGKILLed, a runner's server is stopped by its reaper, and the lock goes
    with the server, not with the process (the server inherited it, or, a file it made,
    its reaper keeps it): a start meanwhile waits for it (``WAIT_DEAD``). The server is
    stopped (SIGSTOP) so that it outlives its runner by the reaper's ``GRACE``: the lock
    let go with the process, a second server started beside it."""
    db = tmp_path / "k.db"
    if existing:
        asyncio.run(_start_and_close(db))
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        address = holder.stdout.readline().strip()
        assert address.startswith("127.0.0.1:")
        with pytest.raises(DbFileInUse, match=f"by a runner of process {holder.pid} "):
            asyncio.run(_start_and_close(db))
        (server,) = _children(holder.pid)
        os.kill(server, signal.SIGSTOP)  # (SIGTERM waits: the reaper kills it after GRACE)
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        began = time.monotonic()
        asyncio.run(_start_and_close(db, server))
        assert reaper.GRACE - 0.5 < time.monotonic() - began < WAIT_DEAD + 10
    finally:
        holder.kill()
        holder.wait(10)


async def _start_and_close(db, gone: int | None = None) -> None:
    runner = await TemporalRunner.start(db_file=db)
    try:
        assert gone is None or not _alive(gone)  # no server beside another on the file
    finally:
        await runner.close()


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(parent: int) -> list[int]:
    """The dev servers ``parent`` runs."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            exe = os.readlink(entry / "exe")
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and exe == os.path.realpath(
            server_binary()
        ):
            found.append(int(entry.name))
    return found


BUSY = (
    "Error: failed starting server: failed creating namespaces: unable to create SQLite "
    "admin DB: database is locked (5) (SQLITE_BUSY)\n"
)


def test_a_db_file_a_server_no_runner_started_holds_is_said_so(tmp_path):
    """A server a runner did not start (``temporal server start-dev`` of one's own) on the
    file is beyond the lock: the server started on it stops on SQLite's "database is locked",
    said as such, not blamed on "another program's SQLite database? Give a new file"."""
    from rollback_lessons.runners.temporal import server

    async def scenario():
        async def start():
            await asyncio.Event().wait()  # (the server's port never answers)

        async def logged():
            await asyncio.sleep(0.2)
            with open(server.server_log(), "a") as log:
                log.write(BUSY)

        os.close(server._open_log())  # (made as a server is spawned: none spawned here)
        writing = asyncio.ensure_future(logged())
        with pytest.raises(TemporalUnavailable) as caught:
            await server.watched(start(), tmp_path / "t.db")
        await writing
        return str(caught.value)

    line = asyncio.run(scenario())
    assert "another program has the file open" in line and "nothing was started" in line
    assert "new file" not in line and "\n" not in line


KILLED_STARTING = """
import asyncio, os, signal, sys, time
from rollback_lessons.runners.temporal import TemporalRunner, server

def killed(guarded):  # the server spawned, before the runner guards it: SIGKILL
    while not (spawned := set(server._server_processes(guarded.binary)) - guarded.seen):
        time.sleep(0.01)
    with open(sys.argv[2], "w") as said:  # (its stdout is the server's log meanwhile)
        said.write(str(spawned.pop()))
    os.kill(os.getpid(), signal.SIGKILL)

server._Guarded.new_ones = killed
asyncio.run(TemporalRunner.start(db_file=sys.argv[1]))
"""


@pytest.mark.skipif(not reaper.supported(), reason="the reaper needs pidfds (Linux)")
def test_a_runner_killed_as_its_server_starts_leaves_no_server(tmp_path):
    """attack51 F7: SIGKILLed in the first instants of ``start`` (the server spawned, not yet
    seen by ``watched``, which guards it within 0.1 s), the dev server was left running for
    ever, holding the db_file (a relaunch refused). Its launcher guards it from the start."""
    db = tmp_path / "k.db"
    holder = subprocess.run(
        [sys.executable, "-c", KILLED_STARTING, str(db), str(tmp_path / "pid")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert holder.returncode == -signal.SIGKILL, holder.stderr[-2000:]
    server = int((tmp_path / "pid").read_text())
    deadline = time.monotonic() + reaper.GRACE + 10
    while _alive(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(server):
        os.kill(server, signal.SIGKILL)
        raise AssertionError("the server outlived its runner")
    asyncio.run(_start_and_close(db))  # the file free again


HALF = (
    "Error: failed starting server: ... error while fetching cluster metadata: "
    "GetClusterMetadata operation failed. Error: SQL logic error: no such table: "
    "cluster_metadata_info (1)\n"
)


@pytest.mark.parametrize("made", ["half-made", "another program's", "half-made with a run"])
def test_a_db_file_a_cut_first_start_half_made_is_said_so(tmp_path, made):
    """attack115 F2: two Ctrl-Cs early in the first start on a new db_file left part of
    Temporal's tables in it; every later start was refused asking whether it was "another
    program's SQLite database" and to "give one only Temporal wrote": it was."""
    import sqlite3

    from rollback_lessons.runners.temporal import server

    path = tmp_path / "t.db"
    con = sqlite3.connect(path)
    tables = ["journal(x)"] if made == "another program's" else [
        "namespaces(id)", "namespace_metadata(x)", "executions(id)", "shards(id)"]  # fmt: skip
    for table in tables:
        con.execute(f"CREATE TABLE {table}")
    if made == "half-made with a run":
        con.execute("INSERT INTO executions VALUES (1)")
    con.commit()
    con.close()

    async def scenario():
        async def start():
            await asyncio.Event().wait()

        async def logged():
            await asyncio.sleep(0.2)
            with open(server.server_log(), "a") as log:
                log.write(HALF)

        os.close(server._open_log())
        writing = asyncio.ensure_future(logged())
        with pytest.raises(TemporalUnavailable) as caught:
            await server.watched(start(), path)
        await writing
        return str(caught.value)

    line = asyncio.run(scenario())
    half = made == "half-made"
    assert ("only part of Temporal's own tables" in line) is half, line
    assert ("another program's SQLite database" in line) is not half, line
    assert "\n" not in line and str(path) in line
