"""A server lost mid-saga: the one error that says so, with what this process did; once the
saga is finished on a server started again, what that server never heard; and a saga the
server terminated (its history limit, or anyone's ``terminate``): what its history says was
done and not undone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from typing import Any, TypeVar

from temporalio.client import WorkflowHandle
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError as UpdateCut
from temporalio.service import RPCError, RPCStatusCode

from ...errors import RollbackLessonsError
from ...outcome import RunRecord, Table
from ...verdicts import after_effect
from .. import hosted
from ..wire import ErrorRecord
from .server import TemporalUnavailable


def unheard(run: hosted.Hosted, record: RunRecord) -> list[str]:
    """What this process did that the server did not hear in time (the answer was lost
    with a server that stopped, or came after the activity's timeout): a step done here
    that the record does not count done (its effect stays, undone by nobody), an undo done
    here that the record does not count done."""
    done, undone, _ = run.effects()
    notes = [
        f"{step}: its action succeeded in this process, but the server counted it failed "
        "(the answer was lost with the server, or came too late): its effect is "
        + ("undone (its undo was logged before it)" if step in record.compensated else "not undone")
        for step in dict.fromkeys(done)
        if step not in record.completed  # (in doubt and undone too: named, attack155 F1)
    ]
    notes += [
        f"{step}: its undo succeeded in this process, but the server did not hear it in "
        "time: the record does not count it undone"
        for step in dict.fromkeys(undone)
        if step not in record.compensated
    ]
    return notes


async def never_heard(events: AsyncIterator[Any], leaked: Sequence[str],
                      here: Collection[str] = (), run: hosted.Hosted | None = None
                      ) -> list[str]:  # fmt: skip
    """Why a step counted ``leaked`` may have happened: its action's latest attempt ended
    unheard (timed out by the server, or cut by its worker's end), so whether its call ran
    nobody knows. A worker stopped as the SDK started the activity never called it; one
    stopped later may have (attack87 F5: a step that never ran was reported leaked with no
    word why). ``here``: steps this process did (``unheard`` says those). A step every
    attempt of which ran here (``run``'s calls), the latest refusing with nothing done, is
    said so: it did not happen, though the server, which never heard that, counts it
    leaked (attack212 F3: "in doubt ... check it by hand" of a clean refusal)."""
    how = {"activity timed out": "timed out by the server",
           "activity cut short": "cut short by its worker's end"}  # fmt: skip
    latest: dict[str, str] = {}
    tried: dict[str, int] = {}
    async for row in _rows(events):
        if row[0] == "action" and row[1] in leaked:
            latest[row[1]] = row[2]
            tried[row[1]] = tried.get(row[1], 0) + (row[2] == "activity scheduled")
    notes = []
    for step in leaked:
        if step in here or latest.get(step) not in how:
            continue
        calls = [ok for kind, s, ok in run.calls if (kind, s) == ("action", step)] if run else []
        clean = run is not None and step not in run.effected  # (no attempt after its effect)
        if clean and calls and len(calls) == tried[step] and not calls[-1]:
            notes.append(
                f"{step}: its action's latest attempt refused in this process with nothing "
                "done, but the server never heard it (the answer was lost with the server, "
                "or came too late), so its record counts the step leaked: it did not happen"
            )
            continue
        notes.append(
            f"{step}: in doubt, its action's end never heard (its activity {how[latest[step]]}: "
            "its worker may have stopped before its call began, or after): counted leaked, it "
            "may have happened, or never run; check it by hand"
        )
    return notes


async def _rows(events: AsyncIterator[Any]) -> AsyncIterator[tuple[str, str, str]]:
    """(action or undo, step, how its activity stands) for each activity event, in order."""
    async for event, kind, what, step in _activities(events):
        if kind == "activity_task_scheduled_event_attributes":
            yield what, step, "activity scheduled"
        elif kind in _ACTIVITY_ENDS:
            yield what, step, _cut(event) or _ACTIVITY_ENDS[kind]


_ACTIVITY_ENDS = {
    "activity_task_completed_event_attributes": "activity completed",
    "activity_task_failed_event_attributes": "activity failed",
    "activity_task_timed_out_event_attributes": "activity timed out",
    "activity_task_canceled_event_attributes": "activity cancelled",
}


async def _activities(events: AsyncIterator[Any]) -> AsyncIterator[tuple[Any, str, str, str]]:
    """Each event of a history, its kind and, for an activity's (scheduled or ended), which
    call it was (action or undo) and its step."""
    scheduled: dict[int, tuple[str, str]] = {}
    async for event in events:
        kind, what, step = event.WhichOneof("attributes"), "", ""
        if kind == "activity_task_scheduled_event_attributes":
            attributes = event.activity_task_scheduled_event_attributes
            step = json.loads(attributes.input.payloads[0].data)["step"]
            what = "undo" if attributes.activity_type.name.endswith("undo") else "action"
            scheduled[event.event_id] = (what, step)
        elif kind in _ACTIVITY_ENDS:
            what, step = scheduled.get(getattr(event, kind).scheduled_event_id, ("?", "?"))
        yield event, kind, what, step


async def history_table(events: AsyncIterator[Any], *, ids: bool = True) -> Table:
    """A workflow's event history as a table: each activity scheduled (action or undo, and
    its step), how it ended, and each signal; workflow-task bookkeeping left out.
    ``ids=False`` leaves out the event ids (they depend on timing; the order does not)."""
    rows = []
    async for event, kind, what, step in _activities(events):
        if kind == "activity_task_scheduled_event_attributes":
            rows.append((str(event.event_id), "activity scheduled", what, step))
        elif kind in _ACTIVITY_ENDS:
            rows.append((str(event.event_id), _cut(event) or _ACTIVITY_ENDS[kind], what, step))
        elif kind == "workflow_execution_signaled_event_attributes":
            signal = event.workflow_execution_signaled_event_attributes
            answer = json.loads(signal.input.payloads[0].data) if signal.input.payloads else ""
            rows.append((str(event.event_id), f"signal {signal.signal_name}", answer, ""))
    header = ("event", "what happened", "activity", "step")
    if not ids:
        return Table(header[1:], tuple(row[1:] for row in rows))
    return Table(header, tuple(rows))


def _cut(event: Any) -> str:
    """An attempt its worker's end cut (the SDK's ``CancelledError``, an ``AbandonedCall``:
    no record of ours): its end unknown, as a timeout's (attack57 F2: counted failed, a
    step whose call went on left out of what may be in effect)."""
    if event.WhichOneof("attributes") != "activity_task_failed_event_attributes":
        return ""
    info = event.activity_task_failed_event_attributes.failure.application_failure_info
    cut = info.type in ("CancelledError", "AbandonedCall", "WorkerShutdown")
    cut = cut and not info.details.payloads
    return "activity cut short" if cut else ""


async def failed_after_effect(events: AsyncIterator[Any]) -> set[str]:
    """The steps an attempt of which failed after its effect (the failure's details say so,
    as the machine in the workflow was told): in effect, perhaps, whatever a later attempt
    said, unless undone."""
    steps: set[str] = set()
    async for event, kind, what, step in _activities(events):
        if kind == "activity_task_failed_event_attributes":
            ended = event.activity_task_failed_event_attributes
            details = ended.failure.application_failure_info.details.payloads
            if what == "action" and details:
                try:
                    error = ErrorRecord(**json.loads(details[0].data)).to_exception()
                except (TypeError, ValueError):  # not the worker's own record
                    continue
                if after_effect(error):
                    steps.add(step)
    return steps


def _names(steps: Sequence[str]) -> str:
    return ", ".join(steps) if steps else "none"


_LAST = {
    "activity scheduled": "running",
    "activity completed": "ok",
    "activity failed": "failed",
    "activity timed out": "unknown",
    "activity cancelled": "unknown",
    "activity cut short": "unknown",
}
"""How an activity's latest attempt stands, by the latest row of its history."""


