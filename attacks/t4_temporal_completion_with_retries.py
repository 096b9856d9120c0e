"""Item 1: completion= orders on Temporal with a retried branch, compared field by field
(events too) with saga.run(completion=...) on the same saga.

    .venv/bin/python attacks/t4_temporal_completion_with_retries.py
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from conftest import same_outcome  # noqa: E402

from rollback_lessons import Parallel, Retry, RetryPolicy, Saga, Step, VirtualClock  # noqa: E402
from rollback_lessons.runners.temporal import TemporalRunner  # noqa: E402

QUICK = RetryPolicy(max_attempts=2, initial_delay=0.05, max_delay=0.05)


def make() -> Saga:
    def step(name, retry=None):
        return Step(name, lambda s: s.__setitem__(name, 1), lambda s: s.pop(name), retry=retry)

    return Saga([Parallel(step("A", QUICK), [step("B"), step("C", QUICK)], step("D")), step("E")],
                name="grp")


CASES = [
    ({"A": "fail"}, "continue"),
    ({"C": "fail_after_effect"}, "continue"),
    ({"E": "fail", "B": "undo_fails_once"}, Retry(QUICK)),
    ({"D": "fail", "A": "undo_fails"}, "halt"),
]


async def main() -> None:
    bad = n = 0
    async with await TemporalRunner.start() as runner:
        for (inject, policy), perm, order in itertools.product(
            CASES, itertools.permutations("ABD"), ("reverse", "by_dependency")
        ):
            completion = [*perm, "C", "E"]
            o = {"inject": inject, "policy": policy, "undo_order": order, "completion": completion}
            here = make().run({}, clock=VirtualClock(), **o)
            there = await runner.run(make(), {}, **o)
            n += 1
            try:
                same_outcome(here, there)
            except AssertionError:
                bad += 1
                print(f"{inject} {policy} {order} {''.join(completion)}: in process {here.status} "
                      f"{here.compensated} | Temporal {there.status} {there.compensated}")
                ev = lambda o: [(e.kind, e.step) for e in o.events]  # noqa: E731
                for i, (a, b) in enumerate(zip(ev(here), ev(there))):
                    if a != b:
                        print(f"   first differing event #{i}: in process {a}, Temporal {b}")
                        break
    print(f"{n} runs, {bad} differ")


asyncio.run(main())
