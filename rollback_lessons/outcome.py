"""What a run did, as data: the lessons print it, the widgets draw it, callers check it."""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from enum import StrEnum
from functools import cached_property
from typing import Any

from .errors import TakenOver
from .events import Event, EventRow, build_events, describe, format_events, to_jsonl


def _kin(cls: type) -> list[type]:
    """``cls`` and every class below it."""
    subs: list[type] = cls.__subclasses__()
    return [cls, *(k for sub in subs for k in _kin(sub))]


class Status(StrEnum):
    COMMITTED = "committed"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_INCOMPLETE = "rollback_incomplete"
    HALTED = "halted"
    CANCELLED = "cancelled"
    """The run's caller cancelled it (a cancel token, a cancelled task) and every effect was
    undone: the world is as it was, as with ``rolled_back``, but for the steps with no undo
    (``kept``). A cancelled run whose rollback is incomplete says ``rollback_incomplete`` or
    ``halted``, like any other."""


_ROLLED = frozenset({Status.ROLLED_BACK, Status.CANCELLED, Status.ROLLBACK_INCOMPLETE})
_COMP = "compensable"  # (``rules.Kind.COMPENSABLE``: a step that changes something)
DROPPED = "its undo, logged before it, dropped by the commit"  # (a leaked step's, attack90 F11)
EARLY = "undone, but it still ran: it may land after its undo"  # (its wait given up: attack92 F4)
ran_on = lambda dead: f"it may still run, and its undo {'failed' if dead else 'is pending'}"  # noqa: E731


def forward_when(sure: bool) -> str:
    """When a person finishes the steps after a pivot (``sure``: it happened), one wording
    for a run's outcome and ``recover``'s halted line (attack79 F2)."""
    return f"{'after the pivot' if sure else 'if the pivot happened'}: finish by hand"


@dataclass(frozen=True)
class DeadLetter:
    """An undo that finally failed: someone has to finish it by hand."""

    step: str
    error: BaseException
    attempts: int

    def __str__(self) -> str:
        times = "attempt" if self.attempts == 1 else "attempts"
        return f"{self.step}: {describe(self.error)} after {self.attempts} {times}"


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(names) if names else "-"


