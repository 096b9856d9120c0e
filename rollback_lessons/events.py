"""Structured events: the story of a run, told the same way to lists, logs and callbacks."""

from __future__ import annotations

import html
import json
import logging
import sys
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

logger = logging.getLogger("rollback_lessons")
logger.addHandler(logging.NullHandler())  # a library stays quiet until the app configures logging


class EventKind(StrEnum):
    """What an event says happened; equal to its plain string (``"undo" == EventKind.UNDO``)."""

    STEP_START = "step_start"
    """A step's action is about to run (``register`` says when its undo is logged)."""
    UNDO_REGISTERED = "undo_registered"
    """The step's undo is in the log: from now on a rollback will run it."""
    STEP_RETRY = "step_retry"
    """The action failed and will be tried again after ``delay`` seconds."""
    STEP_FAILED = "step_failed"
    """The action failed for good (``after_effect`` when its effect happened anyway)."""
    STEP_DONE = "step_done"
    """The action succeeded."""
    PIPELINE_FAILED = "pipeline_failed"
    """The run cannot go on; what follows is the rollback (or a halt)."""
    ROLLBACK_START = "rollback_start"
    """The log is about to be run backwards: how many undos, in which order, under which policy."""
    UNDO = "undo"
    """One attempt at one undo."""
    UNDO_DONE = "undo_done"
    """The undo succeeded."""
    UNDO_FAILED = "undo_failed"
    """The attempt failed; ``then`` says what follows: retry, dead_letter or halt."""
    ROLLBACK_DONE = "rollback_done"
    """The rollback ended; ``status`` says whether it is complete."""
    HALTED = "halted"
    """A step after the point of no return failed: a person goes on from here."""
    COMMITTED = "committed"
    """Every step succeeded."""
    TRACE_FAILED = "trace_failed"
    """The state could not be snapshotted (``trace_state``); the run goes on untraced."""
    JOURNAL_FAILED = "journal_failed"
    """A journal write failed; the run goes on in memory and ``recover`` finishes the rest."""

    def __repr__(self) -> str:  # prints like the plain string it equals, in lists and dicts
        return repr(self.value)


UNDO_KINDS = frozenset({EventKind.UNDO, EventKind.UNDO_DONE, EventKind.UNDO_FAILED})
"""The events of the backward pass (printed indented in a terminal)."""

