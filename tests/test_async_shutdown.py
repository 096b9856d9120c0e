"""A second Ctrl-C under ``asyncio.run`` (or a signal handler's ``sys.exit``) while the engine
runs: the loop stops and ``asyncio.run`` cancels every task left, the engine's too, then runs
the loop until they end. Before, the rollback was cut there (attack40 F4), a step cut so undid
nothing (attack42 F1, F10), and an undo cut was made again though nothing asked it to be
idempotent (attack42 F12). Now the rollback runs on: an undo a journal holds is made again
(with its key), one with no journal is not known to be undone (halted, pending, said), a step
cut is the Ctrl-C in it (what was done is undone); the exception says so and carries the
outcome."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from rollback_lessons import AsyncRollback, Saga, Step
    from rollback_lessons.durable.journal import Journal
    from rollback_lessons.durable.registry import Registry, compensation

    how, where, journal_at, signal_name = sys.argv[1:5]
    said = []
    if signal_name == "SIGTERM":
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))

    def interrupts(times):
        loop = asyncio.get_running_loop()
        for delay in (0.05, 0.15)[:times]:
            loop.call_later(delay, os.kill, os.getpid(), getattr(signal, signal_name))

    async def act(n):
        if n == "s2" and where == "step":
            interrupts(2 if signal_name == "SIGINT" else 1)
            await asyncio.sleep(0.5)
        said.append(f"did {n}")

    async def undo(n, idempotency_key=None):
        said.append(f"undo {n}")
        if n == "s1" and where == "undo" and said.count("undo s1") == 1:
            interrupts(2 if signal_name == "SIGINT" else 1)
            await asyncio.sleep(0.5)
        said.append(f"{n} undone")

    registry = Registry()
    undone = compensation("shutdown.undo", registry)(undo)
    journal = Journal(journal_at) if journal_at != "-" else None
    box = {}

    def undo_of(n):
        return undone.bind(n=n) if journal is not None else (lambda *a, n=n: undo(n))

    async def main():
        if how == "block":
            rb = box["rb"] = AsyncRollback(journal=journal)
            async with rb:
                for n in ("s0", "s1", "s2"):
                    await rb.do(n, lambda n=n: act(n), undo_of(n))
                raise RuntimeError("the block fails")
        steps = [Step(n, lambda state, n=n: act(n), undo_of(n)) for n in ("s0", "s1", "s2", "s3")]
        await Saga(steps).arun({}, inject={"s3": "fail"}, journal=journal)

    try:
        asyncio.run(main())
    except (KeyboardInterrupt, SystemExit) as exc:
        outcome = getattr(exc, "outcome", None)
        print("raised:", type(exc).__name__)
        print("notes:", getattr(exc, "__notes__", None))
        print("outcome:", outcome.status, list(outcome.compensated), list(outcome.pending))
    print("said:", said)
    """
)


def _child(tmp_path, how: str, where: str, journal: bool, signal_name: str = "SIGINT"):
    at = str(tmp_path / "j.db") if journal else "-"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, how, where, at, signal_name],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return dict(line.split(": ", 1) for line in done.stdout.splitlines()), done


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("how", ["block", "arun"])
def test_a_second_ctrl_c_in_a_journalled_undo_makes_it_again_and_the_rollback_ends(
    tmp_path, how, signal_name
):
    lines, done = _child(tmp_path, how, "undo", True, signal_name)
    assert "Traceback" not in done.stderr, done.stderr  # (attack302 F3: the task's too, raw)
    assert lines["outcome"] == "rolled_back ['s2', 's1', 's0'] []"
    assert "its rollback ran to its end first (rolled_back)" in lines["notes"]
    said = eval(lines["said"])  # the world's own record
    assert said[-3:] == ["s1 undone", "undo s0", "s0 undone"] and said.count("undo s1") == 2


