"""A Ctrl-C as a step is told done, once the next step began (its intent row written) but
before its action is called, then a second Ctrl-C as the first is handled (attack62 F4):
the step begun stays not run, its row written so before the second can land, never left
``intent`` for ``recover`` to report leaked (and, a pivot, to halt the saga for a person)."""

from __future__ import annotations

from typing import Any

import pytest

from rollback_lessons import Saga, Step, _guards
from rollback_lessons._run import Run
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry, compensation
from rollback_lessons.machine import Machine

registry = Registry()
WORLD: list[str] = []


@compensation("second_cut.undo", registry)
def undo(step: str, idempotency_key: str | None = None) -> None:
    WORLD.append(f"undo {step}")


def _act(name: str) -> Any:
    return lambda state: WORLD.append(f"do {name}")


def _saga(pivot: bool) -> Saga:
    a, b = (Step(n, _act(n), undo.bind(step=n)) for n in ("alpha", "bravo"))
    if pivot:
        return Saga(
            [
                a,
                b,
                Step("papa", _act("papa"), None, kind="pivot"),
                Step("c", _act("c"), kind="retriable"),
            ]
        )
    return Saga([a, b, Step("c", _act("c"), undo.bind(step="c"))])


@pytest.mark.parametrize("second", ["settled", "tick"])
@pytest.mark.parametrize("pivot", [False, True], ids=["list", "pivot"])
def test_a_second_ctrl_c_leaves_the_step_begun_not_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, second: str, pivot: bool
) -> None:
    """The first Ctrl-C lands as the next step's start returns (``Machine._begin``, its row
    written); the second as the run's failure is handled: in ``settled`` (saga.run's
    handler, before the rollback) or at the run's stamp as it fails (``Run.tick``)."""
    target, fired = ("papa" if pivot else "bravo"), []
    real_begin, real_tick, real_settled = Machine._begin, Run.tick, _guards.settled

    def begin(self: Machine, spec: Any) -> Any:
        op = real_begin(self, spec)
        if spec.name == target and not fired:
            fired.append("first")
            raise KeyboardInterrupt
        return op

    def again() -> None:
        if fired == ["first"]:
            fired.append("second")
            raise KeyboardInterrupt

    def tick(self: Run) -> None:
        if second == "tick":
            again()
        real_tick(self)

    def settled(run: Run, error: BaseException) -> Any:
        if second == "settled":
            again()
        return real_settled(run, error)

    monkeypatch.setattr(Machine, "_begin", begin)
    monkeypatch.setattr(Run, "tick", tick)
    monkeypatch.setattr(_guards, "settled", settled)
    WORLD.clear()
    journal = Journal(tmp_path / "j.db")
    with pytest.raises(KeyboardInterrupt):
        _saga(pivot).run({}, journal=journal, run_id="r")
    monkeypatch.undo()
    assert fired == ["first", "second"]
    assert f"do {target}" not in WORLD, WORLD
    with journal:
        states = {u.step: u.state for u in journal.undos("r")}
        if pivot:  # (its row: the saga's pivot, refused: recover may roll back across it)
            assert journal.saga("r").pivot_state == "refused", states
        else:
            assert states.get(target) == "not_run", states
        assert not journal.leaked("r")
