"""The sagas of this process that only wait (for a person's answer, a retry's backoff, a
branch's message): no step's effect is in flight, so ``close`` stops them at once, unsaved,
as a crash would, and lets the file go (attack21's D2: it waited ``GRACE``, warned they
"ran a step", and kept the lock for as long as the wait: for good with ``halt_wait=None``).
The next launch on the file goes on where each waited: the wait's start is saved (DBOS's
sleep record, ``_ask``'s saved time), so only what is left of it is waited again.

A wait on a message (``DBOS.recv``) is told ``STOP`` on its topic: a message, as DBOS has
no other way into a ``recv``; it is saved as the wait's answer, so a relaunch that replays
it hears ``STOP`` too, and, not closing, waits on (``stopping`` says which). A sleep is an
event set here (``sleep``: the same saved step as ``DBOS.sleep``)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from dbos import DBOS
from dbos._error import DBOSWorkflowCancelledError

from ..closed import RunnerClosed

T = TypeVar("T")
STOP = {"rollback_lessons.stop": "the runner closed"}
"""Told to a wait on a message when the runner closes (``stop_all``)."""

_LOCK = threading.Lock()
_closing = False
WAITS: dict[object, tuple[str, str | None, threading.Event, str]] = {}
"""Each wait now: (workflow id, its topic or None for a sleep, set to wake it, what it waits
for), by a key of its own."""


class LeftWaiting(BaseException):
    """The runner closed while this saga waited (for ``what``): it stops here, unfinished (a
    BaseException, so that DBOS saves no outcome: the run stays ``PENDING``, for the next
    launch)."""

    def __init__(self, run_id: str, what: str) -> None:
        super().__init__(f"{run_id} left waiting for {what}")
        self.what = what


class CutByClose(BaseException):
    """A run's workflow met an error of DBOS's own as the runner closed (DBOS stops its
    executor first: "cannot schedule new futures after shutdown", s78): DBOS saved it as the
    run's ERROR, which it never resumes. A BaseException instead: DBOS saves nothing, the run
    stays ``PENDING``, for the next launch, and its caller hears ``RunnerClosed``."""


OPEN: list[Path] = []
"""The file of the runner open now in this process (DBOS is process-global: one at a
time), or none: a handle of a closed runner's acts on nothing else (attack35 F2)."""


def unless_closed(call: Callable[[], T], run_id: str, path: Path | None) -> Callable[[], T]:
    """``call`` (a run's workflow, or the wait for its result), its end told as
    ``RunnerClosed`` when the runner closed under it from another thread: while its saga
    waited (``LeftWaiting``) or ran a step (DBOS's own error, raw, with a traceback, for a
    thread that went on after ``close`` destroyed DBOS: attack24's M1)."""

    def told() -> T:
        try:
            return call()
        except LeftWaiting as left:
            raise RunnerClosed.of(run_id, path, waited=left.what) from None
        except CutByClose:
            raise RunnerClosed.of(run_id, path, ran=True) from None
        except Exception as exc:
            if not destroyed(exc):
                raise
            raise RunnerClosed.of(run_id, path, ran=True) from None

    return told


def telling_left(
    call: Callable[[], T], heard: Any, run_id: str, run: Any = None
) -> Callable[[], T]:
    """``call`` (the wait for a run's result), what the run's machine told heard first
    (``heard``: its ``Heard``, ``left``; ``run``: its ``Hosted``) when it raises for a run
    left unfinished: its runner closed (``RunnerClosed``), or this version cannot replay it
    (DBOS's error)."""
    from dbos._error import DBOSUnexpectedStepError

    def told() -> T:
        try:
            return call()
        except (RunnerClosed, DBOSUnexpectedStepError):
            heard.left(run_id, run)
            raise

    return told


def destroyed(exc: BaseException) -> bool:
    """``exc`` is DBOS's error for a saga's thread that went on after ``close`` destroyed
    DBOS under it (its next DBOS call, after the step it ran): it stops there, on purpose."""
    from dbos._error import DBOSException

    return isinstance(exc, DBOSException) and "before DBOS was launched" in str(exc)


def opening() -> None:
    """A runner launched: waits are waited again."""
    global _closing
    with _LOCK:
        _closing = False


@contextlib.contextmanager
def waiting(topic: str | None, what: str) -> Iterator[threading.Event]:
    """Around a wait of the current workflow (on ``topic``'s messages, or a sleep: None):
    refused (``LeftWaiting``) once the runner closes; the event is set when it closes
    meanwhile."""
    workflow_id = str(DBOS.workflow_id)
    woken, key = threading.Event(), object()
    with _LOCK:
        if _closing:
            raise LeftWaiting(workflow_id, what)
        WAITS[key] = (workflow_id, topic, woken, what)
        if topic is None and workflow_id in STOPS:  # (stopped before it began: ``wake``)
            woken.set()
    try:
        yield woken
    finally:
        with _LOCK:
            WAITS.pop(key, None)


def stopping(message: Any, what: str) -> bool:
    """``message`` is ``STOP``: True to wait on (a relaunch replaying the close's message);
    raises ``LeftWaiting`` while the runner closes."""
    if message != STOP:
        return False
    with _LOCK:
        if _closing:
            raise LeftWaiting(str(DBOS.workflow_id), what)
    return True


