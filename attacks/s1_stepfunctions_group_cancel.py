"""Item 4: a group saga on Step Functions (moto) and in process, cancelled by a function
that says True once a given effect is in the world (so both engines are asked the same
question at the same point), in each undo order, with a flaky retried branch and an undo
that fails once: the Outcome (field by field, events too) and the world must agree.

    .venv/bin/python attacks/s1_stepfunctions_group_cancel.py
"""

from __future__ import annotations

import os
import sys
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from conftest import same_outcome  # noqa: E402

from rollback_lessons import Parallel, RetryPolicy, Saga, Step, VirtualClock  # noqa: E402
from rollback_lessons.runners.stepfunctions import StepFunctionsRunner  # noqa: E402


def make() -> Saga:
    def step(name, flaky=False):
        def act(state):
            n = state.setdefault("tries", {}).get(name, 0) + 1
            state["tries"][name] = n
            if flaky and n == 1:
                raise ConnectionError(f"{name} flaky")
            state[name] = 1

        retry = RetryPolicy(max_attempts=2, initial_delay=1, max_delay=1) if flaky else None
        return Step(name, act, lambda s, n=name: s.pop(n), retry=retry)

    return Saga([Parallel(step("A"), [step("B", flaky=True), step("C")], step("D")),
                 step("E"), step("F")], name="grp")


def cancel_once(key, state):
    return lambda: key in state


bad = 0
runs = 0
runner = StepFunctionsRunner.start()
try:
    for order in ("reverse", "reverse_start", "by_dependency"):
        for key in ("A", "B", "C", "D", "E", "F", "never"):
            for inject in ({}, {"C": "undo_fails_once"}, {"A": "undo_fails"}):
                here_state, there_state = {}, {}
                o = {"undo_order": order, "inject": inject, "policy": "retry" if inject.get("C") else "continue"}
                here = make().run(here_state, cancel=cancel_once(key, here_state), clock=VirtualClock(), **o)
                runs += 1
                try:
                    there = runner.run(make(), there_state, cancel=cancel_once(key, there_state), **o)
                    if there.status != here.status or there.compensated != here.compensated:
                        raise AssertionError(f"Step Functions {there.status} {there.compensated} "
                                             f"completed {there.completed}, in process completed {here.completed}; "
                                             f"world here {here_state} there {there_state}")
                    same_outcome(here, there)
                    assert here_state == there_state, (here_state, there_state)
                except Exception as exc:  # noqa: BLE001
                    bad += 1
                    print(f"{order} cancel once {key} in world, {inject}: in process {here.status} "
                          f"{here.compensated}; Step Functions: {type(exc).__name__} "
                          f"{str(exc).splitlines()[0][:300] if str(exc) else traceback.format_exc()[-300:]}",
                          flush=True)
finally:
    runner.close()
print(f"{runs} runs, {bad} differ")
