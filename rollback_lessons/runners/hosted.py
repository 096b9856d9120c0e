"""What a run on an engine needs from the process that started it, by run id: the saga, its
state and its injected faults (the activities or steps that run its calls here), and a
policy that decides in Python code (the machine in the workflow asks it).

Plain dictionaries, no I/O: Temporal's workflow sandbox imports this module passed through,
so a workflow and its activities see the same entries. A run started in another process (a
worker elsewhere) does not find them, and says so.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from ..errors import RollbackLessonsError, interrupts
from ..faults import StepFaults
from ..policies import UndoPolicy, decided


class NotHosted(RollbackLessonsError):
    """The run's saga or policy lives in another process than the one asked for it."""


class SagaChanged(NotHosted):
    """A saga of the run's name whose steps differ from those the run was started with (the
    ``SagaPlan`` its engine keeps: ``wire.changed``): hosted, an undo removed was reported
    done though none ran, a step renamed failed the run for good (attack17's G2). Refused
    before it is hosted, on DBOS and on Temporal alike."""


class UnknownRun(RollbackLessonsError, LookupError):
    """``handle_for`` (or ``record``) a run id the engine has no run of (a typo, another
    server or file): one line, the same type on Temporal and DBOS, the engine's error
    chained where it gave one (attack20's N5)."""


@dataclass
class Hosted:
    """One run's saga, state and faults; ``started`` is set per step as its action begins;
    ``calls``: each call this process made for the run, in order, as (``"action"`` or
    ``"undo"``, step, whether it succeeded): what it can report if its engine is lost;
    ``effected``: steps an action call of which failed after its effect (in effect, perhaps)."""

    saga: Any  # a Saga (not imported: this module stays importable in a sandbox)
    state: Any
    faults: dict[str, StepFaults]
    started: dict[str, threading.Event] = field(default_factory=dict)
    calls: list[tuple[str, str, bool]] = field(default_factory=list)
    effected: set[str] = field(default_factory=set)
    interrupt: BaseException | None = None
    """The first BaseException (not an Exception: a Ctrl-C, ``sys.exit``) a call of the run
    raised here: re-raised once its outcome is read (``remote.reraise``), as ``saga.run``
    re-raises it once what was done is undone."""
    left: dict[str, Any] = field(default_factory=dict)
    """What the run's handle reads once the run ended for good and its entries here went
    (``dbos.lifetime.over``): its machine, the record a stop left."""

    def effects(self) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        """(steps done, steps undone, steps whose action failed: perhaps after its
        effect), as this process's calls tell it."""
        done = tuple(s for call, s, ok in self.calls if call == "action" and ok)
        undone = tuple(s for call, s, ok in self.calls if call == "undo" and ok)
        failed = tuple(s for call, s, ok in self.calls if call == "action" and not ok)
        return done, undone, failed


RUNS: dict[str, Hosted] = {}
POLICIES: dict[str, UndoPolicy] = {}
OVER: weakref.WeakValueDictionary[str, Hosted] = weakref.WeakValueDictionary()
"""Runs whose workflow returned here (``retire``), by run id, for as long as something
holds their ``Hosted`` (their handle, a call still running): what a report of the run reads
(``find``), gone with the last holder (issue #25: ``RUNS`` kept each until read)."""


def host(run_id: str, run: Hosted) -> None:
    RUNS[run_id] = run


def hosted(run_id: str) -> Hosted:
    try:
        return RUNS[run_id]
    except KeyError:
        raise NotHosted(f"run {run_id!r} was started by another process") from None


def interrupted(run_id: str, exc: BaseException, step: str, run: Hosted | None = None) -> Any:
    """A call of the run raised ``exc``, a BaseException not an Exception (a Ctrl-C,
    ``sys.exit``): the first is kept (``Hosted.interrupt``) to be re-raised once the outcome is
    read; its record (``wire.ErrorRecord``) is what the engine tells its workflow. ``run``:
    the run's ``Hosted`` when the caller holds it (a call still running once the run ended
    and was released: its handle keeps it)."""
    from .wire import ErrorRecord  # (this module stays importable in a sandbox)

    run = run if run is not None else RUNS.get(run_id)
    if run is not None and run.interrupt is None:
        run.interrupt = exc
    return ErrorRecord.of(exc, step, run_id)


def undo_failed(m: Any, run_id: str, step: str, error: BaseException, limit: str | None = None,
                by: Any = decided) -> Any:  # fmt: skip
    """``m.undo_failed``: a policy's own ``decide`` that raises a Ctrl-C, ``sys.exit`` or a
    cancel cuts the rollback there, the rest pending, as in process; it is raised once the
    outcome is read (``interrupted``). (Temporal's worker loop ended, attack94 F9; DBOS's
    run stayed unfinished, every relaunch raising it again, attack100 F11.)"""
    try:
        return m.undo_failed(error, limit, by)
    except BaseException as exc:
        if not interrupts(exc):
            raise
        interrupted(run_id, exc, step)
        return m.interrupted(exc)


def find(run_id: str) -> Hosted | None:
    """Run ``run_id``'s ``Hosted``: hosted, or over and still held (``OVER``)."""
    return RUNS.get(run_id) or OVER.get(run_id)


def retire(run_id: str) -> None:
    """The run's workflow returned here: no call of it starts again, so it is hosted no
    longer; its ``Hosted`` is found while held (``OVER``). Its policy in code stays, until
    its outcome is read: a query replays the workflow, which asks it."""
    run = RUNS.pop(run_id, None)
    if run is not None:
        OVER[run_id] = run


def called(run_id: str) -> Hosted | None:
    """The run a call of its engine came for, or None (not hosted here). One retired is
    hosted again: its workflow returned, but the server refused that return (an event came
    within the same task: a person's answer) and it runs on, replayed (attack162 F1: each
    call of its undo refused "not hosted", the saga never ended, its effects held)."""
    run = RUNS.get(run_id)
    if run is None and (run := OVER.get(run_id)) is not None:
        RUNS[run_id] = run
    return run


def host_policy(run_id: str, policy: UndoPolicy) -> None:
    POLICIES[run_id] = policy


def policy(run_id: str) -> UndoPolicy:
    try:
        return POLICIES[run_id]
    except KeyError:
        raise NotHosted(
            f"run {run_id!r} has an undo policy that decides in Python; only the process that "
            "started it has that code"
        ) from None


def release(run_id: str) -> None:
    """The run is over: forget it."""
    RUNS.pop(run_id, None)
    POLICIES.pop(run_id, None)
