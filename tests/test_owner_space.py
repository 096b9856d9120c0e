"""Issue 25, attack22's H2 and M3: who owns a saga across PID namespaces and boots, and a
halt the journal recorded before the crash.

H2: a pid names a process only in its PID namespace and boot; a ``recover`` in another
container with the same host name saw the live owner's pid as dead (or as another process)
and took the saga over without ``--force``. M3: the policy's halt (the failed attempt's
``undo_failed then=halt``) and the status ``halted`` were two writes; a crash, a failed
write or a Ctrl-C between them made the next ``recover`` try the undo again and go on.
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
from rollback_lessons.durable.journal import Journal, JournalError
from rollback_lessons.durable.owner import me, process_alive, process_space
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry
from rollback_lessons.durable.rows import LIVE

OTHER = "pid:[4026530000] boot 00000000-0000-0000-0000-000000000000"


def _registry(calls, fail=()):
    reg = Registry()

    def undo(step, idempotency_key=None):
        calls.append(step)
        if step in fail:
            raise ConnectionError("refund service declined")

    return reg, reg.add("u", undo)


def _abc(undo) -> Saga:
    """a, b (undone by ``undo``, bound to the step), c (fails)."""
    return Saga([Step(k, lambda s: None, undo.bind(step=k)) for k in "ab"]
                + [Step("c", lambda s: 1 / 0)])  # fmt: skip


def _dies_at(kind: str):
    """An ``on_event`` that dies (KeyboardInterrupt) at the first event of ``kind``."""

    def crash(event):
        if event.kind == kind:
            raise KeyboardInterrupt

    return crash


def _crashed(path, set_sql, params=()):
    """A saga a, b, c whose c failed, crashed before its first undo; then ``set_sql``."""
    calls: list[str] = []
    reg, undo = _registry(calls)

    crash_at_first_undo(path, _abc(undo), set_sql, params)
    return reg, calls


# -- H2: the owner's and the claimer's PID namespace and boot ------------------------------


@pytest.mark.skipif(process_space() is None, reason="no /proc to read the PID namespace from")
def test_the_owner_and_the_claimer_are_recorded_with_their_pid_namespace_and_boot(tmp_path):
    path = tmp_path / "j.db"
    reg, calls = _crashed(path, "UPDATE sagas SET owner_pid = ?", (dead_pid(),))
    with Journal(path) as journal:
        assert journal.saga("s").owner_space == me()[3] == process_space()
        assert process_space().startswith("pid:[")
        [done] = recover(journal, reg).recovered
        assert journal.saga("s").claim_space == me()[3]
    assert done.status is Status.ROLLED_BACK and calls == ["b", "a"]


@pytest.mark.skipif(process_space() is None, reason="no /proc to read the PID namespace from")
@pytest.mark.parametrize("alive", [True, False])
def test_an_owner_in_another_pid_namespace_or_boot_is_taken_over_only_with_force(tmp_path, alive):
    """Same host name, another namespace: its pid names this live process, or none; either
    way it tells nothing about the owner (before: a dead pid was taken over, no --force)."""
    path = tmp_path / "j.db"
    pid = os.getpid() if alive else dead_pid()
    sql = "UPDATE sagas SET owner_pid = ?, owner_started = NULL, owner_space = ?"
    reg, calls = _crashed(path, sql, (pid, OTHER))
    with Journal(path) as journal:
        assert process_alive(pid, me()[1], None, OTHER) is None
        report = recover(journal, reg)
        assert report.recovered == () and calls == []
        [why] = [s.reason for s in report.skipped]
        assert f"its process {pid} ran on {me()[1]} in another PID namespace or boot" in why
        assert "--force" in why and journal.saga("s").status == "rolling_back"
        [done] = recover(journal, reg, force=True).recovered
    assert done.status is Status.ROLLED_BACK and calls == ["b", "a"]


@pytest.mark.skipif(process_space() is None, reason="no /proc to read the PID namespace from")
def test_a_claim_with_this_pid_from_another_namespace_is_not_this_recovers_own(tmp_path):
    """A claimer in another container may have this very pid: its claim is not this one's."""
    path = tmp_path / "j.db"
    sql = ("UPDATE sagas SET owner_pid = ?, claim_pid = ?, claim_host = ?, claim_space = ?,"
           " claim_gen = claim_gen + 1")  # fmt: skip
    reg, calls = _crashed(path, sql, (dead_pid(), os.getpid(), me()[1], OTHER))
    with Journal(path) as journal:
        report = recover(journal, reg)
        assert report.recovered == () and calls == []
        [why] = [s.reason for s in report.skipped]
        assert why.startswith(f"claimed by process {os.getpid()}, which ran on")
        assert "--force" in why


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    return subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"]).returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs root and unshare (a PID namespace)")
def test_recover_from_another_pid_namespace_leaves_a_live_owners_saga_alone(tmp_path):
    """attack22's H2 for real: this process owns the saga; ``recover`` in a new PID
    namespace (same host name) sees no process with its pid. Before: taken over, exit 0."""
    path = tmp_path / "j.db"
    _crashed(path, "UPDATE sagas SET owner_pid = ?", (os.getpid(),))  # (alive: this one)
    command, env = recover_command(tmp_path, path)
    out = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", *command],
                         capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    assert "in another PID namespace or boot" in out.stdout and "UNDID" not in out.stdout
    with Journal(path) as journal:
        assert journal.saga("s").status == "rolling_back"


