"""A run id is a run's identity, as in the journal ("ids must be unique"). DBOS takes the id
given to ``SetWorkflowID`` as an idempotency key: a saga started again under an id it held
got the first run's result back, nothing run, even for another saga (attack26's F1); and
one started while the first run still ran took over its hosted state and faults (they were
hosted before DBOS deduplicated), the first run's remaining steps acting on the second
caller's state (F2). So a start is refused in one line before anything is hosted when this
process or the file holds the id (``take``), and DBOS refuses it too in the very insert
that takes the id (``workflow_id_reuse_policy="reject"``: its own per-start token tells its
row from another's), for a start racing another one in the same instant (another process
on the file, say): exactly one runs, the other is refused, nothing of it hosted."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from dbos import DBOS, SetWorkflowID
from dbos._error import DBOSWorkflowIDInUseError

from ...errors import RollbackLessonsError
from .. import hosted
from . import workflow


class RunIdInUse(RollbackLessonsError):
    """A saga started under a run id this DBOS file (or this process) already holds: one
    line, before anything is hosted or run, naming the id and what to do."""

    @classmethod
    def of(cls, run_id: str, path: Path, held: str) -> RunIdInUse:
        return cls(
            f"run id {run_id!r} is taken: {held} on {path}, and ids must be unique (a run "
            f"id is its run's identity): nothing ran; runner.handle_for(saga, {run_id!r}) "
            "follows or reads that run, a new run id runs the saga again"
        )


_TAKING = threading.Lock()
"""Held from the look at the id to its taking (``_STARTING``): of two threads starting one
id at once, the second sees the first's start."""
_STARTING: set[str] = set()
"""The ids whose start is under way in this process, until DBOS took them (or the start
failed). Not ``hosted.RUNS``: a run an earlier launch left there (on another file, its
outcome never read) holds no id on this file."""


def _holder(run_id: str) -> str | None:
    """Who holds ``run_id`` (a start of it under way here, or DBOS's run of it), or None."""
    if run_id in _STARTING:
        return "a start of it is under way in this process"
    status = DBOS.get_workflow_status(run_id)
    return None if status is None else f"DBOS holds a run of it ({status.status})"


def check(run_id: str, path: Path) -> None:
    """Refuse (``RunIdInUse``) a start under ``run_id`` while this process or DBOS holds it."""
    held = _holder(run_id)
    if held is not None:
        raise RunIdInUse.of(run_id, path, held)


def _in_dbos(run_id: str) -> bool:
    """DBOS took ``run_id`` (True too when it cannot tell: the run is then kept hosted)."""
    try:
        return DBOS.get_workflow_status(run_id) is not None
    except Exception:
        return True


@contextlib.contextmanager
def taken(run_id: str, run: hosted.Hosted, path: Path) -> Iterator[None]:
    """Host ``run`` under ``run_id``, and start its workflow in the block (``SetWorkflowID``),
    unless the id is held: ``RunIdInUse``, nothing hosted. DBOS rejecting the id as it takes
    it (a start elsewhere won the instant) un-hosts this run and is ``RunIdInUse`` too; so
    does any failure before DBOS took the id (the id stays free for a start again)."""
    with _TAKING:
        check(run_id, path)
        _STARTING.add(run_id)
        hosted.host(run_id, run)
    try:
        with SetWorkflowID(run_id, workflow_id_reuse_policy="reject"):
            yield
    except DBOSWorkflowIDInUseError as exc:
        _unhost(run_id, run)
        held = f"DBOS holds a run of it ({exc.workflow_status})"
        raise RunIdInUse.of(run_id, path, held) from None
    except BaseException:
        if not _in_dbos(run_id):
            _unhost(run_id, run)
        raise
    finally:
        _STARTING.discard(run_id)


def _unhost(run_id: str, run: hosted.Hosted) -> None:
    """Forget this start's hosting of ``run_id`` (never another run's)."""
    if hosted.RUNS.get(run_id) is run:
        hosted.release(run_id)
        workflow.CANCELS.pop(run_id, None)