@dataclass(frozen=True)
class RunRecord:
    """How one run of a saga ended, as every engine tells it (in process, Temporal, Step
    Functions, BPMN, DBOS, ``recover``): the same fields, the same events (kept as rows,
    made ``Event`` objects when ``events`` is first read)."""

    status: Status
    steps: tuple[str, ...]
    completed: tuple[str, ...] = ()
    compensated: tuple[str, ...] = ()
    dead_letters: tuple[DeadLetter, ...] = ()
    pending: tuple[str, ...] = ()
    leaked: tuple[str, ...] = ()
    semantic: tuple[str, ...] = ()
    """Steps compensated by a new action (a correction email), not undone: they count in
    ``compensated`` too, but the world is not as it was."""
    error: BaseException | None = None
    failed_step: str | None = None
    kinds: Mapping[str, str] = field(default_factory=dict)
    name: str = "saga"
    run_id: str | None = None
    """The run's id (its saga id in a journal, its workflow id on an engine)."""
    notes: tuple[str, ...] = ()
    """What went wrong around the run (a journal write, a state snapshot, an interruption)."""
    rows: tuple[EventRow, ...] = field(default=(), repr=False, compare=False)
    started_at: float | None = field(default=None, repr=False, compare=False)
    """Wall-clock time the run started (events are dated from it), when a clock was read."""
    first_seq: int = field(default=0, repr=False, compare=False)

    @cached_property
    def events(self) -> tuple[Event, ...]:
        return build_events(self.rows, self.run_id, self.started_at, self.first_seq)

    @classmethod
    def build(cls, **values: Any) -> Any:
        """Make one from its fields, without the frozen dataclass's setattr per field: a run
        makes one, and the explorer tens of thousands (``make bench``)."""
        names, defaults, factories = _layout(cls)
        unknown = values.keys() - names
        if unknown:
            raise TypeError(f"{cls.__name__} has no field {', '.join(sorted(unknown))}")
        record = object.__new__(cls)
        fields_ = record.__dict__
        fields_.update(defaults)
        for name, factory in factories:
            if name not in values:
                fields_[name] = factory()
        fields_.update(values)
        return record

    @classmethod
    def of_run(cls, m: Any, **extra: Any) -> Any:
        """The record of the run a saga machine ``m`` holds (``Machine.record``): its fields
        filled here, beside their definitions, so that machine.py keeps only its rules."""
        if "steps" not in extra:
            if m.plan is not None:
                extra["steps"] = tuple(s.name for s in m.plan)
                extra["kinds"] = {s.name: str(s.kind) for s in m.plan}
            else:
                extra["steps"] = tuple(m.seen)
                extra["kinds"] = {k: str(v) for k, v in m.kinds.items()}
        return cls.build(
            status=m.status(),
            completed=tuple(m.completed),
            compensated=tuple(m.compensated),
            dead_letters=tuple(m.dead_letters),
            pending=tuple(m.pending),
            leaked=tuple(m.leaked),
            semantic=tuple(m.semantic),
            error=m.error,
            failed_step=m.failed_step,
            name=m.name,
            run_id=m.run_id,
            notes=tuple(m.notes),
            rows=tuple(m.rows),
            first_seq=m.first_seq,
            **extra,
        )

    @property
    def forward(self) -> tuple[str, ...]:
        """A run halted once its irreversible step started: the steps after it not done (the
        failed one, those never begun: attack41 F7), finished forward by hand if it happened."""
        pivots: list[str | None] = [s for s in self.steps if self.kinds.get(s) == "pivot"]
        pivot = (pivots or [None])[0]  # (a list: a generator next() left is closed later,
        # where a Ctrl-C is dropped: attack54 F4)
        begun = pivot in (*self.completed, *self.leaked)  # (a clean refusal: not begun, F2)
        if self.status is not Status.HALTED or pivot is None or not begun:
            return ()
        after = self.steps[self.steps.index(pivot) + 1 :]
        return tuple(s for s in after if s not in self.completed)

    @property
    def forward_said(self) -> str:
        """``forward`` as a person is told it: each step, and when to finish them (the
        summary's line; the journal keeps it on the halted event for ``recover``'s lines)."""
        return f"{', '.join(self.forward)} ({self._forward_when()})" if self.forward else ""

    @cached_property
    def _pending_why(self) -> str:
        """Undos not run here are a person's, unless another process took the saga over
        (``recover --force``): it holds them (its report says which it undid: attack45)."""
        taken = {c.__name__ for c in _kin(TakenOver)}
        if issubclass(type(self.error), TakenOver) or any(
            row[0] == "rollback_done" and dict(row[2]).get("interrupted") in taken
            for row in self.rows
        ):
            return "not undone here: the process that took the saga over has them"
        return "left for a person"

    @property
    def leaked_said(self) -> tuple[tuple[tuple[str, ...], str], ...]:
        """The leaked steps, grouped by why no undo covers them: a pivot has none, any other
        none logged (review76 F8), its undo dropped by a commit (attack90 F11) or run early."""
        late = self.error.late if issubclass(type(self.error), TakenOver) else None  # type: ignore[union-attr]
        pivots = tuple(s for s in self.leaked if self.kinds.get(s) == "pivot" and s != late)
        logged = {r[1] for r in self.rows if r[0] == "undo_registered"} - {*pivots, late}
        dropped = tuple(s for s in self.leaked if s in logged) * (self.status is Status.COMMITTED)
        early = tuple(s for s in self.leaked if s in self.compensated and s not in dropped)
        dead = {d.step for d in self.dead_letters}  # (its undo logged, failed or left: ran on)
        ran = [s for s in self.leaked if s in (*dead, *self.pending) and s not in (*pivots, late)]
        rest = tuple(s for s in self.leaked if s not in (*pivots, *dropped, *early, *ran))
        why = "no undo logged for it"
        if late in rest:
            said = f"{late}: returned after the saga was taken over, check it by hand"
            why = said if len(rest) == 1 else f"{why}; {said}"
        runs = ((tuple(s for s in ran if (s in dead) == d), ran_on(d)) for d in (True, False))
        groups = ((pivots, "irreversible: no undo"), (dropped, DROPPED), (early, EARLY), *runs)
        return tuple((names, why) for names, why in (*groups, (rest, why)) if names)

    def _forward_when(self) -> str:
        sure = self.kinds.get(self.failed_step or "") != "pivot" and "pivot" in [
            self.kinds.get(s) for s in self.completed]  # fmt: skip
        return forward_when(sure)

    @property
    def kept(self) -> tuple[str, ...]:
        """The steps done whose effect a rollback leaves standing by design: changed
        something, have no undo, and are neither a gate (no effect) nor irreversible (those
        are ``leaked``: reported). ``rolled_back`` and ``cancelled`` mean the world as it was
        but for these (newuser24 #1: the trip undone, the card still charged)."""
        if self.status not in _ROLLED and not (  # (a halted rollback: pending, and these)
            self.status is Status.HALTED and any(e.kind == "rollback_start" for e in self.events)
        ):
            return ()
        out = {*self.compensated, *self.pending, *self.leaked, *(d.step for d in self.dead_letters)}
        return tuple(s for s in self.completed if s not in out and self.kinds.get(s) == _COMP)

    @property
    def cancelled(self) -> bool:
        """Did its caller's cancel stop it (its rollback started as a cancel's), whatever
        the rollback's end: "stopped by", never "the run failed with" a cancel."""
        return self.status is Status.CANCELLED or any(
            e.kind == "rollback_start" and e.details.get("cancelled") for e in self.events
        )

    @property
    def ok(self) -> bool:
        return self.status is Status.COMMITTED

    def raise_for_status(self) -> Any:
        """Return self when committed; otherwise re-raise the original error."""
        if self.error is not None:
            raise self.error
        return self