def test_a_saga_written_before_namespaces_were_recorded_is_checked_as_far_as_it_can_be(tmp_path):
    """Schema 6 and older: a process seen running here is; one not seen may run in another
    container: --force (the safe side). README says so."""
    path = tmp_path / "j.db"
    sql = "UPDATE sagas SET owner_pid = ?, owner_started = NULL, owner_space = NULL"
    reg, calls = _crashed(path, sql, (dead_pid(),))
    with Journal(path) as journal:
        [why] = [s.reason for s in recover(journal, reg).skipped]
        assert "before the journal recorded PID namespaces" in why and "--force" in why
        journal.write([("UPDATE sagas SET owner_pid = ?", (os.getpid(),))])
        [why] = [s.reason for s in recover(journal, reg).skipped]
        assert why == f"its process {os.getpid()} is still running; {LIVE}"
        assert calls == []
        journal.write([("UPDATE sagas SET owner_pid = ?", (dead_pid(),))])
        [done] = recover(journal, reg, force=True).recovered
    assert done.status is Status.ROLLED_BACK


# -- M3: a halt recorded before the crash is honoured ----------------------------------------


def _halted_then_crashed(path, at, policy="halt"):
    """a, b, c (fails); b's undo fails and the policy halts; the process dies at event
    ``at`` (after the attempt and its ``then=halt`` are written, before ``halted`` is)."""
    calls: list[str] = []
    _, undo = _registry(calls, fail=("b",))

    crash = _dies_at(at)  # (the run's writes so far kept: as a crash leaves them)

    saga = _abc(undo)
    with Journal(path) as journal, pytest.raises(KeyboardInterrupt):
        saga.run({}, journal=journal, run_id="s", policy=policy, on_event=crash)
    con = sqlite3.connect(path)
    con.execute("UPDATE sagas SET owner_pid = ?, owner_started = NULL, status = 'rolling_back'",
                (dead_pid(),))  # fmt: skip
    con.execute("DELETE FROM events WHERE kind = 'released'")  # (a crash lets nothing go)
    con.execute(  # (nor writes after it: the Ctrl-C standing in for it carries what the run
        "DELETE FROM events WHERE seq > (SELECT MIN(seq) FROM events WHERE kind = ?)", (at,)
    )  # kept, attack266)
    con.commit()
    con.close()
    return calls


