"""What the engine needs from outside it, as protocols (the engine imports no layer above).

``durable.Journal`` is the one implementation in this package: the engine writes each undo
through it before relying on it, and ``recover`` reads it back after a crash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from .events import Event
from .policies import UndoPolicy
from .rules import NamedUndo


class UndoJournalRun(Protocol):
    """One saga's durable records, as the engine writes them."""

    saga_id: str

    def key(self, step: str) -> str: ...
    def event(self, event: Event) -> None: ...
    def register(
        self,
        step: str,
        undo: NamedUndo,
        state: str = "pending",
        semantic: bool = False,
        timeout: float | None = None,
    ) -> int: ...
    def confirm(self, position: int) -> None: ...
    def abandon(self, position: int) -> None: ...
    def leaked(self, position: int) -> None: ...
    def holds(self) -> None: ...
    def late_effect(self, step: str, why: str) -> None: ...
    def status(self, status: str, *, flush: bool = False) -> None: ...
    def pivot(self, step: str, state: str) -> None: ...
    def undo_done(self, position: int, attempts: int) -> None: ...
    def undo_retried(self, position: int) -> None: ...
    def undo_dead(self, position: int, attempts: int, error: str) -> None: ...
    def commit(self, event: Event) -> None: ...
    def end(self, status: str, error: BaseException | str | None) -> None: ...
    def flush(self) -> None: ...


class UndoJournal(Protocol):
    """Where undos are written before the engine relies on them (``durable.Journal``)."""

    def start(
        self,
        name: str,
        saga_id: str | None = None,
        *,
        policy: UndoPolicy | None = None,
        undo_order: str = "reverse",
        after: Mapping[str, Sequence[str]] | None = None,
    ) -> UndoJournalRun: ...
