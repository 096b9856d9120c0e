"""Crash trials: the services and the relay run in a real process, on SQLite files and a
durable SQLite queue, and are killed with SIGKILL (at a chosen moment, or whenever a timer
says, possibly inside a commit); the process is started again until it finishes, and the
services' own records are checked.

``python -m rollback_lessons.choreo.trial FOLDER --variant safe|naive --bookings N --seed S
[--kill-at K]`` is the process to kill: it asks for the bookings once (the guests'
requests, committed to the queue in one transaction), then runs until nothing moves.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .events import SERVICES
from .queues import SqliteQueue
from .run import NAIVE, SAFE, Choreography, Variant, plan, violations

VARIANTS = {"safe": SAFE, "naive": NAIVE}


class _KillAt:
    """Counts the moments a crash can strike; SIGKILLs this process at the ``n``-th."""

    def __init__(self, n: int | None) -> None:
        self.n, self.count = n, 0

    def __call__(self, moment: str) -> None:
        self.count += 1
        if self.count == self.n:
            os.kill(os.getpid(), signal.SIGKILL)


def _ask_once(queue: SqliteQueue, choreo: Choreography, seed: int, n: int) -> None:
    """The guests' requests, sent in one transaction the first time only."""
    con = queue.con
    con.execute("CREATE TABLE IF NOT EXISTS asked (seed INTEGER)")
    con.execute("BEGIN IMMEDIATE")
    if con.execute("SELECT count(*) FROM asked").fetchone()[0] == 0:
        choreo.ask(plan(seed, n))
        con.execute("INSERT INTO asked VALUES (?)", (seed,))
    con.execute("COMMIT")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rollback_lessons.choreo.trial")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="safe")
    parser.add_argument("--bookings", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run", type=int, default=0, help="which start this is (picks order)")
    parser.add_argument("--kill-at", type=int, default=None)
    args = parser.parse_args(argv)
    queue = SqliteQueue(args.folder / "queue.db", rng=random.Random(f"{args.seed}/{args.run}"))
    killer = _KillAt(args.kill_at)
    choreo = Choreography(queue, VARIANTS[args.variant], folder=args.folder, checkpoint=killer)
    _ask_once(queue, choreo, args.seed, args.bookings)
    choreo.run()
    choreo.close()
    print(f"done after {killer.count} moments")
    return 0


@dataclass(frozen=True)
class Trial:
    """What a trial did (its kills) and found (``broken``: ``run.violations``)."""

    variant: Variant
    seed: int
    kills: tuple[str, ...]
    broken: dict[str, list[str]]
    left: int
    """Messages left in queues or outboxes at the end (a finished run leaves none)."""


def _start(
    folder: Path, variant: str, seed: int, n: int, run: int, *extra: str
) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "rollback_lessons.choreo.trial", str(folder)]
    options = ["--variant", variant, "--seed", str(seed), "--bookings", str(n), "--run", str(run)]
    return subprocess.Popen(
        [*command, *options, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def crash_trial(
    folder: str | Path, variant: str, seed: int, *, bookings: int = 6, moments: int = 60
) -> Trial:
    """One trial: one to three processes killed (at a moment among the first ``moments``,
    or after a random time), then one run to the end; the records checked."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    kills: list[str] = []
    for run in range(1 + (rng.random() < 0.3) + (rng.random() < 0.1)):
        if rng.random() < 0.7:
            at = rng.randint(1, moments)
            process = _start(folder, variant, seed, bookings, run, "--kill-at", str(at))
            process.communicate(timeout=60)
            kills.append(f"at moment {at}" if process.returncode == -signal.SIGKILL else "none")
        else:
            process = _start(folder, variant, seed, bookings, run)
            after = rng.uniform(0.05, 0.4)
            time.sleep(after)
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=60)
            timed = process.returncode == -signal.SIGKILL
            kills.append(f"after {after:.2f} s" if timed else "none")
    last = _start(folder, variant, seed, bookings, 99)
    _, err = last.communicate(timeout=60)
    if last.returncode != 0:
        raise RuntimeError(f"the last run failed ({last.returncode}): {err.strip()[-500:]}")
    return _check(folder, variant, seed, bookings, tuple(kills))


def _check(folder: Path, variant: str, seed: int, n: int, kills: tuple[str, ...]) -> Trial:
    effects, left = {}, 0
    for name in SERVICES:
        con = sqlite3.connect(folder / f"{name}.db")
        try:
            effects[name] = con.execute(
                "SELECT booking, effect FROM effects ORDER BY seq"
            ).fetchall()
            left += con.execute("SELECT count(*) FROM outbox WHERE sent = 0").fetchone()[0]
        finally:
            con.close()
    queue = SqliteQueue(folder / "queue.db")
    try:
        left += sum(queue.depth(name) for name in SERVICES)
    finally:
        queue.close()
    broken = violations(effects, plan(seed, n))
    return Trial(VARIANTS[variant], seed, kills, broken, left)


if __name__ == "__main__":
    sys.exit(main())
