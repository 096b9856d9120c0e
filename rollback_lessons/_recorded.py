"""A with-block recorded, its machine told at the end (issue 23, "Cheap events").

A plain with-block nobody watches (no ``on_event``, no journal, no logging handler that
wants its events, no injected faults) is most with-blocks, and ``contextlib.ExitStack``'s
job: it should cost about what ExitStack does. So ``Rollback.do`` records each plain step
as a tuple (begun, then done: its name, its undo, the clock's two readings) and makes no
machine. When the block raises, its undos are called from those tuples (``roll_back``),
newest first by the machine's own order rule, each stamped as it returns. The machine is
made and told everything (``Machine.plain_steps``, the commit or the failure, the undos
that returned) the first time anyone asks for it (``Run.m``): when a step fails, a step is
not plain (a retry, a register, an undo timeout), an undo raises, or the outcome is read.
Only then does it decide anything (the policy, dead letters, the status, the notes), as
it would have: it hears of the same steps and undos at the same times, and nothing could
have seen the difference meanwhile (``tests/test_recorded.py`` compares the two over drawn
blocks: outcome, events, exceptions, journals, interrupts at every clock reading).

A failed block's error stays in a reference cycle, on purpose: ``outcome.error`` is the
very exception the block raised, its ``__traceback__`` holds the user's frame that raised
it, and that frame's local ``rb`` holds the run. Measured (make bench's failed 3-step block,
CPU time, best of 25, with and without the run holding the error): 1.1-1.6 us of about
10 us, fresh memory for what the cycle keeps and, with the gc on, its collection. When the
block itself raises, no frame of ours is in that traceback (``__exit__`` returns, it does
not re-raise), so there is nothing of ours to clear or ``del``; breaking the cycle would
take either giving up ``outcome.error is e`` or clearing the user's own frame (its locals,
which pytest and a debugger show). So it is kept, and kept small: no machine, and the run
holds its policy, order and failure as attributes, not tuples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._guards import began_cut
from ._wrapped import INERT
from .calls import checked
from .machine import Machine
from .policies import UndoPolicy
from .verdicts import in_undo_order

if TYPE_CHECKING:
    from ._run import Run


def told(run: Run) -> Machine:
    """``run``'s machine, told what its recorded steps did, each at its time, as it would
    have heard of them then (a step begun and not yet done still runs), and the commit, or
    the failure and the undos that returned since (``roll_back``). From here on it hears of
    everything as it happens."""
    history = run.history
    assert history is not None
    m = Machine(run.policy, undo_order=run.undo_order, name=run.name)
    m.plain_steps(history, run.started)
    for entry in history:
        if entry[1] is not None:
            run.undos[entry[0]] = entry[1]
    if run.committed_at is not None:
        m.now = run.committed_at - run.started
        m.commit()
    done = run.undone
    if run.failure is not None:  # (``roll_back``) its failure, and the undos returned so far
        m.now = run.failed_at
        m.fail(run.failure)
        if done:
            m.undos_ok(tuple(done))
    # Only now, whole, in one statement (a Ctrl-C on the way leaves it to be told again):
    # its undos told, a new list for those that return from here on.
    run.m, run.history, run.undone = m, None, (None if done is None else [])
    return m


def roll_back(run: Run, error: BaseException) -> None:
    """A recorded block failed: its undos are called from the recorded steps, newest first
    (``in_undo_order``, the machine's rule), each stamped as it returns, and no machine is
    made. This is ``Driver.in_a_row`` before the machine is told: the machine hears of the
    failure at the time it was stamped (``told``) and of the undos that returned so far
    (``told_undos``) when anything reads it, or before anything it must decide happens (an
    undo raises, a Ctrl-C at a stamp); from there on it decides as it always does. A
    rollback the machine could not say at once (``undo_plan``: the policy times its undos;
    a step still runs) is the machine's from the start (``Run.roll_back``)."""
    history = run.history
    policy = run.policy
    retry = policy.retry
    if (
        history is None or run.committed_at is not None or (history and len(history[-1]) < 4)
        or type(policy).timeout is not UndoPolicy.timeout
        or (retry is not None and retry.timeout is not None)
    ):  # fmt: skip
        run.roll_back(error)
        return
    monotonic, started = run.monotonic, run.started
    try:
        run.failed_at = monotonic() - started
        run.failure = error  # (last: told the failure only once it is stamped)
        run.undone = []
        for entry in in_undo_order(history, run.undo_order):
            undo = entry[1]
            if undo is None:
                continue  # (a step with no undo: nothing in the log)
            try:
                result = undo()
                if result is not None and type(result) not in INERT:
                    result = checked(result, "undo", entry[0])
            except BaseException as exc:  # the machine told, and it decides the rest
                run.told_undos()
                run.drive(run.undo_raised(exc))
                return
            run.undone.append(monotonic() - started)  # (a new list once told: ``told``)
        if run.history is None:  # told meanwhile (an undo read the run): it hears of the rest
            op = run.told_undos()
            run.undone = None
            assert op is not None
            run.drive(op)
        # else: every undo returned, and the machine is told when first asked (``told``)
    except BaseException as exc:  # a Ctrl-C at a stamp, or anywhere outside a call
        first = run.failure is None  # (at the failure's own stamp: as ``Run.fail``'s, said
        if first:  # as the rollback began, no undo called: ``began_cut``)
            run.m.fail(error)
        run.told_undos()  # (as ``Driver.drive``'s)
        if first:
            began_cut(run, exc)
        else:
            run.cut(exc)


class Told:
    """``Run.m``: a recording run's machine, made and told when first read (``told`` puts
    it in the run's ``__dict__``, where every later read finds it). A non-data descriptor,
    as ``functools.cached_property`` is, without the lock Python 3.11's takes on a first
    read (a failed with-block's cost: make bench)."""

    def __get__(self, run: Run | None, owner: Any = None) -> Any:
        return self if run is None else told(run)
