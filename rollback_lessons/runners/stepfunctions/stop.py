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


__all__ = ["stop_execution"]
