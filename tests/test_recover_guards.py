"""Issue 25, attack23's F2, F4 and F5: what ``recover`` must not do to a saga whose
process still runs here, to itself (an undo that calls ``recover``), or twice (an undo
whose forked child returns into the engine).

F2: ``process_alive`` said "cannot be checked from here" as soon as the host name differed,
before looking at the pid: a ``recover`` in a sidecar with its own host name but the
owner's PID namespace and boot (or on a host renamed since) took a live owner over with
``--force`` (its step landing after its undo), although the help promises "a saga whose
process still runs here is never taken over".
"""

import os
import shutil
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import crash_at_first_undo, dead_pid, recover_command

from rollback_lessons import Saga, Status, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.owner import me, process_alive, process_space
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry
from rollback_lessons.durable.rows import LIVE

needs_proc = pytest.mark.skipif(process_space() is None, reason="no /proc: no PID namespace")


def _registry(calls):
    reg = Registry()

    def undo(step, idempotency_key=None):
        calls.append(step)

    return reg, reg.add("u", undo)


def _crashed(path, set_sql, params=()):
    """A saga a, b, c whose c failed, crashed before its first undo; then ``set_sql``."""
    calls: list[str] = []
    reg, undo = _registry(calls)
    saga = Saga([Step(k, lambda s: None, undo.bind(step=k)) for k in "ab"]
                + [Step("c", lambda s: 1 / 0)])  # fmt: skip
    crash_at_first_undo(path, saga, set_sql, params)
    return reg, calls


# -- F2: the same PID namespace and boot, another host name -----------------------------------


@needs_proc
def test_a_pid_in_this_namespace_and_boot_is_checked_whatever_the_host_name():
    here = me()[3]
    assert process_alive(os.getpid(), "other-name", me()[2], here) is True
    assert process_alive(dead_pid(), "other-name", None, here) is False
    assert process_alive(os.getpid(), "other-name", None, "pid:[1] boot x") is None  # (as before)


@needs_proc
@pytest.mark.parametrize("force", [False, True])
def test_a_live_owner_recorded_under_another_host_name_is_never_taken_over(tmp_path, force):
    """The defect: "ran on other-name: it cannot be checked from here; --force takes it
    over", and --force took it over while it ran."""
    path = tmp_path / "j.db"
    sql = "UPDATE sagas SET owner_pid = ?, owner_host = 'other-name', owner_space = ?"
    reg, calls = _crashed(path, sql, (os.getpid(), me()[3]))
    with Journal(path) as journal:
        report = recover(journal, reg, force=force)
        assert report.recovered == () and calls == []
        [why] = [s.reason for s in report.skipped]
        assert why == f"its process {os.getpid()} is still running; {LIVE}"
        assert journal.saga("s").status == "rolling_back"


@needs_proc
def test_a_dead_owner_recorded_under_another_host_name_is_taken_over_without_force(tmp_path):
    """Its pid is checkable here (same namespace and boot): dead, so no --force is needed."""
    path = tmp_path / "j.db"
    sql = "UPDATE sagas SET owner_pid = ?, owner_host = 'other-name', owner_space = ?"
    reg, calls = _crashed(path, sql, (dead_pid(), me()[3]))
    with Journal(path) as journal:
        [done] = recover(journal, reg).recovered
    assert done.status is Status.ROLLED_BACK and calls == ["b", "a"]


def _can_unshare_uts() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    return subprocess.run(["unshare", "--uts", "true"]).returncode == 0


