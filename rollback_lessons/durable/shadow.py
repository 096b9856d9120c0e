"""What a run's own writes left in its journal, told without the journal: each batch the
journal committed is kept, and replayed, when asked, into an in-memory database of the
journal's tables, the way ``Journal.write`` applied it. A run whose journal cannot be read
back (closed under it, its file moved or failing) still says what ``recover`` will find
there, row by row: derived from the same statements, not guessed from what the run knows
(attack263: a retried step's rest, a step with no undo, told wrong by such guesses)."""

from __future__ import annotations

import sqlite3
from typing import Any

from ..events import storable
from .files import _SCHEMA

Statements = list[tuple[str, tuple[Any, ...]]]
_KEPT = ("INSERT INTO sagas ", "UPDATE sagas ", "INSERT INTO undos ", "UPDATE undos ")


def grouped(statements: Statements) -> dict[str, list[tuple[Any, ...]]]:
    """``statements`` as ``Journal.write`` runs them: those of the same text together, in
    the order each text first appears (every insert before the updates of its rows)."""
    by_text: dict[str, list[tuple[Any, ...]]] = {}
    for sql, params in statements:  # (a lone surrogate escaped: attack112 F2, stuck)
        by_text.setdefault(sql, []).append(storable(params))
    return by_text


class Shadow:
    """The batches a run's journal committed (those of its saga's and undos' rows)."""

    def __init__(self) -> None:
        self.batches: list[Statements] = []

    def committed(self, statements: Statements) -> None:
        kept = [s for s in statements if s[0].startswith(_KEPT)]
        if kept:
            self.batches.append(kept)

    def shown(self, saga_id: str) -> tuple[str | None, dict[int, str]]:
        """The saga's pivot state and each undo row's state, as the journal shows them once
        these batches are in it (``JournalRun.shown``'s, for a journal that cannot be read)."""
        con = sqlite3.connect(":memory:")
        try:
            con.executescript(_SCHEMA)
            for batch in self.batches:
                with con:
                    for sql, rows in grouped(batch).items():
                        con.executemany(sql, rows)
            row = con.execute("SELECT pivot_state FROM sagas WHERE id = ?", (saga_id,)).fetchone()
            sql = "SELECT position, state FROM undos WHERE saga_id = ?"
            return (row[0] if row else None), dict(con.execute(sql, (saga_id,)).fetchall())
        finally:
            con.close()
