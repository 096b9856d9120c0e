"""Groups nested within an engine's limit, handed to it by a caller already deep in its
stack: refused in one line naming the call's depth (``wire.COST_ON``), or run; never a bare
RecursionError inside the engine (attack102 F3: BPMN's export at 120 levels from 400 frames
deep, Step Functions' moto parser at 30 from 300, DBOS's pickling at 150 from 400)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from rollback_lessons import Parallel, Saga, Status, Step
from rollback_lessons.errors import NestedTooDeep
from rollback_lessons.runners import wire
from rollback_lessons.runners.bpmn import model


class _Passed(Exception):
    """The check let the saga through (the probe stops there, before the engine's work)."""


def _nest(depth: int) -> list[Step | Parallel]:
    """``depth`` levels, two steps each, each branch a list (the costliest shape measured)."""
    items: list[Step | Parallel] = [Step(f"s{depth}", lambda s: None, lambda s: None)]
    if depth:
        deeper = _nest(depth - 1)
        items.append(Parallel([Step(f"p{depth}", lambda s: None, lambda s: None)], deeper))
    return items


def _deep(frames: int, call: Callable[[], Any]) -> Any:
    return call() if frames == 0 else _deep(frames - 1, call)


def _deepest_passed(entry: Callable[[], Any], monkeypatch) -> int:
    """The most frames deep ``entry`` may be called from and pass its nesting check (found
    with the check stopping the entry there: no engine work)."""
    real = wire.check_nesting

    def stop_after(saga: Saga, engine: str, written: bool = False) -> None:
        real(saga, engine, written)
        raise _Passed

    with monkeypatch.context() as patch:
        patch.setattr(wire, "check_nesting", stop_after)
        patch.setattr(model, "check_nesting", stop_after)
        low, high = 0, 1000
        while high - low > 1:
            mid = (low + high) // 2
            try:
                _deep(mid, entry)
            except _Passed:
                low = mid
            except NestedTooDeep as refused:
                assert "at this call's depth" in str(refused) and "\n" not in str(refused)
                high = mid
    return low


def _tightest(entry: Callable[[], Any], monkeypatch) -> Any:
    """``entry`` run from the deepest frame its check lets through: it runs, the estimate
    of its recursion holding; a few frames deeper it is refused in one line."""
    deepest = _deepest_passed(entry, monkeypatch)
    assert deepest > 0, "refused even from the test's own depth"
    with pytest.raises(NestedTooDeep, match="at this call's depth"):
        _deep(deepest + 10, entry)
    return _deep(deepest, entry)


@pytest.mark.parametrize("depth", [0, 1, 2, 8, 30])
def test_bpmn_export_and_asl_from_deep_callers(monkeypatch, depth):
    from rollback_lessons.runners.bpmn import to_bpmn
    from rollback_lessons.runners.stepfunctions import to_asl

    bpmn = Saga(_nest(min(depth, wire.DEEPEST_ON["BPMN"][0])), name="deep")
    assert "<bpmn:definitions" in _tightest(lambda: to_bpmn(bpmn), monkeypatch)
    asl = Saga(_nest(min(depth, wire.DEEPEST_ON["Step Functions"][0])), name="deep")
    assert "States" in _tightest(lambda: to_asl(asl), monkeypatch)


@pytest.mark.parametrize("depth", [0, 1, 12])
def test_bpmn_run_from_a_deep_caller(bpmn_runner, monkeypatch, depth):
    saga = Saga(_nest(depth), name="deep")
    outcome = _tightest(lambda: bpmn_runner.run(saga, {}, inject={"s0": "fail"}), monkeypatch)
    assert outcome.status is Status.ROLLED_BACK


@pytest.mark.parametrize("depth", [0, 1, 6])
def test_step_functions_run_from_a_deep_caller(sfn_runner, monkeypatch, depth):
    saga = Saga(_nest(depth), name="deep")
    outcome = _tightest(lambda: sfn_runner.run(saga, {}, inject={"s0": "fail"}), monkeypatch)
    assert outcome.status is Status.ROLLED_BACK


@pytest.mark.parametrize("depth", [0, 1, 10, wire.DEEPEST_ON["DBOS"][0]])
def test_dbos_run_from_a_deep_caller(dbos_runner, monkeypatch, depth):
    saga = Saga(_nest(depth), name="deep")
    outcome = _tightest(lambda: dbos_runner.run(saga, {}), monkeypatch)
    assert outcome.status is Status.COMMITTED


def test_temporal_run_at_its_limit_from_a_deep_caller(on_temporal, monkeypatch):
    """The workflow reads the plan on the worker's side, recursing per level too: at the
    limit it runs there, whatever the caller's depth."""
    saga = Saga(_nest(wire.DEEPEST_ON["Temporal"][0]), name="deep")

    async def deep(frames: int, runner: Any) -> Any:
        return await (deep(frames - 1, runner) if frames else runner.run(saga, {}))

    def entry_at(frames: int) -> Callable[[], Any]:
        return lambda: on_temporal(lambda runner: deep(frames, runner))

    # (the caller's frames are the loop thread's: the probe recurses in the coroutine)
    real = wire.check_nesting

    def stop_after(s: Saga, engine: str, written: bool = False) -> None:
        real(s, engine, written)
        raise _Passed

    low, high = 0, 1000
    with monkeypatch.context() as patch:
        patch.setattr(wire, "check_nesting", stop_after)
        while high - low > 1:
            mid = (low + high) // 2
            try:
                entry_at(mid)()
            except _Passed:
                low = mid
            except NestedTooDeep as refused:
                assert "at this call's depth" in str(refused)
                high = mid
    assert low > 0
    outcome = entry_at(low)()
    assert outcome.status is Status.COMMITTED, outcome
    assert asyncio.iscoroutinefunction(deep)


FIRST_DBOS_RUN_DEEP = """
import sys, tempfile
from rollback_lessons import Saga, Step
from rollback_lessons.errors import NestedTooDeep
from rollback_lessons.runners.dbos import DBOSRunner

saga = Saga([Step("a", lambda s: None, lambda s: None), Step("b", lambda s: None)], name="shallow")
runner = DBOSRunner.start(sys.argv[1])

def deep(frames):
    return runner.run(saga, {}) if frames == 0 else deep(frames - 1)

try:
    deep(sys.getrecursionlimit() - 40)
except NestedTooDeep as refused:
    print("refused:", refused)
finally:
    runner.close()
"""


def test_a_first_dbos_run_from_deep_in_a_stack_is_refused_before_dbos_recurses(tmp_path):
    """attack287 F1: a 2-step saga given to DBOS from ~40 frames below the recursion limit,
    the process's first run: a bare RecursionError inside DBOS / SQLAlchemy (its run-id
    check, made before the nesting check). Now refused first, in the one line."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", FIRST_DBOS_RUN_DEEP, str(tmp_path / "d.sqlite")],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.stdout.startswith("refused: saga 'shallow': at this call's depth"), done
    assert "RecursionError" not in done.stderr, done.stderr
