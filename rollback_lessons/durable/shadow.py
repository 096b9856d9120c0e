"""What a run's own writes left in its journal, told without the journal: each batch the
journal committed is kept, and replayed, when asked, into an in-memory database of the
journal's tables, the way ``Journal.write`` applied it. A run whose journal cannot be read
back (closed under it, its file moved or failing) still says what ``recover`` will find
there, row by row: derived from the same statements, not guessed from what the run knows
(attack263: a retried step's rest, a step with no undo, told wrong by such guesses)."""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

from ..events import storable
from .files import _SCHEMA

Statements = list[tuple[str, tuple[Any, ...]]]
_KEPT = ("INSERT INTO sagas ", "UPDATE sagas ", "INSERT INTO undos ", "UPDATE undos ")
_TABLES = _SCHEMA[_SCHEMA.index("CREATE TABLE IF NOT EXISTS sagas") :]  # (no meta)


def grouped(statements: Statements) -> dict[str, list[tuple[Any, ...]]]:
    """``statements`` as ``Journal.write`` runs them: those of the same text together, in
    the order each text first appears (every insert before the updates of its rows)."""
    by_text: dict[str, list[tuple[Any, ...]]] = {}
    for sql, params in statements:  # (a lone surrogate escaped: attack112 F2, stuck)
        by_text.setdefault(sql, []).append(storable(params))
    return by_text


class Shadow:
    """The batches a run's journal committed (those of its saga's and undos' rows): kept as
    they are, folded into the in-memory database once they are many (a long saga's run
    keeps its rows' states, not every statement that set them)."""

    FOLD = 512  # statements kept before they are folded

    def __init__(self) -> None:
        self.batches: list[Statements] = []
        self._count, self._lost = 0, False
        self._con: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # (a run's steps may write from several threads)

    def committed(self, statements: Statements) -> None:
        """``statements`` were committed: kept. Never raises (the write succeeded): if they
        cannot be kept, what the run left is unknown (``shown``: None)."""
        kept = [s for s in statements if s[0].startswith(_KEPT)]
        if not kept:
            return
        with self._lock:
            self.batches.append(kept)
            self._count += len(kept)
            if self._count >= self.FOLD:
                self._fold()

    def _fold(self) -> None:
        try:
            if self._con is None and not self._lost:
                self._con = sqlite3.connect(":memory:", check_same_thread=False)
                self._con.executescript(_TABLES)
            for batch in self.batches:
                if (con := self._con) is None:
                    break
                with con:
                    for sql, rows in grouped(batch).items():
                        con.executemany(sql, rows)
        except Exception:  # (out of memory): unknown from here on
            self._lost, self._con = True, None
        self.batches, self._count = [], 0

    def shown(self, saga_id: str) -> tuple[str | None, dict[int, str]] | None:
        """The saga's pivot state and each undo row's state, as the journal shows them once
        these batches are in it (``JournalRun.shown``'s, for a journal that cannot be read);
        None if that is not known."""
        with self._lock:
            self._fold()
            if self._con is None:
                return None
            row = self._con.execute("SELECT pivot_state FROM sagas WHERE id = ?", (saga_id,))
            sql = "SELECT position, state FROM undos WHERE saga_id = ?"
            pivot = row.fetchone()
            return (pivot[0] if pivot else None), dict(self._con.execute(sql, (saga_id,)))
