"""``recover`` of a graph saga (issue 27): a journalled trip (a, then room, car-then-gps and
flight at once, then the charge) is killed with SIGKILL at every event of its run, in each
undo order, going forward and in its rollback; ``recover`` finishes it; the undos the world
saw (the process's, then recover's) are in the order the in-process run uses for the same
completed steps: the same saga run in memory with the same completion order, every step
that had not completed failing instead. make test kills at every third event (each case at
another third, so together they cover every event); make soak (SOAK=1) at every event."""

import os
import signal
from functools import partial
from pathlib import Path

import pytest
from conftest import SOAK

from rollback_lessons import Parallel, Saga, Step
from rollback_lessons.clock import VirtualClock
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry, compensation

registry = Registry()
ORDERS = ("reverse", "reverse_start", "by_dependency")
COMPLETION = ("flight", "gps", "car", "room")
"""The branches finish in this order: each undo order then undoes differently."""


def lines(world):
    path = Path(world)
    return path.read_text().split("\n")[:-1] if path.exists() else []


@compensation("graph.undo", registry)
def undo(world, step, idempotency_key=None):
    """Once per key: an undo run again after a crash (before its end was written) changes
    nothing."""
    if f"undo {step} {idempotency_key}" not in lines(world):
        with open(world, "a") as out:
            out.write(f"undo {step} {idempotency_key}\n")
            out.flush()
            os.fsync(out.fileno())


def act(world, step, state):
    with open(world, "a") as out:
        out.write(f"do {step}\n")
        out.flush()
        os.fsync(out.fileno())


BEFORE = ("car", "flight")
"""With ``before``, these steps log their undo before they run (the rest after)."""


def trip(world, before=False):
    def step(name):
        register = "before" if before and name in BEFORE else "after"
        return Step(name, partial(act, world, name), undo.bind(world=world, step=name),
                    register=register)  # fmt: skip

    return Saga([step("a"), Parallel(step("room"), [step("car"), step("gps")], step("flight")),
                 step("charge")], name="trip")  # fmt: skip


def crashed_run(tmp, order, inject, kill_at, before):
    """Run the trip journalled in a child process killed at its ``kill_at``-th event;
    True if it was killed (False: the run ended first)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            seen = [0]

            def watch(event):
                seen[0] += 1
                if seen[0] == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)

            with Journal(tmp / "journal.db") as journal:
                trip(str(tmp / "world"), before).run({}, journal=journal, undo_order=order,
                                             inject=inject, completion=COMPLETION,
                                             on_event=watch, run_id="t")  # fmt: skip
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def in_process(order, completed, inject, before=False, started=()):
    """The in-process run for the same completed steps: the trip (and a last step that
    fails, so that a run where every step completed rolls back too) with the same
    completion order, each step that had not completed failing (those that had started
    ending in the order they started: as recover counts a step that never ended)."""
    names = ["a", "room", "car", "gps", "flight", "charge"]
    failing = {s: "fail" for s in names if s not in completed}
    # a step the crashed run never started logs nothing here either (it will fail)
    logged_first = {s for s in BEFORE if before and s in started}
    steps = [Step(s, lambda state: None, lambda state: None,
                  register="before" if s in logged_first else "after")
             for s in names]  # fmt: skip
    saga = Saga([steps[0], Parallel(steps[1], steps[2:4], steps[4]), steps[5],
                 Step("z", lambda state: None)], name="trip")  # fmt: skip
    timing = [*completed, *(s for s in started if s not in completed)]
    timing += [s for s in COMPLETION if s not in timing]
    outcome = saga.run({}, undo_order=order, completion=timing,
                       inject={**failing, **inject, "z": "fail"}, clock=VirtualClock())  # fmt: skip
    return list(outcome.compensated)


@pytest.mark.parametrize("before", [False, True], ids=["logged after", "some logged before"])
@pytest.mark.parametrize("inject", [{}, {"charge": "fail"}], ids=["forward", "rollback"])
@pytest.mark.parametrize("order", ORDERS)
def test_a_graph_saga_killed_anywhere_is_undone_by_recover_in_its_declared_order(
    tmp_path, order, inject, before
):
    kills, orders = 0, set()
    stride = 1 if SOAK else 3
    first = 1 + (ORDERS.index(order) + bool(inject) + before) % stride
    for kill_at in range(first, 60, stride):
        tmp = tmp_path / str(kill_at)
        tmp.mkdir()
        world = str(tmp / "world")
        if not crashed_run(tmp, order, inject, kill_at, before):
            break  # the run ended before its kill_at-th event: every point was tried
        kills += 1
        with Journal(tmp / "journal.db") as journal:
            events = journal.events("t")
            completed = [e.step for e in events if e.kind == "step_done"]
            started = [e.step for e in events if e.kind == "step_start"]
            # a step whose call returned has its undo logged after it written before its
            # done event (killed in between: undone, not leaked, attack35 F4); one at most,
            # the last to return (the steps are called one at a time here)
            after = {e.step for e in events if e.kind == "step_start"
                     and e.details["register"] == "after"}  # fmt: skip
            returned = [u.step for u in journal.undos("t") if u.state == "pending"
                        and u.step in after and u.step not in completed]  # fmt: skip
            assert len(returned) <= 1, returned
            completed += returned
            reports = list(recover(journal, registry))
            status = journal.saga("t").status
        seen = [line.split()[1] for line in lines(world) if line.startswith("undo")]
        if not reports:  # killed once its end was written: nothing left to recover
            assert status == ("committed" if not inject else "rolled_back"), kill_at
            continue
        [report] = reports
        assert seen == in_process(order, completed, inject, before, started), (kill_at, events)
        done = [line.split()[1] for line in lines(world) if line.startswith("do")]
        # every effect is undone, or reported (started, its undo never logged: it may have
        # happened, leaked)
        assert set(done) - set(seen) <= set(report.leaked), kill_at
        orders.add(tuple(seen))
    assert kills > 15 // stride  # the run was killed at each of its events, then ended
    assert len(orders) > 5 // stride  # many different sets of steps were undone


def test_the_orders_differ_on_this_trip():
    """The test above tells the orders apart: all steps done, each undoes differently."""
    done = ["a", "flight", "gps", "car", "room", "charge"]
    found = {order: in_process(order, done, {}) for order in
             ("reverse", "reverse_start", "by_dependency")}  # fmt: skip
    assert len(set(map(tuple, found.values()))) == 3, found
