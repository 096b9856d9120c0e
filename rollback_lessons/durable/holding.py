"""Which sagas a journal holds open (its mark's): the sagas its writes begin, claim and end,
and the thread that last wrote each, so that its mark goes with the last one's end and stays
at the process's end while a thread still writes one (``writers``' marks)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .records import GIVE_BACK, RELEASE

if TYPE_CHECKING:
    from .writers import Mark

_STARTS = "INSERT INTO sagas "
"""A saga's first row (its id the first value): ``records.JournalRun``'s."""


def _ends(sql: str) -> bool:
    """A saga's last status (its id the last value): its owner's end or commit, recover's."""
    return sql.startswith("UPDATE sagas SET status") and "ended = ?" in sql


@contextlib.contextmanager
def tracking(
    mark: Mark | None, grouped: dict[str, list[tuple[Any, ...]]], written: Any,
    fenced: Iterable[str] = (),
) -> Iterator[None]:  # fmt: skip
    """A journal's write, whose sagas begun are open from before its COMMIT and whose sagas
    ended are no longer open once it committed (``written``): the end of the last one open
    takes the mark away with it (another write leaves it till then, or till its close).
    Whatever the file alone shows then, every saga of this process in it has ended, and its
    next write marks the file again first (a pool worker terminated, a process killed idle,
    a backup taken as it idles: whole; a claimed saga is open until recover ends it)."""
    if mark is None:
        yield
        return
    starts = {row[0] for sql, rows in grouped.items() if sql.startswith(_STARTS) for row in rows}
    ends = {row[-1] for sql, rows in grouped.items() if _ends(sql) for row in rows}
    ends |= {row[0] for row in grouped.get(RELEASE, ())}  # (let go: it writes no more of
    # it, recover ends it elsewhere: attack241 F3, open for good, every backup refused)
    ends |= {row[-1] for row in grouped.get(GIVE_BACK, ())}  # (a claim given back: 256 F2)
    new = starts - mark.open
    mark.open |= new  # (before its COMMIT: a Ctrl-C as that lands keeps them open)
    mark.open_ever = mark.open_ever or bool(new)
    mark.leaving = bool(ends) and not mark.open - ends  # (a saga's end: the last open)
    mark.threads.update(dict.fromkeys(new | (mark.open & set(fenced)), threading.current_thread()))
    try:
        yield
    finally:
        mark.leaving = False
        mark.open -= ends if written.committed else new
        for saga in set(mark.threads) - mark.open:
            del mark.threads[saga]


def runs_on(mark: Mark) -> bool:
    """As the process ends: is a saga of this journal open whose last write came from a
    thread still alive, other than this one (a daemon thread an exit hook may wait for)?
    Its mark and its sagas' writer stay: a copy taken as that thread goes on is refused
    (a block left suspended in the ending thread writes no more: its mark goes)."""
    me = threading.current_thread()
    return any(t.is_alive() and t is not me for s, t in mark.threads.items() if s in mark.open)
