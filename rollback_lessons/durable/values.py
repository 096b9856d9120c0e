"""The values a journal ever writes, each checked before a Journal trusts a file (a byte
changed on disk passes SQLite's own checks: there are no checksums of the values)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from .files import _UNFINISHED, SCHEMA_VERSION

SAGA_STATUSES = ("running", "rolling_back", "committed", "rolled_back", "rollback_incomplete",
                 "halted", "cancelled")  # fmt: skip
PIVOT_STATES = ("started", "done", "refused")
UNDO_STATES = ("pending", "intent", "done", "dead", "leaked", "not_run")
UNDO_ORDERS = ("reverse", "forward", "reverse_start", "by_dependency")  # (rules.GRAPH_UNDO_ORDERS)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"typeof({column}) != 'text' OR {column} NOT IN ({', '.join(map(repr, values))})"


def _optional(column: str, condition: str) -> str:
    return f"{column} IS NOT NULL AND ({condition})"


_NUMBER = "NOT IN ('integer', 'real')"
_MAX = "1.7976931348623157e308"  # (the largest finite float: above it, only infinity)
_PID = "typeof({0}) != 'integer' OR {0} NOT BETWEEN 1 AND 2147483647"  # (os.kill: a C int)
# a step's undo rows: one (two: recover would run one of them twice, the other never)
_TWICE = "(saga_id, step) IN (SELECT saga_id, step FROM undos GROUP BY 1, 2 HAVING COUNT(*) > 1)"
_GRAPH = (  # [[step, [its dependencies]], ...] (``SagaRecord.after``; CASE: never malformed)
    "CASE WHEN json_valid(graph) AND json_type(graph) = 'array' THEN EXISTS (SELECT 1 FROM"
    " json_each(graph) AS g WHERE g.type != 'array' OR json_array_length(g.value) != 2"
    " OR json_type(g.value, '$[0]') != 'text' OR json_type(g.value, '$[1]') != 'array'"
    " OR EXISTS (SELECT 1 FROM json_each(g.value, '$[1]') AS d WHERE d.type != 'text'))"
    " ELSE 1 END"
)
_SAGA = "id"
_UNDO = "saga_id || ' #' || position"
# (what, table, the row's name, the column, a condition true of a value the journal never
# writes, the schema version that has the column)
_VALUE_CHECKS: tuple[tuple[str, str, str, str, str, int], ...] = (
    ("a saga's id", "sagas", "rowid", "id", "typeof(id) != 'text'", 1),
    ("a saga's id", "sagas", "rowid", "id", "instr(id, ':') > 0", 7),  # (F6: keys' ':' ends it)
    ("a saga's name", "sagas", _SAGA, "name", "typeof(name) != 'text'", 1),
    ("a saga's status", "sagas", _SAGA, "status", _one_of("status", SAGA_STATUSES), 1),
    ("a saga's owner pid", "sagas", _SAGA, "owner_pid", _PID.format("owner_pid"), 1),
    ("a saga's owner host", "sagas", _SAGA, "owner_host", "typeof(owner_host) != 'text'", 1),
    (
        "a saga's owner start time", "sagas", _SAGA, "owner_started",
        _optional("owner_started", f"typeof(owner_started) {_NUMBER}"), 2,
    ),
    (
        "a saga's pivot", "sagas", _SAGA, "pivot",
        _optional("pivot", "typeof(pivot) != 'text'"), 2,
    ),
    (
        "a saga's pivot state", "sagas", _SAGA, "pivot_state",
        _optional("pivot_state", _one_of("pivot_state", PIVOT_STATES)), 2,
    ),
    (
        "a saga's claimer pid", "sagas", _SAGA, "claim_pid",
        _optional("claim_pid", _PID.format("claim_pid")), 2,
    ),
    (
        "a saga's claimer host", "sagas", _SAGA, "claim_host",  # (with its pid: attack50 L1)
        "CASE WHEN claim_pid IS NULL THEN claim_host IS NOT NULL AND typeof(claim_host) !="
        " 'text' ELSE typeof(claim_host) != 'text' END", 2,
    ),
    (
        "a saga's claimer start time", "sagas", _SAGA, "claim_started",
        _optional("claim_started", f"typeof(claim_started) {_NUMBER}"), 2,
    ),
    (
        "a saga's claim generation", "sagas", _SAGA, "claim_gen",
        "typeof(claim_gen) != 'integer' OR claim_gen NOT BETWEEN 0 AND 9223372036854775806", 3,
    ),
    (
        "a saga's undo policy", "sagas", _SAGA, "policy",
        _optional("policy", "typeof(policy) != 'text' OR NOT json_valid(policy)"), 4,
    ),
    ("a saga's undo order", "sagas", _SAGA, "undo_order", _one_of("undo_order", UNDO_ORDERS), 4),
    ("a saga's graph", "sagas", _SAGA, "graph", _optional("graph", _GRAPH), 6),
    *((f"a saga's {who} namespace", "sagas", _SAGA, c, _optional(c, f"typeof({c}) != 'text'"), 7)
      for who, c in (("owner", "owner_space"), ("claimer", "claim_space"))),
    ("an event's number", "events", "saga_id", "seq", "typeof(seq) != 'integer' OR seq < 0", 1),
    *((f"{what}'s saga (no saga has its id)", table, row, "saga_id",  # (F6: recover skipped
       "saga_id NOT IN (SELECT id FROM sagas)", 1)  # its undos, the saga rolled_back)
      for what, table, row in (("an event", "events", "saga_id"), ("an undo", "undos", _UNDO))),
    ("an event's details", "events", "saga_id", "details", "typeof(details) != 'text' OR CASE"
     " WHEN json_valid(details) THEN json_type(details) != 'object' ELSE 1 END", 1),
    ("a step's event's step", "events", "saga_id", "step",
     "kind IN ('step_start', 'step_done') AND typeof(step) != 'text'", 1),
    ("an undo's position", "undos", "saga_id", "position", "typeof(position) != 'integer'", 1),
    ("an undo's step", "undos", _UNDO, "step", f"typeof(step) != 'text' OR {_TWICE}", 1),
    ("an undo's compensation", "undos", _UNDO, "compensation", "typeof(compensation) != 'text'", 1),
    (
        "an undo's arguments", "undos", _UNDO, "args",
        "typeof(args) != 'text' OR NOT json_valid(args)", 1,
    ),
    ("an undo's state", "undos", _UNDO, "state", _one_of("state", UNDO_STATES), 1),
    (
        "an undo's attempts", "undos", _UNDO, "attempts",
        "typeof(attempts) != 'integer' OR attempts < 0", 1,
    ),
    (
        "an undo's semantic flag", "undos", _UNDO, "semantic",
        _optional("semantic", "semantic NOT IN (0, 1)"), 3,
    ),
    ("an undo's error", "undos", _UNDO, "error", _optional("error", "typeof(error) != 'text'"), 1),
    ("a saga's error", "sagas", _SAGA, "error", _optional("error", "typeof(error) != 'text'"), 1),
    (
        "an undo's timeout", "undos", _UNDO, "timeout",
        _optional("timeout", f"typeof(timeout) {_NUMBER} OR timeout <= 0 OR timeout > {_MAX}"), 5,
    ),  # (any finite duration > 0, as Step(undo_timeout=...) takes: attack84 F7)
)  # fmt: skip


def _bad_value(con: sqlite3.Connection, version: int = SCHEMA_VERSION) -> str | None:
    """The first value outside what the journal ever writes (a byte changed on disk, which
    SQLite's checks pass: there are no checksums of the values), or None. The undo policy
    an unfinished saga keeps is read back as ``recover`` reads it: one byte changed can
    leave valid JSON that is no policy, found then only after another saga was undone."""
    for what, table, row, column, bad, since in _VALUE_CHECKS:
        if version < since:
            continue
        found = con.execute(f"SELECT {row}, {column} FROM {table} WHERE {bad} LIMIT 1").fetchone()
        if found is not None:
            return f"{what} is {_shown(found[1])} (in {found[0]!r}), which the journal never writes"
    if version >= 4:
        from .kept import policy_of

        for saga_id, policy in con.execute(  # (each policy once: most sagas share theirs)
            "SELECT MIN(id), policy FROM sagas WHERE policy IS NOT NULL"
            f" AND id IN ({_UNFINISHED}) GROUP BY policy"
        ):
            try:
                policy_of(policy)
            except Exception as exc:  # any: it is read back before any undo, never during
                return (
                    f"a saga's undo policy is {_shown(policy)} (in {saga_id!r}), which the "
                    f"journal never writes ({type(exc).__name__}: {_shown(str(exc))[1:-1]})"
                )
    for saga_id, graph in con.execute(  # (its shape checked above: its sense, here)
        f"SELECT id, graph FROM sagas WHERE graph IS NOT NULL AND id IN ({_UNFINISHED})"
    ):
        steps = {s for (s,) in con.execute("SELECT step FROM undos WHERE saga_id = ?", (saga_id,))}
        wrong = _graph_wrong(json.loads(graph), steps)
        if wrong:
            return f"a saga's graph {wrong} (in {saga_id!r}), which the journal never writes"
    return None


def _graph_wrong(pairs: list[list[Any]], undone: set[str]) -> str:
    """What makes a graph no saga's (attack48 F1: tracebacks after another saga's undos):
    a step twice, a dependency on no step or in a cycle, an undo of a step not in it."""
    after = {str(step): list(deps) for step, deps in pairs}
    if len(after) != len(pairs):
        return "names a step twice"
    for step, deps in after.items():
        if unknown := [d for d in deps if d not in after]:
            return f"has {step!r} depend on {unknown[0]!r}, no step of it"
    if missing := sorted(undone - set(after)):
        return f"leaves out {missing[0]!r}, whose undo it logged"
    done: set[str] = set()
    while len(done) < len(after):  # (each round, the steps whose dependencies are all in)
        ready = {s for s, deps in after.items() if s not in done and set(deps) <= done}
        if not ready:
            return f"has a cycle through {sorted(set(after) - done)[0]!r}"
        done |= ready
    return ""


def _shown(value: object, limit: int = 80) -> str:
    """A value in a one-line message: its repr, cut short if long."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-1]}"
