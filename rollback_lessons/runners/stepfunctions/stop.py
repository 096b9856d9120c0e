"""Stopping an execution where it is (a Ctrl-C, a timeout, a request that failed): Step
Functions' own ``StopExecution``, asked until the execution says it stopped."""

from __future__ import annotations

import time
from typing import Any

from .quiet import quiet_stopped_branches


def stop_execution(sfn: Any, arn: str, error: str, cause: str) -> str:
    """Stop the execution if it runs: how it is now ("was stopped", "was over"). moto
    (5.2.5) leaves one stopped between two states RUNNING for ever, though a second stop
    ends it, and refuses to stop one still starting: it is stopped again while it still
    says RUNNING (AWS's first stop is final), for a second at most."""
    quiet_stopped_branches()
    try:
        if sfn.describe_execution(executionArn=arn)["status"] != "RUNNING":
            return "was over"
    except sfn.exceptions.ExecutionDoesNotExist:  # (a start cut short before it)
        return "was never started"
    from .live import Idle  # (live serves the run: this stops it)

    idle, deadline = Idle(), time.monotonic() + 1
    while True:
        try:
            sfn.stop_execution(executionArn=arn, error=error, cause=cause)
        except Exception:  # (moto 5.2.5 cannot stop one still starting: set_stop on None)
            if time.monotonic() > deadline:
                raise
        idle.wait()
        if sfn.describe_execution(executionArn=arn)["status"] != "RUNNING":
            return "was stopped"
        if time.monotonic() > deadline:
            return "was told to stop (it still says RUNNING)"


END_GRACE = 1.0
"""Seconds the runner's ``timeout`` is stretched for an execution past its last task that is
only entering its end state (attack171 F1: its ``rolled_back`` lost, "stopped where it
was", though nothing was left to stop); one with work left does not end in it."""


def ended_within(sfn: Any, arn: str, seconds: float = END_GRACE) -> str | None:
    """The execution's status once it ended within ``seconds``; None if it still runs."""
    from .live import Idle

    idle, deadline = Idle(), time.monotonic() + seconds
    while (status := sfn.describe_execution(executionArn=arn)["status"]) == "RUNNING":
        if time.monotonic() > deadline:
            return None
        idle.wait()
    return str(status)


__all__ = ["ended_within", "stop_execution"]
