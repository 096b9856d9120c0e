"""What a journal owes (``durable.owed``): a run's last batch that failed three times (a
disk full for a moment) is written with the journal's next write, its next claim, or as it
closes, under the run's claim: a saga taken over since (``recover --force``) is its new
holder's, and nothing of the old run is written past the fence (attack270 F1)."""

from __future__ import annotations

import sqlite3

import pytest

from rollback_lessons import Saga, Status, Step
from rollback_lessons.durable.journal import Journal, JournalError
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry


def full_for_one_saga(journal: Journal, calls: list[str]):
    """Run saga 's' (a, b with undos, c fails) with every write failing from b's end on."""
    undo = Registry().add("owed_u", lambda n, idempotency_key=None: calls.append(n))
    real, seen = journal.write, []

    def write(statements, **kw):
        if any("'step_done'" in str(p) or "step_done" in sql for sql, p in statements):
            seen.append(1)
        if len(seen) >= 2:  # (from b's done on: the disk is full)
            raise sqlite3.OperationalError("database or disk is full")
        return real(statements, **kw)

    journal.write = write  # type: ignore[method-assign]

    def fail(state):
        raise RuntimeError("no")

    steps = [Step("a", lambda s: None, undo.bind(n="a")),
             Step("b", lambda s: None, undo.bind(n="b")), Step("c", fail)]  # fmt: skip
    outcome = Saga(steps, name="s").run({}, journal=journal, run_id="s")
    journal.write = real  # type: ignore[method-assign]  (room again)
    return outcome


def test_owed_writes_go_with_the_next_write_and_tell_the_saga_as_it_ran(tmp_path):
    calls: list[str] = []
    with Journal(tmp_path / "j.db") as journal:
        outcome = full_for_one_saga(journal, calls)
        assert outcome.status is Status.ROLLED_BACK and calls == ["b", "a"], outcome
        assert "once that is written the journal shows the saga as it ran" in outcome.notes[-1]
        assert journal.saga("s").status == "running"  # (owed, not yet written)
        Saga([Step("x", lambda s: None)], name="x").run({}, journal=journal, run_id="x")
        assert journal.saga("s").status == "rolled_back"
        assert {u.step: u.state for u in journal.undos("s")} == {"a": "done", "b": "done"}


def test_owed_writes_of_a_saga_taken_over_since_are_dropped_never_written_past_it(tmp_path):
    """A recover takes the saga while its owner still owes its end (the owner taken for
    dead: a pid reused, a host's clock): it runs the undos the journal shows pending (with
    their keys), and the owner's writes, paid at its next write, are refused by the fence
    (the claim's generation), never written after it."""
    from conftest import orphan

    calls: list[str] = []
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        full_for_one_saga(journal, calls)
        registry = Registry()

        def refuse(n, idempotency_key=None):  # (recover's story differs from the owner's:
            calls.append(f"recover {n}")  # a dead letter, the saga rollback_incomplete)
            raise RuntimeError("refused")

        registry.add("owed_u", refuse)
        orphan(path, "s")
        with Journal(path) as other:
            report = recover(other, registry)
        assert [s.saga_id for s in report.recovered] == ["s"], report
        shown = journal.saga("s").status, journal.events("s"), journal.undos("s")
        assert shown[0] == "rollback_incomplete", shown
        Saga([Step("x", lambda s: None)], name="x").run({}, journal=journal, run_id="x")
        assert (journal.saga("s").status, journal.events("s"), journal.undos("s")) == shown
        assert journal.saga("x").status == "committed"  # (its own write went on)
    assert calls[:2] == ["b", "a"] and set(calls[2:]) <= {"recover a", "recover b"}


def test_a_settle_the_owed_end_of_its_saga_blocks_names_the_failed_write(tmp_path):
    """attack280 F3: the disk still full, a settle of a saga whose run's end is owed was
    refused as "running: it has not ended (it runs, or a recover holds it ...)", none of
    which was why. It names the write that failed; with room, the settle goes through."""
    undo = Registry().add("owed_h", _refused)
    with Journal(tmp_path / "j.db") as journal:
        real = journal.write
        full = [False]

        def write(statements, **kw):
            if full[0]:
                raise sqlite3.OperationalError("database or disk is full")
            return real(statements, **kw)

        def fill(state):
            full[0] = True
            raise RuntimeError("no")

        journal.write = write  # type: ignore[method-assign]
        steps = [Step("h", lambda s: None, undo.bind(n="h")), Step("i", fill)]
        halted = Saga(steps, name="h", policy="halt").run({}, journal=journal, run_id="h")
        assert halted.status is Status.HALTED, halted
        with pytest.raises(JournalError, match=r"could not be written yet \(database or disk is"):
            journal.settle("h", "refunded by hand")
        full[0] = False
        assert journal.settle("h", "refunded by hand").saga_id == "h"


