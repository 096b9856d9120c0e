"""Sagas left unfinished on a dev server that keeps nothing (the runner's own, no
``db_file``) when its runner closes: the server's record goes with it, so close names each
one and what it did, from that record, before the server stops (attack46 F1: it was lost
silently, done steps standing and named by nobody)."""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING

from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from ..._words import counted
from ...outcome import Table
from .. import hosted
from . import ending
from .activities import IN_FLIGHT
from .lost import SagaTerminated, failed_after_effect, history_table

if TYPE_CHECKING:
    from temporalio.client import Client

    from ...outcome import Outcome
    from .handle import SagaHandle
    from .runner import TemporalRunner

REASON = "its runner closed the dev server it had started, which keeps nothing (no db_file)"


class SagasLost(RuntimeWarning):
    """A runner closed its own dev server (no ``db_file``: it keeps nothing) while sagas ran
    on it: their record went with the server, nothing will finish or undo them. The
    message names each, with what its record said was done, undone and still in effect
    (``runner.lost``: run id -> ``SagaTerminated``, its fields)."""


async def unfinished(client: Client, known: Iterable[str], found: dict[str, SagaTerminated],
                     ended: set[str]) -> None:  # fmt: skip
    """Every saga still running on the server (those this runner started or took up, and
    any the server lists), each with what its history (and this process's worker) says it
    did, as ``SagaTerminated`` counts it. Read before the server stops; a run it cannot
    read is named all the same, its steps unknown. Into ``found`` as each is read (a caller
    that stops waiting keeps those); a run read as ended, into ``ended``."""
    ids = dict.fromkeys(known)
    try:
        async for listed in client.list_workflows('ExecutionStatus="Running"'):
            ids.setdefault(listed.id)
    except RPCError:  # (its visibility unanswered: the runs this runner knows)
        pass
    for run_id in ids:
        workflow = client.get_workflow_handle(run_id)
        try:
            if (await workflow.describe()).status is not WorkflowExecutionStatus.RUNNING:
                ended.add(run_id)  # (a call of it may run on: its saga ended all the same)
                continue
            history = await history_table(workflow.fetch_history_events())
            effected = await failed_after_effect(workflow.fetch_history_events())
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:  # (an id asked for, never a run here)
                continue
            found[run_id] = _unread(run_id)  # (this process's word)
            continue
        found[run_id] = SagaTerminated.of(run_id, REASON, history, _running(run_id), effected)


def unread(known: Iterable[str], found: dict[str, SagaTerminated], ended: set[str]) -> None:
    """Each run ``unfinished`` had not named when its wait ended (a server frozen or gone
    does not answer, its client retrying) that this process still hosts or has a call of
    running: named all the same, by this process's word (attack218 F1: close named none,
    ``runner.lost`` empty, the steps done here standing, said by nobody). A run read as
    ended is not: a call of it past its timeout runs on, its saga ended (attack255 F1)."""
    for run_id in known:
        if run_id in found or run_id in ended:
            continue
        if run_id in hosted.RUNS or IN_FLIGHT.get(run_id):
            found[run_id] = _unread(run_id)


def _running(run_id: str) -> list[tuple[str, str]]:
    return [(kind, step) for kind, step, _ in list(IN_FLIGHT.get(run_id, {}))]


def _unread(run_id: str) -> SagaTerminated:
    return Unread.of(run_id, REASON, Table(_HEADER, ()), _running(run_id))


class WorkerGone(RuntimeWarning):
    """``runner.run``'s caller was cancelled, its saga asked to cancel and compensate, but the
    runner's worker ended first (its event loop ending: ``asyncio.run`` after a ``sys.exit``
    in a SIGTERM handler): nothing here runs the undos, so the wait stopped. The message
    names what this process did, what is in doubt, and where the saga is left."""


CANCEL_SENT = 3.0
"""Seconds a ``run`` whose worker is gone still waits for its saga's cancel to reach the
server (a client's call: no worker needed), so that a relaunch compensates it."""


