"""DBOS's own stop, ``DBOS.cancel_workflow`` (``DBOSHandle.stop``), and what this process
keeps of a run it stopped: DBOS keeps no result for a cancelled workflow, so the record
the saga's machine made is kept here (``STOPPED``: the workflow saw the cancel; ``ENDED``:
it returned before the cancel landed), until the run's outcome or record is read (``take``)
or the runner closes (``clear``), the latest ``KEPT_MOST`` at most: never for the life of
the process (issue #25: every run's ``ENDED`` stayed until its outcome was read; it goes
once DBOS saved the run's result, ``saved``; a handle reads its own from its ``Hosted``,
``lifetime.over``). The machine decides
what a stop leaves (``list_stopped``, ``graph._Graph.stopped``): halted, a step whose
action returned here done (or failed) as it ended (``returned``), one still running cut
short (what may have happened named), nothing undone, every undo pending for the
operator."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

from dbos import DBOS
from dbos._error import (
    DBOSAwaitedWorkflowCancelledError,
    DBOSWorkflowCancelledError,
    DBOSWorkflowConflictIDError,
)

from ... import schedule
from ...errors import RollbackLessonsError
from ...machine import Machine, Phase
from ...operations import Finished
from ...schedule import GraphMachine
from ...stopping import stopped_past
from ..asking import Question
from ..error_record import KEPT_MOST
from ..wire import record_data
from . import bounded, replay, waits
from .asking import LOST, error_of

STOPPED: dict[str, dict[str, Any]] = {}
"""The record of each run ``DBOS.cancel_workflow`` stopped, as this process saw it (DBOS
keeps none: the workflow ends with the cancellation, its result never written)."""

STOPPED_NOTE = "DBOS.cancel_workflow stopped the workflow"

ENDED: dict[str, dict[str, Any]] = {}
"""The record each run's workflow returned, as this process saw it, until its outcome is
read: a ``DBOS.cancel_workflow`` landing after the workflow returned and before DBOS saved
its result leaves the run CANCELLED with no result (DBOS refuses the write); this says what
the saga did (``take``)."""

LATE_NOTE = "DBOS.cancel_workflow came after the saga ended: it stopped nothing"

LATE: dict[str, None] = {}
"""The runs a stop was asked of once their workflow had returned (it stopped nothing): their
record, whoever reads it here (any handle, ``record``), says so (attack157 F2, attack158 F2).
The latest ``KEPT_MOST``, until the runner closes."""


def asked_late(run_id: str) -> None:
    """A stop was asked of ``run_id`` once its workflow had returned (``LATE``)."""
    _keep(LATE, run_id, None)


def late_noted(run_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (a run's record), noted ``LATE_NOTE`` if a stop came once it had returned."""
    if run_id not in LATE or LATE_NOTE in data["notes"]:
        return data
    return {**data, "notes": [*data["notes"], LATE_NOTE]}


CANCELLED = (DBOSWorkflowCancelledError, DBOSWorkflowConflictIDError,
             DBOSAwaitedWorkflowCancelledError)  # fmt: skip
"""What DBOS raises for a run it cancelled (as a step began, as a step's result was saved,
or to who awaits its result): it keeps no result."""

WHERE = "before any undo ran (DBOS.cancel_workflow)"
"""Where the stop cut the run, as the machine's note says it."""


class WorkflowCancelled(BaseException):
    """``DBOS.cancel_workflow``: DBOS stopped the workflow; nothing more runs, no undo
    either (what the machine is told)."""


class NotBegun(DBOSWorkflowCancelledError):
    """DBOS's cancel, raised as a step's attempt began (its intent's save, ``began``, or its
    action's DBOS step starting): the action was never called. DBOS takes it as its own."""

    def __init__(self, step: str) -> None:
        super().__init__(f"DBOS.cancel_workflow came as {step} began: its action never ran")
        self.step = step


CALLED = threading.local()
"""The step whose action call began last in this thread (``workflow.run_action``): DBOS's
cancel after it (as its result was saved) comes after the action may have run."""

