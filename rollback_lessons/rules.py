"""The saga's vocabulary, shared by the engine and every layer above it: the kinds of step,
which of them stay done when a saga rolls back, how a retriable step is retried forward by
default, the options a run takes (checked before anything runs), and what an undo stored by
name is. The rules that use them, and decide what happens next, are the saga machine's
(``machine.py``); the saga as data for an engine is ``runners.wire``'s.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Mapping, MutableMapping
from enum import StrEnum
from typing import Any, Literal

from .errors import InvalidNameError, InvalidPipelineError
from .policies import RetryPolicy

Register = Literal["before", "after"]
UndoOrder = Literal["reverse", "forward", "reverse_start", "by_dependency"]
REGISTER_CHOICES = ("before", "after")
UNDO_ORDERS = ("reverse", "forward")
"""The undo orders every engine can carry (a list of steps)."""
GRAPH_UNDO_ORDERS = ("reverse", "forward", "reverse_start", "by_dependency")
"""In process, a saga with parallel groups may also be undone in reverse *start* order or by
dependency (``graph_shape.undo_order``); on a list all but ``forward`` are the same."""


class Kind(StrEnum):
    GATE = "gate"
    """A check that changes nothing (verify a card, read a price): no undo; it may fail."""
    COMPENSABLE = "compensable"
    """Changes something and has an undo (or, with none, an effect nothing undoes)."""
    PIVOT = "pivot"
    """Irreversible: once it succeeds, the saga must go forward (sending an email)."""
    RETRIABLE = "retriable"
    """After the pivot: retried forward (its retry policy, or FORWARD_RETRY), never undone."""


IRREVERSIBLE = frozenset({Kind.PIVOT, Kind.RETRIABLE})
"""Kinds whose effect stays when the saga rolls back (a gate has no effect to undo)."""

FORWARD_RETRY = RetryPolicy(max_attempts=3, initial_delay=0.5, multiplier=2.0, max_delay=5.0)
"""How a retriable step with no retry policy of its own is retried before the saga halts."""


# -- names ----------------------------------------------------------------------------


def _carried(c: str) -> bool:
    """Is ``c`` a character of XML 1.0 (the ``Char`` production) that is no control
    character but tab and line breaks (DEL and C1 too: U+0080-U+009F, a terminal's CSI
    among them; XML allows them, the README's rule does not: attack41 F8)?"""
    n = ord(c)
    return (
        n in (0x9, 0xA, 0xD)
        or 0x20 <= n <= 0x7E
        or 0xA0 <= n <= 0xD7FF
        or 0xE000 <= n <= 0xFFFD
        or 0x10000 <= n <= 0x10FFFF
    )


def check_name(name: object, what: str) -> None:
    """The one rule for names, whatever engine runs the saga: a non-empty str of characters
    that XML can carry (a BPMN file is XML; JSON, Temporal and SQLite carry all of them):
    no NUL, no control character but tab and line breaks, no lone surrogate. Lengths, and
    the characters a state name allows, are each engine's own: its writer maps the names
    (``runners.names``)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"{what} must be a non-empty str, got {name!r}")
    if wrong := [c for c in name if not _carried(c)]:  # (a list: no generator, L3)
        bad = wrong[0]
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise InvalidNameError(
            f"{what} {shown!r} has the character U+{ord(bad):04X}, which no engine can "
            "carry (a BPMN file is XML): no NUL, no control character but tab and line "
            "breaks, no lone surrogate"
        )


# -- options --------------------------------------------------------------------------


def check_register(value: object, what: str = "register") -> None:
    if value not in REGISTER_CHOICES:
        raise InvalidPipelineError(f"{what} must be 'before' or 'after', got {value!r}")


def check_undo_order(value: object, choices: tuple[str, ...] = UNDO_ORDERS) -> None:
    if value not in choices:
        if choices == UNDO_ORDERS:
            raise InvalidPipelineError(f"undo_order must be 'reverse' or 'forward', got {value!r}")
        raise InvalidPipelineError(
            f"undo_order must be one of {', '.join(map(repr, choices))}, got {value!r}"
        )


def check_state(state: object) -> None:
    """The world a run acts on: a mutable mapping (its steps write to it), or None; refused
    before anything runs, by ``saga.run`` and every engine's runner alike."""
    if state is not None and not isinstance(state, MutableMapping):
        raise TypeError(f"state must be a mutable mapping, got {type(state).__name__}")


def check_text(value: object, what: str) -> None:
    """A name or id a journal stores and prints on one line: a non-empty str of printable
    characters (a line break or a control character would forge a row of ``journal show``)."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__} {value!r}")
    if not value or not value.isprintable():
        raise InvalidNameError(
            f"{what} must be a non-empty str of printable characters (no line break, tab or "
            f"control character), got {value!r}"
        )


def idempotency_key(run_id: str, step: str) -> str:
    """The key an undo is called with, on every engine: one per run and step, because a
    run id has no ':' (``check_run_id``), so the key's first ':' ends it."""
    return f"{run_id}:{step}"


def check_run_id(run_id: object, what: str = "a run_id") -> None:
    """A run id a caller chose, before anything runs: printable text on one line, and no
    ':' (run 'order' with step 'card:refund' and run 'order:card' with step 'refund' would
    share one ``idempotency_key``, and a service honouring keys would skip one refund);
    nor only spaces (blank in every listing; DBOS refused it in its own words: attack46 F2)."""
    check_text(run_id, what)
    if not run_id.strip(" "):  # type: ignore[attr-defined]
        raise InvalidNameError(f"{what} must not be only spaces (got {run_id!r}): it names no run")
    if ":" in run_id:  # type: ignore[operator]
        raise InvalidNameError(
            f"{what} must not contain ':' (got {run_id!r}): an undo's idempotency key is "
            "'<run id>:<step>', and must name one undo only"
        )
    if not unicodedata.is_normalized("NFC", run_id):  # type: ignore[arg-type]
        nfc = unicodedata.normalize("NFC", run_id)  # type: ignore[arg-type]
        raise InvalidNameError(  # (two ids printed alike: 'café' twice, one settled, which?
            f"{what} must be in Unicode's NFC form, as a keyboard types it: {run_id!a} "
            f"prints as {nfc!a} does, another id; unicodedata.normalize('NFC', ...) "
            "gives that form"  # attack291 F5)
        )


def default_run_id(saga_name: str) -> str:
    """The run id an engine's runner gives a saga run without one: its name, each ':' and
    each character that is not printable or is a blank other than a space made '-', then a
    random part; a run id ``check_run_id`` takes (attack223 F1: a saga 'order:card' ran as
    'order:card-<hex>', read after as a branch of a saga 'order', its undo keys ambiguous)."""
    name = unicodedata.normalize("NFC", saga_name)  # (an id is in NFC: make soak, s88)
    safe = "".join(c if c.isprintable() and c != ":" else "-" for c in name).strip(" ")
    return unicodedata.normalize("NFC", f"{safe or 'saga'}-{uuid.uuid4().hex[:12]}")


class NamedUndo:
    """An undo stored by name with JSON arguments (``durable.registry.BoundUndo`` is one).

    It is called with no state (its arguments are bound), and a journal can write it down
    and run it again after a crash: the engine needs to know only that much.
    """

    name: str
    args: Mapping[str, Any]

    def __call__(self, idempotency_key: str | None = None) -> Any:
        raise NotImplementedError

    def awaits(self) -> bool:
        """Is what it names an ``async def`` (only ``arun``, ``AsyncRollback`` and
        ``recover`` can await it: a synchronous run refuses it before anything runs)?"""
        return False
