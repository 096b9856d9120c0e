"""The one rule for stopping a run going forward, on any machine (a list's or a graph's, every
engine's): a caller's cancel (``cancel``) and the engine's own stop (``stop_forward``) are
declined once the run failed or ended, or once the irreversible step started (``declines``,
``past_pivot``). ``schedule`` names them too (``schedule.cancel``: the engines call them there)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeGuard

from .machine import Machine, Phase
from .operations import Op
from .rules import Kind
from .verdicts import PAST_PIVOT

if TYPE_CHECKING:
    from .schedule import GraphMachine, GraphOp


def _graph(m: Machine) -> TypeGuard[GraphMachine]:
    from .schedule import GraphMachine  # (here, not above: ``schedule`` imports this module)

    return isinstance(m, GraphMachine)


def stopped_past(by: str) -> str:
    """The note in place of ``PAST_PIVOT`` where the engine stopped anyway (attack99 F9; ``by``:
    its stop, which DBOS's did not say, attack152 F1)."""
    return (f"{by} once the irreversible step had started: nothing undone (undoing the "
            "steps before it would not take it back); a person decides what is still owed "
            "forward")  # fmt: skip


STOPPED_PAST = stopped_past("StopExecution stopped the execution")


def past_pivot(m: Machine) -> bool:
    """Has the run's irreversible step started (running now, or done)? A cancel then is
    declined, as a failure after the pivot is retried forward: never compensated across.
    Waiting to retry, its attempts refused before any effect (none in doubt), it has not:
    a cancel then stops it, as any step's wait (attack103 F11: the email went after it)."""
    if m.pivot_done:
        return True
    if _graph(m):
        from .schedule import _WAITING  # (``schedule`` imports this module)

        return Kind.PIVOT in [m.specs[s].kind for s in m.busy
                              if m.where.get(s) != _WAITING or m.doubt == s]  # fmt: skip
    return (
        m.spec is not None and m.spec.kind == Kind.PIVOT
        and (m.phase is Phase.STEP or (m.phase is Phase.STEP_WAIT and m.doubt == m.spec.name))
    )  # fmt: skip


def declines(m: Machine) -> str | None:
    """Why a cancel changes nothing now (one rule): "over", the run failed (a graph's failing
    step too) or ended; "pivot", the irreversible step started. None: it stops the run."""
    if m.rolling or m.phase is Phase.DONE or (_graph(m) and m.failing):
        return "over"
    return "pivot" if past_pivot(m) else None


def cancel(m: Machine, error: BaseException) -> Op | GraphOp | None:
    """The run's caller cancels it (a cancel token, a cancelled task): nothing more starts,
    what was done is undone, and the status says ``cancelled`` (``status_of``). A step
    running now finishes first (None: tell the machine how it went, as usual); a step
    waiting to retry is not tried again. Declined (``declines``): None, the run goes on as
    it was. (A graph's own rule: ``GraphMachine.cancel``.)"""
    declined = declines(m)
    if declined is not None:
        if declined == "pivot" and PAST_PIVOT not in m.notes:
            m.notes = [*m.notes, PAST_PIVOT]
        return None
    if _graph(m):
        return m.cancel(error)
    m.cancelled = True
    if m.phase is Phase.STEP:
        m.stop(error)
        return None
    if m.phase is Phase.STEP_WAIT:
        return m._step_lost(error)
    m.stopping = error  # as ``stop`` would have: the same rules for the same cancel
    return m.fail(error)


def cancel_uncalled(m: Machine, error: BaseException) -> Op | GraphOp | None:
    """The caller's cancel came as the running step's attempt began, and an engine saw that
    its action was not called (its activity dropped, or refused before the call): that
    attempt never ran (``Machine.not_run``: a first one's step not run, nothing of it to
    undo) and the run is cancelled from there (``cancel``), as ``saga.run`` leaves a step
    begun but not called (attack69 F2: told cut short after its effect, leaked). Declined
    as ``declines`` says whether that attempt began or not (an irreversible step done
    before, or started with an earlier attempt): None, the engine calls it after all."""
    if m.pivot_done or (m.attempt > 1 and declines(m) is not None):
        cancel(m, error)  # (noted)
        return None
    m.not_run(m.current, "the cancel came as it started")  # type: ignore[arg-type]
    return cancel(m, error)


def stop_forward(m: Machine, error: BaseException) -> bool:
    """Stop the forward run for a reason of the engine's own (``error``: no room left in a
    workflow's history): noted, nothing more starts, and once the running steps are told the
    run fails with ``error`` by the machine's rules. Declined (False) as a cancel is: once
    the run failed or stops already, or past the pivot (``past_pivot``: it goes on forward)."""
    if m.stopping is not None or declines(m) is not None:
        return False
    m.notes = [*m.notes, str(error)]
    if _graph(m):
        m.broken(error)
    else:
        m.stop(error)
    return True