class SagaTerminated(RollbackLessonsError):
    """The server terminated the saga's workflow before it ended (its history reached the
    server's limit, or someone terminated it): nothing more runs, nothing more is undone.
    ``done``, ``undone`` and ``failed`` are what its history (and this process's worker)
    say: actions that succeeded, undos that succeeded, actions that failed (perhaps after
    their effect); ``unknown``: actions whose end nobody knows (running when the run was
    terminated, or timed out: their effect may have landed, or may land yet);
    ``in_effect`` is what is, or may be, left for someone to undo (done or unknown, or
    failed after its effect in some attempt; not undone); ``undoing``: those of them whose
    undo was running (or timed out) then: it may undo them yet (attack163 F1)."""

    def __init__(self, message: str, run_id: str, done: tuple[str, ...] = (),
                 undone: tuple[str, ...] = (), failed: tuple[str, ...] = (),
                 unknown: tuple[str, ...] = (), failed_after_effect: tuple[str, ...] = (),
                 undoing: tuple[str, ...] = ()) -> None:  # fmt: skip
        super().__init__(message)
        self.run_id, self.done, self.undone, self.failed = run_id, done, undone, failed
        self.unknown, self.undoing = unknown, undoing
        self.in_effect = tuple(
            s for s in (*done, *unknown, *failed_after_effect) if s not in undone
        )

    OPENING = (
        "the Temporal server terminated saga {run_id} before it ended ({reason}): nothing "
        "more runs or is undone. Its history says"
    )
    """How its account begins (``left.Unread``: a history never read says so)."""

    @classmethod
    def of(cls, run_id: str, reason: str, history: Table,
           running: Sequence[tuple[str, str]] = (),
           effected: Collection[str] = ()) -> SagaTerminated:  # fmt: skip
        """From the workflow's history (``history_table``) and the termination's reason;
        what this process's worker did that the history missed counts too, and its calls
        still ``running`` ((kind, step): their end unknown); a failed step one attempt of
        which failed after its effect (``effected``: ``failed_after_effect``) is in effect,
        perhaps, as the machine would have counted it."""
        last: dict[tuple[str, str], str] = {}
        for row in history.rows:
            if row[-3] in _LAST:
                last[(row[-2], row[-1])] = _LAST[row[-3]]
        done = [s for (what, s), how in last.items() if what == "action" and how == "ok"]
        undone = [s for (what, s), how in last.items() if what == "undo" and how == "ok"]
        failed = [s for (what, s), how in last.items() if what == "action" and how == "failed"]
        unknown = [s for (what, s), how in last.items()
                   if what == "action" and how in ("running", "unknown")]  # fmt: skip
        run = hosted.find(run_id)
        if run is not None:  # ended here, the answer not yet in the history
            here, undid, failed_here = run.effects()
            done += [s for s in dict.fromkeys(here) if s not in done]
            undone += [s for s in dict.fromkeys(undid) if s not in undone]
            failed += [s for s in dict.fromkeys(failed_here) if s not in failed + done]
            effected = {*effected, *run.effected}
        still = [s for kind, s in running if kind == "action"]  # (timed out in doubt, the
        failed = [s for s in failed if s not in still]  # history says failed: attack69 F4)
        unknown = [s for s in dict.fromkeys((*unknown, *still)) if s not in done + failed]
        perhaps = [s for s in failed if s in effected]
        left = [s for s in (*done, *unknown, *perhaps) if s not in undone]
        undoing = [s for s in left if ("undo", s) in running]  # (its call on a thread here)
        return cls(
            cls.OPENING.format(run_id=run_id, reason=reason)
            + f" done: {_names(done)}; undone: "
            f"{_names(undone)}; failed (perhaps after their effect): {_names(failed)}; "
            f"running or timed out (their effect may land): {_names(unknown)}; undos running "
            f"or timed out (they may undo yet): {_names(undoing)}; so still in effect, or "
            f"perhaps, for someone to undo: {_names(left)}.",
            run_id, tuple(done), tuple(undone), tuple(failed), tuple(unknown), tuple(perhaps),
            tuple(undoing),
        )  # fmt: skip


