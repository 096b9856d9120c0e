"""A timed synchronous undo past its timeout "goes on in a helper thread and may still
complete": a daemon thread, it died with the process, so a script (or ``recover``) that
ended right after cut the refund mid-call, and nothing said so (attack283 F2). The
process's end now waits for such calls a while, and says in one line any it cuts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

REGISTRY = """
import os, time
from rollback_lessons import Registry

registry = Registry()

def refund(order, idempotency_key=None):
    with open(os.environ["WORLD"], "a") as world:
        world.write(f"begins {order}\\n")
    time.sleep(float(os.environ["REFUND_TAKES"]))  # (a slow payment API)
    with open(os.environ["WORLD"], "a") as world:
        world.write(f"done {order}\\n")

refund = registry.add("refund", refund)
"""

IN_PROCESS = """
import asyncio, sys
import rollback_lessons._late_threads as late
from rollback_lessons import AsyncRollback, Saga, Step
from late_reg import refund

late.WAIT = 2.0
steps = [Step("charge", lambda s: None, refund.bind(order="o"), undo_timeout=0.3),
         Step("ship", lambda s: None)]
saga = Saga(steps, name="order")
if sys.argv[1] == "run":
    out = saga.run({}, inject={"ship": "fail"})
elif sys.argv[1] == "arun":
    out = asyncio.run(saga.arun({}, inject={"ship": "fail"}))
else:
    async def block():
        rb = AsyncRollback()
        try:
            async with rb:
                await rb.do("charge", lambda: None, lambda: refund(order="o"), undo_timeout=0.3)
                raise RuntimeError("ship failed")
        except RuntimeError:
            return rb.outcome
    out = asyncio.run(block())
print(out.status)
"""

CRASH = """
import os, signal
from rollback_lessons import Rollback
from rollback_lessons.durable.journal import Journal
from late_reg import refund

