"""moto's branch threads, dying on an execution the runner stopped, kept off stderr."""

from __future__ import annotations

import threading
from typing import Any


def quiet_stopped_branches() -> None:
    """Keep off stderr the death of moto's branch threads (``BranchWorker_...``) in an
    execution this runner stopped: a branch mid-state when the stop lands raises
    ``RuntimeError("Could not set NextState value when in state ...ProgramStopped...")`` on
    its own thread, after the runner's one-line error (attack87 F7: a traceback per branch).
    A ``threading.excepthook`` of its own, once per process, dropping that one error of those
    threads only; anything else goes to the hook that was there."""
    if getattr(threading.excepthook, "drops_stopped_branches", False):
        return
    previous = threading.excepthook

    def hook(args: Any) -> None:
        if not stopped_branch(args):
            previous(args)

    hook.drops_stopped_branches = True  # type: ignore[attr-defined]
    threading.excepthook = hook


def stopped_branch(args: Any) -> bool:
    """Is this a moto branch thread's death on a stopped execution (``ProgramStopped``)?"""
    name = getattr(args.thread, "name", "") or ""
    exc = args.exc_value
    return (
        name.startswith("BranchWorker_")
        and isinstance(exc, RuntimeError)
        and "Could not set NextState value" in str(exc)
        and "ProgramStopped" in str(exc)
    )