def _refused(n, idempotency_key=None):
    raise RuntimeError("refused")


@pytest.mark.parametrize("how", ["claim", "close", "settle"])
def test_owed_writes_go_with_a_claim_or_the_close(tmp_path, how):
    """And with a settle, a write too (attack279 F4: only the close wrote them then)."""
    calls: list[str] = []
    path = tmp_path / "j.db"
    journal = Journal(path)
    if how == "settle":  # (a saga its undo policy halted, for a person to settle)
        undo = Registry().add("owed_h", _refused)
        halted = Saga([Step("h", lambda s: None, undo.bind(n="h")), Step("i", _refused)],
                      name="h", policy="halt").run({}, journal=journal, run_id="h")  # fmt: skip
        assert halted.status is Status.HALTED, halted
    full_for_one_saga(journal, calls)
    if how == "claim":
        report = recover(journal, Registry())  # (its claim pays first: nothing to recover)
        assert not report.recovered and not report.skipped, report
    if how == "settle":
        journal.settle("h", "refunded by hand")
        assert journal.saga("s").status == "rolled_back"  # (before the close)
    journal.close()
    with Journal(path, readonly=True) as read:
        assert read.saga("s").status == "rolled_back"


ENDS_UNCLOSED = """
import sys
sys.path.insert(0, sys.argv[2])
from test_owed import full_for_one_saga
from rollback_lessons.durable.journal import Journal

journal = Journal(sys.argv[1])  # (never closed: the process ends with it open)
print(full_for_one_saga(journal, []).status, len(journal.owed._runs))
"""


