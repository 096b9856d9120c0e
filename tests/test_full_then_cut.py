"""A service whose disk is full for a moment, then interrupted, lives on with room again
(attack276): what its failed writes kept, and its claims, go with the journal's next write,
never dropped for good (a Ctrl-C's carry that failed, a stopped recover's give-back)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rollback_lessons import Saga, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry

CUT_SERVICE = """
import os, resource, sys
from rollback_lessons import Registry, Rollback, compensation
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover

path, ledger, where = sys.argv[1], sys.argv[2], sys.argv[3]
INF = resource.RLIM_INFINITY
reg = Registry()

def fill():  # (no file of this process may grow from here: the disk is full)
    size = max(os.path.getsize(p) for p in (path, path + "-wal", ledger) if os.path.exists(p))
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, INF))

@compensation("cut_u", reg)
def undo(step, idempotency_key=None):
    if step == "b":
        fill()
    with open(ledger, "a") as f:
        f.write(f"{step} ")
    if step == "a" and where == "in the undo":
        raise KeyboardInterrupt  # (a Ctrl-C in undo a: its call in doubt)

def on_event(event):  # (a Ctrl-C at undo a's event, before its call)
    if where == "at the event" and event.kind == "undo" and event.step == "a":
        raise KeyboardInterrupt

journal = Journal(path)
try:
    with Rollback(journal=journal, run_id="r1", on_event=on_event) as rb:
        for step in "ab":
            rb.do(step, lambda: None, undo.bind(step=step))
        rb.do("c", lambda: 1 / 0, undo.bind(step="c"))
except KeyboardInterrupt:
    print(" | ".join(rb.outcome.notes), flush=True)
resource.setrlimit(resource.RLIMIT_FSIZE, (INF, INF))  # (room again: the service goes on)
with Rollback(journal=journal, run_id="r2") as rb:
    rb.do("x", lambda: None)
print(journal.saga("r1").status, {u.step: u.state for u in journal.undos("r1")}, flush=True)
if where == "at the event":  # (let go with what it kept: another recover may take it)
    print(recover(journal, reg).recovered[0].status, flush=True)
journal.close()
"""


def ledger_of(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@pytest.mark.parametrize("where", ["in the undo", "at the event"])
def test_what_a_full_disk_kept_is_written_once_room_is_back_after_a_ctrl_c(tmp_path, where):
    """attack276 F1: undo b ran as the disk filled (its record kept for the next write), then
    a Ctrl-C in undo a: the carry failed, and the kept record was dropped for good, though
    the same journal wrote the next saga and closed cleanly: recover ran undo b again. Now
    the run is owed: written with the next write. At the event (before undo a's call, the
    release failed too): the saga is let go with it, so a recover of this process takes it."""
    path, ledger = tmp_path / "j.db", tmp_path / "ledger"
    ran = subprocess.run([sys.executable, "-c", CUT_SERVICE, str(path), str(ledger), where],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    notes, shown, *rest = ran.stdout.strip().split("\n")
    assert "unless this journal writes it first" in notes, notes  # (undo b's record)
    assert "writes what the failed write kept" in notes, notes
    assert "'b': 'done'" in shown, shown  # (written with r2's first write)
    calls: list[str] = []
    reg = Registry()
    reg.add("cut_u", lambda step, idempotency_key=None: calls.append(step))
    if where == "at the event":  # (undo a never called: run by the recover it let in)
        assert "as this journal writes what the failed write kept" in notes, notes
        assert rest == ["rolled_back"], ran.stdout
        assert ledger_of(ledger) == ["b", "a"]
    else:  # (undo a cut in its call: in doubt, run again by recover; b never again)
        assert ledger_of(ledger) == ["b", "a"]
        with Journal(path) as journal:
            report = recover(journal, reg)
        assert calls == ["a"], (calls, report)
    with Journal(path, readonly=True) as read:
        assert read.saga("r1").status == "rolled_back"


CRASHED = """
import os, sys
from rollback_lessons import Registry, Rollback
from rollback_lessons.durable.journal import Journal

