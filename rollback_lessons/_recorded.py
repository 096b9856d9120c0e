"""A with-block recorded, its machine told at the end (issue 23, "Cheap events").

A plain with-block nobody watches (no ``on_event``, no journal, no logging handler that
wants its events, no injected faults) is most with-blocks, and ``contextlib.ExitStack``'s
job: it should cost about what ExitStack does. So ``Rollback.do`` records each plain step
as a tuple (begun, then done: its name, its undo, the clock's two readings) and makes no
machine. The machine is made and told everything (``Machine.plain_steps``, then the
commit) the first time anyone asks for it (``Run.m``): when a step fails, the block raises,
a step is not plain (a retry, a register, an undo timeout), or the outcome is read. Only
then does it decide anything (what is undone and in which order, the policy, the status),
as it would have: it hears of the same steps at the same times, and nothing could have
seen the difference meanwhile (``tests/test_recorded.py`` compares the two over drawn
blocks: outcome, events, exceptions, journals, interrupts at every clock reading).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .machine import Machine

if TYPE_CHECKING:
    from ._run import Run


def told(run: Run) -> Machine:
    """``run``'s machine, told what its recorded steps did, each at its time, as it would
    have heard of them then (a step begun and not yet done still runs), and the commit. From
    here on it hears of everything as it happens."""
    history = run.history
    assert history is not None
    policy, undo_order = run.made
    m = Machine(policy, undo_order=undo_order, name=run.name)
    m.plain_steps(history, run.started)
    for entry in history:
        if entry[1] is not None:
            run.undos[entry[0]] = entry[1]
    if run.committed_at is not None:
        m.now = run.committed_at - run.started
        m.commit()
    run.m = m  # (only now, whole: a Ctrl-C on the way leaves it to be told again)
    run.history = None
    return m


class Told:
    """``Run.m``: a recording run's machine, made and told when first read (``told`` puts
    it in the run's ``__dict__``, where every later read finds it). A non-data descriptor,
    as ``functools.cached_property`` is, without the lock Python 3.11's takes on a first
    read (a failed with-block's cost: make bench)."""

    def __get__(self, run: Run | None, owner: Any = None) -> Any:
        return self if run is None else told(run)