async def compensated(handle: SagaHandle, stopped: asyncio.CancelledError) -> Outcome:
    """The saga of a ``run`` whose caller was cancelled, cancelled in its turn and awaited,
    shielded, to its end: it compensates (attack42 F11: a Ctrl-C left every effect standing).
    A second cancel stops the wait, the server has the saga; so does the runner's worker
    being stopped (its loop's end: a ``sys.exit`` in a SIGTERM handler, a second Ctrl-C),
    nothing here runs the undos then: the cancel (``stopped``) is raised, noted and warned
    (``WorkerGone``) with what is in doubt and where the saga is left (attack51 F3). The
    saga's cancel is sent all the same (attack57 F1: the worker cancelled at the same
    instant, it never was, and a relaunch went on forward), and the words say if it was."""
    asking = asyncio.ensure_future(handle.cancel())

    async def cancel_then_wait() -> Outcome:
        await asyncio.shield(asking)
        return await handle.outcome()

    waiting, worker = asyncio.ensure_future(cancel_then_wait()), handle.runner._worker_task

    def gone() -> bool:  # (cancelled, or its shutdown begun by the loop's end)
        return ending.gone(worker)

    raised: BaseException = stopped
    SAYING.add(handle.run_id)  # (said below, the cancel with it: not by ``gone_unsaid``)
    try:
        while not waiting.done() and not gone():
            await asyncio.wait({waiting, worker}, timeout=0.1)  # (its shutdown may never end)
    except asyncio.CancelledError:  # a second cancel: with the worker's too (a second Ctrl-C,
        if not gone():  # asyncio.run's end) it is said
            raise  # below (attack54 F2: a bare KeyboardInterrupt); else the worker runs it
    except (KeyboardInterrupt, SystemExit) as cut:  # (asyncio.run's second Ctrl-C raised in
        raised = cut  # this frame: the loop, its worker with it, ends next; said, ci124)
    finally:
        SAYING.discard(handle.run_id)
    if raised is stopped and waiting.done() and not waiting.cancelled():
        return waiting.result()
    TOLD.add(handle.run_id)  # (said here: not by the outcome() this cancels too)
    waiting.cancel()
    with contextlib.suppress(BaseException):  # (bounded; a further cancel ends it)
        await asyncio.wait_for(asyncio.shield(asking), CANCEL_SENT)
    sent = asking.done() and not asking.cancelled() and asking.exception() is None
    note = worker_gone(handle.runner, handle.run_id, sent)
    warnings.warn(WorkerGone(note), stacklevel=3)
    raised.add_note(note)
    raise raised


SAYING: set[str] = set()
"""The runs a ``compensated`` waits for: its ``WorkerGone`` says the cancel too (attack168
F3: the loop's end cancelled the wait first, and ``gone_unsaid`` warned without it)."""
TOLD: set[str] = set()
"""The runs a ``WorkerGone`` was said of, by ``compensated``: the ``outcome()`` its loop's
end cancels says nothing more (``gone_unsaid``)."""


def gone_unsaid(handle: SagaHandle, stopped: asyncio.CancelledError) -> None:
    """``outcome()``'s wait cancelled as the runner's worker is gone (its event loop ending: a
    ``sys.exit`` or Ctrl-C raised inside the SDK as it starts an activity, before any call of
    ours): nothing here runs the saga any more. Said as ``WorkerGone``, and in the cancel's
    note: what this process did, what is in doubt, and who can finish it (attack87 F5: the
    process exited with nothing on stderr, the saga left unnamed). Once per run."""
    worker = getattr(handle.runner, "_worker_task", None)
    if worker is None or not ending.gone(worker) or handle.run_id in TOLD | SAYING:
        return
    TOLD.add(handle.run_id)
    note = worker_gone(handle.runner, handle.run_id, asked=False)
    warnings.warn(WorkerGone(note), stacklevel=3)
    stopped.add_note(note)