class ServerLost(TemporalUnavailable):
    """The Temporal server stopped answering while a saga ran. ``done``, ``undone`` and
    ``failed`` are what this process's worker did for it: steps whose action succeeded,
    undos that succeeded, actions that failed (perhaps after their effect). The saga's
    history is in the server's database: started again on it (``db_file``, the same
    ``port`` and ``task_queue``), the server hands the saga to a worker again, which
    finishes it (``(await runner.handle_for(saga, run_id)).outcome()``)."""

    def __init__(self, message: str, run_id: str, done: tuple[str, ...] = (),
                 undone: tuple[str, ...] = (), failed: tuple[str, ...] = ()) -> None:  # fmt: skip
        super().__init__(message)
        self.run_id, self.done, self.undone, self.failed = run_id, done, undone, failed

    @classmethod
    def of(cls, run_id: str, error: RPCError | BaseException, also: str = "") -> ServerLost:
        """``also``: what else the caller must know (an answer sent, its fate unknown)."""
        from .activities import IN_FLIGHT  # (its calls still running here: attack236 F2)

        run = hosted.find(run_id)
        done, undone, failed = run.effects() if run is not None else ((), (), ())
        perhaps = [s for s in dict.fromkeys(failed) if run is not None and s in run.effected]
        ran = [s for kind, s, _ in list(IN_FLIGHT.get(run_id, {})) if kind == "action"]
        ran = [s for s in dict.fromkeys(ran) if s not in (*done, *undone)]
        left = [s for s in dict.fromkeys((*done, *perhaps, *ran)) if s not in undone]
        names = _names
        return cls(
            f"the Temporal server stopped answering during saga {run_id} "
            f"({getattr(error, 'message', None) or error}). "
            f"This process did: {names(done)}; undid: {names(undone)}; failed: "
            f"{names(failed)}; running here (its effect may land): {names(ran)}; so still "
            f"in effect: {names(left)}"
            f"{f' (perhaps: failed after its effect: {names(perhaps)})' if perhaps else ''}"
            f". {RESTART}{' ' + also if also else ''}",
            run_id,
            done,
            undone,
            failed,
        )

    def kept_nothing(self) -> ServerLost:
        """The same, said of the runner's own dev server with no ``db_file`` (attack51 F5:
        told to start again a server that kept nothing), what else it said dropped: nothing
        comes back (attack233 F3: "outcome() tells once the server is back")."""
        return self._told(KEPT_NOTHING, alone=True)

    def told_by(self, own: bool, db_file: object, gone: Callable[[], bool]) -> ServerLost:
        """As a runner can tell it: its own dev server with no ``db_file`` kept nothing once
        it is ``gone``, and may answer again while it runs (attack233 F2: a frozen one was
        said gone, and the saga went on); a server reached at an address may keep its
        histories, or not (attack228 F1, F2: "Its history is in the server's database")."""
        if own:
            if db_file is not None:
                return self
            return self.kept_nothing() if gone() else self._told(SILENT)
        return self._told(ON_ADDRESS)

    def _told(self, instead: str, alone: bool = False) -> ServerLost:
        said = str(self).split(RESTART)[0] + instead if alone else str(self)
        said = said.replace(RESTART, instead)
        return ServerLost(said, self.run_id, self.done, self.undone, self.failed)


