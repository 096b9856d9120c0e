"""Issue #17's two speed goals: the engine against contextlib.ExitStack doing the same
undo-on-failure job, and exploring every pair of faults of an 8-step saga."""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack

from rollback_lessons import Rollback
from rollback_lessons.explore import explore
from rollback_lessons.worlds.examples import chain_saga, chain_state

from .common import per_call, table

RATIO_GOAL = 1.5
EXPLORE_GOAL = 2.0  # seconds


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
        for _ in range(3):
            start = time.perf_counter()
            exploration = explore(
                chain_saga(8), chain_state, policies=("continue", "retry", "halt")
            )
            best = min(best, time.perf_counter() - start)
    finally:
        logging.disable(logging.NOTSET)
    verdict = "meets" if best <= EXPLORE_GOAL else "misses"
    print()
    print("Exploring every combination of up to 2 faults of an 8-step saga, 3 policies")
    print(
        table(
            [(f"{len(exploration.runs)} runs", f"{best:.2f}", f"{verdict} <= {EXPLORE_GOAL:g} s")],
            ("case", "seconds (best of 3)", "goal"),
        )
    )
