"""Item 4: a cancel that becomes true as the last step returns. In process (`saga.run`,
cancel=...) the saga commits (nothing was left to stop); on Step Functions (moto), whose
runner "cancels as saga.run does", every step is undone and the Outcome says `cancelled`.

    .venv/bin/python attacks/s2_stepfunctions_cancel_after_last_step.py
"""

from rollback_lessons import Parallel, Saga, Step
from rollback_lessons.runners.stepfunctions import StepFunctionsRunner


def step(name):
    return Step(name, lambda s: s.__setitem__(name, 1), lambda s: s.pop(name))


def sagas():
    yield "list, undo_order=reverse_start", Saga([step("a"), step("b")]), {"undo_order": "reverse_start"}
    yield "group", Saga([Parallel(step("a"), step("b")), step("c")]), {}


runner = StepFunctionsRunner.start()
try:
    for label, saga, options in sagas():
        last = saga.names[-1]
        here_world, there_world = {}, {}
        here = saga.run(here_world, cancel=lambda: last in here_world, **options)
        there = runner.run(saga, there_world, cancel=lambda: last in there_world, **options)
        print(f"{label}: cancel once {last!r} is done")
        print(f"  in process:     {here.status}, compensated {here.compensated}, world {here_world}")
        print(f"  Step Functions: {there.status}, compensated {there.compensated}, world {there_world}")
finally:
    runner.close()
