"""A journaled saga whose undo of b fails, its process SIGKILLed in the backoff (``first``);
then a ``recover`` whose first call of b's undo runs past its timeout (0.3 s, the call 2.5 s)
and is cut by a Ctrl-C the process catches, living on (``cut``); meanwhile a ``recover`` in
another process (``other``). Run as ``python tests/recover_left_running.py JOURNAL WORLD
PHASE``; the world file gets a line per effect, the phases print what they saw."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

from rollback_lessons import RetryPolicy, Saga, Step, UndoPolicy
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry

JOURNAL, WORLD, PHASE = sys.argv[1:4]


def said(line: str) -> None:
    with open(WORLD, "a") as world:
        world.write(f"{PHASE}: {line}\n")


registry = Registry()


def undo_a(idempotency_key: str | None = None) -> None:
    said("undone a")


def undo_b(idempotency_key: str | None = None) -> None:
    if PHASE == "first":
        raise ConnectionError("the refund service is down")
    if PHASE == "cut":
        time.sleep(2.5)  # (past its 0.3 s timeout: it goes on in its helper thread)
    said("undone b")


def fails(state: object) -> None:
    raise ValueError("no seats")


ua, ub = registry.add("undo_a", undo_a), registry.add("undo_b", undo_b)
RETRY = UndoPolicy(RetryPolicy(max_attempts=3, initial_delay=1.5, timeout=0.3))
saga = Saga(
    [
        Step("a", lambda s: said("did a"), ua.bind()),
        Step("b", lambda s: said("did b"), ub.bind()),
        Step("c", fails),
    ],
    policy=RETRY,
)


def claim() -> int | None:
    con = sqlite3.connect(f"file:{JOURNAL}?mode=ro", uri=True)
    try:
        return con.execute("SELECT claim_pid FROM sagas").fetchone()[0]  # type: ignore[no-any-return]
    finally:
        con.close()


if PHASE == "first":

    def killed_in_the_backoff(event: object) -> None:
        if str(getattr(event, "kind", "")) == "undo_failed":
            os.kill(os.getpid(), signal.SIGKILL)

    saga.run({}, journal=Journal(JOURNAL), run_id="r1", on_event=killed_in_the_backoff)
elif PHASE == "cut":
    threading.Timer(0.6, lambda: os.kill(os.getpid(), signal.SIGINT)).start()  # (in the wait)
    try:
        recover(Journal(JOURNAL), registry)
    except KeyboardInterrupt:
        print("recover cut", flush=True)
    print("claim", claim() == os.getpid(), flush=True)
    other = subprocess.run([sys.executable, __file__, JOURNAL, WORLD, "other"],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    print("other", other.returncode, other.stdout.strip().replace("\n", " | "), flush=True)
    time.sleep(3)  # (the call left running lands)
else:
    report = recover(Journal(JOURNAL), registry)
    print(f"recovered {len(report.recovered)} skipped {len(report.skipped)}", flush=True)
    print(*report.skipped, sep="\n", flush=True)
