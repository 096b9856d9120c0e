"""Items 1/4: a cancel that becomes true as the *last* step returns. Does the run commit or
undo everything? In process the answer depends on how the saga is driven: a list saga
(default undo order) is `cancelled` and fully undone; the same list with
undo_order="reverse_start" (driven by the graph machine), or a saga with a group, commits.
Step Functions undoes both; DBOS commits the group.

    .venv/bin/python attacks/s3_cancel_as_last_step_returns.py [--engines]
"""

import asyncio
import sys

from rollback_lessons import Parallel, Saga, Step


def step(name):
    return Step(name, lambda s: s.__setitem__(name, 1), lambda s: s.pop(name))


CASES = {
    "list [a, b]": (lambda: Saga([step("a"), step("b")]), {}),
    "list [a, b], undo_order=reverse_start": (lambda: Saga([step("a"), step("b")]),
                                              {"undo_order": "reverse_start"}),
    "list [a, b], undo_order=by_dependency": (lambda: Saga([step("a"), step("b")]),
                                              {"undo_order": "by_dependency"}),
    "group [Parallel(a, b), c]": (lambda: Saga([Parallel(step("a"), step("b")), step("c")]), {}),
}


def show(label, how, run):
    for name, (make, options) in CASES.items():
        saga = make()
        last = saga.names[-1]
        world: dict = {}
        try:
            o = run(saga, world, lambda: last in world, options)
            print(f"{label:14} {name:42} -> {o.status:10} world {world}")
        except Exception as exc:  # noqa: BLE001
            print(f"{label:14} {name:42} -> {type(exc).__name__}: {str(exc)[:120]}")


show("saga.run", None, lambda s, w, c, o: s.run(w, cancel=c, **o))
show("saga.arun", None, lambda s, w, c, o: asyncio.run(s.arun(w, cancel=c, **o)))
if "--engines" in sys.argv:
    from rollback_lessons.runners.stepfunctions import StepFunctionsRunner

    r = StepFunctionsRunner.start()
    try:
        show("Step Functions", None, lambda s, w, c, o: r.run(s, w, cancel=c, **o))
    finally:
        r.close()
