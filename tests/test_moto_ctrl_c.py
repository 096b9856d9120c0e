"""A Ctrl-C at any instant of ``StepFunctionsRunner("moto_server")``'s start or close leaves
no server of this process running (attack59 M1-M3): the KeyboardInterrupt raised, the server
stopped (and waited for) before it is. The sweeps raise it, as a signal's handler would, from
a trace function at the N-th Python event of the runner's, the server's and the standard
library's lines it goes through; on a stand-in for ``moto_server`` (any request answered as
SQS's CreateQueue: it starts in a tenth of the time), and a few instants on the real one."""

import gc
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from rollback_lessons.runners import moto_server
from rollback_lessons.runners.stepfunctions import StepFunctionsRunner

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="/proc (Linux)")

MARK = "# stand-in moto_server (rollback-lessons tests)"
STANDIN = f"""{MARK}
import http.server, sys
class Answer(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{{"QueueUrl": "http://127.0.0.1/queue"}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[-1])), Answer).serve_forever()
"""
WATCHED = (
    "runners/moto_server.py",
    "stepfunctions/runner.py",
    "stepfunctions/moto_start.py",
    "runners/closed.py",
    "contextlib.py",
    "subprocess.py",
)  # (not the clients' finalizers, as close collects them: there a signal is held, ``collected``)


@pytest.fixture
def standin(monkeypatch):
    monkeypatch.setattr(moto_server, "COMMAND", ("-I", "-S", "-c", STANDIN))


@pytest.fixture
def frozen():
    """The objects of the process so far left out of every collection (each trial's, and
    each close's, collects its own garbage only: a tenth of the time). Frozen again after,
    once this test's garbage is collected: ``gc.unfreeze`` thaws all, the run's own freeze
    of what collection made too (conftest.py's ``pytest_collection_finish``)."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _servers(mark: str) -> set[int]:
    """This process's children running (not zombies) with ``mark`` in their command line."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                line = (entry / "cmdline").read_bytes().decode(errors="replace")
            except (OSError, IndexError):
                continue
            if int(stat[1]) == os.getpid() and stat[0] != "Z" and mark in line:
                found.add(int(entry.name))
    return found


