"""Launching DBOS on a file and closing it again (attack20's N1 and N2): one launch per
process (``LAUNCHED``), the saved plans checked against ``sagas=`` before DBOS resumes
anything on the file, and a close that waits for the sagas still running a step, keeping the
file's lock while one runs on."""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dbos import DBOS

from ..._words import counted
from ...errors import RollbackLessonsError
from .. import hosted
from ..closed import collected
from ..hosted import SagaChanged
from ..wire import SagaPlan, changed
from . import hosting, stops, waits
from .held import FileInUse, let_go, url

LISTEN = 0.02
"""How often (s) ``close`` looks whether the sagas still running stopped."""
LOOK = 0.1
"""How often (s) a closed runner's sagas left running are looked at, to let the file go."""
_LOOK = threading.Event()  # (never set: a sleep)


class DBOSUnavailable(RollbackLessonsError):
    """DBOS already runs in this process (it is one per process)."""


LAUNCHED = threading.Lock()  # DBOS is process-global: one runner at a time

GRACE = 2.0
"""Seconds ``close`` gives the sagas still running on DBOS's threads to stop: DBOS's
``destroy`` does not wait for them (a step's action goes on; the saga stops at its next
DBOS call, the step unsaved, as after a crash)."""


class RunsLeftRunning(RuntimeWarning):
    """A runner closed while a saga still ran a step (or an undo) on a thread of this
    process after ``GRACE``: its file stays locked (``FileInUse``) and DBOS is not launched
    again in this process until that thread ends (attack20's N1: the lock was let go, and a
    relaunch took the live run for a dead process's, undoing a step still running)."""


LEFT: dict[str, Any] = {}
"""While a closed runner's sagas still run here: its file ("path") and their run ids
("runs"); ``start`` refuses meanwhile, saying so."""


