"""Reading an execution back: the task states it visited (what ``runners.history.walk``
drives the saga machine with), and its history as a table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ...outcome import Outcome, Table
from ..history import Call, HistoryDiverged, Visit, Worker, ask, do, undo
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


def answered(history: Sequence[dict[str, Any]], plan: SagaPlan) -> list[tuple[str, str]]:
    """The tasks whose answer the execution took, in its order, as (call, step): each
    ``TaskSucceeded`` or ``TaskFailed`` traced back to the state it was in (by its
    ``previousEventId``). The ``What next`` tasks and the steps answered ``SagaStopping``
    (never started) are left out: what is left is what the worker did."""
    from .asl_graph import STOPPING

    named = {
        state(s.key): (call, s.name)
        for s in plan.steps
        for state, call in ((do, "action"), (undo, "undo"), (ask, "ask"))
    }
    where: dict[int, str] = {}
    found: list[tuple[str, str]] = []
    for event in history:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            where[event["id"]] = event["stateEnteredEventDetails"]["name"]
            continue
        where[event["id"]] = where.get(event.get("previousEventId", 0), "")
        if kind not in ("TaskSucceeded", "TaskFailed"):
            continue
        if kind == "TaskFailed" and event["taskFailedEventDetails"].get("error") == STOPPING:
            continue
        state = where[event["id"]].removesuffix(TASK)
        if state in named:  # (else What next)
            found.append(named[state])
    return found


def check_answered(history: Sequence[dict[str, Any]], plan: SagaPlan, worker: Worker) -> None:
    """The engine ran what the live machine said, or it is an error (``HistoryDiverged``):
    the same tasks (branches record theirs in any order), the undos in the machine's order
    (an action a Ctrl-C cut short, a call whose work runs on, is answered SagaStopping)."""
    done = [(c.call, c.step) for c in worker.calls if not c.final]
    seen = answered(history, plan)
    undos = [c for c in done if c[0] != "action"]
    if sorted(seen) != sorted(done) or [c for c in seen if c[0] != "action"] != undos:
        raise HistoryDiverged(f"the execution took the answers of {seen}, the worker gave {done}")


OVER = "Step Functions: the execution was over"
"""What a Ctrl-C once the execution ended says first (``history.over_noted``)."""


@dataclass
class Execution:
    """One saga run on Step Functions: its Outcome, the state machine, the history."""

    outcome: Outcome
    asl: dict[str, Any]
    history: list[dict[str, Any]] = field(repr=False)
    status: str  # Step Functions' own: SUCCEEDED or FAILED
    calls: list[Call] = field(default_factory=list, repr=False)

    def history_table(self) -> Table:
        return history_table(self.history)