@pytest.mark.parametrize("at", ["undo_failed", "rollback_done"])
def test_a_halt_recorded_before_the_crash_is_honoured_by_recover(tmp_path, at):
    path = tmp_path / "j.db"
    calls = _halted_then_crashed(path, at)
    assert calls == ["b"]
    reg, _ = _registry(calls)  # b's undo would work now: the person is asked all the same
    with Journal(path) as journal:
        last = [(e.kind, e.details.get("then")) for e in journal.events("s")][-2:]
        # (the halt recorded, its end not: attack22's instant; the end is recorded before
        # the observers of rollback_done hear it, attack70 F2: its status set back above)
        halt = ("undo_failed", "halt")
        assert last[-1] == halt if at == "undo_failed" else last == [halt, ("rollback_done", None)]
        [done] = recover(journal, reg).recovered
        undos = {u.step: (u.state, u.attempts) for u in journal.undos("s")}
        assert journal.saga("s").status == "halted"
    assert calls == ["b"]  # b's undo not tried again, a's never run
    assert done.status is Status.HALTED and done.pending == ("b", "a")
    assert "the undo of b failed (ConnectionError('refund service declined'))" in done.reason
    assert undos == {"a": ("pending", 0), "b": ("pending", 1)}


def test_a_retry_then_halt_policy_recorded_halt_is_not_a_fourth_attempt(tmp_path):
    from rollback_lessons import RetryPolicy, UndoPolicy

    policy = UndoPolicy(RetryPolicy(max_attempts=3, initial_delay=0.0), then="halt")
    path = tmp_path / "j.db"
    calls = _halted_then_crashed(path, "rollback_done", policy)
    assert calls == ["b", "b", "b"]
    reg, _ = _registry(calls)
    with Journal(path) as journal:
        [done] = recover(journal, reg).recovered
    assert calls == ["b", "b", "b"] and done.status is Status.HALTED


def test_a_retry_recorded_before_the_crash_is_still_retried(tmp_path):
    """Only a halt is honoured: an attempt that was to be retried is, by recover."""
    from rollback_lessons import RetryPolicy, UndoPolicy

    policy = UndoPolicy(RetryPolicy(max_attempts=3, initial_delay=0.0), then="halt")
    path = tmp_path / "j.db"
    _halted_then_crashed(path, "undo_failed", policy)  # (the first failure: then=retry)
    calls: list[str] = []
    reg, _ = _registry(calls)
    with Journal(path) as journal:
        [done] = recover(journal, reg).recovered
    assert calls == ["b", "a"] and done.status is Status.ROLLED_BACK


def test_a_halt_recover_decided_whose_end_it_could_not_write_is_honoured_next_time(tmp_path):
    """The same instant inside recover: the failed attempt (and its then=halt) written, the
    status ``halted`` not (a full disk); the next recover, its undo working now, halts."""
    path = tmp_path / "j.db"
    calls: list[str] = []
    _, undo = _registry(calls)

    crash = _dies_at("undo")

    saga = _abc(undo)
    with Journal(path) as journal:
        with pytest.raises(KeyboardInterrupt):
            saga.run({}, journal=journal, run_id="s", policy="halt", on_event=crash)
        journal.write([("UPDATE sagas SET owner_pid = ?", (dead_pid(),))])
        real = journal.write

        def write(statements, **kw):
            if any("ended = " in sql for sql, _ in statements):
                raise sqlite3.OperationalError("database or disk is full")
            return real(statements, **kw)

        journal.write = write  # type: ignore[method-assign]
        failing, _ = _registry(calls, fail=("b",))
        with pytest.raises(JournalError, match="could not write") as said:
            recover(journal, failing)
        assert "no room on its disk (" in str(said.value)  # (attack42 F14: SQLite's words only)
        assert journal.saga("s").status == "rolling_back" and calls == ["b"]
        journal.write = real  # type: ignore[method-assign]
        working, _ = _registry(calls)
        [done] = recover(journal, working).recovered
    assert calls == ["b"] and done.status is Status.HALTED and done.pending == ("b", "a")


# -- attack84 F1: a program that execs another keeps its pid and start time ----------------