NOT_BEGUN = "DBOS.cancel_workflow came as it began (its action was never called)"

RETURNED: dict[str, dict[str, dict[str, Any] | None]] = {}
"""What each running step's action returned, by run id and step, as this process saw it
(``workflow.run_action``): a ``DBOS.cancel_workflow`` landing while the action ran makes
DBOS refuse to save that return (the step's owner is cleared), yet the action ended, so
the machine hears its real end (``returned``: attack46 F6), as Temporal's cancel reports
it. Dropped as the step's next attempt begins and when the run ends (``lifetime.over``)."""

UNDID: dict[str, tuple[str, int, dict[str, Any] | None]] = {}
"""The undo attempt that returned last, by run id (``workflow.run_undo``): its step, attempt
and end, as this process saw it (a stop landing while it ran: DBOS refuses to save that end,
yet the undo ran to it: ``undo_returned``, attack157 F1). Dropped when the run ends."""


def undo_returned(m: Machine, exc: BaseException) -> Finished | None:
    """A stop came while an undo attempt ran, and it returned here (``UNDID``), its end not
    saved by DBOS: the rollback is cut there (no undo begins after it), then the machine hears
    that end (undone, or its failure), as an action's is (``returned``): what it undid is not
    left pending for a person who would undo it again. The rollback's end, else None."""
    undid = UNDID.pop(str(m.run_id), None)
    entry = m.entry if m.phase is Phase.UNDO else None
    if undid is None or entry is None or undid[:2] != (entry.step, m.attempt):
        return None
    said = undid[2]
    if said is not None and LOST in said:  # (cut short: in doubt, as the stop leaves it)
        return None
    m.undo_begins()  # (it was called: told, then the rollback cut after it, then its end:
    tried = f"attempt {m.attempt} of " if m.attempt > 1 else ""  # one that failed said so,
    ended = "returned" if said is None else "failed"  # attack185 F3: "returned", b pending)
    m.cut(exc, f"after {tried}the undo of {entry.step} {ended}", by="DBOS.cancel_workflow")
    op = m.undo_ok() if said is None else m.undo_failed(error_of(said))
    return op if isinstance(op, Finished) else None


LAST_NOTE = (
    "DBOS.cancel_workflow came as the last step ran: it ran to its end, and the stop "
    "stopped nothing"
)


@contextlib.contextmanager
def beginning(run_id: str, step: str) -> Iterator[None]:
    """Around an attempt of ``step``: DBOS's cancel raised before its action was called
    becomes ``NotBegun`` (``not_begun`` tells the machine so)."""
    CALLED.step = None
    RETURNED.get(run_id, {}).pop(step, None)  # (an earlier attempt's end: told already)
    try:
        yield
    except (DBOSWorkflowCancelledError, DBOSWorkflowConflictIDError) as exc:
        if isinstance(exc, NotBegun) or getattr(CALLED, "step", None) == step:
            raise
        raise NotBegun(step) from exc


def not_begun(m: Machine, exc: BaseException) -> None:
    """The stop ``exc`` came as a step's attempt began (``NotBegun``): the machine is told
    that attempt never began (``Machine.not_run``): it decides what that leaves (a later
    attempt: the step still waits to retry, failed cleanly; a first: never run)."""
    begun = exc.__cause__
    if not isinstance(begun, NotBegun):
        return
    step = begun.step
    if isinstance(m, GraphMachine):
        running = m.where.get(step) == "running"
    else:
        running = m.phase is Phase.STEP and m.current == step
    if running:
        m.not_run(step, NOT_BEGUN)


