"""An AsyncRollback left suspended in an async generator whose event loop stopped is ended at
the program's end (attack294 F1); attack296 broke that end: a Ctrl-C there (a traceback, the
undos left unrun and unnamed), an undo that fails or raises an interrupt there (said
nowhere), a journalled block closed beside one with no journal (said left to recover, then
undone in process), and a Ctrl-C ignored as the process began, put back on at Python's
shutdown (two of them killed it mid-rollback)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

LEFT = """
import asyncio, os, signal, sys
from rollback_lessons import AsyncRollback
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry

registry = Registry()
refund = registry.add("refund", lambda order, idempotency_key=None: print("refund", order))
how = sys.argv[1]

def said(line):
    print(line, flush=True)

async def slow():
    said("slow begins")
    if how == "ctrl-c":
        os.kill(os.getpid(), signal.SIGINT)  # (a person's Ctrl-C as the undos run)
    await asyncio.sleep(0.3)
    said("slow done")

def fails():
    if how == "interrupt":
        raise KeyboardInterrupt  # (a client library's own)
    raise ConnectionError("the card service is down")

async def gen():
    if how == "nested":
        async with AsyncRollback(journal=Journal(sys.argv[2]), run_id="outer") as outer:
            await outer.do("charge", lambda: None, refund.bind(order="o1"))
            async with AsyncRollback(run_id="inner") as inner:
                await inner.do("hold", lambda: None, lambda: said("hold released"))
                yield 1
        return
    async with AsyncRollback(run_id="left") as rb:
        await rb.do("quick", lambda: None, lambda: said("quick done"))
        await rb.do("slow", lambda: None, fails if how in ("fails", "interrupt") else slow)
        yield 1

g = gen()
asyncio.new_event_loop().run_until_complete(g.__anext__())
said("script ends")
"""


def _run(how: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", LEFT, how, *args], capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def _lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("rollback-lessons")]


def test_a_ctrl_c_as_the_program_ends_it_is_said_and_the_undos_run_on():
    done = _run("ctrl-c")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done
    assert done.stdout.splitlines() == ["script ends", "slow begins", "slow done", "quick done"]
    assert "a Ctrl-C as the program ends: the undos of saga 'left' still run" in done.stderr


@pytest.mark.parametrize(
    ("how", "said"),
    [("fails", "ended rollback_incomplete there (kept nowhere): dead letters: slow "
               "(ConnectionError: the card service is down)"),
     ("interrupt", "ended halted there (kept nowhere; an undo raised KeyboardInterrupt, its "
                   "rollback stopped): not known to be undone: slow, quick")],  # (302 F8)
)  # fmt: skip
def test_what_the_undos_left_there_is_said(how, said):
    done = _run(how)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done
    assert _lines(done)[-1] == f"rollback-lessons: saga 'left' {said}", done.stderr


def test_a_journalled_block_closed_beside_one_with_none_is_not_said_left_to_recover(tmp_path):
    done = _run("nested", str(tmp_path / "j.db"))
    assert done.stdout.splitlines() == ["script ends", "hold released", "refund o1"], done
    assert not [line for line in _lines(done) if "recover runs them" in line], done.stderr
    assert len(_lines(done)) == 2 and all("it is ended now" in line for line in _lines(done))


SUSPENDED_SYNC = """
import os, signal, sys, time
from rollback_lessons import Rollback

def undo(name, kill=os.kill, pid=os.getpid(), sig=signal.SIGINT, sleep=time.sleep,
         out=sys.__stdout__):
    def call():
        kill(pid, sig)  # (two Ctrl-Cs a process started with them ignored never hears)
        sleep(0.1)
        kill(pid, sig)
        out.write(f"{name} undone\\n")
        out.flush()
    return call

def gen():
    with Rollback() as rb:
        for name in "abc":
            rb.do(name, lambda: None, undo(name))
        yield 1

g = gen()
next(g)
"""


def test_a_ctrl_c_ignored_as_the_process_began_stays_ignored_at_python_s_shutdown():
    ignored = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731 (a `cmd &`)
    done = subprocess.run([sys.executable, "-c", SUSPENDED_SYNC], capture_output=True,
                          text=True, timeout=60, preexec_fn=ignored)  # fmt: skip
    assert done.returncode == 0, done
    assert done.stdout.splitlines() == ["c undone", "b undone", "a undone"], done
    assert "a Ctrl-C at Python's shutdown" not in done.stderr


DROPPED = """
import asyncio, gc, os, signal, sys
gc.disable()  # (collected where the script says: no earlier pass as it allocates)
from rollback_lessons import AsyncRollback
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry

registry = Registry()
refund = registry.add("refund", lambda order, idempotency_key=None: print("refund", order))
journal = Journal(sys.argv[1]) if sys.argv[1] != "-" else None

