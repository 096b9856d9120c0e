"""A run's workflow resumed by a launch (its process died) first replays what DBOS saved of
it: each saved step gives its saved result, nothing is called again. DBOS's cancel heard on
a saved step loses that result and every one saved after it: the machine never hears them
(attack164 F3: an undo done and saved said pending, a person sent to refund twice; a step
done said "not run"). So ``handle.stop()`` waits for the replay to end (``wait``), and a
cancel heard in a replay all the same (a bare ``DBOS.cancel_workflow``) is said as such
(``cut``), never a record that misses what was done."""

from __future__ import annotations

import threading
import time
from typing import Any

from dbos import DBOS

from ..hosted import RUNS
from . import waits

SLEEPS = frozenset({"DBOS.sleep"})
"""Saved waits (a wake time): no result the machine hears."""

RESUME_WAIT = 10.0
"""Seconds ``handle.stop()`` waits for a run resumed here to replay what was saved (DBOS
starts it from its queue within about a second of the launch; a replay takes
milliseconds), then stops it all the same."""

REPLAYING: dict[str, tuple[Any, int]] = {}
"""Runs whose workflow runs here and replays: (its DBOS context, the id of the last
operation saved with a result as it began), until it is past it (``caught_up``)."""


def _last_saved(run_id: str) -> int:
    """The id of the last operation DBOS saved of the run with a result (0: none). Read
    from DBOS's tables, not through ``DBOS.list_workflow_steps``, which a workflow saves as
    a step of its own (shifting every step after it)."""
    from dbos._dbos import _get_dbos_instance

    steps = _get_dbos_instance()._sys_db.list_workflow_steps(run_id, load_output=False)
    return max((s["function_id"] for s in steps if s["function_name"] not in SLEEPS), default=0)


def begin(run_id: str) -> None:
    """In the run's workflow, as it begins here: a resumed run replays (``REPLAYING``)."""
    from dbos._context import get_local_dbos_context

    ctx, last = get_local_dbos_context(), _last_saved(run_id)
    if ctx is not None and last > 0:
        REPLAYING[run_id] = (ctx, last)


def end(run_id: str) -> None:
    REPLAYING.pop(run_id, None)


def cut(run_id: str) -> tuple[int, int] | None:
    """DBOS's cancel was just heard in the run's workflow: (the operation it came on, the
    last saved) if that one was saved, its result and those after it lost; else None."""
    ctx, last = REPLAYING.get(run_id, (None, 0))
    if ctx is None or ctx.function_id > last:
        return None
    return ctx.function_id, last


def caught_up(run_id: str) -> bool:
    """Is the run's workflow here past what was saved (or never replaying)?"""
    return cut(run_id) is None


def wait(run_id: str) -> None:
    """Before a stop: while a run with saved steps is to resume here (queued to, or begun
    and replaying) and the runner is open, wait for it to be past what was saved, at most
    ``RESUME_WAIT`` s. A fresh run, or one another process runs, is not waited for."""
    end_at, saved = time.monotonic() + RESUME_WAIT, None
    while time.monotonic() < end_at and waits.OPEN:
        if run_id in waits.LIVE:
            if caught_up(run_id):
                return
        else:
            status = DBOS.get_workflow_status(run_id)
            state = status.status if status is not None else None
            if state == "PENDING" and run_id in RUNS and saved is None:
                saved = _last_saved(run_id) > 0  # (read once: what a dead launch saved)
            if state != "ENQUEUED" and not (state == "PENDING" and run_id in RUNS and saved):
                return
        threading.Event().wait(0.02)
