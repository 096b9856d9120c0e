"""What durability costs per step: in process, with the journal, on DBOS and on Temporal,
one run; each against the saga in process and against the journal, both timed in the same
run (issue #23: DBOS per step, beside the journal and Temporal). Wall time: waiting on the
disk and the server is the cost."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from rollback_lessons import Saga, Step
from rollback_lessons.durable.journal import Journal

from .common import table
from .journal import noop_undo

STEPS, RUNS = 10, 20


def _saga() -> Saga:
    return Saga(
        [Step(f"s{i}", lambda s: None, noop_undo.bind(n=i)) for i in range(STEPS)], name="cost"
    )


def in_process() -> float:
    saga = _saga()
    start = time.perf_counter()
    for _ in range(RUNS * 10):
        saga.run({})
    return (time.perf_counter() - start) / (RUNS * 10 * STEPS)


def journaled(path: Path) -> float:
    saga = _saga()
    with Journal(path) as journal:
        start = time.perf_counter()
        for _ in range(RUNS):
            saga.run({}, journal=journal)
        return (time.perf_counter() - start) / (RUNS * STEPS)


def on_temporal() -> float:
    from rollback_lessons.runners.temporal import TemporalRunner

    async def main() -> float:
        async with await TemporalRunner.start() as runner:
            saga = _saga()
            await runner.run(saga, {})  # warm up the worker
            start = time.perf_counter()
            for _ in range(RUNS):
                await runner.run(saga, {})
            return (time.perf_counter() - start) / (RUNS * STEPS)

    return asyncio.run(main())


def on_dbos(path: Path) -> float:
    from rollback_lessons.runners.dbos import DBOSRunner

    with DBOSRunner.start(path) as runner:
        saga = _saga()
        runner.run(saga, {})  # warm up
        start = time.perf_counter()
        for _ in range(RUNS):
            runner.run(saga, {})
        return (time.perf_counter() - start) / (RUNS * STEPS)


def run() -> None:
    base = in_process()
    with tempfile.TemporaryDirectory() as tmp:
        durable = journaled(Path(tmp) / "journal.db")
        dbos = on_dbos(Path(tmp) / "dbos.sqlite")
    remote = on_temporal()
    rows = [
        ("in process (memory)", f"{base * 1e3:.3f} ms", "1x", "-"),
        ("with the SQLite journal", f"{durable * 1e3:.3f} ms", f"{durable / base:.0f}x", "1x"),
    ]
    for where, seconds in (
        ("on DBOS (SQLite system database)", dbos),
        ("on Temporal's dev server", remote),
    ):
        rows.append(
            (
                where,
                f"{seconds * 1e3:.3f} ms",
                f"{seconds / base:.0f}x",
                f"{seconds / durable:.1f}x",
            )
        )
    print(f"What durability costs: per step, sagas of {STEPS} no-op steps (no target)")
    print(
        table(
            rows, ("where the saga runs", "per step", "against in process", "against the journal")
        )
    )
