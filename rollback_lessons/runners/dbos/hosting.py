"""Which saga a DBOS run is, in this process: a run resumed at launch needs its saga's
steps (``DBOSRunner.start(sagas=...)`` or ``handle_for``), and waits for them rather than
fail for want of them (attack16's F11: DBOS would save that failure for good)."""

from __future__ import annotations

import logging
import pickle
import threading
import time
from collections.abc import Callable
from typing import Any

from dbos import DBOS

from ..._words import counted
from ...events import describe
from ...policies import UndoPolicy, UnsupportedPolicy
from ...saga import Saga, State
from .. import hosted
from ..hosted import SagaChanged
from ..wire import SagaPlan, changed
from . import waits

FACTORIES: dict[str, Callable[[str], Saga]] = {}
"""How to make a saga by its name for a run id (a relaunched process resumes runs it did
not start: their sagas act on a world outside memory, such as crashlab's database)."""


WAITING: dict[str, str] = {}
"""Runs resumed at launch that wait for a process to host their saga (its name, by run id):
``FACTORIES`` has none of that name, and no ``handle_for`` gave it yet."""
REFUSED: dict[str, str] = {}
"""Runs resumed at launch that wait although ``FACTORIES`` has their saga's name: the saga it
made differed from their saved plan, or making it raised, ``TRIES`` times (why, in one line,
by run id)."""
TRIES = 6
"""How many times a run's saga is made (``FACTORIES``) before the run waits for
``handle_for`` or a later launch: a service the factory reads may be back seconds later."""
BACKOFF = 0.5
"""Seconds before the second try, doubled before each next (0.5 + 1 + ... + 8: 15.5 s)."""
RETRYING: dict[str, tuple[int, float, str]] = {}
"""Runs whose saga ``FACTORIES`` could not make yet, to be tried again: (tries made, when the
next is due on ``time.monotonic``, why the last failed), by run id."""
_log = logging.getLogger("rollback_lessons")
_HOSTING = threading.Condition()
_closing = False


class Unhosted(BaseException):
    """The runner closed while a resumed run waited for its saga. A BaseException, so that
    DBOS saves no outcome for the step or the workflow: the run stays ``PENDING``, for the
    next launch (DBOS saves the failure of an ``Exception`` for good)."""


def saga_name(inputs: Any) -> str | None:
    """The saga's name a saga's workflow was started with (DBOS's saved inputs), if any."""
    args = (inputs or {}).get("args") or (None,)
    return args[0].name if isinstance(args[0], SagaPlan) else None


PLANS: dict[str, SagaPlan | None] = {}
"""Each run's saved plan, once read (``saved_plan``)."""


def saved_plan(run_id: str) -> SagaPlan | None:
    """The plan run ``run_id`` was started with (DBOS's saved inputs), None for none. Read in
    a thread of its own, outside any workflow's context (never saved as a step of one)."""
    if run_id not in PLANS:
        found: list[Any] = []
        failed: list[Exception] = []

        def read() -> None:
            try:
                found.extend(DBOS.list_workflows(workflow_ids=[run_id]))
            except Exception as exc:  # (DBOS closed meanwhile: raised here, not a traceback)
                failed.append(exc)

        reader = threading.Thread(target=read, name=f"saved-plan-{run_id}")
        reader.start()
        reader.join()
        if failed:
            raise failed[0]
        args = ((found[0].input or {}).get("args") or (None,)) if found else (None,)
        PLANS[run_id] = args[0] if isinstance(args[0], SagaPlan) else None
    return PLANS[run_id]


def check(run_id: str, saga: Saga) -> None:
    """Refuse (``SagaChanged``, one line) a saga whose steps differ from run ``run_id``'s."""
    plan = saved_plan(run_id)
    why = changed(run_id, saga, plan) if plan is not None else None
    if why is not None:
        raise SagaChanged(why)


def host(run_id: str, saga: Saga) -> None:
    """``saga`` is run ``run_id``'s (``DBOSRunner.handle_for``): a resumed run waiting for
    it goes on, acting on a world outside memory (its state empty)."""
    with _HOSTING:
        waits_for = WAITING.get(run_id, saga.name)
        if waits_for != saga.name:
            raise hosted.NotHosted(
                f"run {run_id!r} is a saga {waits_for!r}, not {saga.name!r}: nothing was hosted"
            )
        if run_id not in hosted.RUNS:
            hosted.host(run_id, hosted.Hosted(saga, {}, {}))
        _HOSTING.notify_all()


def opening(closing: bool) -> None:
    """A runner launched (False) or closing (True): a run still waiting for its saga then
    gives up (``Unhosted``), unfinished, for the next launch."""
    global _closing
    with _HOSTING:
        _closing = closing
        if not closing:  # (another file, perhaps: its runs' plans are read again)
            PLANS.clear()
            REFUSED.clear()
            RETRYING.clear()
        _HOSTING.notify_all()