_LEVELS: dict[str, int] = {
    EventKind.STEP_FAILED: logging.WARNING,
    EventKind.STEP_RETRY: logging.WARNING,
    EventKind.PIPELINE_FAILED: logging.WARNING,  # the rollback handles it: not yet a person's
    EventKind.UNDO_FAILED: logging.ERROR,
    EventKind.HALTED: logging.ERROR,
    EventKind.TRACE_FAILED: logging.WARNING,
    EventKind.JOURNAL_FAILED: logging.ERROR,
}


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened; ``details`` holds only JSON-friendly values.

    ``run_id`` groups a run's events in a log system; ``at`` (wall clock, seconds since the
    epoch) and ``offset`` (seconds since the run started, monotonic) order them. These
    three are not compared: two runs that did the same thing have equal events.
    """

    seq: int
    kind: str
    step: str | None
    details: Mapping[str, Any]
    run_id: str | None = field(default=None, compare=False)
    at: float | None = field(default=None, compare=False)
    offset: float | None = field(default=None, compare=False)

    def __iter__(self) -> Iterator[Any]:  # unpacks as (seq, kind, step, details)
        return iter((self.seq, self.kind, self.step, self.details))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": self.seq, "kind": self.kind, "step": self.step}
        out.update(self.details)
        if self.run_id is not None:
            out["run_id"] = self.run_id
        if self.at is not None:
            out["at"] = _iso(self.at)
        if self.offset is not None:
            out["offset"] = round(self.offset, 6)
        return out

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=False)

    def __str__(self) -> str:
        parts = [f"{self.seq:>3} {self.kind:<16}", self.step or "-"]
        parts += [f"{k}={v}" for k, v in self.details.items()]
        return " ".join(parts).rstrip()


def _iso(at: float) -> str:
    """ISO 8601 in UTC, to the millisecond: what log systems parse."""
    stamp = datetime.fromtimestamp(at, tz=UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


EventSink = Callable[[Event], object]

_KINDS: dict[str, EventKind] = {k.value: k for k in EventKind}

EventRow = tuple[str, str | None, tuple[tuple[str, Any], ...], float | None]
"""An event as a run records it: (kind, step, details as (key, value) pairs, seconds since
the run started). Cheap to keep; ``build_events`` makes ``Event`` objects of them when they
are read."""


def build_events(
    rows: Sequence[EventRow],
    run_id: str | None = None,
    started_at: float | None = None,
    first_seq: int = 0,
) -> tuple[Event, ...]:
    """Events of recorded rows; ``started_at`` (wall clock) dates them from their offsets."""
    return tuple(
        Event(
            first_seq + n,
            _KINDS.get(kind, kind),
            step,
            dict(details),
            run_id,
            started_at + offset if started_at is not None and offset is not None else None,
            offset,
        )
        for n, (kind, step, details, offset) in enumerate(rows, start=1)
    )


def level_of(kind: str, details: Mapping[str, Any] | None = None) -> int:
    """The log level an event's meaning calls for: ERROR means a person must act.

    A failed undo that will be retried is a WARNING; one given up on (dead letter, halt)
    is an ERROR; a rollback that ends incomplete or halted is an ERROR, a complete one
    (``rolled_back``, or ``cancelled``: every undo ran) INFO.
    """
    if kind == EventKind.UNDO_FAILED and details is not None:
        return logging.WARNING if details.get("then") == "retry" else logging.ERROR
    if kind == EventKind.ROLLBACK_DONE and details is not None:
        complete = details.get("status") in ("rolled_back", "cancelled")
        return logging.INFO if complete else logging.ERROR
    return _LEVELS.get(kind, logging.INFO)


def log_event(event: Event, run: str) -> None:
    """Send one event to the ``rollback_lessons`` logger, fields in ``extra``."""
    level = level_of(event.kind, event.details)
    if logger.isEnabledFor(level):
        logger.log(
            level,
            "%s %s %s",
            event.kind,
            event.step or "-",
            " ".join(f"{k}={v}" for k, v in event.details.items()),
            extra={
                "run": run,
                "run_id": event.run_id,
                "at": event.at,
                "offset": event.offset,
                "seq": event.seq,
                "event": event.kind,
                "step": event.step,
                "details": dict(event.details),
            },
        )


class Teller(Protocol):
    """A run whose observers (the ``rollback_lessons`` logger, an ``on_event`` callback) are
    told its events by ``tell``: in process (``Run``) and on every engine (``runners.heard``)
    alike, so a failing one is treated the same everywhere."""

    raise_after: BaseException | None  # a Ctrl-C told of the commit: re-raised after


_UNRUN = {
    types.CoroutineType: "a coroutine",
    types.GeneratorType: "a generator",
    types.AsyncGeneratorType: "an async generator",
}


def tell(run: Teller, kind: str, call: Callable[[], Any], who: str) -> None:
    """An observer or a logging handler told of an event: one that raises must never stop
    a rollback nor undo a committed saga (attack18: a handler raising at the commit's
    record undid it). An error is reported and the run goes on; a Ctrl-C fails the run
    there, or, told of the commit, is kept in ``run.raise_after`` to re-raise once the run
    ended, with a note."""
    try:
        made = call()
        if made is not None and type(made) in _UNRUN:  # (a plain function that made one:
            if type(made) is not types.AsyncGeneratorType:  # never run, said: attack124 F3)
                made.close()
            print(f"rollback_lessons: {who} for {kind} returned {_UNRUN[type(made)]} "
                  "that nothing runs: its body never ran", file=sys.stderr)  # fmt: skip
    except Exception as exc:  # (not logged: the failing handler would be told again)
        print(f"rollback_lessons: {who} failed for {kind}: {describe(exc)}", file=sys.stderr)
    except BaseException as exc:  # a Ctrl-C once committed: re-raised after
        if kind != EventKind.COMMITTED or run.raise_after is not None:
            raise
        run.raise_after = exc


def log_threshold(log: logging.Logger = logger) -> int:
    """The lowest level at which some handler would write one of this logger's records
    (above CRITICAL: none would, so a run need not even build them). Asked once per run:
    the handlers first (most often there are none, and then the levels do not matter)."""
    lowest = none = logging.CRITICAL + 1
    found: logging.Logger | None = log
    while found is not None:
        for handler in found.handlers:
            if handler.level < lowest and not isinstance(handler, logging.NullHandler):
                lowest = handler.level
        found = found.parent if found.propagate else None
    if lowest == none:
        return none
    return max(log.getEffectiveLevel(), log.manager.disable + 1, lowest)


KEPT = "kept"
"""The key under which a journal keeps, in an event's details, what the run's outcome said
beside it (the steps to finish forward, the order of the undos left): read by ``recover``'s
lines, left out of the events the journal gives back (``as_told``), which are the run's."""


def as_told(details: str) -> dict[str, Any]:
    """An event's details as the journal stored them (JSON), as the run told them."""
    told = json.loads(details)
    told.pop(KEPT, None)
    return told  # type: ignore[no-any-return]


_STORED: dict[tuple[Any, ...], str] = {}
_PLAIN = (str, int, bool, type(None))  # (a float's -0.0 equals 0.0: encoded each time)


