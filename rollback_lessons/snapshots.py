"""Snapshots of a saga's state (before and after a run, after each event when traced): a
copy later changes cannot reach, made fast for plain data."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any


def snapshot(state: Mapping[str, Any]) -> dict[str, Any]:
    """A copy that later changes to the state cannot reach."""
    taker = getattr(state, "snapshot", None)
    if callable(taker):
        return taker()  # type: ignore[no-any-return]
    try:  # plain data (dicts, lists, numbers, text) is copied by hand, much faster
        return {key: _copy(value, 0) for key, value in state.items()}
    except _NotPlain:
        return copy.deepcopy(dict(state))


class _NotPlain(Exception):
    """A value ``_copy`` leaves to ``copy.deepcopy`` (with the whole state)."""


_ATOMS = frozenset({str, int, float, bool, type(None), bytes})


def _copy(value: Any, depth: int) -> Any:
    """Plain data copied (each snapshot of a traced run, and the explorer's thousands of
    runs, paid for copy.deepcopy's generality: ``make bench``); anything else, or data
    nested deeper than 20 (perhaps a cycle), raises _NotPlain."""
    kind = type(value)
    if kind in _ATOMS:
        return value
    if depth > 20:
        raise _NotPlain
    if kind is dict:
        return {k: _copy(v, depth + 1) for k, v in value.items()}
    if kind is list:
        return [_copy(v, depth + 1) for v in value]
    if kind is tuple:
        return tuple(_copy(v, depth + 1) for v in value)
    raise _NotPlain


def safe_snapshot(state: Mapping[str, Any]) -> dict[str, Any]:
    """A snapshot that never raises: a value that cannot be copied is shown by its repr."""
    try:
        return snapshot(state)
    except Exception as exc:
        from .events import describe

        out = Uncopied()  # (marked: a judge of it knows its stand-ins, attack202 F2)
        out.note = describe(exc)
        for key, value in dict(state).items():
            try:
                out[key] = copy.deepcopy(value)
            except Exception:
                out[key] = f"<uncopyable {type(value).__name__}>"
        return out


class Uncopied(dict):  # type: ignore[type-arg]
    """A state before a run that could not be copied whole (``before_run``): its values that
    cannot be copied shown by their type, and the ``note`` that says so, the same note on
    every engine (attack113 F4: the engines' outcomes said nothing of the stand-ins)."""

    note = ""


def before_run(state: Mapping[str, Any]) -> dict[str, Any]:
    """The state before a run: a snapshot, or, if one cannot be taken, an ``Uncopied`` one
    carrying its note (a snapshot that fails is a note, not a stop)."""
    try:
        return snapshot(state)
    except Exception as exc:
        from .events import describe

        shown = Uncopied(safe_snapshot(state))
        shown.note = (
            f"the state before the run could not be copied ({describe(exc)}); "
            "values that cannot be copied are shown by their type"
        )
        return shown


def noted(record: Any, before: Any) -> Any:
    """``record`` (an engine's ``RunRecord``) with the note of a state ``before`` that could
    not be copied (``before_run``) first, as ``saga.run`` notes it before any step."""
    if type(before) is not Uncopied or before.note in record.notes:
        return record
    return dataclasses.replace(record, notes=(before.note, *record.notes))