def test_owed_writes_go_as_the_process_ends_with_the_journal_unclosed(tmp_path):
    """attack272 F1: the process ended with its journal unclosed (no ``with``, a Ctrl-C
    uncaught): nothing paid, the saga left ``rolling_back``, its undo run again by recover
    and an undone step named leaked. Its last try is made at the process's end."""
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "j.db"
    here = str(Path(__file__).parent)
    ran = subprocess.run([sys.executable, "-c", ENDS_UNCLOSED, str(path), here],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ran.stdout.split() == ["rolled_back", "1"], ran
    with Journal(path, readonly=True) as read:
        assert read.saga("s").status == "rolled_back"


def test_a_ctrl_c_at_any_instant_of_a_payment_leaves_it_for_the_next(tmp_path):
    """attack272 F2: a Ctrl-C as ``Owed.pay`` had taken its lock, before its ``try``, left
    it held for good: no write, claim or close paid again. At every line of the payment
    (a tracer's KeyboardInterrupt), the close after it pays, or it was paid."""
    import sys

    from rollback_lessons.durable import owed

    fired = 0
    for n in range(1, 200):
        journal = Journal(tmp_path / f"j{n}.db")
        full_for_one_saga(journal, [])
        count, paying = [0], [False]

        def tick(frame, event, arg, n=n, count=count, paying=paying):  # type: ignore[no-untyped-def]
            if event == "call" and frame.f_code is owed.Owed.pay.__code__:
                paying[0] = True
            if paying[0] and event == "line" and "rollback_lessons" in frame.f_code.co_filename:
                count[0] += 1
                if count[0] == n:
                    raise KeyboardInterrupt
            return tick

        sys.settrace(tick)
        try:
            journal.close()
        except KeyboardInterrupt:
            fired += 1
        finally:
            sys.settrace(None)
        journal.close()
        with Journal(tmp_path / f"j{n}.db", readonly=True) as read:
            assert read.saga("s").status == "rolled_back", n
        if count[0] < n:
            break  # (the payment ended before the n-th line: every instant tried)
    assert fired > 20


ENDS_LOCKED_OUT = """
import sys, time
sys.path.insert(0, sys.argv[2])
from test_owed import full_for_one_saga
from rollback_lessons.durable.journal import Journal

journal = Journal(sys.argv[1], timeout=60)  # (unclosed; another process takes the lock)
full_for_one_saga(journal, [])
if sys.argv[3] == "cut":  # (the end's wait long: one the Ctrl-C does not end is seen)
    from rollback_lessons.durable import writers
    writers.LEAVE_WAIT = 30.0
if sys.argv[3] == "closed on a full disk":  # (its close cannot pay: the exit cannot either)
    journal.write = lambda *a, **k: (_ for _ in ()).throw(OSError("full"))
    journal.close()
print("owed", flush=True)
sys.stdin.readline()  # (the lock taken by then: the process ends)
"""


@pytest.mark.parametrize("end", ["locked out", "cut", "closed on a full disk"])
def test_owed_writes_at_the_process_end_wait_its_5_s_and_say_what_is_left_in_one_line(
    tmp_path, end
):
    """attack274 F1-F3: the payment at the process's end waited each journal's whole lock
    timeout (60 s here), one after another; a Ctrl-C in it printed atexit's traceback; a
    journal closed on a full disk could not pay and said nothing. Now it waits no longer
    than the end allows all journals, and what is left unwritten is said in one line."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "j.db"
    Journal(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    child = subprocess.Popen(
        [sys.executable, "-c", ENDS_LOCKED_OUT, str(path), str(Path(__file__).parent), end],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "owed"
        holder.execute("BEGIN IMMEDIATE")  # (another process's write lock, for the whole end)
        assert child.stdin is not None
        child.stdin.write("\n")
        child.stdin.flush()
        if end == "cut":
            import time

            time.sleep(1.0)  # (the payment waiting for the lock: a Ctrl-C then)
            child.send_signal(signal.SIGINT)
            sent = time.monotonic()
        _, err = child.communicate(timeout=40)  # (the whole timeout: 60 s)
        if end == "cut":  # (attack285 F1: the journal's own end then waited the rest of
            assert time.monotonic() - sent < 15, err  # the end's 30 s: a signal ends it all)
    finally:
        if child.poll() is None:
            child.kill()
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    closed = "closed before they could be, its disk full"
    why = {"cut": "KeyboardInterrupt", "closed on a full disk": closed}
    assert f"the last writes of saga 's' in {path} were not written" in lines[0], err
    assert why.get(end, "locked by another") in lines[0], err


PIVOT_FULL = """
import sqlite3, sys
from rollback_lessons import Saga, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry

undo = Registry().add("owed_pivot_u", lambda step, idempotency_key=None: print("undo", step))
journal = Journal(sys.argv[1])
real, full = journal.write, []

def write(statements, **kw):  # (the disk full from the pivot's start on, to the end)
    if full:
        raise sqlite3.OperationalError("database or disk is full")
    done = real(statements, **kw)
    full.extend(1 for _, p in statements if "'step_start'" in str(p) and "'p'" in str(p))
    return done

def refused(state):
    raise ValueError("card refused")

journal.write = write
steps = [Step("a", lambda s: None, undo.bind(step="a")),
         Step("b", lambda s: None, undo.bind(step="b")), Step("p", refused, kind="pivot")]
print(Saga(steps, name="t").run({}, journal=journal, run_id="r1").status, flush=True)
journal.close()
"""


def test_the_process_ends_line_says_what_recover_will_do_at_a_pivot_the_journal_shows(tmp_path):
    """attack307 F2: the disk full from a pivot's start on (its refusal never written), the
    run undid b and a itself; its note said recover would leave the saga for a person, b's
    and a's undos run here, not to be run again; the line at the process's end said
    "recover finishes it, calling again any undo that ran here", and recover then told a
    person to run them by hand. Now that line says what the note says."""
    import subprocess
    import sys

    path = tmp_path / "j.db"
    done = subprocess.run([sys.executable, "-c", PIVOT_FULL, str(path)], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.stdout.split("\n")[:3] == ["undo b", "undo a", "rolled_back"], done
    [line] = done.stderr.strip().splitlines()
    assert "recover finishes it" not in line, line
    assert line.endswith("recover will leave the saga for a person; the undo of 'b', 'a' ran "
                         "here: do not run it again"), line  # fmt: skip
    with Journal(path) as journal:
        [back] = recover(journal, Registry()).recovered  # (no undo run: none registered)
    assert back.status is Status.HALTED


def test_the_process_ends_line_says_recover_halts_at_a_pivot_that_timed_out(tmp_path):
    """attack310 F11: the disk full from a pivot's start on, the pivot timing out (it may
    have happened: the run halts there); the line said what to finish forward, not what
    recover does with the saga (it leaves it for a person)."""
    import subprocess
    import sys

    path = tmp_path / "j.db"
    script = PIVOT_FULL.replace(
        'raise ValueError("card refused")', "full.append(1)\n    raise TimeoutError('slow')"
    )  # (full from it)
    script = script.replace("    full.extend(", "    (")  # (not from the pivot's start on)
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.stdout.split("\n")[:1] == ["halted"], done
    [line] = done.stderr.strip().splitlines()
    assert "the journal shows 'p' started: recover will leave the saga for a person" in line, line
    with Journal(path) as journal:
        [back] = recover(journal, Registry()).recovered
    assert back.status is Status.HALTED