def returned(m: Machine) -> Finished | None:
    """A stop came while a step's action ran, and the action returned here
    (``RETURNED``), its end not saved by DBOS: the machine hears that end (done, or its
    error), as if the stop came just after; the next step is not begun. The last step
    done commits the run (``LAST_NOTE``): returned then, else None."""
    ends = RETURNED.pop(str(m.run_id), {})
    if isinstance(m, GraphMachine):
        m.hear = None  # (the cancel token is not asked again: the run stops)
        for step, error in ends.items():
            if m.where.get(step) != "running" or (error is not None and LOST in error):
                continue
            op: Any = m.step_done(step) if error is None else m.step_error(step, error_of(error))
            if isinstance(op, Finished):
                return _last(m, op)
        return None
    if m.phase is not Phase.STEP or str(m.current) not in ends:
        return None
    said = ends[str(m.current)]
    if said is not None:  # (in doubt, LOST: cut short, as the stop leaves it)
        if LOST not in said:
            m.step_failed(error_of(said))
        return None
    assert m.plan is not None
    op = m.step_ok(go_on=m.next_step == len(m.plan) - 1)  # (the last: it commits)
    return _last(m, op) if isinstance(op, Finished) else None


def _last(m: Machine, op: Finished) -> Finished:
    m.notes = [*m.notes, LAST_NOTE]
    return op


class StoppedUnrecorded(RollbackLessonsError):
    """DBOS cancelled the run, and this process keeps no record of what the saga did (it
    was stopped in another process, or before its machine ran here, or its outcome was
    read already): one line."""


ASKED: dict[str, None] = {}
"""The runs ``DBOSHandle.stop`` stopped here, or whose workflow heard a stop here, until the
runner closes (``quiet``): the latest ``KEPT_MOST``."""


def _keep(table: dict[str, Any], run_id: str, value: Any) -> None:
    """``table[run_id] = value``, the oldest entries dropped past ``KEPT_MOST``."""
    table.pop(run_id, None)
    table[run_id] = value
    while len(table) > KEPT_MOST:
        table.pop(next(iter(table)), None)


_OWNED = re.compile(
    r"Workflow (\S+) (is no longer owned|outcome was not recorded|was cancelled during)"
)  # (DBOS's warnings as it waits for the outcome of a run cancelled under it: _core.py)


def quiet(record: logging.LogRecord) -> bool:
    """Is ``record`` DBOS's own telling of a stop asked here (``ASKED``, a branch's child
    workflow ``<run id>:<n>`` too): the cancel raised to who awaits the run, a traceback on
    stderr, and the warning that the run is no longer this execution's? The operator asked
    for it, and the outcome says it: dropped (``launch.STOPPED``). So is its telling of a
    cancel that came as a run here had ended (``ENDED``: its record kept, read with
    ``LATE_NOTE``; attack187 F1: a bare ``DBOS.cancel_workflow`` then, a traceback)."""
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, DBOSAwaitedWorkflowCancelledError):
        run_id = exc.workflow_id
    else:
        found = _OWNED.match(record.getMessage()) if exc is None else None
        if found is None:
            return False
        run_id = found.group(1)
    return any(run in table for run in (run_id, parent_of(run_id)) for table in (ASKED, ENDED))


NUDGE = {"step": "", "token": -2}
"""Told to an at_once run's wait for its branches (``_AtOnce.heard``) once it is stopped:
a message no branch sends (``told``: not awaited), so that the wait returns and the next
DBOS call hears the cancel (a cancelled branch never says it ended: the wait hung)."""


STOPPING = threading.Lock()
"""Held by a stop from its last look at its runner to its last DBOS call, and by ``close`` as
it marks the runner closed: a stop and a close at once are one, then the other (attack185
F1: the close destroyed DBOS under the stop, its cancel written, the run said left for the
next launch, which said it stopped elsewhere; F2: the stop raised DBOS's own error)."""


def stop_run(run_id: str) -> None:
    """``DBOS.cancel_workflow`` of the run and its branches' workflows (at_once), then the
    waits that would not hear it woken: the run's wait to retry (``waits.wake``), a branch's,
    the run's own wait for its branches and for a person's answer (``NUDGE``: attack27 F3, F4)."""
    from . import graph

    _keep(ASKED, run_id, None)  # (DBOS's traceback for it kept off stderr)
    DBOS.cancel_workflow(run_id, cancel_children=True)
    waits.wake(run_id)  # a list's (a one-at-a-time graph's) wait to retry ends now
    for child in DBOS.list_workflows(parent_workflow_id=run_id, status="PENDING"):
        DBOS.send(child.workflow_id, "stop", graph.WAKE)  # a retry's wait ends now
    DBOS.send(run_id, NUDGE, graph.DONE)
    asking = Question.of(DBOS.get_event(run_id, "pending", timeout_seconds=0))
    if asking is not None:  # a person asked: woken too (attack27 F4: heard at halt_wait)
        DBOS.send(run_id, NUDGE, f"answer-{asking.number}")