@pytest.mark.parametrize("how", ["block", "arun"])
def test_a_second_ctrl_c_in_an_undo_with_no_journal_never_calls_it_twice(tmp_path, how):
    """attack42 F12: no journal asks an undo to be idempotent (no key is passed): a refund
    cut mid-call is not known to be done, left pending and said, never made again."""
    lines, done = _child(tmp_path, how, "undo", journal=False)
    assert "Traceback" not in done.stderr, done.stderr  # (F3: "Task exception was never
    assert lines["outcome"] == "halted ['s2'] ['s1', 's0']"  # retrieved", the main task's)
    assert "during the undo of s1; not known to be undone: s1, s0" in lines["notes"]
    said = eval(lines["said"])
    assert said.count("undo s1") == 1 and "undo s0" not in said


@pytest.mark.parametrize("journal", [False, True])
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_asyncio_runs_end_while_a_step_runs_undoes_what_was_done(tmp_path, journal, signal_name):
    """attack42 F1, F10: two Ctrl-Cs (or a SIGTERM whose handler calls sys.exit) while a step
    of ``saga.arun`` ran: nothing was undone, a bare exception. Now the step is cut there
    (it may have happened: reported), and what was done is undone first."""
    lines, done = _child(tmp_path, "arun", "step", journal, signal_name)
    assert lines["raised"] == ("KeyboardInterrupt" if signal_name == "SIGINT" else "SystemExit")
    assert lines["outcome"] == "rollback_incomplete ['s1', 's0'] []", done.stdout
    # (the step it cut named: attack43 F4)
    assert "its rollback ran to its end first (rollback_incomplete; leaked: s2)" in lines["notes"]
    said = eval(lines["said"])
    assert said == ["did s0", "did s1", "undo s1", "s1 undone", "undo s0", "s0 undone"]
    # attack62 L2: arun's task ends cancelled, as asyncio.run's teardown asked; it re-raised
    # the exception there, logged "Task exception was never retrieved" with its traceback
    assert "never retrieved" not in done.stderr and "Traceback" not in done.stderr


SWEEP = textwrap.dedent(
    """
    import asyncio, re, sys
    from rollback_lessons import Saga, Step

    effects = set()

    def act(n):
        async def a():
            for _ in range(3):
                await asyncio.sleep(0)
            effects.add(n)
            for _ in range(3):
                await asyncio.sleep(0)
        return lambda state: a()

    def undo(n):
        async def u():
            for _ in range(3):
                await asyncio.sleep(0)
            effects.discard(n)
        return lambda state: u()

    saga = Saga([Step(f"s{i}", act(f"s{i}"), undo(f"s{i}")) for i in range(12)], name="s")

    said = []  # (what asyncio logs of a task's exception nobody read: its notes too)

    async def main(n):
        loop, count = asyncio.get_running_loop(), [0]
        loop.set_exception_handler(lambda loop, context: said.append(context.get("exception")))

        def tick():  # asyncio.run's end from inside the loop's own code, on its n-th turn
            count[0] += 1
            if count[0] >= n:
                raise SystemExit(143)
            loop.call_soon(tick)

        loop.call_soon(tick)
        return await saga.arun({}, inject={"s11": "fail"})

    for n in range(1, int(sys.argv[1]), 2):
        effects.clear()
        said.clear()
        try:
            asyncio.run(main(n))
            print(n, sorted(effects))  # (the run was over before the n-th turn)
        except SystemExit as exc:
            outcome = getattr(exc, "outcome", None)
            named = set(outcome.pending) | set(outcome.leaked) if outcome is not None else set()
            notes = " ".join(" ".join(getattr(e, "__notes__", ())) for e in said)
            named |= {s for s in effects if re.search(rf"\\b{s}\\b", notes)}
            print(n, sorted(effects - named))
    """
)


def test_asyncio_runs_end_inside_its_own_code_loses_no_step_done():
    """attack43 F6: a signal handled inside the loop's own code (not at an await) stops
    ``asyncio.run`` there, and the engine's tasks get a cancel that no Ctrl-C made (and a
    step's task launched but not started, one before its first line): the run stopped dead,
    the steps done left done, undone nowhere, named nowhere. At every turn of the loop: each
    step done is undone, or named in the outcome the exception carries."""
    done = subprocess.run(
        [sys.executable, "-c", SWEEP, "160"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lost = [line for line in done.stdout.splitlines() if not line.endswith(" []")]
    assert len(done.stdout.splitlines()) == 80 and lost == []
