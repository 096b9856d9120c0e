"""Issue #21's speed goal: every exercise's check answers within 2 s (6 s for the Temporal
and Step Functions exercises, 08.1 and 09.1, which start their engine), for a right answer
(every world tried: a wrong one stops at the first world that fails, so it is faster). Each
is timed twice in this process and the better time kept: the first check of an engine
also pays for importing it."""

from __future__ import annotations

import logging
import time

from rollback_lessons.lab.exercises import load_all

from .common import table

GOAL = 2.0  # seconds
ENGINE_GOAL = {"08.1": 6.0, "09.1": 6.0}


def _best(run: object, code: str) -> float:
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        run(code)  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return best


def run() -> None:
    rows = []
    logging.disable(logging.WARNING)  # every injected failure would be logged
    try:
        for key, exercise in sorted(load_all().items()):
            right = _best(exercise.run, exercise.solution_code)
            goal = ENGINE_GOAL.get(key, GOAL)
            verdict = "meets" if right <= goal else "misses"
            rows.append((key, exercise.title, f"{right:.2f}", f"{verdict} <= {goal:g} s"))
    finally:
        logging.disable(logging.NOTSET)
    print("Checking each exercise's solution (every world): seconds, best of 2")
    print(table(rows, ("exercise", "title", "seconds", "goal")))