undo = Registry().add("stop_u", lambda **k: None)
with Rollback(journal=Journal(sys.argv[1]), run_id="r1") as rb:
    for step in "abc":
        rb.do(step, lambda: None, undo.bind(step=step))
    rb.do("d", lambda: os._exit(9))  # (a crash as d runs)
"""

STOPPED_RECOVER = """
import os, resource, sys
from rollback_lessons import Registry, Rollback
from rollback_lessons.durable.journal import Journal, JournalError
from rollback_lessons.durable.recovery import recover

path = sys.argv[1]
INF = resource.RLIM_INFINITY
def undo(step, idempotency_key=None):
    print("undo", step, flush=True)
    if step == "c":  # (the disk full as the first undo returns)
        size = max(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, INF))
journal, reg = Journal(path), Registry()
reg.add("stop_u", undo)
try:
    recover(journal, reg)
except JournalError as exc:
    print("stopped:", exc, flush=True)
resource.setrlimit(resource.RLIMIT_FSIZE, (INF, INF))  # (room again: the service goes on)
with Rollback(journal=journal, run_id="r2") as rb:
    rb.do("x", lambda: None)
print("go?", flush=True)
sys.stdin.readline()  # (alive while another process recovers)
journal.close()
"""


def test_a_recover_a_full_disk_stopped_gives_its_claims_back_with_the_next_write(tmp_path):
    """attack276 F2: a service's recover stopped by a full disk kept its claim (the give-back
    failed too): once room was back, every other process's recover refused the saga as
    "being recovered by process N, still running", for the service's life. Now the give-back
    is owed, written with the journal's next write, and the error says so."""
    path = tmp_path / "j.db"
    crash = subprocess.run([sys.executable, "-c", CRASHED, str(path)], timeout=60)
    assert crash.returncode == 9
    script = [sys.executable, "-c", STOPPED_RECOVER, str(path)]
    service = subprocess.Popen(script, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert service.stdout is not None
        said = [service.stdout.readline().strip() for _ in range(3)]
        assert said[0] == "undo c" and said[1].startswith("stopped:"), said
        assert "its claims could not be given back" in said[1], said
        assert said[2] == "go?", said
        calls: list[str] = []
        reg = Registry()
        reg.add("stop_u", lambda step, idempotency_key=None: calls.append(step))
        with Journal(path) as journal:  # (another process, the service still alive)
            report = recover(journal, reg)
        assert [r.saga_id for r in report.recovered] == ["r1"], report
        assert calls == ["c", "b", "a"]  # (c's record never written: again, as it said)
    finally:
        service.communicate("go\n", timeout=60)
    assert service.returncode == 0


CLOSED_MID_SAGA = """
import sys
from rollback_lessons import Registry, Rollback
from rollback_lessons.durable.journal import Journal

undo = Registry().add("closed_u", lambda **k: None)
journal = Journal(sys.argv[1])
def b():  # (elsewhere in the service, the journal is closed as this saga runs)
    journal.close()
try:
    with Rollback(journal=journal, run_id="r1") as rb:
        rb.do("a", lambda: None, undo.bind(step="a"))
        rb.do("b", b, undo.bind(step="b"))
        rb.do("c", lambda: None)
except Exception as exc:
    print(type(exc).__name__, rb.outcome.status, " | ".join(rb.outcome.notes), flush=True)
with Journal(sys.argv[1]) as journal:  # (opened again: the service goes on)
    with Rollback(journal=journal, run_id="r2") as rb:
        rb.do("x", lambda: None)
"""


def test_a_journal_closed_as_a_saga_ran_promises_no_later_write_and_blames_no_full_disk(
    tmp_path,
):
    """attack276 F3: a journal closed while its saga ran: the run's last batch, refused,
    was owed to a journal that writes nothing more; the note promised it would be written,
    and the process's end said it was not "as its journal was closed on a full disk" (with
    79 GB free). Now it is not owed: the note says what the journal shows, the end nothing."""
    path = tmp_path / "j.db"
    ran = subprocess.run([sys.executable, "-c", CLOSED_MID_SAGA, str(path)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ran.returncode == 0 and ran.stderr == "", ran.stderr
    assert ran.stdout.startswith("JournalUnusable rolled_back "), ran.stdout
    assert "the journal still shows the saga unfinished" in ran.stdout, ran.stdout
    assert "tries again with its next write" not in ran.stdout, ran.stdout
    with Journal(path, readonly=True) as read:
        assert read.saga("r1").status == "running"  # (as the note says: recover finishes it)


HALTED_PAST_THE_PIVOT = """
import os, resource, sys
from rollback_lessons import Registry, Saga, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover

path = sys.argv[1]
INF = resource.RLIM_INFINITY
undo = Registry().add("halt_u", lambda **k: None)

def observe(event):
    if event.kind == "step_start" and event.step == "p":  # (the disk full as the pivot runs)
        size = max(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, INF))
    if event.kind == "halted":
        raise KeyboardInterrupt  # (a Ctrl-C as the halt is told)

steps = [Step(n, lambda s: None, undo.bind(n=n)) for n in ("s1", "s2")]
steps += [Step("p", lambda s: None, kind="pivot"), Step("after", lambda s: None, kind="retriable")]
journal = Journal(path)
try:
    Saga(steps, name="t").run({}, journal=journal, run_id="r1", on_event=observe)
except KeyboardInterrupt:
    pass
resource.setrlimit(resource.RLIMIT_FSIZE, (INF, INF))  # (room again: the service goes on)
Saga([Step("x", lambda s: None)], name="t2").run({}, journal=journal, run_id="r2")
registry = Registry()
registry.add("halt_u", lambda **k: print("UNDO", k["n"]))
print(recover(journal, registry).recovered[0].reason, flush=True)
journal.close()
"""


def test_a_run_halted_past_its_pivot_on_a_full_disk_is_halted_by_recover_naming_its_forward(
    tmp_path,
):
    """attack279 F1: the disk full as the pivot ran (its done unwritten: the run halted past
    it), a Ctrl-C at the ``halted`` event; room back, the kept writes landed (the run's halted
    event naming ``after`` to finish forward) with the next saga's. recover halted the saga
    itself, naming "the steps that come after it in the saga's code", not ``after``. Now it
    reads the steps its run's halted event named; nothing is undone."""
    ran = subprocess.run([sys.executable, "-c", HALTED_PAST_THE_PIVOT, str(tmp_path / "j.db")],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "UNDO" not in ran.stdout, ran.stdout  # (never across the pivot)
    assert "; forward after (after the pivot: finish by hand)" in ran.stdout, ran.stdout
    assert "in the saga's code" not in ran.stdout, ran.stdout


FILLING_REGISTRY = """
import os, resource, signal, time
from rollback_lessons import Registry

registry = Registry()
def undo(step, idempotency_key=None):
    if step == "b":  # (the disk fills as the undo of b starts, and a Ctrl-C lands in it)
        path = os.environ["JOURNAL"]
        size = max(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))
        os.kill(os.getpid(), signal.SIGINT)  # (a real one: raised by the command's handler)
        time.sleep(5)
registry.add("stop_u", undo)
"""


def test_a_recover_cut_on_a_full_disk_says_one_line_not_a_second_at_its_end(tmp_path):
    """attack279 F2: ``rollback-lessons recover`` cut by a Ctrl-C as the disk filled: beside
    its one line, a second at the process's end said "the last writes of saga 'r1' were not
    written ... calling again the undos that ran here" of a claim's release (the claim goes
    with the process; the undo of c was recorded). Now a claim owed is not said at the end."""
    path = tmp_path / "j.db"
    crash = subprocess.run([sys.executable, "-c", CRASHED, str(path)], timeout=60)
    assert crash.returncode == 9
    (tmp_path / "filling.py").write_text(FILLING_REGISTRY)
    env = {**os.environ, "JOURNAL": str(path), "PYTHONPATH": f"{tmp_path}:{os.getcwd()}"}
    cli = [sys.executable, "-m", "rollback_lessons", "recover", str(path), "--registry", "filling"]
    ran = subprocess.run(cli, capture_output=True, text=True, timeout=60, env=env)
    assert ran.returncode == 130, ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1, ran.stderr
    assert "recover interrupted (Ctrl-C) during the undo of 'b'" in ran.stderr, ran.stderr


WITHDRAWN_ON_A_FULL_DISK = """
import os, resource, sys
from rollback_lessons import Registry, Saga, Step
from rollback_lessons.durable.journal import Journal

path = sys.argv[1]
undo = Registry().add("before_u", lambda **k: None)

def observe(event):
    if event.kind == "undo_registered" and event.step == "s2":  # (its row written)
        size = max(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))
        raise KeyboardInterrupt  # (before s2's action: never called; the disk full to the end)

steps = [Step("s1", lambda s: None, undo.bind(n="s1")),
         Step("s2", lambda s: None, undo.bind(n="s2"), register="before")]
try:
    Saga(steps, name="t").run({}, journal=Journal(path), run_id="r1", on_event=observe)
except KeyboardInterrupt as exc:
    print(" | ".join(exc.__notes__), flush=True)
"""


def test_an_undo_withdrawn_that_a_full_disk_left_pending_is_said_before_recover_runs_it(
    tmp_path,
):
    """attack279 F3: an undo logged before its step, a Ctrl-C before the step's call (the undo
    withdrawn in memory), the disk full until the process ended: the notes named only the
    other undos to be called again, and recover ran this one too, for a step never called
    (a refund of a charge never made). The note now says so, as recover then does."""
    path = tmp_path / "j.db"
    ran = subprocess.run([sys.executable, "-c", WITHDRAWN_ON_A_FULL_DISK, str(path)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "s2 was not run" in ran.stdout, ran.stdout
    assert (
        "the undo of 's2', logged before its step, which was never called, could not be "
        "withdrawn: recover will run it, though that step never happened"
    ) in ran.stdout, ran.stdout
    calls: list[str] = []
    reg = Registry()
    reg.add("before_u", lambda n, idempotency_key=None: calls.append(n))
    with Journal(path) as journal:
        recover(journal, reg)
    assert calls == ["s2", "s1"]  # (as the note said)


SETTLE_ON_A_FULL_DISK = """
import resource, signal, sys
from rollback_lessons.durable.journal import Journal, JournalError

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
journal = Journal(sys.argv[1])
journal.sagas()
resource.setrlimit(resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))  # (no room)
try:
    journal.settle("h", "refunded by hand")
except JournalError as exc:
    print(type(exc).__name__, exc, flush=True)
"""


def test_a_settle_on_a_full_disk_is_one_typed_line_nothing_settled(tmp_path):
    """attack282 F2: ``Journal.settle`` on a full disk (past ``ulimit -f``) raised a raw
    ``sqlite3.OperationalError: disk I/O error``, the limit unnamed. A JournalError now,
    naming it; nothing settled (a settle with room goes through)."""
    path = tmp_path / "j.db"
    undo = Registry().add("settle_u", lambda **k: (_ for _ in ()).throw(RuntimeError("no")))
    with Journal(path) as journal:
        steps = [Step("h", lambda s: None, undo.bind(n="h")), Step("i", lambda s: 1 / 0)]
        halted = Saga(steps, name="h", policy="halt").run({}, journal=journal, run_id="h")
        assert str(halted.status) == "halted", halted
    ran = subprocess.run([sys.executable, "-c", SETTLE_ON_A_FULL_DISK, str(path)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ran.returncode == 0 and ran.stderr == "", ran.stderr
    assert ran.stdout.startswith("JournalError cannot settle 'h' ("), ran.stdout
    assert "file-size limit" in ran.stdout and "nothing was settled" in ran.stdout, ran.stdout
    with Journal(path) as journal:
        assert journal.settle("h", "refunded by hand").saga_id == "h"
