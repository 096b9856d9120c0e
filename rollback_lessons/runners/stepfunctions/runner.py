"""The runner: a state machine per saga, an execution per run, and the worker (in this
process) that does each task Step Functions hands out through SQS."""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..._checks import check_flag
from ..._graph_drive import CancelLike, asked_of, first_of
from ..._guards import check_completion
from ...errors import InvalidPipelineError
from ...faults import InjectionLike, saga_faults
from ...operations import check_answers
from ...outcome import Outcome
from ...policies import PolicyLike, check_seconds, data_only
from ...rules import check_state, default_run_id
from ...saga import Saga, State
from ...schedule import GraphMachine
from ...snapshots import before_run
from ..closed import STOPS, Closable, Gone, closed_under, collected, stop_dropped
from ..error_record import keeping
from ..heard import Heard
from ..history import Worker, noted, over_noted, walk
from ..names import execution_name
from ..wire import WRITTEN_LIST, SagaPlan, needs_graph, outcome_of, plan_of
from .asl import ENGINE, RUNS_ON, StepFunctionsError, check_retry_types, error_name, plan_asl
from .asl_graph import graph_asl
from .engine import answer_late, refuse_engine_failures
from .history import OVER, Execution, check_answered, visits
from .live import Idle, Live, TimedOut
from .matched import Matching, cause_of
from .moto_start import backend, let_go, refused
from .stop import ended_within, stop_execution


