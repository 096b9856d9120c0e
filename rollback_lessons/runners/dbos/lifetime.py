"""What this process keeps of a DBOS run, and when it goes (issue #25: operators run many
sagas in one long-lived process). While a run's workflow runs here, its entries are found
by run id: its saga and state (``hosted.RUNS``, ``POLICIES``), its machine (``heard.MADE``),
its cancel token (``workflow.CANCELS``, ``HEARD``), a stop asked of it (``waits.STOPS``).
They went only when a handle read the outcome, so a run started with ``start_saga`` whose
result nobody read (or read through ``record``) stayed for the life of the process: 2,000
small sagas left 2,000 entries in each. Now they go when the run ends for good (its
workflow returned, or ended with an error DBOS saves: a stop, a replay refused), in the
workflow itself (``running``); what a handle reads after that (the machine, for the events
of a run left unfinished; the records a stop leaves) is handed to the run's ``Hosted``,
which its handle holds (``Hosted.left``), and goes with the handle. A run left unfinished
(the runner closed under it, a Ctrl-C: DBOS saves nothing, a later launch here resumes it)
keeps them, as before. What ``record(run_id)`` reads with no handle (``stops.STOPPED``,
``ENDED``) is bounded instead (``stops.KEPT_MOST``)."""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Iterator
from typing import Any

from dbos._error import DBOSUnexpectedStepError

from ...errors import RollbackLessonsError
from ...events import describe
from ...machine import Phase
from ...schedule import GraphMachine
from .. import heard, hosted
from . import hosting, replay, stops, waits


@contextlib.contextmanager
def running(run_id: str, machine: Any, children: bool = False) -> Iterator[None]:
    """Around run ``run_id``'s workflow here, driving ``machine``: its entries go when it
    ends for good (``over``: it returned, raised an Exception DBOS saves, or was cancelled),
    not when it is left unfinished (another BaseException, or DBOS closed under it: it
    stays ``PENDING``, for a later launch). ``children``: its steps' actions run in child
    workflows (``at_once``), so each step running when it ended may have happened."""
    heard.MADE[run_id] = machine  # (what it tells is heard if outcome() raises)
    machine.told_as_called = True  # (an undo told once its call came back: ``drive``; a stop
    # as it began, an attempt never called, never told: attack158 F1)
    waits.arrived(run_id)
    try:  # (resumed: what DBOS saved of it is replayed first; known before it is live here,
        replay.begin(run_id)  # or a stop takes it as past: attack166 F1)
    except BaseException:
        waits.live(run_id, False)
        raise
    waits.live(run_id, True)
    ended = False
    try:
        yield
        ended = True
    except stops.CANCELLED:  # (BaseExceptions, DBOS's: stopped for good)
        ended = True
        raise
    except Exception as exc:
        ended = not waits.destroyed(exc) and not waits.closing()
        if ended:  # (DBOS saves it, notes too, and ends the run ERROR: attack78 F5)
            saved = ended_note(machine, exc, children)
            if saved is not exc:
                raise saved from exc
        elif not waits.destroyed(exc):  # (DBOS stopping under it as the runner closes:
            raise waits.CutByClose(run_id) from exc  # never saved as its ERROR, s79)
        raise
    finally:
        waits.live(run_id, False)
        replay.end(run_id)
        if ended:
            over(run_id)


ERROR_SAID = "DBOS: the saga's workflow ended ERROR, which DBOS never resumes"
"""How the note of an Exception that ended a run's workflow begins (``ended_note``)."""


class EndedBy(Exception):
    """DBOS's own error that ended a workflow, as DBOS saves it when that error would lose
    its note in DBOS's pickle (SQLAlchemy's errors, a disk full among them, are rebuilt
    from their arguments alone: attack83 F3): its description (``args[0]``), and the note."""


def ended_note(machine: Any, exc: BaseException, children: bool = False) -> BaseException:
    """``exc`` (DBOS's own failure: a write of a step's result, a disk full) ended the
    workflow: DBOS saves it and ends the run ERROR, for good. Its note says what the saga
    machine knows is in effect (``Machine.in_effect``; a step whose end was not heard may
    have happened), saved with it, so that a relaunch reads it (attack78 F5). What the
    workflow raises for DBOS to save: ``exc``, or an ``EndedBy`` of it where DBOS's pickle
    would drop the note."""
    done, maybe = machine.in_effect()
    if isinstance(machine, GraphMachine):
        running: tuple[str | None, ...] = machine.busy
    else:
        running = (machine.current,) if machine.phase is Phase.STEP else ()
    called = getattr(stops.CALLED, "step", None)  # (its action was called: it may have run)
    if children:  # (each running step's action runs in a child workflow of its own, which
        # may have done it, its message unheard: attack83 F5; one waiting to retry failed)
        running = tuple(s for s in running if machine.where.get(s) == "running")
    maybe = (*maybe, *(s for s in running if (children or s == called) and s not in done + maybe))
    said = [f"done, not undone: {', '.join(done)}"] if done else []
    said += [f"may have happened, not undone: {', '.join(maybe)}"] if maybe else []
    note = f"{ERROR_SAID}: {'; '.join(said) or 'nothing done is left in effect'}"
    if note not in getattr(exc, "__notes__", ()):
        with contextlib.suppress(Exception):
            exc.add_note(note)
    try:  # (a handful of writes at most, once per run that ends so)
        kept = note in getattr(pickle.loads(pickle.dumps(exc)), "__notes__", ())
    except Exception:  # (one that cannot be pickled at all: kept as its description)
        kept = False
    if kept or isinstance(exc, (RollbackLessonsError, DBOSUnexpectedStepError)):
        return exc  # (those two are said as they are: ``WorkflowFailed.line``, ``ReplayRefused``)
    saved = EndedBy(describe(exc))
    saved.add_note(note)
    return saved


def over(run_id: str) -> None:
    """Run ``run_id`` ended for good: what is kept of it by run id goes; what its handle
    may read (``DBOSHandle.outcome``) stays with its ``Hosted``, held by the handle."""
    from . import workflow

    run = hosted.RUNS.get(run_id)
    if run is not None:
        run.left.update(machine=heard.MADE.get(run_id), stopped=stops.STOPPED.get(run_id),
                        ended=stops.ENDED.get(run_id))  # fmt: skip
    heard.MADE.pop(run_id, None)
    stops.RETURNED.pop(run_id, None)
    stops.UNDID.pop(run_id, None)
    hosted.release(run_id)
    workflow.CANCELS.pop(run_id, None)
    workflow.HEARD.pop(run_id, None)
    hosting.PLANS.pop(run_id, None)
