"""Reading an execution back: the task states it visited (what ``runners.history.walk``
drives the saga machine with), and its history as a table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...outcome import Table
from ..history import Visit, ask, do, undo
from ..wire import SagaPlan
from .asl import TASK


def visits(history: Sequence[dict[str, Any]], plan: SagaPlan) -> list[Visit]:
    """Each task state entered, with how many times its task ran and whether it succeeded.
    A task retried inside its Parallel enters again right after failing: one visit. The
    states are named by the steps' keys; the visits, by the steps (what ``walk`` reads). A
    state no step has is kept as it is named (a hand-wired machine: ``walk`` says so)."""
    named = {
        state(s.key): state(s.name) for s in plan.steps for state in (do, undo, ask)
    }  # fmt: skip
    found: list[Visit] = []
    for event in history:
        kind = event["type"]
        if kind == "TaskStateEntered":
            entered = event["stateEnteredEventDetails"]["name"]
            inner = entered.removesuffix(TASK)
            name = named.get(entered, named.get(inner, inner))
            if not (found and found[-1].state == name and not found[-1].succeeded):
                found.append(Visit(name))
        elif kind == "TaskScheduled":
            found[-1].tries += 1
        elif kind == "TaskSucceeded":
            found[-1].succeeded = True
    return found


def history_table(history: Sequence[dict[str, Any]]) -> Table:
    """The execution history as Step Functions users read it: each state entered, each task
    scheduled, succeeded or failed (with its error), and how the execution ended."""
    rows = []
    for event in history:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            rows.append((kind, event["stateEnteredEventDetails"]["name"], ""))
        elif kind == "TaskFailed":
            rows.append((kind, "", event["taskFailedEventDetails"].get("error", "")))
        elif kind in ("TaskScheduled", "TaskSucceeded", "ExecutionSucceeded"):
            rows.append((kind, "", ""))
        elif kind == "ExecutionFailed":
            rows.append((kind, "", event["executionFailedEventDetails"].get("error", "")))
    return Table(("event", "state", "error"), tuple(rows))