class StepFunctionsRunner(Closable):
    """Runs sagas as Step Functions executions, with the worker in this process.

    ``with StepFunctionsRunner.start() as runner: outcome = runner.run(saga, state)``
    """

    def __init__(
        self,
        clients: tuple[Any, Any],
        where: str,
        role_arn: str,
        stack: contextlib.ExitStack,
        stop: Callable[[], None] = lambda: None,
    ) -> None:
        self._stop_server = stop  # (its own server's; also when this runner is dropped
        weakref.finalize(self, stop_dropped, stop)  # unclosed, or lost to a Ctrl-C as
        # ``start`` returned; a Ctrl-C as it runs held until it returned: attack61 M3)
        self.sfn, self.sqs = clients
        self.where, self.role_arn, self._stack = where, role_arn, stack
        self.queue_url = self.sqs.create_queue(
            QueueName=f"rollback-lessons-{uuid.uuid4().hex[:8]}"
        )["QueueUrl"]
        self._machines: dict[str, str] = {}
        self._inboxes: dict[str, list[dict[str, Any]]] = {}  # each run's tasks, taken for it
        self._lock = threading.Lock()

    @classmethod
    def start(cls, where: str = "moto") -> StepFunctionsRunner:
        """``moto`` (in this process), ``moto_server`` (a server process on 127.0.0.1, stopped
        on close) or ``aws`` (your account: ``ROLLBACK_LESSONS_SFN_ROLE_ARN`` names the role
        Step Functions runs as; region and credentials from the usual AWS environment)."""
        if where not in ("moto", "moto_server", "aws"):
            raise InvalidPipelineError(f"where must be moto, moto_server or aws, got {where!r}")
        try:
            import boto3
        except ImportError:
            raise StepFunctionsError(
                "boto3 is not installed: pip install 'rollback-lessons[stepfunctions]'"
            ) from None
        stack = contextlib.ExitStack()
        try:
            options, role, stop = backend(where, stack)
            clients = (boto3.client("stepfunctions", **options), boto3.client("sqs", **options))
            return cls(clients, where, role, stack, stop)
        except BaseException as exc:  # (a Ctrl-C while the clients are made too: moto's mock
            stack.close()  # ends with them)
            if isinstance(exc, StepFunctionsError) or not isinstance(exc, Exception):
                raise
            raise StepFunctionsError(f"could not reach Step Functions ({where}): {exc}") from None

    def machine(self, asl: dict[str, Any]) -> str:
        """The ARN of a state machine with this definition (created once)."""
        from .asl import compact  # (checked against the quota, sent as measured: F7)

        self._refuse_if_closed("machine")
        text = json.dumps(asl, sort_keys=True)
        if text not in self._machines:
            name = f"saga-{uuid.uuid4().hex[:12]}"
            self._machines[text] = self.sfn.create_state_machine(
                name=name, definition=compact(asl), roleArn=self.role_arn
            )["stateMachineArn"]
        return self._machines[text]

    def execute(
        self,
        saga: Saga,
        state: State | None = None,
        *,
        inject: InjectionLike | None = None,
        policy: PolicyLike | None = None,
        register: str | None = None,
        answers: Sequence[str] = (),
        timeout: float | None = None,
        asl: dict[str, Any] | None = None,
        undo_order: str = "reverse",
        completion: Sequence[str] | None = None,
        cancel: CancelLike | None = None,
        stop_execution: bool = False,
    ) -> Execution:
        """Run ``saga`` as an execution and read it back. ``answers`` are what the person
        says, in turn, when a halted undo asks ("retry", "fixed", "leave"); with none left,
        "leave" (halted, as in process). ``asl`` runs that state machine instead of
        ``to_asl``'s (one wired by hand): its run is held to the saga's rules all the same,
        and ``HistoryDiverged`` says where it strays. All is checked before anything runs
        (a policy that decides in Python: ``UnsupportedPolicy``).

        A saga with parallel groups, an undo order other than ``reverse``, ``completion``
        or ``cancel`` run the graph form (``asl_graph``; ``wire.needs_graph`` decides),
        served by ``live``: the saga machine in this process answers what comes next.
        ``completion`` plays a timing as ``saga.run(..., completion=...)`` does; ``cancel``
        (an Event, or a function answering True) cancels it as ``saga.run(..., cancel=...)``
        does (compensated, ``cancelled``); with ``stop_execution=True``, by Step Functions'
        own ``StopExecution`` (``ABORTED``, nothing undone).

        A Ctrl-C or ``sys.exit`` in a step's action fails that step for good, as in
        ``saga.run``: the execution undoes what was done, then it is raised again. One
        anywhere else (the worker waiting, a request), an error, or ``timeout`` (seconds;
        None, the default: the execution is served to its end, however long its retries
        wait) stops the execution where it is: nothing more runs there, nothing is undone,
        and the error says which steps are done and not undone. A closed runner refuses it
        (``RunnerClosed``): its clients would reach AWS itself once moto's mock ended."""
        self._refuse_if_closed("execute")
        check_state(state)
        if timeout is not None:  # (as the plain number it holds: a Decimal, attack108 F8)
            timeout = check_seconds(timeout, "timeout")
        faults = saga_faults(inject, saga)
        answers = check_answers(answers)
        check_completion(completion, saga.names)
        chosen = data_only(policy if policy is not None else saga.policy, ENGINE)
        check_retry_types([*(s.retry for s in saga.specs()), chosen.retry])  # type: ignore[union-attr]
        run_id = default_run_id(saga.name)  # (its undo keys': attack223 F1)
        suffix = run_id.rsplit("-", 1)[1]
        plan = plan_of(
            saga, run_id, policy=chosen, register=register,  # type: ignore[arg-type]
            undo_order=undo_order, graphs=True, engine=ENGINE,  # type: ignore[arg-type]
        )  # fmt: skip
        live = needs_graph(plan, undo_order=plan.undo_order, completion=completion,
                           cancel=cancel, form=WRITTEN_LIST)  # fmt: skip
        asked = asked_of(cancel)
        if live and asl is not None:
            raise InvalidPipelineError("a state machine wired by hand runs a list saga only")
        if check_flag(stop_execution, "stop_execution") and cancel is None:
            raise InvalidPipelineError("stop_execution=True needs a cancel to stop on")
        if live:
            asl = graph_asl(plan)
        asl = plan_asl(plan) if asl is None else asl
        world: State = {} if state is None else state
        before = before_run(world) if state is not None else None
        worker = Worker(run_id, saga, world, faults, list(answers), plan=plan,
                        matched=Matching(saga, chosen.retry))  # type: ignore[union-attr]  # fmt: skip
        with self._answering(), self._running(saga.name):
            if live:
                return self._live(saga, state, plan, asl, worker, before, suffix, timeout,
                                  first_of(completion) if completion is not None else None,
                                  asked, stop_execution)  # fmt: skip
            return self._listed(saga, state, plan, asl, worker, before, suffix, timeout)

    @contextlib.contextmanager
    def _answering(self) -> Iterator[None]:
        """Step Functions (or SQS) stopped answering mid-run (the server gone, the network
        down, after botocore's own retries): the package's ``StepFunctionsError``, in one
        line, its notes (what is left in effect) kept; not botocore's own error."""
        try:
            yield
        except Exception as exc:
            if not type(exc).__module__.startswith("botocore") or not _unanswered(exc):
                raise
            error = StepFunctionsError(f"Step Functions ({self.where}) stopped answering: {exc}")
            for note in getattr(exc, "__notes__", ()):
                error.add_note(note)
            raise error from None

    def _listed(self, saga: Saga, state: State | None, plan: SagaPlan, asl: dict[str, Any],
                worker: Worker, before: dict[str, Any] | None, suffix: str,
                timeout: float | None) -> Execution:  # fmt: skip
        """An execution of the list form, served by ``_serve``, then walked (``walk``)."""
        arn = self._arn(asl, execution_name(saga.name, suffix))
        with self._inbox(plan.run_id), self._stopped_if_cut(arn, worker):
            self._start(arn, plan.run_id)
            status = self._serve(arn, plan, worker, timeout)
            worker.over = (None, OVER)  # (a Ctrl-C from now on: the execution was over)
        with over_noted(worker, None, OVER):
            history = self._history(arn)
            refuse_engine_failures(history, plan, worker)  # (a task the engine ended: F3)
            record = walk(plan, visits(history, plan), worker.calls)
            outcome = outcome_of(saga, record, before=before, state=state)
            Heard(saga).after(outcome)  # (the machine replays the history: told once over)
            worker.reraise(outcome)  # (a Ctrl-C in an action: once what was done is undone)
            return Execution(outcome, asl, history, status, worker.calls)

    def _arn(self, asl: dict[str, Any], name: str) -> str:  # (known before it starts)
        return f"{self.machine(asl).replace(':stateMachine:', ':execution:', 1)}:{name}"

    def _start(self, arn: str, run_id: str) -> None:
        machine, name = arn.replace(":execution:", ":stateMachine:", 1).rsplit(":", 1)
        said = json.dumps({"run": run_id, "queue_url": self.queue_url})
        started = self.sfn.start_execution(stateMachineArn=machine, name=name, input=said)
        if started["executionArn"] != arn:  # (AWS and moto name it so: served, stopped so)
            raise StepFunctionsError(f"the execution started as {started['executionArn']}")

    @contextlib.contextmanager
    def _stopped_if_cut(self, arn: str, worker: Worker) -> Iterator[None]:
        """Starting, then serving the execution: whatever raises here (a Ctrl-C, a request
        that fails, the timeout) stops the execution where it is, if it started (else it
        waits for ever), and the error says what is left in effect: nothing is undone."""
        try:
            yield
        except BaseException as exc:
            how = f"could not be stopped (it may still run: {arn})"  # (for whoever stops it)
            again: BaseException | None = None  # a second Ctrl-C as it is stopped (attack51
            try:  # L5: two bare KeyboardInterrupts): raised, with the note, once it is made
                why = "Timeout" if isinstance(exc, TimedOut) else "Stopped"
                how = self._stop(arn, why, f"the runner stopped: {type(exc).__name__}")
            except Exception as failed:  # (its own moto_server refusing: gone, with it)
                gone = self._closed and self.where != "aws"  # (its moto closed: 94 F2)
                if gone or (self.where == "moto_server" and refused(failed)):  # (56 L1)
                    how = f"went with the runner's own {self.where} (it is gone: nothing runs it)"
            except BaseException as second:
                again = second
            worker.stop = exc  # (in a wait to retry an undo: the rollback ends there)
            lines = worker.stopped(head := f"Step Functions: the execution {how}")  # (and
            if isinstance(exc, TimedOut) and len(lines) == 1:  # saga.run's: 151 F2) (its
                lines = [] if how == "was stopped" else [head]  # message says what's left)
            noted((exc, again), lines)
            with contextlib.suppress(Exception):  # (its events told, as far as it went; on
                worker.tell_cut(said := lines or [str(exc)])  # another error, the stop's words)
            told = getattr(worker.heard, "raised", None)  # (a callback's Ctrl-C, its undos
            later = again or (told if told is not exc else None)  # stopped: raised, 150 F3)
            if later is not None:
                noted((later,), said)
                raise later from exc
            if (closed := closed_under(self, exc, self._where())) is not None:
                raise closed from exc  # (the close's, met in the engine: attack196)
            raise

    def _stop(self, arn: str, error: str, cause: str) -> str:
        return stop_execution(self.sfn, arn, error, cause)

    def _live(
        self, saga: Saga, state: State | None, plan: SagaPlan, asl: dict[str, Any],
        worker: Worker, before: dict[str, Any] | None, suffix: str, timeout: float | None,
        pick: Any, asked: Any, stop_execution: bool,
    ) -> Execution:  # fmt: skip
        """An execution of the graph form, served by ``live.Live`` (the machine decides)."""
        after = plan.after or {s.name: [p.name] if p else [] for s, p in
                               zip(plan.steps, [None, *plan.steps], strict=False)}  # fmt: skip
        machine = GraphMachine(
            plan.undo_policy(), plan=plan.specs(), after={s: tuple(d) for s, d in after.items()},
            undo_order=plan.undo_order, name=plan.name, run_id=plan.run_id,
        )  # fmt: skip
        heard = Heard(saga)
        heard.live(machine)  # each event told as the machine makes it
        worker.machine, worker.heard = machine, heard  # (what is in effect if it stops)
        arn = self._arn(asl, execution_name(saga.name, suffix))
        deadline = _deadline(timeout)
        served = Live(self, arn, plan, worker, machine, pick=pick, asked=asked, timeout=timeout,
                      stop_execution=stop_execution, deadline=deadline)  # fmt: skip
        served.heard = heard
        with self._inbox(plan.run_id), self._stopped_if_cut(arn, worker):
            self._start(arn, plan.run_id)
            served.run()
            if served.stopped:  # moto 5.2.5 may never end an execution stopped mid-transition
                deadline = min(deadline, time.monotonic() + 5)
            finishing = Idle()  # each ask a request: 2 ms, then longer
            while (status := self.sfn.describe_execution(executionArn=arn)["status"]) == "RUNNING":
                if served.stopped and time.monotonic() > deadline:
                    break  # stopped as far as this runner goes: the status moto reports
                if time.monotonic() > served.deadline:  # (its work done: a moment more)
                    if (status := ended_within(self.sfn, arn) or status) == "RUNNING":
                        raise TimedOut.of(timeout, worker)
                    break
                finishing.wait()
            worker.over = (heard, OVER)  # (a Ctrl-C from now on: the execution was over)
        with over_noted(worker, heard, OVER):
            outcome = outcome_of(saga, machine.record(), before=before, state=state)
            try:
                history = self._history(arn)
            except Exception:  # moto (5.2.5) cannot list a Parallel state stopped mid-way
                if not served.stopped:
                    raise
                history = []
            if history and not served.stopped:
                refuse_engine_failures(history, plan, worker)  # (a task the engine ended)
                check_answered(history, plan, worker)  # (the machine's calls, or diverged)
            worker.reraise(outcome)  # (a Ctrl-C in an action: once what was done is undone)
            heard.reraise(outcome)  # (a Ctrl-C in on_event: likewise)
            return Execution(outcome, asl, history, str(status), worker.calls)

    def run(self, saga: Saga, state: State | None = None, **options: Any) -> Outcome:
        """Run ``saga`` on Step Functions and return its Outcome (like ``saga.run``; its
        errors as they were raised here: ``error_record.keeping``)."""
        self._refuse_if_closed("run")
        execute = self.execute
        del self  # (this frame, which its error's traceback reaches, holds no runner: L1)
        with keeping(saga.name):
            outcome = execute(saga, state, **options).outcome
        del execute
        return outcome

    def _serve(self, arn: str, plan: SagaPlan, worker: Worker, timeout: float | None) -> str:
        """Be the worker until the execution ends (or ``timeout`` seconds passed): each SQS
        message one task; its status asked only when none came (one that came: it runs)."""
        deadline = _deadline(timeout)
        wait = 1 if self.where == "aws" else 0
        idle = Idle()
        while True:
            if time.monotonic() > deadline:  # (unless it ends in a moment, its last task done:
                if (status := ended_within(self.sfn, arn)) is not None:  # 167 F3, 171 F1)
                    return status
                raise TimedOut.of(timeout, worker)
            messages = self.tasks(worker.run_id, wait)
            for body in messages:
                made = worker.task(body["call"], plan.step_of(body["step"]), body.get("timeout"))
                if made.error is None:
                    output = {"answer": made.answer} if made.call == "ask" else {}
                    ok = self.sfn.send_task_success  # (one timed out: let go, ``engine``)
                    answer_late(ok, taskToken=body["token"], output=json.dumps(output))
                else:
                    answer_late(
                        self.sfn.send_task_failure,
                        taskToken=body["token"],
                        error=RUNS_ON if made.final else error_name(made.error.name),
                        cause=cause_of(made.error),  # (JSON, cut to fit: ``cause_of``)
                    )
            if messages:
                idle.reset()  # the engine takes a moment to go on: the first wait is short
            elif idle.settled:  # (a task most often comes within the first short waits)
                status = self.sfn.describe_execution(executionArn=arn)["status"]
                if status != "RUNNING":
                    return str(status)
            idle.wait()

    @contextlib.contextmanager
    def _inbox(self, run_id: str) -> Iterator[None]:
        """While run ``run_id`` is served, the tasks for it another run takes from the shared
        queue are kept for it (two sagas at once on one runner, from two threads)."""
        with self._lock:
            self._inboxes[run_id] = []
        try:
            yield
        finally:
            with self._lock:
                self._inboxes.pop(run_id, None)

    def tasks(self, run_id: str, wait: int = 0) -> list[dict[str, Any]]:
        """The task messages of run ``run_id`` waiting: those another run served at the same
        time took for it, and those in the queue now (``receive``); another run's are handed
        to it (its inbox), never dropped. A task of no run being served is dropped (a run
        over: its execution was stopped or ended)."""
        got = self.receive(wait)
        with self._lock:
            for body in got:
                inbox = self._inboxes.get(body.get("run", ""))
                if inbox is not None:
                    inbox.append(body)
            mine = self._inboxes.get(run_id, [])
            self._inboxes[run_id] = []
        return mine

    def receive(self, wait: int = 0) -> list[dict[str, Any]]:
        """The task messages waiting in the queue (up to 10), taken out of it (one request
        to delete them all): their bodies."""
        self._refuse_if_closed("receive")
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait
        ).get("Messages", [])
        if messages:
            entries = [
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)
            ]
            failed = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries).get(
                "Failed", []
            )
            if failed:
                raise StepFunctionsError(f"SQS did not delete a task message: {failed[0]}")
        return [json.loads(m["Body"]) for m in messages]

    def _history(self, arn: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        token: dict[str, str] = {}
        while True:
            page = self.sfn.get_execution_history(executionArn=arn, maxResults=1000, **token)
            events += page["events"]
            if not page.get("nextToken"):
                return events
            token = {"nextToken": page["nextToken"]}

    def _where(self) -> str:
        return f"on {self.where}"

    def close(self) -> None:
        """Delete the task queue (its own ``moto_server``'s goes with it) and stop moto (its
        mock, or its server); then every call is refused (``RunnerClosed``), and so is every
        request of a run another thread still serves (its clients are ``Gone``). Closing
        again does nothing. Its server is stopped whatever instant a Ctrl-C lands in close
        (attack59 M1: one before the stack's close left it running), then the Ctrl-C raised."""
        try:  # (its stack, then the server again: one of the two is never cut)
            with self._stack:  # (a ``with``: a ``try`` line in a ``try`` is in neither of them)
                self._left(STOPS)  # (in it: a Ctrl-C there stops the server all the same)
                if not self._closed:
                    self._closed, clients = True, [self.sfn, self.sqs]  # (none finalized here)
                    self.sfn, self.sqs = Gone(self, self._where()), Gone(self, self._where())
                    let_go(clients, self.where, self.queue_url, self._machines, self.sfn)
                    with collected():  # (their finalizers: a Ctrl-C there raised after)
                        clients.clear()
        finally:
            self._closed = True
            self._stop_server()

    def __enter__(self) -> StepFunctionsRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _unanswered(exc: Exception) -> bool:
    """Is ``exc`` botocore's word that no answer came (no connection, a read timed out)?"""
    from botocore import exceptions as raised

    return isinstance(exc, raised.ConnectionError | raised.HTTPClientError)


def _deadline(timeout: float | None) -> float:
    """A run's deadline on the monotonic clock (none: infinite)."""
    return math.inf if timeout is None else time.monotonic() + timeout
