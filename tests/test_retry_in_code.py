"""A RetryPolicy subclass with its own ``next_delay`` decides in Python, as an UndoPolicy's
own ``decide`` does: an engine that carries a policy as data obeyed its fields instead and
retried three times where ``saga.run`` did not retry, and ``recover`` would too (attack100
F13). It is refused, by name, before anything runs; where a policy in code runs (in process,
Temporal and DBOS hosting the undo policy), it is obeyed."""

from __future__ import annotations

from typing import Any

import pytest

from rollback_lessons import RetryPolicy, Saga, Step, UndoPolicy
from rollback_lessons.durable.journal import Journal
from rollback_lessons.policies import UnsupportedPolicy


class Once(RetryPolicy):
    """Its fields say three attempts; its own rule says none."""

    def next_delay(self, attempt: int, error: BaseException) -> float | None:
        return None


def _saga(world: list[str], where: str) -> Saga:
    def flaky(state: Any) -> None:
        world.append("do b")
        raise ConnectionError("flaky")

    retry = Once(max_attempts=3, initial_delay=0.01) if where == "step" else None
    return Saga([Step("a", lambda s: world.append("do a"), lambda s: world.append("undo a")),
                 Step("b", flaky, lambda s: None, retry=retry)])  # fmt: skip


def test_in_process_its_own_rule_is_obeyed():
    world: list[str] = []
    outcome = _saga(world, "step").run({})
    assert outcome.status == "rolled_back" and world == ["do a", "do b", "undo a"]


@pytest.mark.parametrize("where", ["step", "undo"])
def test_engines_that_carry_it_as_data_refuse_it_before_anything_runs(where, sfn_runner,
                                                                      bpmn_runner):  # fmt: skip
    policy = UndoPolicy(Once(max_attempts=3)) if where == "undo" else None
    for runner, form in ((sfn_runner, {}), (bpmn_runner, {"cancel": lambda: False})):
        world: list[str] = []
        with pytest.raises(UnsupportedPolicy, match="Once's own next_delay") as refused:
            runner.run(_saga(world, where), {}, policy=policy, **form)
        assert world == []
        if where == "undo":  # (BPMN writes a process model: attack100 F14)
            model = "process model" if runner is bpmn_runner else "state machine"
            assert f"its {model} is written" in str(refused.value)


def test_a_journal_refuses_such_an_undo_policy(tmp_path):
    from rollback_lessons.durable.kept import UnjournaledPolicy

    world: list[str] = []
    saga = Saga([Step("a", lambda s: world.append("do a"))])  # (no undo: nothing to register)
    with Journal(tmp_path / "j.db") as journal, pytest.raises(UnjournaledPolicy, match="Once"):
        saga.run({}, journal=journal, policy=UndoPolicy(Once(max_attempts=3)))
    assert world == []


class Never(RetryPolicy):
    """Its own ``retries``: never (attack102 F2: only ``next_delay`` was checked)."""

    def retries(self, error: BaseException) -> bool:
        return False


class Slow(RetryPolicy):
    def delay(self, attempt: int) -> float:
        return 0.02


@pytest.mark.parametrize("kind", [Never, Slow])
def test_a_retry_policy_of_its_own_retries_or_delay_is_refused_as_data_too(kind, tmp_path):
    from rollback_lessons.durable.kept import UnjournaledPolicy
    from rollback_lessons.runners.bpmn import to_bpmn
    from rollback_lessons.runners.stepfunctions import to_asl

    policy = UndoPolicy(kind(max_attempts=3))
    saga = Saga([Step("a", lambda s: None)])
    for export in (to_asl, to_bpmn):
        with pytest.raises(UnsupportedPolicy, match=f"{kind.__name__}'s own"):
            export(saga, policy=policy)
    with Journal(tmp_path / "j.db") as journal, pytest.raises(UnjournaledPolicy):
        saga.run({}, journal=journal, policy=policy)
