"""A run's record fitted to an engine's payload limit: its error texts cut, the rest whole.

A record that undid little but failed often (an undo retried 75 times, each failure's text
32,768 characters) can be bigger than the one payload an engine returns it in (Temporal's 2
MB). What a caller must learn from it (the status, what is done, undone, dead-lettered,
still in effect) is in its names and fields, never in the texts of its errors: so where the
record is over, each text (an event's details, an error's message and repr, the errors a
group holds) is cut to one bound, the longest that lets the record fit (never below
``FLOOR``), with the note every engine writes at a cut (``error_record.cut_text``) and a
note on the record saying so. In process a record is no payload: nothing is cut there.
What fits even then is the engine's to say (``limits.check_worst``, before the start; a
record still over after the run: ``limits.OutcomeTooLarge``)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

from .error_record import cut_text

FLOOR = 80
"""Characters an error's text is never cut below: the start of the failure (its type) and
the note at the cut. The start check counts every text at this length (``limits``)."""


def size(data: object) -> int:
    """Bytes of ``data`` as JSON, as Temporal's default converter writes a payload: every
    character beyond ASCII as its ``\\u`` escape, six bytes (counted in UTF-8, 'é' as two, a
    record fitted to 2 MB was 6.2 MB sent: the SDK refused to upload it, its workflow task
    failed again and again, the run never ended)."""
    return len(json.dumps(data, separators=(",", ":")))


def _texts(data: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """Where the record's error texts are, as (container, key): each event's details
    values that are texts, each error's message and repr, and those of the errors a group
    holds (walked without recursion)."""
    for _, _, details in data["events"]:
        for pair in details:
            if isinstance(pair[1], str):
                yield pair, 1
    errors = [d["error"] for d in data["dead_letters"]]
    errors += [data["error"]] if data["error"] else []
    while errors:
        error = errors.pop()
        yield from ((error, k) for k in ("message", "text") if isinstance(error.get(k), str))
        errors += error.get("held") or []


def _cut(text: str, keep: int, engine: str) -> str:
    return text if len(text) <= keep else cut_text(text, keep, engine, keep)


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


def fit(data: dict[str, Any], limit: int, engine: str) -> dict[str, Any]:
    """``data`` (``wire.record_data``'s) if it is ``limit`` bytes or less; else a copy with
    each error text over the longest bound that fits (``FLOOR`` at least) cut to it, and a
    note saying so. Still over at ``FLOOR`` (names, not texts, fill it): cut at ``FLOOR``,
    over all the same (the caller says what it can)."""
    whole = size(data)
    if whole <= limit:
        return data
    cut = copy.deepcopy(data)
    slots = [(where, key, where[key]) for where, key in _texts(cut)]
    longest = max((len(text) for _, _, text in slots), default=FLOOR)

    def note(keep: int) -> str:
        return (
            f"its error texts are cut to {keep} characters each: the record was "
            f"{_mb(whole)}, over {engine}'s payload limit of {_mb(limit)}"
        )

    counts: dict[str, list[int]] = {}  # each distinct text: how often (a retried error
    for _, _, text in slots:  # repeats), its size
        counts.setdefault(text, [0, size(text)])[0] += 1

    def fitted(keep: int) -> int:  # (the record's size with each text cut to ``keep``)
        change = sum(n * (size(_cut(text, keep, engine)) - was)
                     for text, (n, was) in counts.items() if len(text) > keep)  # fmt: skip
        return whole + change + size(note(keep)) + 1

    low, high = FLOOR, max(FLOOR, longest)
    while low < high:  # the longest bound that fits (or FLOOR)
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fitted(mid) <= limit else (low, mid - 1)
    for where, key, text in slots:
        where[key] = _cut(text, low, engine)
    cut["notes"] = [*cut["notes"], note(low)]
    return cut
