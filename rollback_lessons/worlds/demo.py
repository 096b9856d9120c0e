"""The lesson's own example: three steps that set x, y and z, and a terminal demo of it."""

from __future__ import annotations

from typing import Any

from ..clock import VirtualClock
from ..outcome import Outcome
from ..policies import PolicyLike
from ..saga import Saga, State, Step


def _setter(key: str, value: int):  # small named functions read better in tracebacks
    def set_value(state: State) -> None:
        state[key] = value

    set_value.__name__ = f"set_{key}_{value}"
    return set_value


def xyz_saga(**saga_options: Any) -> Saga:
    """step1 sets x, step2 sets y, step3 sets z; each undo puts its value back to 0."""
    steps = [
        Step(f"step{i}", _setter(key, i), _setter(key, 0), label=f"set {key} = {i}")
        for i, key in enumerate("xyz", start=1)
    ]
    return Saga(steps, name="xyz", **saga_options)


def xyz_state() -> dict[str, int]:
    return {"x": 0, "y": 0, "z": 0}


def run_demo(
    fail_at: str | None = None,
    *,
    fault: str = "fail",
    undo_fails: tuple[str, ...] = (),
    policy: PolicyLike = "continue",
    register: str = "after",
) -> Outcome:
    """Run the x/y/z pipeline once with the given faults, on a clock that never waits."""
    inject: dict[str, list[str]] = {}
    if fail_at:
        inject.setdefault(fail_at, []).append(fault)
    for step in undo_fails:
        inject.setdefault(step, []).append("undo_fails")
    return xyz_saga().run(
        xyz_state(),
        inject=inject,
        policy=policy,
        register=register,  # type: ignore[arg-type]
        clock=VirtualClock(),
    )


def never_struck(outcome: Outcome, undo_fails: tuple[str, ...] | list[str]) -> str:
    """The title's words for undo faults whose undo never ran (attack41 F8: the fault
    silently never struck; the panel says "never struck"), else ""."""
    ran = {e.step for e in outcome.events if e.kind == "undo"}
    missed = [s for s in undo_fails if s not in ran]
    return f", --undo-fails {' '.join(missed)} never struck (no undo of it ran)" * bool(missed)