@pytest.mark.skipif(not _can_unshare_uts(), reason="needs root and unshare (a UTS namespace)")
def test_recover_force_under_another_host_name_leaves_a_live_owner_alone(tmp_path):
    """attack23's F2 for real: this process owns the saga; ``recover --force`` runs with
    another host name (a UTS namespace), the same PID namespace and boot."""
    path = tmp_path / "j.db"
    _crashed(path, "UPDATE sagas SET owner_pid = ?", (os.getpid(),))  # (alive: this one)
    command, env = recover_command(tmp_path, path, "--force")
    rename = ["unshare", "--uts", "sh", "-c", 'hostname other-name && exec "$@"', "sh"]
    out = subprocess.run([*rename, *command], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"its process {os.getpid()} is still running" in out.stdout
    assert "UNDID" not in out.stdout
    with Journal(path) as journal:
        assert journal.saga("s").status == "rolling_back"


# -- F4: a recover called from its own undo; recovers of two journals -------------------------

# F4: ``recover`` held one plain lock for the whole process: an undo that called ``recover``
# (a compensation that "cleans up" so, or a library it calls) waited for itself forever, and
# a recover of journal B waited behind journal A's whose undo backed off.


def _in_thread(fn, seconds=30.0):
    """``fn()`` in a daemon thread, its result or error; a hang fails the test (no wait
    longer than ``seconds``), not the whole run."""
    import threading

    box: dict = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as exc:  # told to the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{fn} still runs after {seconds} s: a deadlock"
    if "error" in box:
        raise box["error"]
    return box["result"]


@pytest.mark.parametrize("kind", ["sync", "async", "timed"])
def test_an_undo_that_calls_recover_is_refused_in_one_typed_error_never_a_hang(tmp_path, kind):
    path = tmp_path / "j.db"
    reg, calls, refused = Registry(), [], []

    def plain(step, idempotency_key=None):
        calls.append(step)

    def nested(step, idempotency_key=None):
        calls.append(step)
        with Journal(path) as again:
            try:
                recover(again, reg)
            except Exception as exc:
                refused.append(exc)
                raise

    async def nested_async(step, idempotency_key=None):
        nested(step)

    undo, inner = reg.add("u", plain), reg.add("n", nested_async if kind == "async" else nested)
    saga = Saga([Step("a", lambda s: None, undo.bind(step="a")),
                 Step("b", lambda s: None, inner.bind(step="b"),
                      undo_timeout=20 if kind == "timed" else None),
                 Step("c", lambda s: 1 / 0)])  # fmt: skip
    crash_at_first_undo(path, saga)
    with Journal(path) as journal:
        [done] = _in_thread(lambda: recover(journal, reg)).recovered
    assert calls == ["b", "a"]  # the rollback went on: b's undo failed (a dead letter)
    from rollback_lessons.durable.recovery import RecoveryNested

    [letter] = done.dead_letters
    [error] = refused
    assert letter.step == "b" and letter.error is error and type(error) is RecoveryNested
    assert "was called from an undo that recover(" in str(error)
    assert "nothing was claimed" in str(error)


def test_one_journal_file_has_one_lock_whatever_path_names_it(tmp_path):
    """Two recovers of one file in one process would share its claims (one pid): a link
    to it is the same file, the same lock."""
    from rollback_lessons.durable.exclusive import _one_at_a_time

    with Journal(tmp_path / "j.db") as one, Journal(tmp_path / "k.db") as other:
        (tmp_path / "link.db").symlink_to(tmp_path / "j.db")
        with Journal(tmp_path / "link.db") as link:
            assert _one_at_a_time(link) is _one_at_a_time(one)
        assert _one_at_a_time(other) is not _one_at_a_time(one)


def test_a_recover_of_one_journal_does_not_wait_behind_another_journals(tmp_path):
    import threading

    started, release = threading.Event(), threading.Event()
    reg, calls = Registry(), []

    def slow(step, idempotency_key=None):  # (an undo backing off, a service that hangs)
        started.set()
        release.wait(60)
        calls.append(f"slow {step}")

    def quick(step, idempotency_key=None):
        calls.append(f"quick {step}")

    paths = []
    for name, fn in (("A", slow), ("B", quick)):
        path = tmp_path / f"{name}.db"
        undo = reg.add(name, fn)
        saga = Saga([Step("a", lambda s: None, undo.bind(step=name)), Step("c", lambda s: 1 / 0)])
        crash_at_first_undo(path, saga)
        paths.append(path)

    def recover_at(path):
        with Journal(path) as journal:
            return recover(journal, reg)

    first = threading.Thread(target=recover_at, args=(paths[0],), daemon=True)
    first.start()
    try:
        assert started.wait(30)
        [done] = _in_thread(lambda: recover_at(paths[1])).recovered  # (before: waited for A)
        assert done.status is Status.ROLLED_BACK and calls == ["quick B"]
    finally:
        release.set()
        first.join(30)
    assert calls == ["quick B", "slow A"]


# -- F5: an undo that forks, its child returning into the engine -------------------------------
# Before: the child went on with its parent's rollback (each undo after it run twice, the
# journal telling the child's story); in recover the parent then ended on a raw
# "IntegrityError('UNIQUE constraint failed: events.saga_id, events.seq')".


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork")
@pytest.mark.parametrize("where", ["in process", "recover"])
@pytest.mark.parametrize("child", ["returns", "raises"])
def test_an_undo_whose_forked_child_returns_into_the_engine_runs_no_undo_twice(
    tmp_path, where, child
):
    path, world, told = tmp_path / "j.db", tmp_path / "world", tmp_path / "child"
    parent, children = os.getpid(), []

    def note(line):
        with open(world, "a") as out:
            out.write(f"{line}\n")

    reg = Registry()
    plain = reg.add("u", lambda step, idempotency_key=None: note(f"undo {step}"))

    def forking(step, idempotency_key=None):
        note(f"undo {step}")
        pid = os.fork()
        if pid == 0 and child == "raises":  # (a notifier in the background, falling through)
            raise ConnectionError("notifier down")
        children.append(pid)  # (the child: 0, returning from the undo into the engine)

    forks = reg.add("f", forking)
    saga = Saga([Step("a", lambda s: None, plain.bind(step="a")),
                 Step("b", lambda s: None, forks.bind(step="b")),
                 Step("c", lambda s: 1 / 0)])  # fmt: skip

    def crash(event):
        if where == "recover" and event.kind == "undo":
            raise KeyboardInterrupt

    try:
        with Journal(path) as journal:
            if where == "recover":  # (one saga recover finishes before the fork: attack45 L8,
                first = Saga(
                    [
                        Step("x", lambda s: None, plain.bind(step="x")),  # the child
                        Step("y", lambda s: 1 / 0),
                    ]
                )  # said it finished it too) fmt: skip
                with pytest.raises(KeyboardInterrupt):
                    first.run({}, journal=journal, run_id="r", on_event=crash)
            try:
                outcome = saga.run({}, journal=journal, run_id="s", on_event=crash)
            except KeyboardInterrupt:
                outcome = None
        if where == "recover":
            con = sqlite3.connect(path)
            con.execute("UPDATE sagas SET owner_pid = ?, owner_started = NULL", (dead_pid(),))
            con.commit()
            con.close()
            with Journal(path) as journal:
                outcome = recover(journal, reg)
    except BaseException as exc:
        if os.getpid() == parent:
            raise
        told.write_text(type(exc).__name__ + ": " + str(exc))
        with open(told, "a") as out:  # (what it says it finished: its parent's, none its own)
            out.write(f"\nrecovered {getattr(exc, 'recovered', None)!r}")
    finally:
        if os.getpid() != parent:  # the fork never returns into pytest
            if not told.exists():
                told.write_text(f"returned {getattr(outcome, 'status', outcome)}")
            os._exit(0)
    for pid in children:
        os.waitpid(pid, 0)
    undone = world.read_text().splitlines()  # (before: "undo a" twice)
    assert undone == (["undo x"] if where == "recover" else []) + ["undo b", "undo a"]
    if where == "in process":
        assert told.read_text() == "returned halted"  # its run stopped, nothing written
        assert outcome.status is Status.ROLLED_BACK and outcome.compensated == ("b", "a")
    else:
        said = told.read_text()
        assert said.startswith("JournalForked: process ") and "is a fork of" in said
        assert "its parent goes on" in said  # (it does: the test waits for its child)
        assert said.endswith("\nrecovered ()"), said
        assert [r.status for r in outcome.recovered] == [Status.ROLLED_BACK] * 2
    with Journal(path) as journal:
        assert journal.saga("s").status == "rolled_back"
        assert [u.state for u in journal.undos("s")] == ["done", "done"]


def test_a_fork_whose_parent_has_exited_is_not_told_its_parent_goes_on(tmp_path):
    """attack85's note: a daemonizing fork mid-block (the parent exits, the child carries
    on into the engine) was told "its parent goes on"; the parent has exited, and the saga
    is `recover`'s to finish."""
    told = tmp_path / "told.txt"
    script = tmp_path / "daemon.py"
    script.write_text(
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "from rollback_lessons.durable.forked import JournalForked, not_forked\n"
        "opener = os.getpid()\n"
        "if os.fork():\n"
        "    os._exit(0)  # the parent exits at once\n"
        "while os.getppid() == opener:\n"
        "    time.sleep(0.01)\n"
        "for _ in range(500):  # (until the exited parent is reaped)\n"
        "    try:\n"
        "        os.kill(opener, 0)\n"
        "    except ProcessLookupError:\n"
        "        break\n"
        "    time.sleep(0.01)\n"
        "try:\n"
        "    not_forked(opener, Path('j.db'))\n"
        "except JournalForked as exc:\n"
        "    Path(sys.argv[1]).write_text(str(exc))\n"
    )
    subprocess.run([sys.executable, str(script), str(told)], check=True, timeout=60)
    for _ in range(500):
        if told.exists() and told.read_text():
            break
        time.sleep(0.02)
    said = told.read_text()
    assert "is a fork of process" in said and "its parent goes on" not in said, said
    assert said.endswith("(or runs another program now): `recover` finishes its saga"), said


def test_a_fork_whose_parent_execd_another_program_is_not_told_its_parent_goes_on(tmp_path):
    """attack88 F5: the parent exec'd another program (its saga orphaned, ``recover``'s to
    take over): the child was told "its parent goes on" (only its parent pid was looked at)."""
    told = tmp_path / "told.txt"
    script = tmp_path / "execs.py"
    script.write_text(
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "from rollback_lessons.durable.journal import Journal\n"
        "from rollback_lessons.durable.forked import JournalForked\n"
        "journal = Journal(sys.argv[2])\n"
        "if os.fork():\n"
        "    os.execv('/bin/sleep', ['sleep', '5'])  # the parent runs another program\n"
        "time.sleep(1.0)\n"
        "try:\n"
        "    journal.holds('s', 0)\n"
        "except JournalForked as exc:\n"
        "    Path(sys.argv[1]).write_text(str(exc))\n"
        "os._exit(0)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script), str(told), str(tmp_path / "j.db")])
    try:
        for _ in range(500):
            if told.exists() and told.read_text():
                break
            time.sleep(0.02)
        said = told.read_text()
    finally:
        proc.kill()
        proc.wait()
    assert "is a fork of process" in said and "its parent goes on" not in said, said