def _left(mark: str, seconds: float = 2.0) -> set[int]:
    """The servers still running ``seconds`` on (none: at once)."""
    deadline = time.monotonic() + seconds
    while (alive := _servers(mark)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def _cut_at(target: str, seen: list[str]):
    """A trace function raising KeyboardInterrupt at the first event ``target`` ("line
    moto_server.py:88") in ``WATCHED`` files (``seen``: each event's, the last where it was cut)."""

    def tracer(frame, event, arg):
        if event == "call" and not frame.f_code.co_filename.endswith(WATCHED):
            return None
        seen.append(f"{event} {frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno}")
        if seen[-1] == target:
            sys.settrace(None)
            del frame, arg  # (a signal's handler keeps no frame, nor a value returned, alive)
            raise KeyboardInterrupt(f"Ctrl-C at {target}")
        return tracer

    return tracer


def _trial(phase: str, target: str = "") -> list[str]:
    """Cut ``phase`` (start or close) at its first event ``target``: the instants of its
    events up to there (all of them if none is). AssertionError if a server is left running."""
    runner = StepFunctionsRunner.start("moto_server") if phase == "close" else None
    seen: list[str] = []
    raised: BaseException | None = None
    gc.collect()  # (earlier trials' runners finalized now: a KeyboardInterrupt in one is dropped)
    sys.settrace(_cut_at(target, seen))
    try:
        if runner is None:
            started = StepFunctionsRunner.start("moto_server")
            sys.settrace(None)
            started.close()
        else:
            runner.close()
    except BaseException as exc:  # (kept, as a notebook keeps sys.last_traceback)
        raised = exc
    finally:
        sys.settrace(None)
    if target not in seen:
        assert raised is None, raised
        return seen
    assert isinstance(raised, KeyboardInterrupt), f"{target}: {raised!r}"
    if runner is not None and not runner._closed and len(seen) <= 2:
        runner.close()  # (cut as close was called, before its first line: nothing of it done)
    left = _left(MARK)
    assert not left, f"a Ctrl-C at {phase}'s {target} (event {len(seen)}) left the server running"
    return seen


def _sweep(phase: str, budget: int) -> list[str]:
    """Cut ``phase`` at about ``budget`` instants: each distinct line (and event kind) of the
    runner's own it goes through, of the server's stop (M1), each return from the server's
    module (as it hands out its URL: M2), and the others evenly sampled. Those cut at."""
    instants = list(dict.fromkeys(_trial(phase)))  # (uncut: what its instants are)
    mine = (" runner.py", " moto_start.py", *([" moto_server.py"] if phase == "close" else []))
    always = [at for at in instants if any(name in at for name in mine)]
    always += [at for at in instants if at.startswith("return moto_server.py")]
    others = [at for at in instants if at not in always]
    sampled = others[:: max(1, len(others) // max(1, budget - len(always)))]
    return [at for at in instants if at in {*always, *sampled} and at in _trial(phase, at)]


@pytest.mark.parametrize("phase, budget", [("close", 44), ("start", 36)])
def test_a_ctrl_c_at_any_instant_of_start_or_close_leaves_no_server_running(
    standin, frozen, phase, budget
):
    """M1: a Ctrl-C in close before its stack closed (the queue's deletion), or in the
    server's stop before SIGTERM was sent, left the server running for the process's life;
    M2: one as the server answered (its context manager's ``__enter__`` returning), too."""
    cuts = _sweep(phase, budget)
    assert len(cuts) >= 20, cuts  # (it did cut there: each of them an instant it reached)
    assert any("moto_server.py" in cut for cut in cuts) and any("runner.py" in cut for cut in cuts)


def _its_url(frame, event, arg) -> bool:
    """The server's module handing out its URL (M2's instant)."""
    ours = frame.f_code.co_filename.endswith("runners/moto_server.py")
    return ours and event == "return" and isinstance(arg, str) and arg.startswith("http:")


def _its_stop(frame, event, arg) -> bool:
    """The first line of the server's module as close stops it (M1's four: before SIGTERM)."""
    return frame.f_code.co_filename.endswith("runners/moto_server.py") and event == "line"


@pytest.mark.parametrize("phase, at", [("start", _its_url), ("close", _its_stop)])
def test_a_ctrl_c_on_the_real_moto_server_stops_it(phase, at):
    """The instants attack59 found, on ``moto_server`` itself: as it answered (M2), and as
    its stop began, before SIGTERM was sent (M1)."""
    before = _servers("moto.server")
    runner = StepFunctionsRunner.start("moto_server") if phase == "close" else None
    hit: list[str] = []
    gc.collect()  # (earlier runners finalized now, their stops not this one)

    def tracer(frame, event, arg):
        if not hit and at(frame, event, arg):
            sys.settrace(None)
            hit.append(f"{event} {frame.f_code.co_name}:{frame.f_lineno}")
            del frame, arg
            raise KeyboardInterrupt(hit[0])
        return tracer

    sys.settrace(tracer)
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.close() if runner is not None else StepFunctionsRunner.start("moto_server")
    finally:
        sys.settrace(None)
    assert hit
    deadline = time.monotonic() + 2
    while (left := _servers("moto.server") - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"a Ctrl-C at {hit[0]} left the moto_server running"


def test_a_servers_stop_is_bounded_though_popens_lock_is_held(standin):
    """M3: a Ctrl-C inside ``Popen.poll`` (its lock just taken) left the lock held, and the
    stop's ``process.wait()`` after SIGKILL blocked for ever, printing nothing. The stop
    waits by pid, never on that lock."""
    server = moto_server.MotoServer()
    server.start()
    assert server._process is not None and server._process._waitpid_lock.acquire(False)
    stopping = threading.Thread(target=server.stop, daemon=True)
    stopping.start()
    stopping.join(3 * moto_server.GRACE)
    assert not stopping.is_alive(), "the stop hung on Popen's lock"
    assert not _left(MARK, 0)
    assert server._process.returncode is not None  # (no ResourceWarning from Popen)
    server.stop()  # (again: nothing)