RESTART = (
    "Its history is in the server's database: start the server again on it (same db_file, "
    "port and task_queue) to finish the saga."
)
SILENT = (
    "Its history is in the memory of the dev server the runner started, with no db_file, "
    "which runs and does not answer: if it answers again, the saga goes on; once it is gone, "
    "the saga went with it, and nothing will finish or undo it."
)
ON_ADDRESS = (
    "If that server keeps its histories (a dev server given a database file, a cluster), "
    "start it again on them (same port and task_queue) to finish the saga; a dev server "
    "that kept them in memory took the saga with it: nothing will finish or undo it."
)
KEPT_NOTHING = (
    "Its history was in the memory of the dev server the runner started, with no db_file: "
    "it went with the server, nothing will finish or undo the saga."
)


class RunDeleted(hosted.UnknownRun):
    """``outcome()`` of a saga the server no longer has (its "no such run", NOT_FOUND): a
    run that ended is deleted once its namespace's retention period passes (the dev
    server's default: a day), its result with it. ``done``, ``undone`` and ``failed`` are
    what this process's worker did for it, if anything."""

    def __init__(self, message: str, run_id: str, done: tuple[str, ...] = (),
                 undone: tuple[str, ...] = (), failed: tuple[str, ...] = ()) -> None:  # fmt: skip
        super().__init__(message)
        self.run_id, self.done, self.undone, self.failed = run_id, done, undone, failed

    @classmethod
    def of(cls, run_id: str, error: RPCError) -> RunDeleted:
        run = hosted.find(run_id)
        done, undone, failed = run.effects() if run is not None else ((), (), ())
        left = [s for s in dict.fromkeys(done) if s not in undone]
        did = (
            f"This process did: {_names(done)}; undid: {_names(undone)}; failed: "
            f"{_names(failed)}; so still in effect, as far as it knows: {_names(left)}."
            if run is not None
            else "This process ran none of its steps."
        )
        return cls(
            f"the Temporal server has no saga {run_id} any more ({error.message}): a run that "
            "ended is deleted once its namespace's retention period passes, its outcome with "
            f"it (or it ran on another server or database). {did} Check its steps by hand.",
            run_id, tuple(done), tuple(undone), tuple(failed),
        )  # fmt: skip