def stored(details: Mapping[str, Any]) -> str:
    """An event's details as the journal stores them (JSON: ``as_told`` reads them). Those
    that recur (an undo's attempt, a rollback's start and end) are encoded once: encoding
    each was a tenth of ``recover``'s time (``make bench``)."""
    key = tuple([(k, type(v), v) for k, v in details.items()])  # (True is not 1)
    try:
        said = _STORED.get(key)  # (only plain values are ever kept: never a float's)
    except TypeError:  # (a list)
        said = None
    if said is None:
        said = json.dumps(dict(details))
        if len(_STORED) < 512 and all(t in _PLAIN for _, t, _ in key):  # (bounded: an
            _STORED[key] = said  # error's description seldom recurs)
    return said


def describe(error: BaseException) -> str:
    """A deterministic one-line description of an exception for events and printouts; one
    whose ``repr`` raises (or returns no text) is described by its type, never stops a run.
    (A BaseException its ``repr`` raises is heard as one raised there: a Ctrl-C.)"""
    return text_of(error, repr, "its repr failed", Exception)


def said(error: BaseException) -> str:
    """``str(error)``, the message an engine carries in an error's record; one whose ``str``
    raises anything (a SystemExit too) or returns no text is told as ``describe`` tells it,
    by its type. ``saga.run`` never calls ``str``, so nothing an error's ``__str__`` does may
    stop an engine's run, nor its worker (attack32 F3)."""
    return text_of(error, str, "its message failed", BaseException)


def text_of(
    error: BaseException,
    how: Callable[[object], object],
    failed: str,
    caught: type[BaseException],
) -> str:
    """The one rule of ``describe`` and ``said`` (and of an engine's record of an error,
    ``error_record``): ``how(error)`` if it gives a text, else ``<Type (failed)>``."""
    try:
        text = how(error)
    except caught:
        text = None
    if type(text) is str:  # (a lone surrogate, a file name as os.fsdecode gives it, escaped:
        return text if text.isascii() else unsurrogated(text)  # a journal writes UTF-8)
    try:
        name = type(error).__qualname__
    except Exception:
        name = "exception"
    return f"<{name} ({failed})>"


def unsurrogated(text: str) -> str:
    """``text`` with a lone surrogate escaped (``\\udcff``): text UTF-8 can hold (SQLite
    refused the error of an undo naming a non-UTF-8 file, every try: attack112 F2)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text


def storable(params: tuple[Any, ...]) -> tuple[Any, ...]:
    """A journal write's ``params``, each text's lone surrogates escaped (``unsurrogated``):
    a write SQLite refuses every time would leave its saga unfinished for good."""
    return tuple(unsurrogated(p) if type(p) is str and not p.isascii() else p for p in params)


def one_line(text: str) -> str:
    """``text`` as one line: a character that would break it (a line break in a saga name or
    a journal's path) is written escaped, as ``repr`` writes it."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def format_events(events: list[Event]) -> str:
    return "\n".join(str(e) for e in events)


_CELL = 'style="text-align:left;padding:1px 8px;vertical-align:top"'
# details hold long tokens (error=InjectedTimeout('charge_card: ...')): they may wrap
# anywhere rather than run past the edge; the other columns never break
_DETAILS = 'style="text-align:left;padding:1px 8px;vertical-align:top;overflow-wrap:anywhere"'
_NOWRAP = 'style="text-align:left;padding:1px 8px;vertical-align:top;white-space:nowrap"'


def events_html(
    events: Sequence[Event],
    current: int | None = None,
    *,
    start: int = 0,
    rows: int | None = None,
) -> str:
    """The events as an HTML table, left-aligned; row ``current`` (0-based) is highlighted.

    ``start`` and ``rows`` show a window of the events (the panel keeps the current one in
    view); a line above and below says how many are not shown.
    """
    end = len(events) if rows is None else min(len(events), start + rows)
    out = []
    if start > 0:
        out.append(f"<tr><td colspan=4 {_CELL}>… {start} earlier</td></tr>")
    for i in range(start, end):
        event = events[i]
        details = " ".join(f"{k}={v}" for k, v in event.details.items())
        mark = ' class="now" style="background:#F0E442"' if i == current else ""
        kind = (str(event.seq), event.kind, event.step or "")
        cells = [f"<td {_NOWRAP}>{html.escape(c)}</td>" for c in kind]
        cells.append(f"<td {_DETAILS}>{html.escape(details)}</td>")
        out.append(f"<tr{mark}>{''.join(cells)}</tr>")
    if end < len(events):
        out.append(f"<tr><td colspan=4 {_CELL}>… {len(events) - end} later</td></tr>")
    head = "".join(f"<th {_NOWRAP}>{h}</th>" for h in ("#", "event", "step", "details"))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(out)}</tbody></table>"


def to_jsonl(events: Sequence[Event]) -> str:
    """One JSON object per line: the format log pipelines ingest."""
    return "\n".join(e.to_json() for e in events)