with Rollback(journal=Journal(os.environ["JOURNAL"]), run_id="o") as rb:
    rb.do("charge", lambda: None, refund.bind(order="o"), undo_timeout=0.3)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _env(tmp_path, takes: float) -> dict[str, str]:
    (tmp_path / "late_reg.py").write_text(REGISTRY)
    return {**os.environ, "WORLD": str(tmp_path / "world.txt"), "REFUND_TAKES": str(takes),
            "JOURNAL": str(tmp_path / "j.db"),
            "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}  # fmt: skip


def _world(tmp_path) -> list[str]:
    return (tmp_path / "world.txt").read_text().splitlines()


@pytest.mark.parametrize("how", ["run", "arun", "block"])
def test_a_script_ending_waits_for_a_timed_out_undo_and_says_one_it_cuts(tmp_path, how):
    env = _env(tmp_path, 1.0)  # (past its 0.3 s timeout, within the end's 2 s)
    done = subprocess.run([sys.executable, "-c", IN_PROCESS, how], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (0, "rollback_incomplete\n", "")
    assert _world(tmp_path) == ["begins o", "done o"]  # (was: "begins o" only)
    env["REFUND_TAKES"] = "30"  # (hung: cut as the process ends, said so)
    (tmp_path / "world.txt").unlink()
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", IN_PROCESS, how], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert time.monotonic() - start < 20
    assert (done.returncode, _world(tmp_path)) == (0, ["begins o"])
    assert done.stderr == (
        "rollback-lessons: the undo of step 'charge' still ran in its "
        "helper thread as the program ended, its wait of 2 s at most over: the process ends, "
        "cutting it mid-call; "
        "check its effect by hand (partly done, perhaps)\n"
    )


def test_recover_waits_for_a_timed_out_undo_and_says_one_it_cuts(tmp_path):
    env = _env(tmp_path, 1.0)
    crash = subprocess.run([sys.executable, "-c", CRASH], env=env, timeout=60)
    assert crash.returncode == -9
    command = [sys.executable, "-m", "rollback_lessons", "recover", env["JOURNAL"],
               "--registry", "late_reg"]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr  # (its dead letter: a person must finish it)
    assert "took longer than its timeout of 0.3 s" in done.stdout
    assert "helper thread" not in done.stderr, done.stderr
    assert _world(tmp_path) == ["begins o", "done o"]  # (was: "begins o" only)

    os.unlink(env["JOURNAL"])
    (tmp_path / "world.txt").unlink()
    env["REFUND_TAKES"] = "30"
    assert subprocess.run([sys.executable, "-c", CRASH], env=env, timeout=60).returncode == -9
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert (done.returncode, _world(tmp_path)) == (1, ["begins o"]), done.stderr
    assert done.stderr.splitlines()[-1] == (
        "rollback-lessons: the undo of step 'charge' (saga 'o') still ran "
        "in its helper thread 5 s after the command ended: the process ends, cutting it "
        "mid-call; check its effect by hand (partly done, perhaps)"
    )


def test_a_ctrl_c_in_the_ends_wait_cuts_it_short_and_says_so(tmp_path):
    env = _env(tmp_path, 30)
    script = textwrap.dedent(IN_PROCESS).replace("late.WAIT = 2.0", "late.WAIT = 30.0")
    child = subprocess.Popen([sys.executable, "-c", script, "run"], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert child.stdout is not None
    assert child.stdout.readline() == "rollback_incomplete\n"
    time.sleep(0.5)  # (in the end's wait)
    child.send_signal(2)
    _, err = child.communicate(timeout=20)
    assert err == (
        "rollback-lessons: the undo of step 'charge' still ran in its "
        "helper thread as the program ended, its wait interrupted: the process "
        "ends, cutting it mid-call; check its effect by hand (partly done, perhaps)\n"
    )


CUT_IN_ITS_WAIT = """
import asyncio, os, signal, sys, threading
from rollback_lessons import Saga, Step

def refund(state):  # (within its undo_timeout: a Ctrl-C cuts the engine's wait for it)
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
    with open(os.environ["WORLD"], "a") as world:
        world.write("begins\\n")
    time.sleep(1.5)
    with open(os.environ["WORLD"], "a") as world:
        world.write("done\\n")

import time
saga = Saga([Step("charge", lambda s: None, refund, undo_timeout=6),
             Step("ship", lambda s: None)])
try:
    if sys.argv[1] == "run":
        saga.run({}, inject={"ship": "fail"})
    else:
        asyncio.run(saga.arun({}, inject={"ship": "fail"}))
except KeyboardInterrupt:
    print("interrupted")
"""


@pytest.mark.parametrize("how", ["run", "arun"])
def test_a_call_a_ctrl_c_left_running_is_waited_for_at_the_end_too(tmp_path, how):
    """attack286 F1: a Ctrl-C in saga.run's wait for a timed undo left the call running in
    its helper thread, and the script's end, right after, cut it unsaid (arun waited)."""
    env = _env(tmp_path, 0)
    done = subprocess.run([sys.executable, "-c", CUT_IN_ITS_WAIT, how], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert (done.stdout, done.stderr) == ("interrupted\n", ""), done
    assert _world(tmp_path) == ["begins", "done"]  # (was: "begins" only, in saga.run)


FORKED = """
import os, sys, time
from rollback_lessons import Saga, Step

def hung(state):
    time.sleep(30)

Saga([Step("charge", lambda s: None, hung, undo_timeout=0.2), Step("ship", lambda s: None)]).run(
    {}, inject={"ship": "fail"})
start = time.monotonic()
pid = os.fork()
if pid == 0:  # (a child ends as a script does: its exit hooks run)
    sys.exit(0)
os.waitpid(pid, 0)
print(f"{time.monotonic() - start:.1f}")
os._exit(0)  # (the parent's own end not looked at here)
"""


def test_a_fork_does_not_wait_for_its_parents_calls_nor_speak_of_them():
    """(Review: a child forked after a call was left running inherited the list of them, and
    its end waited 5 s for threads it never had, then said it cut them.)"""
    done = subprocess.run([sys.executable, "-c", FORKED], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert float(done.stdout) < 3 and done.stderr == "", done


LEFT_SUSPENDED = """
if sys.argv[1] == "sync":
    g = gen()
    next(g)
else:
    a = agen()
    asyncio.new_event_loop().run_until_complete(a.__anext__())
"""
"""A block left suspended in a generator (``gen``) or an async one (``agen``) as the script
ends: Python's shutdown ends it."""


SUSPENDED = (
    """
import asyncio, sys, time
from rollback_lessons import AsyncRollback, Rollback

def undo():
    print("undo runs", flush=True)

async def aundo():
    undo()

def gen():
    with Rollback() as rb:
        rb.do("a", lambda: None, undo, undo_timeout=2.0)
        yield 1

UNDOS = {"async": undo, "async-def": aundo, "hands-a-coroutine": lambda: aundo()}

async def agen():
    async with AsyncRollback() as rb:
        await rb.do("a", lambda: None, UNDOS[sys.argv[1]], undo_timeout=2.0)
        yield 1
"""
    + LEFT_SUSPENDED
    + 'print("script ends", flush=True)\n'
)


@pytest.mark.parametrize("how", ["sync", "async", "async-def", "hands-a-coroutine"])
def test_a_timed_undo_python_s_shutdown_runs_is_called_there(how):
    """attack288 F4, F5: a block with no journal left suspended as the script ended, its undo
    timed: its helper thread could not start at Python's shutdown (the process hung for ever,
    Rollback's; AsyncRollback's undo was never called, an import failing there). Now called
    there, in the thread that ends the block: its timeout not kept, its only chance. An
    ``async def`` one, or one that hands back a coroutine, too (attack289 F1: a dead letter,
    "sys.meta_path is None", an import on the awaited path with a deadline)."""
    done = subprocess.run([sys.executable, "-c", SUSPENDED, how], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.stdout.splitlines() == ["script ends", "undo runs"], done
    assert "its undos run" in done.stderr and "Traceback" not in done.stderr  # (async: at
    # the program's end, Python whole, on a loop of their own: attack294 F1)


NESTED = """
import asyncio, os, sys, time
from rollback_lessons import Saga, Step

def inner_undo(state):
    time.sleep(2.0)
    with open(os.environ["WORLD"], "a") as world:
        world.write("inner done\\n")

def outer_undo(state):  # (past its timeout, it runs a saga whose timed undo runs on too)
    time.sleep(0.5)
    Saga([Step("i", lambda s: None, inner_undo, undo_timeout=0.2), Step("f", lambda s: None)]).run(
        {}, inject={"f": "fail"})

Saga([Step("o", lambda s: None, outer_undo, undo_timeout=0.2), Step("f", lambda s: None)]).run(
    {}, inject={"f": "fail"})
"""


def test_a_call_made_by_one_left_running_during_the_end_is_waited_for_too(tmp_path):
    """attack288 F6: a timed call made during the end's wait by another left running was cut
    about 1 s in, and the line called the wait "interrupted", no signal sent."""
    env = _env(tmp_path, 0)
    done = subprocess.run([sys.executable, "-c", NESTED], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.stderr == "" and _world(tmp_path) == ["inner done"], done


LEFT_OPEN = """
import os, sys, time
import rollback_lessons._late_threads as late
from rollback_lessons import Rollback
from rollback_lessons.durable.journal import Journal
from late_reg import refund

late.WAIT = 0.5

def hung():
    time.sleep(30)  # (a payment API that never answers: cut by the process's end)

if sys.argv[2] == "library":  # (no function of this module runs in it: it holds nothing here)
    import functools
    hung = functools.partial(time.sleep, 30)

def refunded(flush=sys.__stdout__.flush, write=sys.__stdout__.write):  # (held: Python's
    write("refunded\\n")  # shutdown, as it runs, tears down modules)
    flush()

def gen():
    journal = Journal(os.environ["JOURNAL"]) if sys.argv[1] == "journal" else None
    undo = refund.bind(order="o") if journal else refunded
    with Rollback(journal=journal, run_id="left") as rb:
        rb.do("charge", lambda: None, undo, undo_timeout=1)
        yield 1

g = gen()
next(g)  # (left suspended: Python's shutdown would end it, and run or leave its undo)
try:
    with Rollback(run_id="late") as rb2:
        rb2.do("hold", lambda: None, hung, undo_timeout=0.2)
        raise ValueError("ship failed")
except ValueError:
    pass
"""


@pytest.mark.parametrize("held", ["main", "library"])
@pytest.mark.parametrize("journal", ["journal", "none"])
def test_a_block_left_open_as_the_end_cuts_a_call_is_said_not_undone(tmp_path, journal, held):
    """attack289 F2: the end's wait cut a call left running, and a block left suspended in a
    generator was never ended by Python's shutdown (the call's thread keeps the module's
    globals, the generator in them never closed): its undo never ran, and nothing said so.
    Now said, after the cut call's line: what to do, by journal or by hand."""
    env = _env(tmp_path, 0)
    done = subprocess.run([sys.executable, "-c", LEFT_OPEN, journal, held], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    lines = done.stderr.splitlines()
    assert len(lines) >= 2 and "undo of step 'hold' still ran" in lines[0], done
    assert lines[1].startswith("rollback-lessons: saga 'left': its Rollback block was still "
                               "open as the program ended"), done  # fmt: skip
    kept = ("the journal keeps it unfinished, and recover runs them" if journal == "journal"
            else "no journal keeps them: then undo by hand what it did ('charge')")  # fmt: skip
    assert lines[1].endswith(kept) and "Traceback" not in done.stderr, done
    if held == "main":  # (the cut call's thread holds this module: Python never ends it)
        assert len(lines) == 2 and done.stdout == "", done
    else:  # (Python's shutdown ends it: its line follows, true, attack290 F2)
        assert len(lines) == 3 and "block was ended by Python's shutdown" in lines[2], done
        assert done.stdout == ("refunded\n" if journal == "none" else ""), done


NESTED_AT_EXIT = """
from rollback_lessons import Rollback

def inner_undo():
    print("inner undone", flush=True)

def outer_undo():  # (run at Python's shutdown: its own block fails on its own error)
    try:
        with Rollback(run_id="inner") as rb:
            rb.do("i", lambda: None, inner_undo, undo_timeout=1)
            raise ValueError("inner")
    except ValueError:
        print("outer undone", flush=True)

def gen():
    with Rollback(run_id="outer") as rb:
        rb.do("o", lambda: None, outer_undo, undo_timeout=1)
        yield 1

g = gen()
next(g)
"""


def test_a_block_an_undo_opens_at_shutdown_fails_on_its_own_error_not_python_s():
    """attack289 F3: a block an undo opened at Python's shutdown, failing on its own
    ValueError, was said "ended by Python's shutdown (ValueError)"."""
    done = subprocess.run([sys.executable, "-c", NESTED_AT_EXIT], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.stdout.splitlines() == ["inner undone", "outer undone"], done
    outer, inner = done.stderr.splitlines()
    assert (
        "saga 'outer': its Rollback block was ended by Python's shutdown (GeneratorExit)" in outer
    )
    assert "saga 'inner': its Rollback block failed during Python's shutdown (ValueError)" in inner


THREAD_AT_EXIT = (
    """
import asyncio, sys, threading
from rollback_lessons import AsyncRollback, Rollback

def said(line, write=sys.__stdout__.write, flush=sys.__stdout__.flush):
    write(line + "\\n")
    flush()

def first():
    said("first undone")

def starts_a_thread():  # (a client library's pool, say)
    worker = threading.Thread(target=lambda: None)
    worker.start()
    worker.join()
    said("thread undo done")

async def to_a_thread():
    await asyncio.to_thread(lambda: None)
    said("thread undo done")

def gen():
    with Rollback() as rb:
        rb.do("a", lambda: None, first)
        rb.do("b", lambda: None, starts_a_thread)
        yield 1

async def agen():
    async with AsyncRollback() as rb:
        await rb.do("a", lambda: None, first)
        await rb.do("b", lambda: None, to_a_thread)
        yield 1
"""
    + LEFT_SUSPENDED
    + 'said("script ends")\n'
)


@pytest.mark.parametrize("how", ["sync", "async"])
def test_an_undo_starting_a_thread_at_python_s_shutdown_fails_and_the_rest_run(how):
    """attack290 F3: a block with no journal left suspended, its undos run at Python's
    shutdown: one that started a thread hung the process for ever (CPython 3.11's start
    waits for a thread that never runs there), the undos after it never run."""
    done = subprocess.run([sys.executable, "-c", THREAD_AT_EXIT, how], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0  # (async: at the program's end, Python whole, attack294 F1:
    # to_thread's pool takes no work once the interpreter began its end, as from 3.9 on)
    assert done.stdout.splitlines() == ["script ends", "first undone"], done
    assert "its undos run" in done.stderr and "Traceback" not in done.stderr, done


EXIT_AT_EXIT = """
import sys
from rollback_lessons import Rollback

def exits(exit=sys.exit, how=sys.argv[1]):  # (a library's fatal path, reused as an undo)
    if how == "KeyboardInterrupt":
        raise KeyboardInterrupt
    exit(2)

def gen():
    with Rollback() as rb:
        rb.do("a", lambda: None, lambda: None)
        rb.do("x", lambda: None, exits)
        yield 1

g = gen()
next(g)
"""


@pytest.mark.parametrize("how", ["SystemExit", "KeyboardInterrupt"])
def test_a_sys_exit_in_an_undo_at_python_s_shutdown_is_named_as_what_cut_it(how):
    """attack290 F6: the warning named an ImportError ("sys.meta_path is None") as what cut
    the rollback, an import made as the SystemExit was handled there. A KeyboardInterrupt
    there (Python says it "ignored") had its notes said nowhere: what it left undone."""
    done = subprocess.run([sys.executable, "-c", EXIT_AT_EXIT, how], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    cut = f"rollback interrupted by {how} during the undo of x; not known to be undone: x, a"
    assert cut in done.stderr, done
    assert "ImportError" not in done.stderr, done


HOOK_AFTER = """
import atexit, sys, time
import rollback_lessons._late_threads as late
from rollback_lessons import Rollback

late.WAIT = 0.5

def rollback_with(takes):
    try:
        with Rollback() as rb:
            rb.do("charge", lambda: None, lambda: time.sleep(takes), undo_timeout=0.1)
            raise ValueError("ship failed")
    except ValueError:
        pass

if sys.argv[1] == "after a call":
    rollback_with(0.3)  # (past its timeout, ended before the script does)
atexit.register(rollback_with, 30)  # (an exit hook registered after it: a service's close)
time.sleep(0.5)
"""


@pytest.mark.parametrize("when", ["after a call", "first"])
def test_a_timed_call_an_exit_hook_makes_is_waited_for_and_said(when):
    """attack290 F1: once every earlier call had ended, a call made in an exit hook took the
    end's wait off (unregistered, registered again as the hooks ran: CPython never runs it):
    the refund was cut mid-call, and nothing said so. attack294 F3: the same for the first
    such call of the process, made by the hook (the wait was registered at a first call)."""
    done = subprocess.run([sys.executable, "-c", HOOK_AFTER, when], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.stderr.startswith(
        "rollback-lessons: the undo of step 'charge' still ran in its helper thread as the "
        "program ended, its wait of 0.5 s at most over"
    ), done


CTRL_C_AT_EXIT = """
import os, signal, sys, time
from rollback_lessons import Rollback

def said(line, write=sys.__stdout__.write, flush=sys.__stdout__.flush):
    write(line + "\\n")
    flush()

def refund(kill=os.kill, pid=os.getpid(), sleep=time.sleep, sig=signal.SIGINT,
           presses=int(sys.argv[1])):  # (held: Python's shutdown tears modules down)
    said("refund begins")
    for _ in range(presses):  # (a person's Ctrl-C as it runs)
        kill(pid, sig)
        sleep(0.3)
    said("refund done")

def gen():
    with Rollback(run_id="o") as rb:
        rb.do("hold", lambda: None, lambda: said("hold released"))
        rb.do("charge", lambda: None, refund)
        yield 1

g = gen()
next(g)
"""


@pytest.mark.parametrize("presses", [1, 2])
def test_a_ctrl_c_as_python_s_shutdown_runs_the_undos_is_said_a_second_ends_it(presses):
    """attack290 F4: Python's shutdown had put the default Ctrl-C back: one as the undos
    ran there killed the process, the undos left never run, nothing said."""
    done = subprocess.run([sys.executable, "-c", CTRL_C_AT_EXIT, str(presses)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert "rollback-lessons: a Ctrl-C at Python's shutdown: the undos of saga 'o' still run" in (
        done.stderr
    ), done
    if presses == 1:
        assert done.returncode == 0, done
        assert done.stdout.splitlines() == ["refund begins", "refund done", "hold released"]
    else:
        assert done.returncode == -signal.SIGINT and done.stdout == "refund begins\n", done