ENDED_EVENT = "ended"
"""The event a run's workflow sets last, its record: read by a launch that finds the run
CANCELLED with no record of its own (``take``)."""


def ended(run_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """``data``, the record a workflow returns, kept for a cancel that lands before DBOS
    saves it: here (``ENDED``), and on the file, the workflow's last step (an event): DBOS
    keeps no result of a run its cancel reached then, and a later launch read that run,
    every undo done, as ``StoppedUnrecorded``, "its undos may still be pending" (attack164
    F2). A cancel before this step: it stopped nothing, and ``ENDED`` says so here."""
    data = bounded.record(data)  # (its texts as DBOS keeps them: attack308 F2)
    _keep(ENDED, run_id, data)
    _save_ended(data)
    return data


def _save_ended(data: dict[str, Any]) -> None:
    DBOS.set_event(ENDED_EVENT, data)  # (in the workflow: a step of it, replayed as one)


def saved(
    run_id: str, left: dict[str, Any] | None = None, execution: Future[Any] | None = None
) -> None:
    """Run ``run_id``'s workflow ran here and DBOS saved its result (``execution``, the
    future of its run on DBOS's thread, done without an error): no cancel can land after
    it now, so its ``ENDED`` record goes (issue #25: every run's stayed until read); its
    handle's (``left``: its ``Hosted``'s, ``lifetime.over``) is its result, final."""
    if execution is None or (not execution.cancelled() and execution.exception() is None):
        ENDED.pop(run_id, None)
        if left is not None and left.get("ended") is not None:
            left["saved"] = True


def stopped(run_id: str, exc: BaseException, stop: Callable[[BaseException], Finished]) -> None:
    """DBOS raised ``exc`` in the workflow of ``run_id``: its cancel, as a step began or
    as a step's result was saved. ``stop`` tells the machine (the machine's answer kept).
    Heard here, the outcome says it: DBOS's telling of it goes (``quiet``), whoever asked
    (attack166 F3: a bare ``DBOS.cancel_workflow`` of a run resumed here, its traceback)."""
    _keep(ASKED, run_id, None)
    cut = replay.cut(run_id)
    if cut is not None:  # (on a step it had saved: the machine misses what it did after)
        _keep(STOPPED, run_id, {REPLAYED: list(cut)})
        return
    cause = WorkflowCancelled(STOPPED_NOTE)
    cause.__cause__ = exc
    _keep(STOPPED, run_id, bounded.record(record_data(stop(cause).record)))


REPLAYED = "replayed"
"""A stop kept as heard in a replay (``replay.cut``): (the operation, the last saved)."""


def list_stopped(m: Machine, exc: BaseException) -> Finished:
    """A list saga stopped by ``DBOS.cancel_workflow`` (``saga_workflow``), as the graph's
    is (``_Graph.stopped``): before any undo, the rollback is cut before it starts
    (``Machine.cut``: alone, ``interrupted`` would start it), a step whose action returned
    here ends as it did (``returned``: DBOS refused to save that end), one
    waiting to retry failed for good; ``cancelled`` if nothing was done, as a cancel is
    (never past the pivot: nothing is declined, the run stops). Mid-rollback, the
    rollback is cut short there. A stop as a step began is told first (``not_begun``)."""
    not_begun(m, exc)
    done = undo_returned(m, exc) or returned(m)  # (its action or undo returned here: its
    if done is not None:  # real end, attack46 F6, attack157 F1)
        return done
    if not m.rolling and m.phase is not Phase.DONE:
        m.cut(exc, WHERE)
        op = None if past(m) else schedule.cancel(m, exc)
        if not isinstance(op, Finished):
            op = m.fail(exc) if m.phase is Phase.FORWARD else m.interrupted(exc)
        if isinstance(op, Finished):
            return op
    m.cut(exc, by="DBOS.cancel_workflow")  # (mid-rollback: where it is, naming the stop)
    return m.interrupted(exc)  # type: ignore[return-value]


def past(m: Machine) -> bool:
    """Past the pivot the stop undoes nothing (a cancel would be declined): noted so, naming
    it, as StopExecution's is (attack152 F1: a halt no note said a person's stop made)."""
    if not schedule.past_pivot(m):
        return False
    m.notes = [*m.notes, stopped_past(STOPPED_NOTE)]
    return True


def take(run_id: str, exc: BaseException, left: dict[str, Any] | None = None) -> dict[str, Any]:
    """DBOS raised ``exc`` (``CANCELLED``) for ``run_id``'s result: the record kept here (by
    its handle's ``Hosted``: ``left``, or by run id) if DBOS says the run was cancelled
    (``StoppedUnrecorded`` if none is kept), else ``exc``."""
    status = DBOS.get_workflow_status(run_id)
    if status is None or status.status != "CANCELLED":
        raise exc
    left = left or {}
    stopped = left.get("stopped") or STOPPED.get(run_id)
    while stopped is None and run_id in waits.HERE and waits.OPEN:  # (its workflow here on
        threading.Event().wait(0.05)  # its way to the stop, its undo running, however long:
        stopped = STOPPED.get(run_id) or left.get("stopped")  # kept once there, 158 F3,
        # 160 F1; as long as the runner is open)
    if stopped is not None and REPLAYED in stopped:
        at, last = stopped[REPLAYED]
        raise StoppedUnrecorded(
            f"saga {run_id!r} was stopped by DBOS.cancel_workflow as a launch replayed what "
            f"DBOS had saved of it (its operation {at} of the {last} saved): what it did from "
            "there is not in the record this process kept: have a person check its steps by "
            "hand: an undo not known done may have run, a step not known run may have"
        ) from None
    if stopped is not None:
        return stopped
    late = left.get("ended") or ENDED.get(run_id) or _ended_saved(run_id)
    if late is not None:
        _keep(ASKED, run_id, None)  # (said by the outcome: DBOS's telling of it goes, ``quiet``)
        return {**late, "notes": [*late["notes"], LATE_NOTE]}
    raise StoppedUnrecorded(
        f"saga {run_id!r} was stopped by DBOS.cancel_workflow, and DBOS keeps no record of "
        "what it did; nor does this process (stopped in another process or before it ran "
        "here, or its outcome read already): have a person check its steps by hand: its "
        "undos may still be pending"
    ) from None


def _ended_saved(run_id: str) -> dict[str, Any] | None:
    """The record the run's workflow saved last (``ended``), None if it saved none."""
    saved: dict[str, Any] | None = DBOS.get_event(run_id, ENDED_EVENT, timeout_seconds=0)
    return saved


def forget(run_id: str) -> None:
    """Drop what is kept of ``run_id`` (its outcome or record was read)."""
    STOPPED.pop(run_id, None)
    ENDED.pop(run_id, None)


def clear() -> None:
    """Drop everything kept (the runner closes: no handle of it is read again)."""
    STOPPED.clear()
    ENDED.clear()
    ASKED.clear()
    LATE.clear()
    RETURNED.clear()
    UNDID.clear()


def child_id(run_id: str, n: int) -> str:
    """The id of an at_once branch's ``n``-th child workflow: ``<run id>:<n>``. A run id
    never holds ``:`` (``rules.check_run_id``), so no run a caller starts can take it: DBOS's
    own ``<run id>-<n>`` was taken by a run ``r1-4``, and ``r1``'s fourth branch then failed
    (attack87 F8)."""
    return f"{run_id}:{n}"


def parent_of(workflow_id: str) -> str:
    """The run id of a branch's child workflow (``child_id``); "" for any other workflow."""
    return workflow_id.rpartition(":")[0]
