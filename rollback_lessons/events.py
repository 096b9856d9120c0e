"""Structured events: the story of a run, told the same way to lists, logs and callbacks."""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

logger = logging.getLogger("rollback_lessons")
logger.addHandler(logging.NullHandler())  # a library stays quiet until the app configures logging

_LEVELS = {
    "step_failed": logging.WARNING,
    "step_retry": logging.WARNING,
    "pipeline_failed": logging.ERROR,
    "undo_failed": logging.ERROR,
    "halted": logging.ERROR,
}


class Event(NamedTuple):
    """One thing that happened; ``details`` holds only JSON-friendly values."""

    seq: int
    kind: str
    step: str | None
    details: Mapping[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind, "step": self.step, **self.details}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=False)

    def __str__(self) -> str:
        parts = [f"{self.seq:>3} {self.kind:<16}", self.step or "-"]
        parts += [f"{k}={v}" for k, v in self.details.items()]
        return " ".join(parts).rstrip()


EventSink = Callable[[Event], object]


def level_of(kind: str) -> int:
    return _LEVELS.get(kind, logging.INFO)


def log_event(event: Event, run: str) -> None:
    """Send one event to the ``rollback_lessons`` logger, fields in ``extra``."""
    level = _LEVELS.get(event.kind, logging.INFO)
    if logger.isEnabledFor(level):
        logger.log(
            level,
            "%s %s %s",
            event.kind,
            event.step or "-",
            " ".join(f"{k}={v}" for k, v in event.details.items()),
            extra={
                "run": run,
                "seq": event.seq,
                "event": event.kind,
                "step": event.step,
                "details": dict(event.details),
            },
        )


def describe(error: BaseException) -> str:
    """A deterministic one-line description of an exception for events and printouts."""
    return repr(error)


def format_events(events: list[Event]) -> str:
    return "\n".join(str(e) for e in events)


def events_html(events: Sequence[Event], current: int | None = None) -> str:
    """The events as an HTML table; row ``current`` (0-based) is highlighted."""
    rows = []
    for i, event in enumerate(events):
        details = " ".join(f"{k}={v}" for k, v in event.details.items())
        mark = ' class="now" style="background:#F0E442"' if i == current else ""
        cells = (str(event.seq), event.kind, event.step or "", details)
        rows.append(f"<tr{mark}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    head = "<tr><th>#</th><th>event</th><th>step</th><th>details</th></tr>"
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def to_jsonl(events: Sequence[Event]) -> str:
    """One JSON object per line: the format log pipelines ingest."""
    return "\n".join(e.to_json() for e in events)