async def slow():
    if sys.argv[2] == "ctrl-c":
        os.kill(os.getpid(), signal.SIGINT)  # (a person's Ctrl-C as it runs)
    await asyncio.sleep(0.2)
    if sys.argv[2] == "fails":
        raise ConnectionError("the card service is down")
    if sys.argv[2] in ("KeyboardInterrupt", "SystemExit"):  # (its own: no Ctrl-C sent)
        raise getattr(__builtins__, sys.argv[2])()
    print("refund o1", flush=True)

async def bookings():
    async with AsyncRollback(journal=journal, run_id="b1") as rb:
        await rb.do("charge", lambda: None, refund.bind(order="o1") if journal else slow)
        yield "booked"

def first_booking(loop):
    return loop.run_until_complete(bookings().__anext__())  # (dropped as it returns)

where = sys.argv[3] if len(sys.argv) > 3 else "plain"
if where == "aclose":  # (closed by an await, on another loop: no drop, its undos there)
    held = bookings()
    print(asyncio.new_event_loop().run_until_complete(held.__anext__()), flush=True)
    asyncio.run(held.aclose())
else:
    print(first_booking(asyncio.new_event_loop()), flush=True)

async def elsewhere():  # (another loop runs as the collector comes: attack297 F4)
    gc.collect()
    await asyncio.sleep(0.01)

if where == "plain":
    gc.collect()  # (the cycle collector, as ordinary work brings it)
elif where == "loop":
    asyncio.run(elsewhere())
elif where == "thread":
    import threading
    ran = threading.Thread(target=asyncio.run, args=(elsewhere(),))
    ran.start()
    ran.join()
print("script goes on", flush=True)
if journal is not None and len(sys.argv) > 4:  # (in this process, as a notebook's next cell)
    from rollback_lessons.durable.recovery import recover
    print(recover(journal, registry).recovered[0].status, flush=True)