def worker_gone(runner: TemporalRunner, run_id: str, sent: bool = True, asked: bool = True) -> str:
    """What ``WorkerGone`` says of saga ``run_id``: this process's calls (those still running
    here are in doubt), and who can finish it (the server, a relaunch on the ``db_file``):
    compensated if its cancel was ``sent``, else forward; a saga not ``asked`` to cancel
    (its ``outcome()`` awaited as the worker went) goes on as it would have."""
    run, running = hosted.find(run_id), IN_FLIGHT.get(run_id, {})
    done, undone, failed = run.effects() if run is not None else ((), (), ())
    doubt = [s for kind, s, _ in running if kind == "action"]
    undoing = [s for kind, s, _ in running if kind == "undo" and s not in undone]
    perhaps = [s for s in failed if run is not None and s in run.effected]
    left = [s for s in dict.fromkeys((*done, *perhaps, *doubt)) if s not in undone]
    then = (
        "finishes it"
        if not asked
        else _undone_or_forward(run, doubt)
        if sent
        else "goes on with it, forward, unless its cancel reached the server (not confirmed "
        "here: cancel() it to be sure)"
    )
    if runner.env is None:
        where = (
            f"the server at {runner.address} keeps it: a runner on task queue "
            f"{runner.task_queue!r} takes it up (handle_for) and {then}"
        )
    elif runner.db_file is not None:
        where = (
            f"the dev server it started stops with it; {runner.db_file} keeps the saga: a "
            f"runner started again on the same db_file, port and task_queue takes it up "
            f"(handle_for) and {then}"
        )
    else:
        where = (
            "the dev server it started stops with it, keeping nothing (no db_file): the saga "
            "is lost, nothing will undo it"
        )
    names = ", ".join
    return (
        f"the worker running saga {run_id} was stopped (its event loop ending) before the saga"
        + (
            " ended"
            if not asked
            else ", asked to cancel, compensated"
            if sent and not then.startswith("finishes")
            else ", asked to cancel, ended"
            if sent
            else ", whose cancel the server did not confirm, ended"
        )
        + ": nothing in this process finishes it. This process did: "
        f"{names(done) or 'none'}; undid: {names(undone) or 'none'}; in doubt (running here, "
        f"their end unknown): {names(doubt) or 'none'}; undoing here as it stopped (each undo's "
        f"end unknown): {names(dict.fromkeys(undoing)) or 'none'}; so in effect, or perhaps: "
        f"{names(left) or 'none'}. {where[0].upper()}{where[1:]}."
    )


def _undone_or_forward(run: hosted.Hosted | None, doubt: list[str]) -> str:
    """What a relaunch does with a saga asked to cancel, by its pivot (attack59 L1: the same
    hedge for every saga): undone, unless its irreversible step started (a cancel is then
    declined, the saga finished forward); said for sure where this process knows."""
    pivots = [] if run is None else [s.name for s in run.saga.specs() if s.kind == "pivot"]
    if run is not None and not pivots:
        return "undoes it (asked to cancel)"
    cut = [p for p in pivots if p in doubt]  # (cut mid-call: it may have happened)
    if cut:
        return (
            f"leaves it for a person (its irreversible step {cut[0]!r} was cut mid-call: "
            "whether it happened, only a person can tell)"
        )  # (attack61 M1: it said forward; the relaunch halts, as the README says)
    done = [p for p in pivots if ("action", p, True) in run.calls]  # type: ignore[union-attr]
    if done:
        return (
            f"finishes it forward (its irreversible step {done[0]!r} happened here: the "
            "cancel is declined)"
        )
    said = f" {pivots[0]!r}" if pivots else ""
    return f"undoes it (asked to cancel), unless its irreversible step{said} started: forward then"


class Unread(SagaTerminated):
    """A saga whose history the server did not give (it stopped answering): what this
    process's worker did for it, as far as it knows (attack233 F4: told as a history the
    server gave, of a saga it terminated)."""

    OPENING = (
        "saga {run_id} was left unfinished, its history unread ({reason}): nothing more runs "
        "or is undone. This process did:"
    )


def server_gone(address: str) -> bool:
    """No dev server of this process listens at ``address`` (killed; a frozen one does)."""
    from .server import _server_processes, listening_sockets, server_binary

    port = int(address.rsplit(":", 1)[1])
    return not any(
        port in {p for _, p in listening_sockets(pid)} for pid in _server_processes(server_binary())
    )


_HEADER = ("event", "what happened", "activity", "step")


def said(lost: SagaTerminated) -> str:
    """One run's account, in words."""
    names = ", ".join
    unread = "its history unread, this process did: " if isinstance(lost, Unread) else ""
    nobody = [s for s in lost.in_effect if s not in lost.undoing]
    return (
        f"saga {lost.run_id}: {unread}done: {names(lost.done) or 'none'}; undone: "
        f"{names(lost.undone) or 'none'}; running or timed out (their effect may land): "
        f"{names(lost.unknown) or 'none'}; so still in effect, or perhaps, undone by nobody: "
        f"{names(nobody) or 'none'}"
        + (f"; or by its undo still running: {names(lost.undoing)}" if lost.undoing else "")
    )


def warning(lost: dict[str, SagaTerminated]) -> SagasLost:
    one = len(lost) == 1  # (its, it; their, them: learn83 F7)
    return SagasLost(
        f"closed with {counted(len(lost), 'saga')} unfinished on the dev server it had "
        f"started, which keeps nothing (no db_file): {'its' if one else 'their'} record went "
        f"with it, nothing will finish or undo {'it' if one else 'them'} (to leave nothing "
        f"standing, cancel {'it' if one else 'each'} and await its outcome before closing): "
        + " | ".join(said(run) for run in lost.values())
    )
