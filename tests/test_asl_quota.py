"""A saga too long for Step Functions' hard quota on a state machine's definition (1 MB) is
refused in one line, before its failure points are asked of the machine when it surely is,
after writing when only its written size tells (attack105 F7: a 4,000-step saga took 90 s
to write, a definition AWS would never take)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rollback_lessons import Saga, Step
from rollback_lessons.runners.stepfunctions import to_asl
from rollback_lessons.runners.stepfunctions.asl import QUOTA, UnsupportedOnStepFunctions


def _saga(steps: int, name_length: int = 4) -> Saga:
    names = [f"{i:0{name_length}d}" for i in range(steps)]
    return Saga([*(Step(n, lambda s: None, lambda s: None) for n in names),
                 Step("last", lambda s: 1 / 0)], name="long")  # fmt: skip


def test_a_saga_surely_past_the_quota_is_refused_before_it_is_written(monkeypatch):
    from rollback_lessons.runners.stepfunctions import asl

    asked: list[int] = []
    monkeypatch.setattr(asl, "owed", lambda *a, **k: asked.append(1) or [])
    with pytest.raises(UnsupportedOnStepFunctions, match="would take at least") as refused:
        to_asl(_saga(4000))
    assert asked == [] and "\n" not in str(refused.value) and "1,048,576" in str(refused.value)


def test_a_saga_whose_written_state_machine_is_past_the_quota_is_refused(monkeypatch):
    """(The quota lowered, so that a short saga passes the first look and not the second.)"""
    from rollback_lessons.runners.stepfunctions import asl

    written = len(json.dumps(to_asl(_saga(100)), separators=(",", ":")).encode())
    assert written <= QUOTA
    monkeypatch.setattr(asl, "QUOTA", written - 1)
    with pytest.raises(UnsupportedOnStepFunctions, match=f"its state machine takes {written:,}"):
        to_asl(_saga(100))


def test_the_runner_sends_what_it_measured_and_refuses_past_the_quota(sfn_runner, monkeypatch):
    """attack107 F7: to_asl measured the state machine compactly, the runner sent it with
    json.dumps's spaces: 1,077,684 bytes to a 1,048,576 quota."""
    from rollback_lessons import Status
    from rollback_lessons.runners.stepfunctions import asl

    sent: list[str] = []
    real = sfn_runner.sfn.create_state_machine

    def create(**kwargs: Any) -> Any:
        sent.append(kwargs["definition"])
        return real(**kwargs)

    monkeypatch.setattr(sfn_runner.sfn, "create_state_machine", create)
    saga = _saga(3)
    assert sfn_runner.run(saga, {}).status is Status.ROLLED_BACK
    [definition] = sent
    assert definition == json.dumps(json.loads(definition), separators=(",", ":"))
    monkeypatch.setattr(asl, "QUOTA", len(definition) - 1)
    with pytest.raises(UnsupportedOnStepFunctions, match="too long for Step Functions"):
        sfn_runner.run(_saga(3, name_length=5), {})
    assert len(sent) == 1  # (nothing more sent)