class _Stopped(logging.Filter):
    """Drops DBOS's error (a traceback on stderr) for a saga's thread that went on after
    ``close`` destroyed DBOS under it: it stops there on purpose, its step unsaved; and
    DBOS's telling of a ``stop()`` asked here (``stops.quiet``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and waits.destroyed(exc):
            return False
        return not stops.quiet(record) and not _branch_ended(record)


BACKGROUND = "Exception encountered in background workflow"
"""How DBOS logs a workflow started in the background that raised (its traceback after)."""


def _branch_ended(record: logging.LogRecord) -> bool:
    """Is ``record`` DBOS's traceback of an at_once branch's child workflow (``<run id>:<n>``
    of a run hosted here) that ended ``ERROR`` (a write of its own failed: a disk full)? Its
    saga hears it (``graph._AtOnce.ended_child``) and its Outcome says it, in one line: kept
    off stderr as DBOS's other logs are (attack87 F2: 60 lines beside the runner's one)."""
    if not record.getMessage().startswith(BACKGROUND):
        return False
    try:
        child = DBOS.workflow_id  # (logged in the child's own workflow context)
    except Exception:
        return False
    parent = stops.parent_of(child) if child else ""
    return bool(parent) and (parent in hosted.RUNS or parent in hosting.PLANS)


STOPPED = _Stopped()


def _active() -> Any:
    """DBOS's own set of the workflows running in this process (private to DBOS: its
    ``destroy`` reads it to wait), or None before a launch."""
    import dbos._dbos as launched

    instance = launched._dbos_global_instance
    return getattr(instance, "_active_workflows_set", None)


CALLERS: set[str] = set()
"""Run ids whose workflow runs in its caller's thread (``run``, ``start_saga(wait=True)``):
DBOS counts only its executor's threads as active, so a ``close`` from another thread
while ``run()`` went did not wait for it, and a relaunch undid a step still running
(attack21's D1)."""


def _running(active: Any) -> list[str]:
    theirs = set(active.activeList()) if active is not None else set()
    return sorted(theirs | CALLERS)


def _left_behind(path: Path, fd: int | None, active: Any, runs: list[str]) -> None:
    """Keep the lock and the launch slot while sagas still run on their threads (``runs``
    says which, and what they run), and let both go once they ended (a thread of its own
    looks every ``LOOK`` s)."""
    LEFT.update(path=path, runs=runs)

    def wait() -> None:
        while _running(active):
            _LOOK.wait(LOOK)
        if fd is not None:
            let_go(fd)
        LAUNCHED.release()
        LEFT.clear()  # (last: a launch refused meanwhile is told why, never "close that runner")

    threading.Thread(target=wait, name="dbos-left-running", daemon=True).start()


def let_go_first(within: float = 1.0) -> None:
    """(A run in its caller's thread that the close stopped, about to raise ``RunnerClosed``
    saying "a launch there goes on with it".) The file let go first, if it was all that held
    it (attack293 F2: a relaunch at once was refused ``FileInUse``, its step said to run
    still, until the next look); another saga still running keeps it, as ever."""
    end = time.monotonic() + within
    while LEFT and time.monotonic() < end:
        _LOOK.wait(LOOK / 4)


def saved_unfinished(path: Path) -> dict[str, SagaPlan | None]:
    """The saved plan of each unfinished saga on ``path`` (by run id), read before DBOS
    launches there (``DBOSClient``: it resumes nothing). A new file has none."""
    if path.stat().st_size == 0:
        return {}
    from dbos import DBOSClient

    client = DBOSClient(system_database_url=url(path))
    try:
        unfinished = client.list_workflows(status=["PENDING", "ENQUEUED"])
    except Exception:  # (no DBOS tables yet: nothing unfinished; DBOS's launch says the rest)
        return {}
    finally:
        client.destroy()
    return {w.workflow_id: _plan_in(w.input) for w in unfinished if w.parent_workflow_id is None}


def _plan_in(inputs: Any) -> SagaPlan | None:
    args = (inputs or {}).get("args") or (None,)
    return args[0] if isinstance(args[0], SagaPlan) else None


def refuse_changed(plans: Mapping[str, SagaPlan | None]) -> None:
    """Refuse the launch (``SagaChanged``, one line) when ``sagas=`` makes a saga whose steps
    differ from the plan an unfinished run saved; checked before DBOS launches, as a refusal
    after it left the file's other resumed runs running, and a retried launch then ran their
    undos a second time (attack20's N2). A factory that raises is the run's own call's to
    report (it waits: ``waiting``)."""
    for run_id, plan in plans.items():
        make = hosting.FACTORIES.get(plan.name) if plan is not None else None
        if make is None or plan is None:
            continue
        try:
            why = changed(run_id, make(run_id), plan)
        except Exception:
            continue
        if why is not None:
            raise SagaChanged(f"{why} (sagas=); launch refused, the run left as it was")


def refused_meanwhile(system_database: str | os.PathLike[str] | None) -> RollbackLessonsError:
    """Why ``start`` is refused while a closed runner's sagas still run in this process."""
    path: Path = LEFT["path"]
    runs = ", ".join(LEFT["runs"]) or "unknown"
    one = len(LEFT["runs"]) == 1  # (said "saga x ... runs", "sagas x, y ... run": learn83 F7)
    sagas, stop = ("saga", "it stops (at its") if one else ("sagas", "they stop (at their")
    try:
        same = system_database is not None and os.path.samefile(system_database, path)
    except (OSError, TypeError):
        same = False
    if same:
        return FileInUse(
            f"DBOS runs on {system_database} in this process still: the runner closed while "
            f"{sagas} {runs} still ran, and a relaunch would run that again; the file is let "
            f"go once {stop} next step)"
        )
    return DBOSUnavailable(
        f"DBOS cannot launch again in this process while {sagas} {runs} of the runner closed "
        f"on {path} still {'runs' if one else 'run'} ({stop.replace(' (', ' ')} next step): "
        "try again then"
    )


def until_it(count: int) -> str:
    """How a close's warning ends, for ``count`` sagas left running (learn83 F7)."""
    if count == 1:
        return "it stops (at its next step, unsaved: a relaunch then finishes it)"
    return "they stop (at their next step, unsaved: a relaunch then finishes them)"


def close(path: Path, lock: int | None, stacklevel: int = 2) -> None:
    """Stop DBOS in this process and let ``lock`` (``path``'s) and ``LAUNCHED`` go: at once,
    or once the sagas still running a step stopped (``GRACE``; then a warning). A saga that
    only waits (for a person, a retry's backoff: ``waits``) stops at once, unfinished: no
    effect is in flight, and the next launch on the file waits what is left of it."""
    active: Any = None
    try:
        until = time.monotonic() + GRACE
        hosting.opening(True)  # a run waiting for its saga stays unfinished, for later
        waits.stop_all(until)  # (before DBOS stops: a wait on a message is told so)
        active = _active()
        with collected():  # (its engines' finalizers: a Ctrl-C there raised after, attack56 F4)
            DBOS.destroy()
        end = threading.Event()
        while _running(active) and time.monotonic() < until:
            end.wait(LISTEN)
    finally:
        if runs := _running(active):
            doing = [f"{run} ({waits.DOING[run]})" if run in waits.DOING else run for run in runs]
            warnings.warn(
                RunsLeftRunning(
                    f"closed with {counted(len(doing), 'saga')} still running after {GRACE:g} "
                    f"s: {', '.join(doing)}; {path} stays locked until {until_it(len(doing))}"
                ),
                stacklevel=stacklevel + 1,
            )
            _left_behind(path, lock, active, doing)
        else:
            if lock is not None:
                let_go(lock)
            LAUNCHED.release()