RECORD_FIELDS = tuple(f.name for f in fields(RunRecord))
_LAYOUTS: dict[type, tuple[frozenset[str], dict[str, Any], tuple[tuple[str, Any], ...]]] = {}


def _layout(cls: type) -> tuple[frozenset[str], dict[str, Any], tuple[tuple[str, Any], ...]]:
    """A record class's field names, plain defaults and default factories (once per class)."""
    if cls not in _LAYOUTS:
        found = fields(cls)
        _LAYOUTS[cls] = (
            frozenset(f.name for f in found),
            {f.name: f.default for f in found if f.default is not MISSING},
            tuple((f.name, f.default_factory) for f in found if f.default_factory is not MISSING),
        )
    return _LAYOUTS[cls]


@dataclass(frozen=True)
class Outcome(RunRecord):
    """The result of one run: its RunRecord, and what only the process that ran it has (the
    state before and after, each step's result, snapshots). ``raise_for_status()`` turns a
    failure back into its exception."""

    state_before: Mapping[str, Any] | None = None
    state_after: Mapping[str, Any] | None = None
    results: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    states: tuple[Mapping[str, Any], ...] = field(default=(), repr=False)
    """With ``trace_state=True``: the state after each event, for pictures that replay it."""

    @classmethod
    def of(cls, record: RunRecord, **extra: Any) -> Outcome:
        """``record`` with what this process adds (``state_before=``, ``labels=``, ...)."""
        return cls.build(**{name: getattr(record, name) for name in RECORD_FIELDS}, **extra)  # type: ignore[no-any-return]

    def state_at(self, index: int) -> Mapping[str, Any] | None:
        """The state right after event ``index`` (0-based), as far as it is known."""
        if self.states:
            return self.states[index]
        return self.state_after if index >= len(self.events) - 1 else self.state_before

    def changed(self) -> list[str]:
        """Keys whose value differs between the state before and after."""
        before, after = self.state_before or {}, self.state_after or {}
        keys = list(before) + [k for k in after if k not in before]
        return [k for k in keys if before.get(k, _MISSING) != after.get(k, _MISSING)]

    def story(self) -> str:
        """The events, one per line, in the order they happened."""
        return format_events(list(self.events))

    def to_jsonl(self) -> str:
        """The events as JSON lines."""
        return to_jsonl(self.events)

    def summary_lines(self) -> list[str]:
        head = str(self.status)
        if self.error is not None and self.cancelled and not self.failed_step:
            head += f": stopped by {describe(self.error)}"
        elif self.error is not None and self.cancelled:  # (a Stop, and a branch failed too)
            said = describe(self.error)
            head += f": stopped by its caller; {self.failed_step} failed too, with {said}"
        elif self.error is not None:
            head += f": {self.failed_step or 'the run'} failed with {describe(self.error)}"
        lines = [
            head,
            f"  completed     {_names(self.completed)}",
            f"  undone        {_names(self.compensated)}",
            f"  dead letters  {'; '.join(map(str, self.dead_letters)) or '-'}",
        ]
        if self.pending:
            lines.append(f"  pending       {_names(self.pending)}  ({self._pending_why})")
        lines += [f"  leaked        {_names(names)}  ({why})" for names, why in self.leaked_said]
        if self.semantic:
            lines.append(f"  compensated   {_names(self.semantic)}  (by a new action, not undone)")
        if self.kept:
            lines.append(f"  kept          {_names(self.kept)}  (no undo: its effect stands)")
        if self.forward:  # (its pivot happened, or may have: what to finish, each named)
            lines.append(f"  forward       {_names(self.forward)}  ({self._forward_when()})")
        lines += [f"  note          {note}" for note in self.notes]
        if self.state_before is not None:
            lines.append(f"  state before  {dict(self.state_before)}")
            lines.append(f"  state after   {dict(self.state_after or {})}")
        return lines

    def __str__(self) -> str:
        return "\n".join(self.summary_lines())

    def __repr__(self) -> str:
        return (
            f"<Outcome {self.status}: completed={list(self.completed)} "
            f"compensated={list(self.compensated)} dead_letters={len(self.dead_letters)}>"
        )

    def _repr_html_(self) -> str:
        return outcome_html(self)