"""


@pytest.mark.parametrize(("journalled", "how"), [(False, "-"), (True, "-"), (False, "ctrl-c")])
def test_an_async_generator_dropped_with_its_loop_stopped_rolls_its_block_back(
    tmp_path, journalled, how
):
    """attack296 F5: an async generator dropped (its loop stopped, the program running on)
    is closed by Python with no loop running: the block's end raised "no running event
    loop", a raw traceback, its undo never run. Now as at Python's shutdown: said; with no
    journal its undos run on a loop of their own; with one, none: recover runs them."""
    path = str(tmp_path / "j.db") if journalled else "-"
    done = subprocess.run([sys.executable, "-c", DROPPED, path, how], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert "Traceback" not in done.stderr and done.returncode == 0, done
    undone = [] if journalled else ["refund o1"]
    assert done.stdout.splitlines() == ["booked", *undone, "script goes on"], done
    line, *more = _lines(done)
    assert line.startswith("rollback-lessons: saga 'b1': its AsyncRollback block was ended with "
                           "no event loop running"), line  # fmt: skip
    said = ["rollback-lessons: a Ctrl-C as its generator was dropped: the undos of saga 'b1' "
            "still run"] if how == "ctrl-c" else []  # fmt: skip
    assert [m[: len(s)] for m, s in zip(more, said, strict=True)] == said, done.stderr


def test_what_the_undos_of_a_dropped_generator_left_is_said():
    """attack297 F1: its failed undo was said nowhere (kept nowhere)."""
    done = subprocess.run([sys.executable, "-c", DROPPED, "-", "fails"], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert _lines(done)[-1] == (
        "rollback-lessons: saga 'b1': its rollback there left (kept nowhere): dead letters: "
        "charge (ConnectionError: the card service is down)"
    ), done.stderr


@pytest.mark.parametrize("journalled", [False, True])
@pytest.mark.parametrize("where", ["loop", "thread"])
def test_an_async_generator_dropped_as_another_loop_runs_is_ended_the_same_way(
    tmp_path, where, journalled
):
    """attack297 F4: dropped as another loop ran in that thread (``asyncio.run`` in the main
    thread or another): Python's "async generator ignored GeneratorExit" traceback, the
    undos run on as that loop's task (a journal's too), the line at the exit false ("not
    known to be done"). Now as with no loop: said, run on a loop of their own, or left to
    recover."""
    path = str(tmp_path / "j.db") if journalled else "-"
    done = subprocess.run([sys.executable, "-c", DROPPED, path, "-", where],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert "Traceback" not in done.stderr and done.returncode == 0, done
    undone = [] if journalled else ["refund o1"]
    assert done.stdout.splitlines() == ["booked", *undone, "script goes on"], done
    line, *more = _lines(done)
    assert line.startswith("rollback-lessons: saga 'b1': its AsyncRollback block was ended as "
                           "another event loop ran"), line  # fmt: skip
    assert more == [], done.stderr
    if journalled:  # (left for recover: unfinished, its undo pending)
        import sqlite3

        rows = sqlite3.connect(path).execute("SELECT status FROM sagas").fetchall()
        assert rows == [("running",)], rows


def test_an_async_generator_closed_by_an_await_on_another_loop_is_no_drop():
    """(attack297 F4's fix tells a drop from a close something awaits: ``aclose()`` awaited
    on another loop runs the undos there, as ever, with no line.)"""
    done = subprocess.run([sys.executable, "-c", DROPPED, "-", "-", "aclose"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert (done.returncode, done.stderr) == (0, ""), done
    assert done.stdout.splitlines() == ["booked", "refund o1", "script goes on"], done


@pytest.mark.parametrize("raised", ["KeyboardInterrupt", "SystemExit"])
def test_an_interrupt_an_undo_of_a_dropped_generator_raises_is_said_not_ignored(raised):
    """attack297 F3: raised on into Python's finalizer: its "Exception ignored" traceback,
    what the rollback left unsaid there. Now said in the line of what it left."""
    done = subprocess.run([sys.executable, "-c", DROPPED, "-", raised], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert "Traceback" not in done.stderr and "ignored" not in done.stderr, done.stderr
    assert "RuntimeWarning" not in done.stderr, done.stderr  # (attack301 F2: "whose notes
    # Python never prints", of an exit never raised, under another saga name)
    assert done.returncode == 0 and done.stdout.splitlines() == ["booked", "script goes on"]
    assert (
        "rollback-lessons: saga 'b1': its rollback there left (kept nowhere; an undo raised "
        f"{raised}, its rollback stopped): not known to be undone: charge"
    ) in _lines(done), done.stderr


def test_a_journalled_block_dropped_mid_program_is_let_go_for_recover_here(tmp_path):
    """attack301 F3: the line said the journal keeps it and recover runs its undos, but the
    saga stayed this process's: recover here refused it ("still running") for the
    process's life (a notebook, a service). Now it is let go as it is ended."""
    done = subprocess.run([sys.executable, "-c", DROPPED, str(tmp_path / "j.db"), "-", "plain",
                           "recover"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done
    assert done.stdout.splitlines() == ["booked", "script goes on", "refund o1", "rolled_back"]
    assert _lines(done)[0].endswith("recover runs them (in this process too: it was let go)")


BROKE_OFF = """
import asyncio, sys
from rollback_lessons import AsyncRollback
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry

registry = Registry()
log = []

def refund(order, idempotency_key=None):
    log.append(f"refund {order}")
    if order == "o2":
        raise ConnectionError("the card service is down")

undo = registry.add("refund", refund)
journal = Journal(sys.argv[1]) if sys.argv[1] != "-" else None
held = []

async def bookings():
    async with AsyncRollback(journal=journal, run_id="b1") as rb:
        held.append(rb)
        await rb.do("o1", lambda: None, undo.bind(order="o1"))
        await rb.do("o2", lambda: None, undo.bind(order="o2"))
        yield "booked"
        yield "again"

async def main():
    async for _ in bookings():
        break  # (the generator dropped: the loop's hook closes it as asyncio.run ends)

asyncio.run(main())
out = held[0].outcome
print(log, out and str(out.status), out and [d.step for d in out.dead_letters])
"""


@pytest.mark.parametrize("journalled", [False, True])
def test_an_async_for_broken_off_as_asyncio_run_ends_rolls_back_and_says_so_truly(
    tmp_path, journalled
):
    """attack301 F1: broken off as main ends, the generator is closed by a task asyncio.run
    leaves pending as it closes the loop: its rollback ran whole, but the block's end was
    closed after it, a line saying the undos were "not known to be done", the outcome None
    (the dead letter of o2 said nowhere); with a journal, "recover runs them", of a saga
    the journal shows ended. Now the block ends with its rollback's outcome, no line."""
    path = str(tmp_path / "j.db") if journalled else "-"
    done = subprocess.run([sys.executable, "-c", BROKE_OFF, path], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert (done.returncode, done.stderr) == (0, ""), done
    said = "['refund o2', 'refund o1'] rollback_incomplete ['o2']"
    assert done.stdout.splitlines() == [said], done.stdout


CLOSED_FIRST = """
import asyncio, sys
from rollback_lessons import AsyncRollback
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry

registry = Registry()
undo = registry.add("refund", lambda order, idempotency_key=None: print("refund", order))
journal = Journal(sys.argv[1]) if sys.argv[1] != "-" else None
held = []

async def bookings():
    async with AsyncRollback(journal=journal, run_id="b1") as rb:
        held.append(rb) if sys.argv[2] == "held" else None
        await rb.do("o1", lambda: None, undo.bind(order="o1") if journal else
                    lambda: print("refund o1"))
        yield "booked"
        yield "again"

async def main():
    async for _ in bookings():
        break  # (its close queued on the loop by the loop's hook)

loop = asyncio.new_event_loop()
try:
    loop.run_until_complete(main())
finally:
    loop.close()  # (first: the close queued never runs)
print("script ends", flush=True)
"""


@pytest.mark.parametrize("journalled", [False, True])
@pytest.mark.parametrize("held", ["held", "-"])
def test_a_block_whose_generator_a_closed_loop_never_closed_is_ended(tmp_path, held, journalled):
    """attack302 F1: ``run_until_complete`` then ``close()``, the generator broken off: the
    close its loop's hook queued never ran, the generator freed unclosed: no undo run, not a
    word (with a journal, no line). Now the block is ended as it is freed, or at the
    program's end: with none, its undos run on a loop of their own; with one, said left."""
    path = str(tmp_path / "j.db") if journalled else "-"
    done = subprocess.run([sys.executable, "-c", CLOSED_FIRST, path, held], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0 and "Traceback" not in done.stderr, done
    assert done.stdout.splitlines() == ["script ends", *([] if journalled else ["refund o1"])]
    line = "rollback-lessons: saga 'b1': its AsyncRollback block was left open, its async "
    line += "generator closed by a loop that closed first"
    assert [m[: len(line)] for m in _lines(done)] == [line], done.stderr


def test_a_ctrl_c_as_the_program_looks_for_blocks_left_open_is_noted_and_they_end():
    """attack302 F9: one Ctrl-C landing in the package's own scan at the program's end
    (``gc.get_objects`` over a large heap): Python's "Exception ignored in atexit callback"
    traceback, and the block left in its generator never ended, its undos never run."""
    cut = """
import os, signal
from rollback_lessons import _at_exit
looks = _at_exit._left_in_async_generators
def looking():  # (a Ctrl-C as the scan runs: sent at its start)
    os.kill(os.getpid(), signal.SIGINT)
    return looks()
_at_exit._left_in_async_generators = looking
"""
    done = subprocess.run([sys.executable, "-c", cut + LEFT, "-", "plain"], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0 and "Traceback" not in done.stderr, done
    assert done.stdout.splitlines()[-3:] == ["slow begins", "slow done", "quick done"], done
    assert _lines(done)[0] == (
        "rollback-lessons: a Ctrl-C as the program ended, as it looked for runs and blocks left "
        "open: they are ended all the same; a second Ctrl-C ends the process now"
    ), done.stderr


AWAITING = """
import asyncio
from rollback_lessons import AsyncRollback

async def feed():
    async with AsyncRollback(run_id="feed") as rb:
        await rb.do("a", lambda: 1, lambda: print("undo a", flush=True))
        await asyncio.sleep(3600)  # (at an await, in a task of the loop: not at a yield)
        yield 1

async def consumer():
    async for _ in feed():
        pass

loop = asyncio.new_event_loop()
task = loop.create_task(consumer())
loop.run_until_complete(asyncio.sleep(0.05))  # (a notebook cell's end: the loop stops)
print("program ends", flush=True)
"""


def test_a_block_at_an_await_in_a_stopped_loops_task_is_not_said_ended_at_the_end():
    """attack303 F7: its generator (in a task, at an await) was taken as left at a yield:
    "it is ended now, its undos run on an event loop of their own", and its aclose() was
    refused ("already running"): no undo ran, the line false."""
    done = subprocess.run([sys.executable, "-c", AWAITING], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0 and "it is ended now" not in done.stderr, done


WATCHED = """
import asyncio
from rollback_lessons import AsyncRollback

keep = []

async def watcher(rb):  # (a progress watcher: it holds the block, and is no home of it)
    while True:
        yield len(rb.events)

async def bookings():
    async with AsyncRollback(run_id="watched") as rb:
        await rb.do("a", lambda: 1, lambda: print("undo a", flush=True))
        keep.append(watcher(rb))
        await keep[-1].__anext__()
        yield 1
        yield 2

g = bookings()
asyncio.new_event_loop().run_until_complete(g.__anext__())
print("program ends", flush=True)
"""


def test_a_block_left_in_its_generator_is_told_from_one_that_only_holds_it():
    """attack303 F2: a live generator that only held the block (a watcher of its events)
    was taken for the one it was left in: that one closed, the line saying its undos ran
    now, and the block ended at Python's shutdown after all, half torn down."""
    done = subprocess.run([sys.executable, "-c", WATCHED], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0 and "Python's shutdown" not in done.stderr, done
    assert done.stdout.splitlines() == ["program ends", "undo a"], done
    assert _lines(done)[0].startswith(
        "rollback-lessons: saga 'watched': its AsyncRollback "
        "block was left suspended in an async generator"
    ), done
