"""What a run's cancel token answered, told to its machine on DBOS, by ``saga.run``'s rules:
the answer is a DBOS step's (checkpointed: a relaunch hears the same), so a token that
raises is saved as data, a Ctrl-C or ``sys.exit`` too (raised bare, it left the workflow
PENDING, nothing undone, and a relaunch committed it: attack37 F3). That Ctrl-C fails the run
where it came, as in process: the step that returned is done (undone), past the pivot the run
halts forward, and it is re-raised once the outcome is read (``hosted.interrupt``)."""

from __future__ import annotations

from typing import Any

from ... import schedule
from ..._drive import failed_asking
from ..._graph_drive import asking_failed
from ..._guards import stop_as_returned
from ...errors import Cancelled, interrupts
from ...machine import Machine, Phase
from ...operations import Op
from ...schedule import GraphMachine, GraphOp
from ..wire import ErrorRecord

LOST = "lost"  # an action's saved answer marked in doubt (``workflow.LOST``)


def error_of(said: dict[str, Any]) -> BaseException:
    """A saved error record (a step's, an undo's, the token's) as the exception it was."""
    return ErrorRecord(**{k: v for k, v in said.items() if k != LOST}).to_exception()


def told(m: Machine, said: bool | dict[str, Any]) -> Op | None:
    """Before the first step, or as a wait to retry ends (``workflow._heard``)."""
    if said is False:
        return None
    if not isinstance(said, dict):
        return schedule.cancel(m, Cancelled.by_caller())  # type: ignore[return-value]
    error = error_of(said)
    if not interrupts(error):
        return failed_asking(m, error)
    if m.rolling or m.phase is Phase.DONE:
        return None
    return m.interrupted(error) if m.phase is Phase.STEP_WAIT else m.fail(error)


def told_returned(m: Machine, said: bool | dict[str, Any]) -> BaseException | None:
    """As a list's step returned, before the machine hears it is done: a Ctrl-C is one in
    the function (``_guards.stop_as_returned``; past the pivot returned: the run fails with
    it forward once the step is told done)."""
    if isinstance(said, dict) and interrupts(error := error_of(said)):
        return stop_as_returned(m, error)
    told(m, said)
    return None


def told_graph(m: GraphMachine, said: bool | dict[str, Any]) -> GraphOp | None:
    """A graph's (``_graph_drive._cancel``): a Ctrl-C fails the run there."""
    if isinstance(said, dict) and interrupts(error := error_of(said)):
        return m.broken(error, asked=True)
    if isinstance(said, dict):
        return asking_failed(m, error_of(said))  # type: ignore[arg-type]
    return None if said is False else schedule.cancel(m, Cancelled.by_caller())
