"""The small graph sagas the engines' tests share (Step Functions, DBOS, BPMN): steps that
mark the state "done" and their undos "undone", and the trip: a, then room, car-then-gps
and flight at once, then the charge."""

from functools import partial

from rollback_lessons import Parallel, Saga, Step


def _act(name, state):
    state[name] = "done"


def _undo(name, state):
    if state.get(name) == "done":
        state[name] = "undone"


def _step(name, **options):
    return Step(name, partial(_act, name), partial(_undo, name), **options)


def trip(*, cancel_at=None):
    """a, then room, car-then-gps and flight at once, then the charge; ``cancel_at``: (a
    step, an Event it sets once it is done: a cancel heard when it returns)."""

    def step(name):
        if name != (cancel_at and cancel_at[0]):
            return _step(name)
        return Step(name, lambda s: (_act(name, s), cancel_at[1].set()), partial(_undo, name))

    return Saga([step("a"), Parallel(step("room"), [step("car"), step("gps")], step("flight")),
                 step("charge")], name="trip")  # fmt: skip


BIG = 3 * 1024 * 1024


def _boom(what, state):
    raise RuntimeError(what[0] * BIG)


def big_error_saga():
    """b and a's undo raise errors of 3 MB (attack29's F5, on Temporal; every engine)."""
    return Saga([Step("a", lambda s: s.update(a=1), partial(_boom, "undo")),
                 Step("b", partial(_boom, "step"))], name="big-error")  # fmt: skip