_EXEC = """
import os, sys
from rollback_lessons import Saga, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry

reg = Registry()
undo = reg.add("u", lambda step, idempotency_key=None: print("undo", step, flush=True))
if sys.argv[2] == "first":  # a saga whose step b restarts the program, as an autoreloader does
    def restart(state):
        os.execv(sys.executable, [sys.executable, __file__, sys.argv[1], "again"])
    steps = [Step("a", lambda s: None, undo.bind(step="a")),
             Step("b", restart, undo.bind(step="b"))]
    Saga(steps, name="ex").run({}, journal=Journal(sys.argv[1]), run_id="r1")
else:  # the same pid, the same start time, another program: it waits, holding nothing
    print("running again", os.getpid(), flush=True)
    sys.stdin.readline()
"""


@pytest.mark.skipif(process_space() is None, reason="no /proc to read the process from")
def test_an_owner_that_execd_another_program_is_dead_though_its_pid_runs(tmp_path):
    script, path = tmp_path / "restart.py", tmp_path / "j.db"
    script.write_text(_EXEC)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path), "first"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert line.startswith("running again"), line
        with Journal(path) as journal:
            row = journal.saga("r1")
            assert row.owner_pid == proc.pid == int(line.split()[-1]) and row.status == "running"
            calls: list[str] = []
            reg = Registry()
            reg.add("u", lambda step, idempotency_key=None: calls.append(step))
            [done] = recover(journal, reg).recovered
        assert calls == ["a"] and done.status is Status.ROLLBACK_INCOMPLETE  # b: no undo logged
    finally:
        proc.communicate("\n", timeout=30)