def _made(run_id: str, name: str) -> tuple[Saga, None] | tuple[None, str]:
    """The saga ``FACTORIES`` makes for run ``run_id``, or why not, in one line: its steps
    differ from the run's saved plan, or making or checking it raised (a service it reads is
    down, say: attack19's F3). Never raises an ``Exception``: in the workflow, DBOS would
    save it as the run's failure for good, its undos never run."""
    try:
        saga = FACTORIES[name](run_id)
        plan = saved_plan(run_id)
        why = changed(run_id, saga, plan) if plan is not None else None
    except Exception as exc:
        made = f"sagas={{{name!r}: ...}} raised {describe(exc)}"
        return None, f"{made} making the saga of run {run_id!r}"
    return (saga, None) if why is None else (None, why)


def _due(run_id: str) -> bool:
    """A try to make run ``run_id``'s saga is due (none failed, or its backoff is over)."""
    return time.monotonic() >= RETRYING.get(run_id, (0, 0.0, ""))[1]


def _tried(run_id: str, saga: Saga | None, why: str | None) -> Saga | None:
    """Count a try to make run ``run_id``'s saga (``_made``, under ``_HOSTING``): the saga,
    or None when it failed (tried again after ``BACKOFF``, doubled, until ``TRIES``; then
    ``REFUSED``). Each failed try is logged as a warning, saying what follows."""
    tries = RETRYING.get(run_id, (0, 0.0, ""))[0] + 1
    if saga is not None:
        RETRYING.pop(run_id, None)
        return saga
    if tries < TRIES:
        wait = BACKOFF * 2 ** (tries - 1)
        RETRYING[run_id] = (tries, time.monotonic() + wait, str(why))
        _log.warning("%s (try %d of %d): tried again in %g s", why, tries, TRIES, wait)
        return None
    RETRYING.pop(run_id, None)
    REFUSED[run_id] = (
        f"{why} ({counted(tries, 'try', 'tries')}): it waits, unfinished; "
        "handle_for(saga, run_id) hosts it, or a later launch whose sagas= makes it"
    )
    _log.warning("%s", REFUSED[run_id])
    return None


def _saga(run_id: str, name: str) -> tuple[Saga, State]:
    """The run's saga and state. A run a relaunch resumed, with no saga of its name known
    here (or none ``FACTORIES`` could make yet: ``RETRYING``, tried again after a wait; or
    at all: ``REFUSED``), waits until one is (``handle_for``), never failed for want of it
    (DBOS would save that failure for good: the saga stopped half done, for every later
    launch). Nothing of the step has run yet: a try again runs nothing twice. The factory
    is called outside ``_HOSTING`` (attack21's D3: a slow one held ``close`` past ``GRACE``,
    a hung one for good); what it made is used only if the runner is not closing by then."""
    try:
        while True:
            with _HOSTING:
                if run_id in hosted.RUNS:
                    run = hosted.RUNS[run_id]
                    RETRYING.pop(run_id, None)  # (``handle_for`` hosted it meanwhile)
                    return run.saga, run.state
                if _closing:
                    raise Unhosted(f"run {run_id!r} left waiting for its saga {name!r}")
                if name not in FACTORIES or run_id in REFUSED or not _due(run_id):
                    WAITING[run_id] = name
                    due = RETRYING.get(run_id)
                    _HOSTING.wait(None if due is None else max(0.0, due[1] - time.monotonic()))
                    continue
            with waits.doing(f"making its saga: sagas={{{name!r}: ...}}"):
                made, why = _made(run_id, name)  # (outside the lock: it may be slow)
            with _HOSTING:
                if run_id in hosted.RUNS or _closing:  # (hosted, or closing, meanwhile)
                    continue
                saga = _tried(run_id, made, why)
                if saga is not None:
                    return saga, {}
    finally:
        with _HOSTING:
            WAITING.pop(run_id, None)


def picklable(policy: UndoPolicy, plan: SagaPlan) -> UndoPolicy | None:
    """The undo policy as DBOS keeps it with the run (pickled, to resume it after a crash).
    One it cannot pickle (a class defined in a function among its types, say): as data, the
    workflow reads it from the plan (None: its classes by name after a relaunch); one that
    decides in code is refused in one line, before anything runs (attack29's F4: DBOS's
    traceback on stderr, then a raw AttributeError)."""
    try:
        pickle.dumps(policy)
    except Exception as exc:
        if not plan.policy.in_code:
            return None
        raise UnsupportedPolicy(
            f"DBOS keeps a saga's undo policy to resume it after a crash, and cannot pickle "
            f"this one ({type(exc).__name__}: {exc}): define its class, and the exception "
            "types it names, at a module's top level"
        ) from None
    return policy
