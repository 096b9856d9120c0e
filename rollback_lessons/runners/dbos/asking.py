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
from ...errors import Cancelled, interrupts
from ...machine import Machine, Phase
from ...operations import Op
from ...schedule import GraphMachine, GraphOp, past_pivot
from ..wire import ErrorRecord


def error_of(said: dict[str, Any]) -> BaseException:
    """The token's error, as saved (``workflow._error``'s rule)."""
    return ErrorRecord(**{k: v for k, v in said.items() if k != "lost"}).to_exception()


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
    the function (``_guards.cut_as_returned``): before the pivot, the run stops with it once
    the step is told done; past it, it is returned, the run failed with it forward."""
    if isinstance(said, dict) and interrupts(error := error_of(said)):
        if past_pivot(m):
            return error
        if m.phase is Phase.STEP and m.stopping is None:
            m.stop(error)
        return None
    told(m, said)
    return None


def told_graph(m: GraphMachine, said: bool | dict[str, Any]) -> GraphOp | None:
    """A graph's (``_graph_drive._cancel``): a Ctrl-C fails the run there."""
    if isinstance(said, dict) and interrupts(error := error_of(said)):
        return m.broken(error, asked=True)
    if isinstance(said, dict):
        from ..._graph_drive import asking_failed

        return asking_failed(m, error_of(said))  # type: ignore[arg-type]
    return None if said is False else schedule.cancel(m, Cancelled.by_caller())