@pytest.mark.skipif(process_space() is None, reason="no /proc to read the process from")
def test_an_owner_whose_main_thread_ended_while_another_runs_is_alive(tmp_path):
    """attack85 F6: a process whose main thread ended (pthread_exit) shows it as a zombie
    while the thread running the saga goes on: it was taken for dead, its saga undone under
    a step still running."""
    import time

    from rollback_lessons.durable.owner import process_start

    script = tmp_path / "leader.py"
    script.write_text(
        "import ctypes, sys, threading, time\n"
        "threading.Thread(target=lambda: (time.sleep(float(sys.argv[1])), print('end'))).start()\n"
        "print('ready', flush=True)\n"
        "ctypes.CDLL(None).pthread_exit(None)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script), "3"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        for _ in range(100):  # (until the main thread has ended: the leader a zombie)
            with open(f"/proc/{proc.pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.02)
        else:
            pytest.skip("the main thread did not end as a zombie here")
        started = process_start(proc.pid)
        assert started is not None and started != -1.0
        where = me()[3].split(" exec ")[0]  # (its own program not known: not compared)
        assert process_alive(proc.pid, me()[1], started, where) is True
    finally:
        proc.communicate(timeout=30)
    assert process_alive(proc.pid, me()[1], started, where) is False


@pytest.mark.skipif(process_space() is None, reason="no /proc to read the process from")
@pytest.mark.parametrize("seen", [False, True])
def test_an_owner_whose_program_this_user_cannot_read_is_not_said_only_running(
    tmp_path, monkeypatch, seen
):
    """attack86 F7: /proc shows another user's process's stack start as 0, so a recover run by
    another user cannot tell an owner that exec'd another program (a restarted service) from
    the owner running on: it said "still running; stop it first", the pid now another
    program's. It says this user cannot tell, and who can. (Stubbed: the process is this
    user's; ``seen``: its program read, and the same, is still running, as before.)"""
    from rollback_lessons.durable import owner

    script, path = tmp_path / "restart.py", tmp_path / "j.db"
    script.write_text(_EXEC)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path), "first"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert line.startswith("running again"), line
        if seen:  # (the journal records the program it runs now: the owner runs on)
            space = me()[3].split(" exec ")[0] + f" exec {owner.process_exec(proc.pid)}"
            with sqlite3.connect(path) as con:  # (by hand, its -wal written back: said so,
                con.execute("UPDATE sagas SET owner_space = ?", (space,))  # as the journal's
                con.execute("UPDATE sagas SET writer = NULL")
                con.execute("DELETE FROM meta WHERE key LIKE 'writer %'")  # refusal says)
            con.close()
        else:  # (read as another user reads it)
            monkeypatch.setattr(owner, "process_exec", lambda pid: None)
            monkeypatch.setattr(owner, "hidden", lambda pid: True)
        calls: list[str] = []
        reg = Registry()
        reg.add("u", lambda step, idempotency_key=None: calls.append(step))
        with Journal(path) as journal:
            report = recover(journal, reg)
            assert journal.saga("r1").status == "running"
        [why] = [s.reason for s in report.skipped]
        assert report.recovered == () and calls == []
        said = f"its process {proc.pid} is still running"
        assert why == (
            f"{said}; {LIVE}"
            if seen
            else f"{said}, unless it has exec'd another program since, which this user cannot "
            "tell (/proc hides another user's program): run recover as its user, or as root"
        )
    finally:
        proc.communicate("\n", timeout=30)


_LEADER_GONE = """
import ctypes, sys, threading
from rollback_lessons import Saga, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry

reg = Registry()
undo = reg.add("u", lambda step, idempotency_key=None: print("undo", step, flush=True))
begun = threading.Event()

def wait(state):
    begun.set()
    sys.stdin.readline()  # (until the test has recovered)

def worker():
    steps = [Step("a", lambda s: None, undo.bind(step="a")), Step("b", wait, undo.bind(step="b"))]
    Saga(steps, name="zl").run({}, journal=Journal(sys.argv[1]), run_id="z1")
    print("committed", flush=True)

threading.Thread(target=worker).start()
begun.wait()
print("main thread ends", flush=True)
ctypes.CDLL(None).pthread_exit(None)  # the main thread ends; the worker runs on
"""


@pytest.mark.skipif(process_space() is None, reason="no /proc to read the process from")
def test_an_owner_whose_main_thread_ended_is_said_so_to_root_or_its_own_user(tmp_path):
    """attack91 F4: a live owner whose main thread ended (its stack start reads 0 to anyone,
    /proc's stat 'Z' for it) while a thread of it runs the saga, recovered by root or by its
    own user (this test's). Without the fix: "this user cannot tell (/proc hides another
    user's program): run recover as its user, or as root", which this user is."""
    from rollback_lessons.durable import owner

    script, path = tmp_path / "leader.py", tmp_path / "j.db"
    script.write_text(_LEADER_GONE)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout.readline() == "main thread ends\n"
        for _ in range(500):  # (until /proc shows it ended: its stack start 0)
            if owner.process_exec(proc.pid) is None:
                break
            time.sleep(0.01)
        assert not owner.hidden(proc.pid)
        calls: list[str] = []
        reg = Registry()
        reg.add("u", lambda step, idempotency_key=None: calls.append(step))
        with Journal(path) as journal:
            report = recover(journal, reg)
            assert journal.saga("z1").status == "running"
        [why] = [s.reason for s in report.skipped]
        assert report.recovered == () and calls == []
        assert why == (
            f"its process {proc.pid} is taken as still running: its main thread has ended (its "
            "stack start reads 0, to this user too, who may read it), its other threads run "
            f"on; {LIVE}"
        )
    finally:
        out, _ = proc.communicate("\n", timeout=30)
    assert out == "committed\n"


# -- attack85 F1: with ASLR off the same program exec'd with the same argv -----------------

_REEXEC = """
import os, sys
from rollback_lessons import Saga, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry

reg = Registry()
undo = reg.add("u", lambda step, idempotency_key=None: print("undo", step, flush=True))
path, marker = sys.argv[1], sys.argv[1] + ".restarted"
with Journal(path) as journal:  # an autoreloader's program: recover at start-up, then its saga
    print("recovered", [(r.run_id, r.status.value) for r in recover(journal, reg).recovered],
          flush=True)
if not os.path.exists(marker):
    def restart(state):
        open(marker, "w").close()
        os.execv(sys.executable, [sys.executable] + sys.argv)  # the same argv and environment
    steps = [Step("a", lambda s: None, undo.bind(step="a")),
             Step("b", restart, undo.bind(step="b"))]
    Saga(steps, name="ex").run({}, journal=Journal(path), run_id="r1")
"""


@pytest.mark.skipif(process_space() is None, reason="no /proc to read the process from")
@pytest.mark.skipif(shutil.which("setarch") is None, reason="no setarch to turn ASLR off")
def test_a_program_reexecd_with_the_same_argv_without_aslr_recovers_its_earlier_saga(tmp_path):
    """attack85 F1: with address-space randomization off (setarch -R, gdb) the re-exec'd
    program begins its stack where the first did; its own start-up recover took the saga for
    its own, still running, and left it so for as long as the service lived."""
    script, path = tmp_path / "reload.py", tmp_path / "j.db"
    script.write_text(_REEXEC)
    proc = subprocess.run(
        ["setarch", "-R", sys.executable, str(script), str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if "Operation not permitted" in proc.stderr:
        pytest.skip("setarch -R is not permitted here")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "recovered []",
        "undo a",
        "recovered [('r1', 'rollback_incomplete')]",
    ], proc.stdout  # (b: its undo was never logged, reported leaked)


def test_a_record_of_this_pid_with_another_life_is_dead_and_its_own_alive():
    pid, host, started, space = me()
    assert process_alive(pid, host, started, space) is True
    other = space.replace(" life ", " life 0", 1) if " life " in space else None
    if other is None:
        pytest.skip("no /proc to read the process from")
    assert process_alive(pid, host, started, other) is False
    forked = space.split(" life ")[0]  # (a record without a token: no other life told)
    assert process_alive(pid, host, started, forked) is True


_NS_OWNER = """
import os, sys
from rollback_lessons import Saga, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry

reg = Registry()
undo = reg.add("u", lambda step, idempotency_key=None: print("undo", step, flush=True))
steps = [Step("a", lambda s: None, undo.bind(step="a")),
         Step("b", lambda s: os.execv("/bin/sleep", ["sleep", "30"]), undo.bind(step="b"))]
Saga(steps, name="ns").run({}, journal=Journal(sys.argv[1]), run_id="n1")
"""

_NS_RECOVER = """
import sys
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry

reg = Registry()
reg.add("u", lambda step, idempotency_key=None: print("undo", step, flush=True))
with Journal(sys.argv[1]) as journal:
    print([(r.run_id, r.status.value) for r in recover(journal, reg).recovered], flush=True)
"""


@pytest.mark.skipif(shutil.which("unshare") is None, reason="no unshare")
def test_an_owner_in_a_pid_namespace_that_kept_the_hosts_proc_is_told_by_its_own_pid(tmp_path):
    """attack86 F15: in ``unshare -p -f`` (the parent's /proc left mounted) /proc/<pid> is the
    parent namespace's process of that number: the journal recorded its start time, no exec
    mark, and an owner that exec'd was "still running" for ever."""
    owner, again, path = tmp_path / "owner.py", tmp_path / "recover.py", tmp_path / "j.db"
    owner.write_text(_NS_OWNER)
    again.write_text(_NS_RECOVER)
    py = sys.executable
    inside = f"{py} {owner} {path} & sleep 3; {py} {again} {path}; kill $!"
    done = subprocess.run(["unshare", "-p", "-f", "sh", "-c", inside],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    if done.returncode != 0 and "unshare" in done.stderr:
        pytest.skip(f"unshare is not permitted here: {done.stderr.strip()}")
    assert done.stdout.splitlines() == ["undo a", "[('n1', 'rollback_incomplete')]"], (
        done.stdout, done.stderr[-2000:]
    )  # fmt: skip
