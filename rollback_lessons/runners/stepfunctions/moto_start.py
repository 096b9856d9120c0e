"""What the runner starts on: moto's Step Functions in this process, or a ``moto_server`` on
127.0.0.1, each executing state machines (moto only records them otherwise), or AWS."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..moto_server import MotoServer
from .asl import StepFunctionsError
from .engine import past_starts

REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/rollback-lessons"  # moto accepts any role


def backend(
    where: str, stack: contextlib.ExitStack
) -> tuple[dict[str, Any], str, Callable[[], None]]:
    """boto3's options for ``where``, the role Step Functions runs as, and what stops the
    runner's own server (nothing elsewhere). The server's stop is on ``stack`` before it
    starts: a Ctrl-C as it answers stops it with ``stack`` (attack59 M2: a context manager's
    ``__enter__`` cut as it returned was never exited, and the server ran on)."""
    keys = {
        "region_name": REGION,
        "aws_access_key_id": "lessons",
        "aws_secret_access_key": "lessons",
    }
    if where == "moto":
        stack.enter_context(_moto_in_process())
        return keys, ROLE_ARN, functools.partial(_mock_ended, stack)
    if where == "moto_server":
        server = MotoServer({"stepfunctions": {"execute_state_machine": True}}, StepFunctionsError)
        stack.callback(server.stop)
        return {**keys, "endpoint_url": server.start()}, ROLE_ARN, server.stop
    role = os.environ.get("ROLLBACK_LESSONS_SFN_ROLE_ARN", "")
    if not role:
        raise StepFunctionsError(
            "where='aws' needs ROLLBACK_LESSONS_SFN_ROLE_ARN (a role Step Functions "
            "may assume, allowed to sqs:SendMessage)"
        )
    return {}, role, _nothing


def _nothing() -> None:
    """Nothing to stop: AWS never."""


def _mock_ended(stack: contextlib.ExitStack) -> None:
    """moto in this process ends with the runner's stack: closed by ``close``, or by the
    runner's finalizer, dropped unclosed or left open at exit (attack193 F1: the mock, ended
    by the collector as Python shut down, printed moto's ImportError as "Exception
    ignored"). Again after ``close``: nothing."""
    with contextlib.suppress(Exception):
        stack.close()


@contextlib.contextmanager
def _moto_in_process() -> Iterator[None]:
    """moto's Step Functions, executing state machines (it only records them otherwise)."""
    try:
        from moto import mock_aws
    except ImportError:
        raise StepFunctionsError(
            "moto is not installed: pip install 'rollback-lessons[stepfunctions]'"
        ) from None
    from .moto_parse import install

    install()  # each definition parsed once, not at every execution
    _guarded()
    quiet = logging.getLogger("moto.stepfunctions")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # it logs every Fail state as an ERROR with a stack
    before = set(threading.enumerate())
    try:
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):  # type: ignore[arg-type]
            yield
    finally:
        if not _executing(before):  # (else kept quiet: attack96 F7)
            quiet.setLevel(level)


def _executing(before: set[threading.Thread]) -> bool:
    """Does an execution of moto's still run, its mock ended (a runner closed while a saga
    ran)? Each state it enters then fails to reach the mock and logs a screenful: moto's
    logger stays quiet for the rest of the process."""
    for thread in set(threading.enumerate()) - before:
        target = getattr(thread, "_target", None)  # (the thread's function, while it runs)
        if str(getattr(target, "__module__", "")).startswith("moto."):
            return True
    return False


def refused(exc: Exception) -> bool:
    """Did a connection to the server fail outright (nothing listens there any more: the
    runner's own moto_server is gone, and the executions it held with it)?"""
    from botocore.exceptions import EndpointConnectionError

    return isinstance(exc, EndpointConnectionError)


def let_go(
    clients: list[Any], where: str, queue: str, machines: Mapping[str, str], gone: Any
) -> None:
    """What a closing runner lets go of, before its moto ends: on moto in this process, its
    clients refuse every request but this thread's (``gone``'s ``RunnerClosed``: attack196
    F2, a run another thread served had taken a client before the close and sent its request
    once the mock had ended, to AWS itself); each execution of its state machines still
    running is stopped (attack97 F2: one waiting to retry woke once the mock had ended and
    sent its task to http://localhost:5000, moto's default endpoint, where anyone may
    listen), of a snapshot (attack196 F1: one added meanwhile by a run's thread ended the
    loop); then its queue is deleted (its own ``moto_server``'s goes with it)."""
    sfn, sqs = clients
    if where == "moto":
        for client in clients:
            refuse = functools.partial(_refused, gone, threading.get_ident())
            client.meta.events.register("before-send", refuse)
        CLOSED.add(queue)
        for machine in list(machines.values()):
            running: dict[str, Any] = {}
            with contextlib.suppress(Exception):
                running = sfn.list_executions(stateMachineArn=machine, statusFilter="RUNNING")
            for execution in running.get("executions", []):
                with contextlib.suppress(Exception):  # (one just started: once it can be)
                    past_starts(sfn.stop_execution, executionArn=execution["executionArn"],
                                error="Stopped", cause="its runner closed")  # fmt: skip
    if where != "moto_server":
        with contextlib.suppress(Exception):
            sqs.delete_queue(QueueUrl=queue)


CLOSED: set[str] = set()
"""The queues of runners on moto in this process that closed: a task moto's interpreter
sends to one once the mock has ended is refused (``_guarded``)."""


def _guarded() -> None:
    """moto's interpreter sends each task to SQS through a client of its own, made as the
    task begins: to AWS itself if the mock has ended since, to localhost:5000 if it had
    (attack198 F2: an execution started as its runner closed ran on once the mock had ended,
    stopped or not). Such a client refuses a task for a closed runner's queue then. Once per
    process; a moto without that client is left as it is."""
    try:
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
            state_task_service_sqs as sqs_task,
        )
    except ImportError:
        return
    make = sqs_task.boto_client_for
    if getattr(make, "guarded", False):
        return

    def made(*args: Any, **kwargs: Any) -> Any:
        client = make(*args, **kwargs)
        client.meta.events.register("before-parameter-build.sqs.SendMessage", _mock_over)
        client.meta.events.register("before-send.sqs.SendMessage", _sending)
        return client

    made.guarded = True  # type: ignore[attr-defined]
    sqs_task.boto_client_for = made


def _mock_over(params: dict[str, Any], context: Any = None, **kwargs: Any) -> None:
    """A task for a closed runner's queue goes nowhere, the mock ended or not (checked as it
    is built, and again as it is sent: the mock ending between the two sent it on to AWS,
    attack198 F2 again, 1 in a few hundred under load)."""
    if isinstance(context, dict):
        context["rollback_lessons_queue"] = params.get("QueueUrl")
    if params.get("QueueUrl") in CLOSED:
        raise StepFunctionsError("its runner closed: the task goes nowhere")


def _sending(request: Any = None, **kwargs: Any) -> None:
    """(``before-send``: ``_mock_over``'s check again, as the request leaves.)"""
    if getattr(request, "context", {}).get("rollback_lessons_queue") in CLOSED:
        raise StepFunctionsError("its runner closed: the task goes nowhere")


def _refused(gone: Any, closer: int, event_name: str = "", **kwargs: Any) -> None:
    """A closed runner's client, about to send a request: only its close's own go."""
    if threading.get_ident() != closer:
        getattr(gone, event_name.rpartition(".")[2] or "request")  # (``RunnerClosed``)
