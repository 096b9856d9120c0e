"""A Ctrl-C or sys.exit heard after a step's call returned, before the machine was told
(attack60 F3): as the driver stamps the call (``called``), at ``step_ok``'s entry, or as
``step_ok`` records it. A step that returned is done: undone with the rest (not reported
leaked, nor left to a person by recover); one with no undo is kept, never leaked."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rollback_lessons import Rollback, Saga, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry, compensation

# (the function, the event, the step's index among those calls): each an instant CPython
# hears a Ctrl-C at (a function's start, a C call's return)
INSTANTS = [("called", "call"), ("step_ok", "call"), ("append", "c_return")]


def _hook(target: str, event: str, step: str, cut: type[BaseException]):  # type: ignore[no-untyped-def]
    def hook(frame, ev, arg):  # type: ignore[no-untyped-def]
        name = arg.__name__ if ev.startswith("c_") else frame.f_code.co_name
        if ev != event or name != target:
            return
        if ev.startswith("c_") and frame.f_code.co_name != "step_ok":
            return
        me = frame.f_locals.get("self")
        machine = getattr(me, "m", me)  # (the driver's, or the machine itself)
        if getattr(machine, "current", None) == step:
            sys.setprofile(None)
            raise cut(143) if cut is SystemExit else cut()

    return hook


def _steps(world: list[str], journalled: bool):  # type: ignore[no-untyped-def]
    registry = Registry()

    def undo(k: str) -> None:
        world.append(f"undo {k}")

    named = compensation(f"u{id(world)}", registry)(undo)

    def act(k: str):  # type: ignore[no-untyped-def]
        return lambda *_: world.append(f"do {k}")

    back = (lambda k: named.bind(k=k)) if journalled else (lambda k: lambda *_: undo(k))
    return [("a", act("a"), back("a")), ("n", act("n"), None), ("b", act("b"), back("b"))]


@pytest.mark.parametrize("cut", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("target, event", INSTANTS)
@pytest.mark.parametrize("returned", ["a", "n"])  # an undo, or none (kept)
@pytest.mark.parametrize("driver", ["run", "journal", "rollback"])
def test_a_step_that_returned_is_undone_or_kept_never_leaked(
    driver, returned, target, event, cut, tmp_path
):
    world: list[str] = []
    steps = _steps(world, driver == "journal")
    hook = _hook(target, event, returned, cut)
    outcome, raised = None, None
    try:
        if driver == "rollback":
            rb = Rollback(on_event=lambda e: None)
            try:
                sys.setprofile(hook)
                with rb:
                    for name, act, undo in steps:
                        rb.do(name, act, undo)  # type: ignore[arg-type]
            finally:
                sys.setprofile(None)
                outcome = rb.outcome
        else:
            saga = Saga([Step(n, a, u) for n, a, u in steps], name="s")  # type: ignore[arg-type]
            kw = {}
            if driver == "journal":
                kw = {"journal": Journal(str(tmp_path / "j.db")), "run_id": "r"}
            sys.setprofile(hook)
            try:
                outcome = saga.run({}, **kw)
            finally:
                sys.setprofile(None)
    except (KeyboardInterrupt, SystemExit) as exc:
        raised = exc
        outcome = outcome or getattr(exc, "outcome", None)
    assert isinstance(raised, cut), (raised, world)
    done = [w[3:] for w in world if w.startswith("do ")]
    assert returned in done, world
    said = "\n".join(getattr(raised, "__notes__", ()))
    assert "no undo logged" not in said, (said, world)
    assert all(f"undo {k}" in world for k in done if k != "n"), world
    if outcome is not None:
        assert outcome.leaked == (), outcome
    if driver == "journal":
        kw["journal"].close()
        shown = subprocess.run(
            [sys.executable, "-m", "rollback_lessons", "journal", "show", str(tmp_path / "j.db")],
            capture_output=True, text=True,
        )  # fmt: skip
        row = [line.split() for line in shown.stdout.splitlines() if line.startswith("r ")]
        assert row and row[0][-1] == "0", shown.stdout  # (its leaked column)
