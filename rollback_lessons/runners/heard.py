"""A saga's events told to its observers on every engine, as ``saga.run`` tells them: the
``rollback_lessons`` logger (fields in ``extra``) and the saga's ``on_event`` callback,
each event once, in the outcome's order, by the one rule (``events.tell``).

Two ways, one piece of code. Where the saga machine runs in this process, driven live by
the runner (the graph forms of Step Functions and BPMN), each event is told as the machine
makes it (``live``): a Ctrl-C in the callback is the machine's to judge (``Machine._emit``),
as in process. Where the engine ran the saga first and the machine replays what it did
(the list forms of Step Functions and BPMN, from the engine's history), or where the saga
ran elsewhere and may be replayed (a Temporal workflow, a DBOS workflow that may resume in
another process), the process that reads the outcome tells them once it has it
(``after``): a replay never tells them twice."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from .. import _guards
from ..events import Event, EventKind, build_events, level_of, log_event, log_threshold, tell
from ..machine import Machine, Phase
from ..operations import Op
from ..outcome import Outcome
from ..saga import Saga
from . import remote

MADE: dict[str, Machine] = {}
"""The machine of each run whose workflow runs in this process (DBOS's), by run id, until
it ends for good (then its handle's ``Hosted`` keeps it: ``dbos.lifetime``) or its outcome
is read: what it told is heard even when ``outcome()`` raises (``left``)."""

TOLD: dict[str, int] = {}
"""How many of a run's events its observers heard here when its ``outcome()`` raised (the
run left unfinished): once it is resumed here, its outcome tells only the rest."""


class Heard:
    """The observers of one run of ``saga`` on an engine (``events.Teller``)."""

    def __init__(self, saga: Saga) -> None:
        self.name, self.on_event = saga.name, saga.on_event
        self.log_level = log_threshold()  # (asked once per run, as in process)
        self.raise_after: BaseException | None = None  # a Ctrl-C told of the commit
        self.raised: BaseException | None = None  # a Ctrl-C in a callback told live
        self.told = False

    @property
    def wanted(self) -> bool:
        return self.on_event is not None or self.log_level <= logging.ERROR

    def event(self, event: Event) -> None:
        """Tell one event to the logger, then to ``on_event`` (as ``Run._watch`` does)."""
        if (
            self.log_level <= logging.ERROR
            and level_of(event.kind, event.details) >= self.log_level
        ):
            tell(self, event.kind, partial(log_event, event, self.name), "a logging handler")
        if self.on_event is not None:
            tell(self, event.kind, partial(self.on_event, event), "on_event callback")

    def live(self, machine: Machine) -> None:
        """Tell each event as ``machine`` makes it (the machine judges one that raises)."""
        if not self.wanted:
            return
        self.told = True

        def watch(seq: int, kind: EventKind, step: str | None, details: Mapping[str, Any]) -> None:
            try:
                self.event(Event(seq, kind, step, details, machine.run_id, None, None))
            except BaseException as exc:  # (re-raised by ``reraise`` if the run goes on)
                self.raised = self.raised or exc
                raise

        machine.watch = watch

    def failed(self, m: Machine, exc: BaseException, uncalled: tuple[str, ...] = ()) -> Op:
        """``exc`` came out of ``m`` going forward: if a callback told live raised it (the
        machine judged it so: ``Machine._emit``), the run fails there, as ``saga.run``'s does
        (``Run.fail``: ``_guards.cut_forward``, then the machine's ``fail``), and it is
        re-raised once what was done is undone (``reraise``); else it is raised now."""
        if exc is not self.raised or m.rolling or m.phase is Phase.DONE:
            raise exc
        return _guards.cut_forward_of(m, exc, uncalled) or m.fail(exc)

    def after(self, outcome: Outcome) -> None:
        """Tell the events of a run that is over, once (its outcome read again: not again).
        A Ctrl-C in the callback stops the telling and is raised, with notes saying what
        the run left, as ``saga.run`` raises one that lands once the run ended."""
        if self.told or not self.wanted:
            return
        self.told = True
        try:
            for event in outcome.events[TOLD.pop(outcome.run_id or "", 0) :]:
                self.event(event)
        except BaseException as exc:  # (an Exception is reported by ``tell``: a Ctrl-C)
            with contextlib.suppress(Exception):  # (an error that refuses notes)
                exc.add_note(f"it came as the events of a run over were told ({outcome.status})")
            remote.reraise(exc, outcome)
        self.reraise(outcome)

    def before_raise(self, events: Sequence[Event]) -> None:
        """Tell the events a run made before it ended with no outcome (its engine ended it:
        the runner raises), once, as ``saga.run``'s observers heard them before it raised."""
        if self.told or not self.wanted:
            return
        self.told = True
        for event in events:
            self.event(event)

    def left(self, run_id: str, run: Any = None) -> None:
        """The run's ``outcome()`` raises, the run left unfinished (its runner closed, a
        version that cannot replay it): what its machine told here is heard now (``MADE``,
        or its ``Hosted``'s once it ended for good: ``dbos.lifetime``), and only the rest
        once it is resumed here (``TOLD``)."""
        m = MADE.get(run_id) or (run.left.get("machine") if run is not None else None)
        if m is not None and not self.told and self.wanted:
            TOLD[run_id] = len(m.rows)
            self.before_raise(build_events(m.rows, run_id))

    def reraise(self, outcome: Outcome) -> None:
        """The run is over: a Ctrl-C a callback raised (the machine went on without it, or
        it was told of the commit) is raised now, as ``saga.run`` does."""
        remote.reraise(self.raised or self.raise_after, outcome)


def after(saga: Saga, outcome: Outcome) -> Outcome:
    """Tell ``outcome``'s events to ``saga``'s observers (a run that is over); the outcome."""
    Heard(saga).after(outcome)
    return outcome
