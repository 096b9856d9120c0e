"""Two speed goals (issues #17 and #23): the engine against contextlib.ExitStack doing the
same undo-on-failure job, and exploring every combination of up to 3 faults of a 12-step
saga under 3 policies (about 52,000 runs)."""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack

from rollback_lessons import Rollback
from rollback_lessons.explore import explore
from rollback_lessons.worlds.examples import chain_saga, chain_state

from .common import per_call, table

RATIO_GOAL = 2.0
EXPLORE_GOAL = 5.0  # seconds
EXPLORE_STEPS, EXPLORE_FAULTS = 12, 3


class Boom(Exception):
    pass


def noop() -> None:
    pass


def exitstack(fail: bool) -> None:
    """The standard library's way: a callback per step, pop_all() on success."""
    try:
        with ExitStack() as stack:
            for _ in "abc":
                noop()
                stack.callback(noop)
            if fail:
                raise Boom
            stack.pop_all()
    except Boom:
        pass


def engine(fail: bool) -> None:
    """The same with the engine: each step's undo logged, events recorded in memory."""
    try:
        with Rollback() as rb:
            rb.do("a", noop, noop)
            rb.do("b", noop, noop)
            rb.do("c", noop, noop)
            if fail:
                raise Boom
    except Boom:
        pass


def run() -> None:
    rows = []
    for path, fail in (("commit", False), ("rollback", True)):
        base = per_call(lambda f=fail: exitstack(f))
        t = per_call(lambda f=fail: engine(f))
        verdict = "meets" if t / base <= RATIO_GOAL else "misses"
        rows.append(
            (
                f"Rollback vs ExitStack ({path})",
                f"{base * 1e6:.2f}",
                f"{t * 1e6:.2f}",
                f"{t / base:.1f}x",
                f"{verdict} <= {RATIO_GOAL}x",
            )
        )
    print("Cost per saga of 3 no-op steps: contextlib.ExitStack against the engine")
    print(table(rows, ("case", "ExitStack us", "engine us", "ratio", "goal")))
    logging.disable(logging.WARNING)  # every injected failure would be logged
    try:
        best = float("inf")
        for _ in range(2):
            start = time.process_time()
            exploration = explore(
                chain_saga(EXPLORE_STEPS),
                chain_state,
                max_faults=EXPLORE_FAULTS,
                policies=("continue", "retry", "halt"),
            )
            best = min(best, time.process_time() - start)
    finally:
        logging.disable(logging.NOTSET)
    verdict = "meets" if best <= EXPLORE_GOAL else "misses"
    print()
    print(
        f"Exploring every combination of up to {EXPLORE_FAULTS} faults of a "
        f"{EXPLORE_STEPS}-step saga, 3 policies"
    )
    print(
        table(
            [(f"{len(exploration.runs)} runs", f"{best:.2f}", f"{verdict} <= {EXPLORE_GOAL:g} s")],
            ("case", "CPU seconds (best of 2)", "goal"),
        )
    )