def sleep(seconds: float, what: str) -> None:
    """``DBOS.sleep`` (the same saved step: a saga an earlier version left sleeping replays
    it), woken when the runner closes (``LeftWaiting``): the wake time is saved, so a
    relaunch sleeps only what is left. Woken by a stop (``wake``), DBOS's cancel is raised
    here, as its next call would: the machine hears it in the wait, never as the next
    attempt began (attack180 F1: "during the undo of b", none running)."""
    if seconds <= 0:
        return
    from dbos._context import snapshot_step_context
    from dbos._core import record_sleep
    from dbos._dbos import _get_dbos_instance

    with waiting(None, what) as woken:
        left = record_sleep(_get_dbos_instance(), snapshot_step_context(), seconds)
        if woken.wait(left):
            run_id = str(DBOS.workflow_id)
            if not _stopped(run_id):
                raise LeftWaiting(run_id, what)
            raise DBOSWorkflowCancelledError(f"Workflow {run_id} is cancelled. Aborting function.")


STOPS: set[str] = set()
"""The runs a stop was asked of here (``wake``) while their workflow ran here (``LIVE``):
their sleeps end at once. Each goes when its workflow ends (``live``)."""
LIVE: set[str] = set()
"""The runs whose workflow runs in this process now (``lifetime.running``). A stop asked of
one that does not (over, or not begun: its first DBOS step hears the cancel before any
sleep) is not kept (issue #25: each stop of a run over stayed for good)."""


HERE: set[str] = set()
"""The runs whose workflow has begun here and not ended: ``LIVE`` and those a moment before
(what DBOS saved of one is read first, ``replay.begin``). A stop's record read then waits for
the workflow's own (``stops.take``; s79: a cancel as a resumed run began was told as one
"before it ran here", under load)."""


def arrived(workflow_id: str) -> None:
    """``workflow_id``'s workflow has begun here (``live`` True once it is known)."""
    with _LOCK:
        HERE.add(workflow_id)


def live(workflow_id: str, running: bool) -> None:
    """``workflow_id``'s workflow runs (True) or has ended (False) here."""
    with _LOCK:
        if running:
            HERE.add(workflow_id)
            LIVE.add(workflow_id)
        else:
            HERE.discard(workflow_id)
            LIVE.discard(workflow_id)
            STOPS.discard(workflow_id)


def closing() -> bool:
    """Is the runner closing (a run's workflow ending then is left unfinished)?"""
    return _closing


def wake(workflow_id: str) -> None:
    """A stop asked of ``workflow_id`` (``stops.stop_run``, after ``DBOS.cancel_workflow``):
    its sleep (a wait to retry) ends now, not after the backoff; its next DBOS call (the
    next attempt's ``began``) hears the cancel, and the machine says what it left."""
    with _LOCK:
        if workflow_id in LIVE:
            STOPS.add(workflow_id)
        for waited, topic, woken, _ in WAITS.values():
            if waited == workflow_id and topic is None:
                woken.set()


def _stopped(workflow_id: str) -> bool:
    """Woken by a stop (``wake``), not by a close (which leaves the run waiting): a stop
    asked before the close began (``stops.STOPPING``) is the run's, its cancel written."""
    with _LOCK:
        return workflow_id in STOPS


def left_of_last_sleep() -> float | None:
    """Seconds left of the current workflow's latest durable wait (the wake time DBOS saved
    for it: a ``DBOS.recv``'s timeout, a sleep), None if it saved none: the wait a close's
    ``STOP`` cut short, replayed by a relaunch, waits only what is left. Read in a thread of
    its own, outside the workflow's context (never saved as a step of it)."""
    workflow_id, found = str(DBOS.workflow_id), []
    reader = threading.Thread(
        target=lambda: found.extend(DBOS.list_workflow_steps(workflow_id)),
        name=f"saved-sleep-{workflow_id}",
    )
    reader.start()
    reader.join()
    slept = [s for s in found if s["function_name"] == "DBOS.sleep"]
    if not slept:
        return None
    wake = max(slept, key=lambda s: s["function_id"])["output"]
    return max(0.0, float(wake) - time.time()) if isinstance(wake, (int, float)) else None


def stop_all(until: float) -> None:
    """The runner closes: every wait ends now (``LeftWaiting``, nothing saved but a
    ``STOP`` told), and none begins; returns once they ended, or at ``until``
    (``time.monotonic``)."""
    global _closing
    with _LOCK:
        _closing = True
        waits = dict(WAITS)
    for workflow_id, topic, woken, _ in waits.values():
        woken.set()
        if topic is not None:
            with contextlib.suppress(Exception):  # (it ended meanwhile: nothing to stop)
                DBOS.send(workflow_id, STOP, topic)
    look = threading.Event()
    while any(key in WAITS for key in waits) and time.monotonic() < until:
        look.wait(0.01)


DOING: dict[str, str] = {}
"""What each workflow of this process runs now, by workflow id (a step's action or undo):
``close``'s warning names what runs on, truly."""


@contextlib.contextmanager
def doing(what: str) -> Iterator[None]:
    """Around a step's action or undo in the current workflow (``DOING``)."""
    workflow_id = DBOS.workflow_id
    if workflow_id is None:  # (outside a workflow: nothing of a saga's runs)
        yield
        return
    before = DOING.get(workflow_id)
    DOING[workflow_id] = what
    try:
        yield
    finally:
        if before is None:
            DOING.pop(workflow_id, None)
        else:
            DOING[workflow_id] = before