_MISSING = object()


@dataclass(frozen=True)
class Table:
    """Rows of text: HTML in a notebook (left-aligned, no word broken in two), aligned
    plain text in a terminal (``print``)."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def __str__(self) -> str:
        table = [self.header, *self.rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(self.header))]
        return "\n".join(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in table
        )

    __repr__ = __str__

    def _repr_html_(self) -> str:
        cell = "text-align:left;vertical-align:top;padding:2px 10px;"
        words = "word-break:normal;overflow-wrap:normal"  # wrap between words only
        head = "".join(
            f'<th style="{cell}white-space:nowrap">{html.escape(h)}</th>' for h in self.header
        )
        body = "".join(
            "<tr>"
            + "".join(
                f'<td style="{cell}{"white-space:nowrap" if i == 0 else words}">'
                f"{html.escape(c)}</td>"
                for i, c in enumerate(row)
            )
            + "</tr>"
            for row in self.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def compare_table(outcomes: Mapping[str, Outcome]) -> Table:
    """Several runs side by side, one column each (for comparing policies or orders)."""
    rows = [
        ("status", lambda o: str(o.status)),
        ("undone", lambda o: _names(o.compensated)),
        # both rows are work for a person: a dead letter was tried and given up on; the
        # pending undos were left when the rollback halted (one that failed, and the rest)
        ("dead letters", lambda o: _names(tuple(d.step for d in o.dead_letters))),
        ("pending (halted)", lambda o: _names(o.pending)),
        ("undo attempts", lambda o: str(sum(e.kind == "undo" for e in o.events))),
        ("state after", lambda o: str(dict(o.state_after or {}))),
    ]
    return Table(
        header=("", *outcomes),
        rows=tuple((label, *(f(o) for o in outcomes.values())) for label, f in rows),
    )


_STATUS_COLOURS = {  # Okabe-Ito: readable for the common colour-vision deficiencies
    Status.COMMITTED: "#0072B2",
    Status.ROLLED_BACK: "#009E73",
    Status.ROLLBACK_INCOMPLETE: "#D55E00",
    Status.HALTED: "#CC79A7",
    Status.CANCELLED: "#56B4E9",
}


def _step_row(o: Outcome, step: str) -> str:
    forward = "done" if step in o.completed else ("failed" if step == o.failed_step else "not run")
    dead = {d.step: d for d in o.dead_letters}
    if step in o.compensated:
        back = "undone"
    elif step in dead:
        back = f"dead letter: {describe(dead[step].error)}"
    elif step in o.pending:
        back = f"pending ({o._pending_why})"
    elif step in o.leaked:
        back = "leaked"
    elif step in o.kept:
        back = "kept (no undo)"
    else:
        back = ""
    kind = o.kinds.get(step, "")
    cells = (step, kind, forward, back)
    return "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"


def _state_table(o: Outcome) -> str:
    if o.state_before is None:
        return ""
    return state_table_html(o.state_before, o.state_after or {})


def state_table_html(
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    titles: tuple[str, str] = ("before", "after"),
) -> str:
    """Before and after side by side; changed values highlighted."""
    changed = {k for k in [*before, *after] if before.get(k, _MISSING) != after.get(k, _MISSING)}
    rows = []
    for key in list(before) + [k for k in after if k not in before]:
        style = ' style="background:#F0E442"' if key in changed else ""
        b = html.escape(repr(before.get(key, "-")))
        a = html.escape(repr(after.get(key, "-")))
        rows.append(f"<tr{style}><td>{html.escape(str(key))}</td><td>{b}</td><td>{a}</td></tr>")
    return (
        f"<table><thead><tr><th>key</th><th>{titles[0]}</th><th>{titles[1]}</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def outcome_html(o: Outcome) -> str:
    colour = _STATUS_COLOURS[o.status]
    error = f" &mdash; {html.escape(describe(o.error))}" if o.error is not None else ""
    steps = "".join(_step_row(o, s) for s in o.steps)
    return (
        '<div class="rollback-outcome">'
        f'<p><b style="color:{colour}">{html.escape(str(o.status))}</b>{error}</p>'
        "<table><thead><tr><th>step</th><th>kind</th><th>forward</th><th>undo</th></tr></thead>"
        f"<tbody>{steps}</tbody></table>"
        f"{_state_table(o)}</div>"
    )