class ServerSlow(TemporalUnavailable):
    """The Temporal server answers, but a saga did not say in time whether it took a
    person's answer (the Update that asks it cut short by the SDK's timeout, again): the
    answer's fate is not known, and nothing needs restarting (``pending()`` tells)."""

    @classmethod
    def of(cls, run_id: str, error: BaseException, also: str = "") -> ServerSlow:
        """A call about saga ``run_id`` cut short (``error``) by a server that still answers."""
        said = getattr(error, "message", None) or getattr(error.__cause__, "message", None)
        return cls(
            f"the Temporal server answers, but not in time for saga {run_id} "
            f"({said or error}): it is slow, not stopped; nothing needs restarting, ask "
            f"again.{' ' + also if also else ''}"
        )


T = TypeVar("T")


async def ask(workflow: WorkflowHandle[Any, Any], call: Awaitable[T], also: str = "") -> T:
    """Every call the runner makes to the server about a saga goes through here. The
    server's own "no such run" (NOT_FOUND) is raised as it came (the caller says what that
    means); a call cut short by the caller's cancel stays that cancel; any other failure is
    ``ServerLost`` (start the server again) only if the server does not answer now either,
    else ``ServerSlow`` (attack24's L4: at load 30 a Query hit the SDK's timeout on a server
    that ran, and was told "start the server again"). ``also``: what else to say (the fate
    of an answer or a cancel sent)."""
    try:
        return await call
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise
        raise await _unanswered(workflow, exc, also) from None
    except UpdateCut as exc:  # the SDK's word for an Update cut short, either way
        if isinstance(exc.__cause__, asyncio.CancelledError):
            raise exc.__cause__ from None  # the caller's cancel, as it came
        raise await _unanswered(workflow, exc, also) from None


async def _unanswered(workflow: WorkflowHandle[Any, Any], error: BaseException,
                      also: str) -> TemporalUnavailable:  # fmt: skip
    """Lost or slow? A call that could not connect, the SDK retrying it ``LOST_AFTER``
    seconds (UNAVAILABLE), is lost; any other (its deadline passed, cancelled, the server's
    own failure) is asked again of the server by a Describe."""
    said: TemporalUnavailable = ServerSlow.of(workflow.id, error, also)
    try:
        if isinstance(error, RPCError) and error.status is RPCStatusCode.UNAVAILABLE:
            said = ServerLost.of(workflow.id, error, also)
        else:
            await workflow.describe()
    except RPCError as lost:
        if lost.status is not RPCStatusCode.NOT_FOUND:  # (its word: it answers)
            said = ServerLost.of(workflow.id, lost, also)
    said.error = error
    return said
