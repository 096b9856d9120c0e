"""The values a journal ever writes, each checked before a Journal trusts a file (a byte
changed on disk passes SQLite's own checks: there are no checksums of the values)."""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections import deque
from typing import Any

from ..events import EventKind
from .files import _UNFINISHED, SCHEMA_VERSION

SAGA_STATUSES = ("running", "rolling_back", "committed", "rolled_back", "rollback_incomplete",
                 "halted", "cancelled")  # fmt: skip
PIVOT_STATES = ("started", "done", "refused")
UNDO_STATES = ("pending", "intent", "done", "dead", "leaked", "not_run")
MOST_ATTEMPTS = 10**9  # (an undo's count stops there: one past it was read as damage, 128 F6)
UNDO_ORDERS = ("reverse", "forward", "reverse_start", "by_dependency")  # (rules.GRAPH_UNDO_ORDERS)
EVENT_KINDS = (*(kind.value for kind in EventKind), "settled", "released")  # (settle.SETTLED,
# records.RELEASE)
# where a pid names its process, as owner.process_space writes it (its life token and its
# program's stack start: since schema 7, each written or not by the version that wrote it)
SPACE = re.compile(r"pid:\[[0-9]+\] boot [0-9a-f-]+(?: life [0-9a-f]+)?(?: exec [0-9a-f]+)?")


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
_BLANK = (  # (a run id is printable text on one line, not only spaces: ``rules.check_run_id``)
    "trim(id, ' ') = '' OR id GLOB ('*[' || char(1) || '-' || char(31) || char(127) || '-'"
    " || char(159) || ']*')"
)
_UNDO = "saga_id || ' #' || position"
# (what, table, the row's name, the column, a condition true of a value the journal never
# writes, the schema version that has the column)
_VALUE_CHECKS: tuple[tuple[str, str, str, str, str, int], ...] = (
    ("a saga's id", "sagas", "rowid", "id", "typeof(id) != 'text'", 1),
    ("a saga's id", "sagas", "rowid", "id", "instr(id, ':') > 0", 7),  # (F6: keys' ':' ends it)
    ("a saga's id", "sagas", "rowid", "id", _BLANK, 7),  # (check_run_id's: attack204 F3)
    ("a saga's name", "sagas", _SAGA, "name", "typeof(name) != 'text' OR name = ''", 1),
    ("a saga's status", "sagas", _SAGA, "status", _one_of("status", SAGA_STATUSES), 1),
    *((f"a saga's {what}", "sagas", _SAGA, column, bad, since)  # (attack86 F6: unsaid)
      for what, column, bad, since in (
          ("start time", "started", f"typeof(started) {_NUMBER}", 1),
          ("end time", "ended", _optional("ended", f"typeof(ended) {_NUMBER}"), 1),
          ("claim time", "claimed_at", _optional("claimed_at", f"typeof(claimed_at) {_NUMBER}"), 2),
      )),
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
    (  # (both written at once, always: attack86 F14, a pivot erased and its state 'done'
        "a saga's pivot (one of pivot and its state missing)", "sagas", _SAGA, "pivot",
        "(pivot IS NULL) != (pivot_state IS NULL)", 2,  # was compensated across)
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
    ("an event's kind", "events", "saga_id", "kind", _one_of("kind", EVENT_KINDS), 1),
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
        f"typeof(attempts) != 'integer' OR attempts < 0 OR attempts > {MOST_ATTEMPTS}", 1,
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


_NAMES = {(table, column): what for what, table, _, column, *_ in reversed(_VALUE_CHECKS)}
_NAMES |= {("events", "saga_id"): "an event's saga", ("undos", "saga_id"): "an undo's saga"}


# (a row's name, by table, in ``_bad_text``'s message)
_ROWS = {"sagas": _SAGA, "events": "saga_id", "undos": _UNDO}


def _bad_text(con: sqlite3.Connection) -> str | None:
    """A blob, or text that is not UTF-8, in any column (typed in by hand: the journal writes
    neither), said before any other check reads it: read as text it raised a raw
    ``sqlite3.OperationalError`` ("Could not decode to UTF-8") from ``recover`` (attack86
    F6). Each table read through once as Python reads it (SQLite cannot tell UTF-8; a GLOB
    for text outside ASCII took twice as long); where that fails, or a blob is there, its
    values are read as hex to name the one."""
    for table, row in _ROWS.items():
        columns = [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
        blob = " OR ".join(f"typeof({c}) = 'blob'" for c in columns)
        try:
            if con.execute(f"SELECT 1 FROM {table} WHERE {blob} LIMIT 1").fetchone() is None:
                deque(con.execute(f"SELECT {', '.join(columns)} FROM {table}"), maxlen=0)
                continue  # (read through in C, each text decoded: all UTF-8)
        except sqlite3.OperationalError:  # (not UTF-8: named below)
            pass
        for column in columns:
            name = "rowid" if column == "id" else row  # (a saga's id: its row's number)
            for named, value, kind in con.execute(
                f"SELECT hex(CAST({name} AS BLOB)), hex(CAST({column} AS BLOB)), typeof({column})"
                f" FROM {table} WHERE typeof({column}) IN ('blob', 'text')"
            ):
                shown: Any = _decoded(value)
                if kind == "text" and type(shown) is str:
                    continue  # (UTF-8, as written)
                shown = bytes.fromhex(value)
                where: Any = _decoded(named)
                where = int(where) if name == "rowid" else where
                what = _NAMES.get((table, column), f"{table}.{column}")
                return f"{what} is {_shown(shown)} (in {where!r}), which the journal never writes"
    return None


def _decoded(hexed: str) -> str | bytes:
    """A value read as hex: the text it is, or the bytes it is if they are not UTF-8."""
    raw = bytes.fromhex(hexed)
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw


def _bad_space(con: sqlite3.Connection) -> str | None:
    """An owner's or claimer's namespace not in the shape ``owner.process_space`` writes: it
    was read as "another PID namespace", a false reason to leave the saga (attack86 F6)."""
    for who, column in (("owner", "owner_space"), ("claimer", "claim_space")):
        for saga_id, space in con.execute(  # (each value once: a process's sagas share it)
            f"SELECT MIN(id), {column} FROM sagas WHERE {column} IS NOT NULL GROUP BY {column}"
        ):
            if not SPACE.fullmatch(space):
                return (
                    f"a saga's {who} namespace is {_shown(space)} (in {saga_id!r}), which the "
                    "journal never writes"
                )
    return None


def _bad_value(con: sqlite3.Connection, version: int = SCHEMA_VERSION) -> str | None:
    """The first value outside what the journal ever writes (a byte changed on disk, which
    SQLite's checks pass: there are no checksums of the values), or None. The undo policy
    an unfinished saga keeps is read back as ``recover`` reads it: one byte changed can
    leave valid JSON that is no policy, found then only after another saga was undone."""
    wrong = _bad_text(con)  # (first: any other check may read the value as text)
    if wrong:
        return wrong
    for what, table, row, column, bad, since in _VALUE_CHECKS:
        if version < since:
            continue
        found = con.execute(f"SELECT {row}, {column} FROM {table} WHERE {bad} LIMIT 1").fetchone()
        if found is not None:
            return f"{what} is {_shown(found[1])} (in {found[0]!r}), which the journal never writes"
    if version >= 7 and (wrong := _bad_space(con)):
        return wrong
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
    for saga_id, step, args in con.execute(  # (what SQLite's json_valid lets by: 253 F2)
        f"SELECT saga_id, step, args FROM undos WHERE saga_id IN ({_UNFINISHED})"
    ):
        try:
            as_written(args)
        except ValueError as exc:
            return (
                f"an undo's arguments are {_shown(args)} (the undo of {step!r} in {saga_id!r}: "
                f"{exc}), which the journal never writes"
            )
    graphs = f"SELECT id, graph FROM sagas WHERE graph IS NOT NULL AND id IN ({_UNFINISHED})"
    for saga_id, graph in con.execute(graphs) if version >= 6 else ():  # (shape above, sense
        # here; a journal before 6 has none: attack271 F3, its show said "no such column")
        steps = {s for (s,) in con.execute("SELECT step FROM undos WHERE saga_id = ?", (saga_id,))}
        wrong = _graph_wrong(json.loads(graph), steps)
        if wrong:
            return f"a saga's graph {wrong} (in {saga_id!r}), which the journal never writes"
    from .agree import disagree  # (each value sound: do its rows agree with its events?)

    return disagree(con, version)


def as_written(text: str) -> Any:
    """An undo's arguments read back as ``bind`` let them be written: JSON with no key twice
    and no number out of a float's range (SQLite's ``json_valid`` takes both; ``json.loads``
    kept the last key, read 1e999 as inf: an undo called with what bind refuses)."""
    return json.loads(text, object_pairs_hook=_once, parse_float=_finite, parse_constant=_none)


def _once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        twice = next(k for i, (k, _) in enumerate(pairs) if k in dict(pairs[:i]))
        raise ValueError(f"the key {twice!r} twice")
    return found


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} out of a float's range")
    return value


def _none(text: str) -> float:
    raise ValueError(f"{text}, not JSON")


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
