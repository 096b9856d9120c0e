"""What ``recover`` reads of the sagas it claimed, read for all of them at once right after
the claim, before any undo (``make bench``: read saga by saga, five to six queries each were
about a fifth of recovering 10,000 sagas, in CPU time). Each saga's facts are what
``report.done_steps``, ``halted_at`` and ``corrected`` and ``Journal.cancelled`` read of it
alone, as claimed: once claimed (its generation bumped), an owner's writes are fenced; only
its ``late_effect`` passes the fence (an undo's row leaked), which ``recover`` reads at each
saga's end as before (``Journal.leaked``), and the saga's final status checks again."""

from __future__ import annotations

import ast
import contextlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import RemoteError
from ..events import KEPT
from ..outcome import DeadLetter
from .files import _UNFINISHED
from .records import HEARD, SagaRecord

if TYPE_CHECKING:
    from .journal import Journal

_EVENTS = (  # (the kinds the per-saga readers read: steps begun and done, the rollback's
    "SELECT saga_id, kind, step, details FROM events WHERE saga_id IN"  # start, its undos)
    f" ({_UNFINISHED}) AND kind IN ('step_start', 'step_done', 'rollback_start', 'undo',"
    " 'undo_done', 'undo_failed', 'step_failed', 'halted') ORDER BY saga_id, seq"
)
_UNDOS = (
    "SELECT saga_id, step, compensation, state, attempts, semantic FROM undos WHERE saga_id"
    f" IN ({_UNFINISHED}) ORDER BY saga_id, position"
)


@dataclass
class Facts:
    """One saga's rows, as the per-saga readers would read them (in their order)."""

    steps: list[tuple[str, str, str]] = field(default_factory=list)  # step_start, step_done
    undos: list[tuple[Any, ...]] = field(default_factory=list)  # (step, compensation, state,
    # attempts, semantic), by position
    started: list[str] = field(default_factory=list)  # its rollback_start events' details
    last_undo: tuple[str, str] | None = None  # its last undo, undo_done or undo_failed event
    ran_on: list[str] = field(default_factory=list)  # steps given up as their work ran on
    forward: list[str] = field(default_factory=list)  # its run's halted event's, to finish


def read(journal: Journal) -> dict[str, Facts]:
    """Every unfinished saga's facts, by saga id (a saga with no rows: none)."""
    facts: dict[str, Facts] = {}
    for saga_id, kind, step, details in journal._rows(_EVENTS):
        f = facts.get(saga_id) or facts.setdefault(saga_id, Facts())
        if kind in ("step_start", "step_done"):
            f.steps.append((kind, step, details))
        elif kind == "rollback_start":
            f.started.append(details)
        elif kind == "step_failed":  # (``Machine._lost_effect``'s, as json.dumps wrote it)
            f.ran_on += [step] if '"runs_on": true' in details else []
        elif kind == "halted":  # (its end unwritten: attack279 F1, named by recover's line)
            f.forward = forward_steps(details)
        else:
            f.last_undo = (step, details)
    for saga_id, *row in journal._rows(_UNDOS):
        f = facts.get(saga_id) or facts.setdefault(saga_id, Facts())
        f.undos.append(tuple(row))
    return facts


def forward_steps(details: str) -> list[str]:
    """The steps a run's ``halted`` event names to finish forward (``KEPT``'s ``steps``;
    none in a journal written before it kept them)."""
    try:
        steps = json.loads(details).get(KEPT, {}).get("steps", [])
    except (ValueError, AttributeError):
        return []
    return [str(s) for s in steps] if isinstance(steps, list) else []


def cancelled_by(started: list[str], error: str | None) -> bool:
    """Was the saga's rollback its caller's cancel (``Journal.cancelled``)? What its
    ``rollback_start`` events (their ``details``) said wins; else its row's ``error``,
    heard before it started (``cancel_heard``)."""
    if started:
        return any(json.loads(d).get("cancelled") is True for d in started)
    return error == HEARD


def dead_letters(journal: Journal, saga: SagaRecord) -> list[DeadLetter]:
    """The dead letters recorded before the crash, as records (their errors as the journal
    wrote them: ``Type('message')``)."""
    if not saga.dead:
        return []
    return [
        DeadLetter(u.step, error_of(u.error or ""), u.attempts)
        for u in journal.undos(saga.id)
        if u.state == "dead"
    ]


def error_of(text: str) -> RemoteError:
    """An error the journal wrote as ``describe`` does (``Type('message')``), back as a
    stand-in of that type."""
    found = re.fullmatch(r"([\w.]+)\((.*)\)", str(text), re.S)
    if found is None:
        return RemoteError("Exception", str(text))
    message = found[2]
    if message[:1] in ("'", '"'):  # (a repr of a text: never an expression, attack48 F1)
        with contextlib.suppress(Exception):
            message = str(ast.literal_eval(message))
    return RemoteError(found[1], message)
