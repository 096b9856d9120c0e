"""Rows that contradict the events the journal wrote for their saga (attack91 F1: a journal
edited by hand, each value one it writes, in a combination it never writes: a step's undo
row deleted, or set ``done`` with no undo run, a saga set ``committed`` over its failure).
Read as they were, ``recover`` said ``rolled_back`` with a charge standing, left a failed
saga ``committed``, or undid a committed one.

Each check holds at every instant a real crash (or a Ctrl-C, a full disk) can leave, by the
order the journal writes in (``records.JournalRun``, ``journaling``, ``recovery``):

- an undo's row is written before its ``undo_registered`` event (``register``, or an intent
  row at its step's start, written then): the event never stands without the row;
- an undo's ``done`` is written with (in process, after) its ``undo_done`` event, or, in
  ``recover``, after its ``undo`` event (a Ctrl-C as the undo returned writes the done
  alone): a done row has one of them;
- an undo's row is written ``not_run`` only for a step never called (withdrawn, refused,
  abandoned before its effect) or one with no undo: never for a step done whose undo
  was logged (attack93 F1: the undo silently dropped);
- a commit is written with its ``committed`` event, in one transaction: a saga with that
  event is committed, and a committed one has it and no event of a failure;
- a failed saga's end is written after its failure's events (buffered, they go with it or
  before): an ended saga neither committed nor unfinished logged one (attack93 F1: a
  running saga set ``rollback_incomplete`` by hand, recovered as finished); and a rollback's
  end with its ``rollback_done`` event: one ended ``rolled_back``, ``cancelled`` or
  ``rollback_incomplete`` logged it (attack96 F6: a saga cut mid-rollback set
  ``rolled_back`` by hand, its undos pending, never run);
- a list saga's undos are logged in the order of their rows (each position taken as its
  step starts, one step at a time): its rows' order is its events' order (a graph's undo
  order comes from its dependencies and its steps' events, never its rows' positions).

A finished saga with an undo its events logged still pending is not refused: a Ctrl-C as a
step with its undo logged before it starts leaves it so (that step not run, its withdrawal
cut: attack93 F2, the whole file refused, another saga in it never recovered).

Events are buffered and written with the next write, so the last ones may be missing after
a crash: each check asks only what an event that is there says. A saga whose events are all
gone (none written: a journal of another make) is read by its rows, as before."""

from __future__ import annotations

import sqlite3

from .files import _UNFINISHED


def _has(saga: str, step: str | None, *kinds: str) -> str:
    """SQL: the saga (a column) logged an event of one of ``kinds`` (of that step)."""
    of = f" AND e.step = {step}" if step else ""
    listed = ", ".join(map(repr, kinds))
    return f"EXISTS (SELECT 1 FROM events e WHERE e.saga_id = {saga}{of} AND e.kind IN ({listed}))"


# (the query: a saga id, a step or None, each of a row contradicting its saga's events, and
# what it says of it)
_CHECKS: tuple[tuple[str, str], ...] = (
    (
        "SELECT e.saga_id, e.step FROM events e WHERE e.kind = 'undo_registered'"
        f" AND e.saga_id IN ({_UNFINISHED}) AND NOT EXISTS (SELECT 1 FROM undos u"
        " WHERE u.saga_id = e.saga_id AND u.step = e.step)",
        "has no undo row for step {step!r}, whose undo_registered event it logged",
    ),
    (
        "SELECT u.saga_id, u.step FROM undos u WHERE u.state = 'done'"
        f" AND {_has('u.saga_id', None, 'undo_registered', 'step_start')}"
        f" AND NOT {_has('u.saga_id', 'u.step', 'undo', 'undo_done')}",
        "has the undo of {step!r} done, though it logged no undo of it",
    ),
    (
        "SELECT u.saga_id, u.step FROM undos u WHERE u.state = 'not_run'"
        f" AND u.compensation != '' AND u.saga_id IN ({_UNFINISHED})"
        f" AND {_has('u.saga_id', 'u.step', 'step_done')}"
        f" AND {_has('u.saga_id', 'u.step', 'undo_registered')}",
        "has the undo of {step!r} not run, though it logged that step done and its undo",
    ),
    (
        "SELECT s.id, NULL FROM sagas s WHERE s.status = 'committed'"
        f" AND {_has('s.id', None, 'pipeline_failed', 'rollback_start', 'halted')}",
        "is committed, though its events say it failed",
    ),
    (
        "SELECT s.id, NULL FROM sagas s WHERE s.status = 'committed'"
        f" AND {_has('s.id', None, 'step_start')} AND NOT {_has('s.id', None, 'committed')}",
        "is committed, though it logged no commit",
    ),
    (
        "SELECT s.id, NULL FROM sagas s WHERE s.status NOT IN ('running', 'rolling_back',"
        f" 'committed') AND {_has('s.id', None, 'step_start')} AND NOT"
        f" {_has('s.id', None, 'pipeline_failed', 'rollback_start', 'halted', 'rollback_done')}",
        "is {status}, though its events never say it failed",
    ),
    (
        "SELECT s.id, NULL FROM sagas s WHERE s.status IN ('rolled_back', 'cancelled',"
        f" 'rollback_incomplete') AND {_has('s.id', None, 'step_start')}"
        " AND NOT EXISTS (SELECT 1 FROM events e WHERE e.saga_id = s.id AND e.kind ="
        " 'rollback_done' AND json_extract(e.details, '$.interrupted') IS NULL)",  # (one cut
        "is {status}, though it logged no end of its rollback",  # is no end: attack266)
    ),
    (
        "SELECT s.id, NULL FROM sagas s WHERE s.status != 'committed'"
        f" AND {_has('s.id', None, 'committed')}",
        "is {status}, though its events say it committed",
    ),
)

# a list saga's undo rows out of the order its events logged them (its first such row)
_ORDER = (
    "WITH r AS (SELECT u.saga_id, u.step, u.position, (SELECT MIN(e.seq) FROM events e"
    " WHERE e.saga_id = u.saga_id AND e.step = u.step AND e.kind = 'undo_registered') AS seq"
    " FROM undos u JOIN sagas s ON s.id = u.saga_id WHERE {list}"
    f" AND s.id IN ({_UNFINISHED})),"
    " w AS (SELECT *, MAX(seq) OVER (PARTITION BY saga_id ORDER BY position ROWS BETWEEN"
    " UNBOUNDED PRECEDING AND 1 PRECEDING) AS before FROM r WHERE seq IS NOT NULL)"
    " SELECT saga_id, step FROM w WHERE before > seq ORDER BY saga_id, position LIMIT 1"
)


def disagree(con: sqlite3.Connection, version: int) -> str | None:
    """The first row that contradicts its saga's events, said in one line, or None."""
    for sql, said in _CHECKS:
        found = con.execute(f"{sql} LIMIT 1").fetchone()
        if found is not None:
            return _line(con, found[0], said, found[1])
    graph = "s.graph IS NULL" if version >= 6 else "1"  # (a list: no graph, or none kept)
    found = con.execute(_ORDER.format(list=graph)).fetchone()
    if found is not None:
        said = "has the undo row of {step!r} out of the order its events logged the undos in"
        return _line(con, found[0], said, found[1])
    return None


def _line(con: sqlite3.Connection, saga_id: str, said: str, step: str | None) -> str:
    from .values import _shown

    status = con.execute("SELECT status FROM sagas WHERE id = ?", (saga_id,)).fetchone()[0]
    text = said.format(step=step, status=status).replace(repr(step), _shown(step))
    return (
        f"saga {_shown(saga_id)} {text}: rows and events that disagree, which the journal "
        "never writes"
    )
