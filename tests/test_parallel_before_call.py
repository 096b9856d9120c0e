"""A Ctrl-C at every instant between a graph step's launch, its undo logged before it
(``register="before"``), and its action's call, in ``saga.run`` (attack269 F1: in the sync
graph driver, a Ctrl-C at ``_carry``'s entry or as the step's ``Call`` was built was told
as one inside the call: the undo of a step never called ran, a refund of a charge never
made, the journal ``rolled_back`` and no note). The step is said not run and its undo is
withdrawn, never run, in process and by ``recover``; one called is undone once."""

from __future__ import annotations

import linecache
import sys

import pytest
from conftest import orphan

from rollback_lessons import Saga, Step
from rollback_lessons.calls import call_sync
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry
from rollback_lessons.graph import Parallel


def _trial(
    tmp_path, k: int, effects: list[str], completion
) -> tuple[str | None, BaseException | None]:
    """Run [Parallel(a, b)], b's undo logged before it; a KeyboardInterrupt at the k-th
    trace event (a call, a line or a return, in any frame) after b's ``undo_registered``,
    unless b's action was called first. Where it fired (None: never), what the run raised."""
    registry = Registry()
    undo = registry.add("pb_u", lambda n, idempotency_key=None: effects.append(f"undo {n}"))

    def act_a(state):  # type: ignore[no-untyped-def]
        effects.append("a")

    def act_b(state):  # type: ignore[no-untyped-def]
        effects.append("b")

    b = Step("b", act_b, undo.bind(n="b"), register="before")
    saga = Saga([Parallel(Step("a", act_a, undo.bind(n="a")), b)], name="pb")
    armed, count, fired = [False], [0], [""]

    def tick(frame, event, arg):  # type: ignore[no-untyped-def]
        if armed[0] and not fired[0] and "b" not in effects:
            count[0] += 1
            if count[0] == k:
                code = frame.f_code
                line = linecache.getline(code.co_filename, frame.f_lineno).strip()
                fired[0] = f"{code.co_name} {event}: {line}"
                raise KeyboardInterrupt
        return tick

    arm = ("step_done", "a") if completion == ["a", "b"] else ("undo_registered", "b")

    def on_event(event):  # type: ignore[no-untyped-def]
        if (event.kind, event.step) == arm:  # (a first: from its end, b launched with it)
            armed[0] = True

    error = None
    with Journal(tmp_path / f"j{k}.db") as journal:
        sys.settrace(tick)
        try:
            saga.run({}, journal=journal, run_id="r", on_event=on_event, completion=completion)
        except KeyboardInterrupt as exc:  # (kept without its traceback: the tracer's frame
            error = exc.with_traceback(None)  # in it holds, as ``arg``, a cursor a call had
        finally:  # returned, unread: a read left open, recover's claim here found it locked)
            sys.settrace(None)
        if fired[0]:
            orphan(journal.path, "r")
            recover(journal, registry)
            effects += [f"leaked {step}" for step in journal.leaked("r")]
    return fired[0] or None, error


CALL = f"{call_sync.__name__} line: result = fn(*args)"
"""The one instant marked begun and not yet called: the call itself (its frame not made),
in doubt, as any call a Ctrl-C lands at: undone (its undo logged before it, idempotent)."""


@pytest.mark.parametrize(
    "completion", [None, ["b", "a"], ["a", "b"]], ids=["in order", "b first", "a first"]
)  # (a first: b launched with it, a Ctrl-C as a returns, at the loop's test: attack273 F2)
def test_a_ctrl_c_before_a_parallel_steps_call_never_runs_the_undo_logged_before_it(
    tmp_path, completion
):
    before_call = 0
    for k in range(1, 400):
        effects: list[str] = []
        fired, error = _trial(tmp_path, k, effects, completion)
        if fired is None:
            break  # (b's action was called before the k-th event: the window is swept)
        assert isinstance(error, KeyboardInterrupt), (k, fired, error)
        called = "b" in effects or fired == CALL or fired.startswith("act_b ")
        if not called:  # (never called: never undone, here or by recover)
            before_call += 1
            assert "undo b" not in effects, (k, fired, effects, getattr(error, "__notes__", ()))
        else:
            assert effects.count("undo b") == 1, (k, effects)
        told = effects.count("undo a") + effects.count("leaked a")  # (undone once, or cut
        if "a" in effects:  # inside its call, its undo logged after it: reported leaked)
            assert told == 1, (k, fired, effects)
        elif fired.startswith("act_a "):  # (its frame begun, before its first line: in doubt)
            assert told <= 1, (k, fired, effects)
        else:  # (never called: neither; at the instant of a call, in doubt: one or the other)
            assert told == 0 or (told == 1 and fired == CALL), (k, fired, effects)
    else:
        pytest.fail("the window never closed")
    assert before_call > 5  # (instants before b's call were tried)
