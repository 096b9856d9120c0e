"""A person's word in the journal: a saga ended for a person (halted, or with dead letters or a
step leaked) that someone dealt with by hand is recorded ``settled`` (who, where, when, and
their note), so ``recover`` stops naming it, and ``journal show`` says so.

It is one event (kind ``settled``) of the saga, written in one transaction that first checks
the saga ended for a person and was not settled yet: no schema change, and a saga a run or a
``recover`` still holds (``running`` or ``rolling_back``) has not ended, so it is refused.
"""

from __future__ import annotations

import getpass
import json
import socket
import sqlite3
import time
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InvalidNameError
from ..rules import check_text
from .files import JournalError, Written, _cell, healed, transaction
from .forked import no_new_saga
from .reads import reading
from .room import told

if TYPE_CHECKING:
    from .journal import Journal

SETTLED = "settled"  # the event's kind
# a saga ended for a person: what ``recover`` names (report.waiting_in) until it is settled
WAITS = (  # (committed too, with a step leaked: its error caught after its effect)
    "s.status NOT IN ('running', 'rolling_back') AND (s.status = 'halted'"
    " OR s.id IN (SELECT saga_id FROM undos WHERE state IN ('dead', 'leaked')))"
)
NOT_SETTLED = f"s.id NOT IN (SELECT saga_id FROM events WHERE kind = '{SETTLED}')"


class SettleRefused(JournalError):
    """``settle`` wrote nothing: the saga is not one waiting for a person (``why`` says)."""


class UnknownSaga(SettleRefused):
    """No saga of that id in the journal."""


class NotWaiting(SettleRefused):
    """The saga did not end for a person: it still runs or is being recovered, or it ended
    with nothing left for one (committed, rolled back)."""


class AlreadySettled(SettleRefused):
    """Someone settled the saga before (their note stays; it is never overwritten)."""


@dataclass(frozen=True)
class Settled:
    """Who settled a saga (``user@host``), when (seconds since the epoch) and their note."""

    saga_id: str
    status: str
    by: str
    at: float
    note: str

    def __str__(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(self.at))
        return (
            f"{_cell(self.saga_id)}: {self.status}, settled by {_cell(self.by)} at {when}: "
            f"{_cell(self.note)}"
        )


def _who() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no login name (a container's uid without an entry): say which uid
        import os

        user = f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


BLANK = " \t\u00a0\u115f\u1160\u2800\u3000\u3164\uffa0" + "".join(map(chr, range(0x2000, 0x200B)))
"""Characters that print as nothing (spaces, fillers, a blank braille cell): a note of only
these says nothing."""


def settle(journal: Journal, saga_id: str, note: str) -> Settled:
    """Record that a person dealt with ``saga_id``, ended for a person; refused (typed,
    nothing written) if it is unknown, not ended for a person, or settled already."""
    check_text(saga_id, "a saga id")
    check_text(note, "a settle note")
    saga_id = _as_kept(journal, saga_id)
    if not note.strip(BLANK):  # (" " is printable, and says nothing: attack42 F9, attack43)
        raise InvalidNameError(f"a settle note must say what was done, got {note!r}")
    if journal.readonly or journal.closed:
        raise JournalError(f"{journal!r} is closed or read-only: nothing can be settled in it")
    no_new_saga(journal._pid, journal.path, "a saga cannot be settled", "nothing was settled")
    journal.owed.pay()  # (a run's writes a failed write kept, first: attack279 F4)
    if any(run.saga_id == saga_id for run in journal.owed.runs()):  # (attack280 F3)
        raise JournalError(
            f"saga {saga_id!r}'s end, kept since a write of its run failed, could not be "
            f"written yet ({journal.owed.why}): nothing was settled; settle it once it can be"
        )
    by, at = _who(), time.time()
    written = _Written()
    try:
        status = _settle_locked(journal, saga_id, note, by, at, written)
    except KeyboardInterrupt as exc:  # a Ctrl-C as COMMIT returned: it is settled all the
        if written.committed:  # same, and whoever pressed it is told so (``settled``)
            exc.settled = Settled(saga_id, written.status, by, at, note)  # type: ignore[attr-defined]
        raise
    except sqlite3.OperationalError as exc:  # (a full disk, ulimit -f: a raw error, 282 F2)
        if written.committed:
            raise
        said = told(exc, journal.path)
        raise JournalError(f"cannot settle {saga_id!r} ({said}); nothing was settled") from None
    return Settled(saga_id, status, by, at, note)


def _as_kept(journal: Journal, saga_id: str) -> str:
    """``saga_id`` as the journal keeps it: typed in another Unicode form of the same text
    (NFD, as some pastes give 'café'), its NFC one, which a run id is (attack294 F7: "no
    saga 'café'" beside a saga shown so); one kept as typed wins."""
    nfc = unicodedata.normalize("NFC", saga_id)
    if nfc == saga_id or journal.closed:
        return saga_id
    with reading(journal):
        sql = "SELECT id FROM sagas WHERE id IN (?, ?)"
        ids = {row[0] for row in journal._con.execute(sql, (saga_id, nfc)).fetchall()}
    return saga_id if saga_id in ids or nfc not in ids else nfc


class _Written(Written):
    """Whether the settle committed, and the status it read (``transaction``)."""

    status = ""


def _settle_locked(
    journal: Journal, saga_id: str, note: str, by: str, at: float, written: _Written
) -> str:
    con = journal._con
    with journal._lock, healed(con), transaction(con, written):  # read, check, write as one
        row = con.execute("SELECT s.status FROM sagas s WHERE s.id = ?", (saga_id,)).fetchone()
        if row is None:
            raise UnknownSaga(f"no saga {saga_id!r} in {journal.path}; nothing was settled")
        status = written.status = str(row[0])
        before = _settled_locked(journal, "AND saga_id = ?", (saga_id,))
        if before:
            raise AlreadySettled(
                f"saga {saga_id!r} was settled before ({before[0]}); nothing was settled"
            )
        waits = con.execute(f"SELECT 1 FROM sagas s WHERE s.id = ? AND {WAITS}", (saga_id,))
        if waits.fetchone() is None:
            why = (
                "has not ended (it runs, or a recover holds it, or it waits for recover)"
                if status in ("running", "rolling_back")
                else "ended with nothing left for a person"
            )
            raise NotWaiting(
                f"saga {saga_id!r} is {status}: it {why}; only a saga halted, or with dead "
                "letters or a step leaked, can be settled; nothing was settled"
            )
        seq = con.execute("SELECT MAX(seq) FROM events WHERE saga_id = ?", (saga_id,)).fetchone()
        details = {"by": by, "at": at, "note": note, "status": status}
        con.execute(
            "INSERT INTO events (saga_id, seq, kind, step, details) VALUES (?, ?, ?, NULL, ?)",
            (saga_id, (seq[0] or 0) + 1, SETTLED, json.dumps(details)),
        )
    return status


def settled(journal: Journal) -> list[Settled]:
    """Every saga settled in ``journal``, oldest saga first."""
    with reading(journal):  # (what is on disk: attack72 F1)
        return _settled_locked(journal, "", ())


def _settled_locked(journal: Journal, where: str, params: tuple[str, ...]) -> list[Settled]:
    rows = journal._con.execute(
        f"SELECT saga_id, details FROM events WHERE kind = '{SETTLED}' {where}"
        " ORDER BY saga_id, seq",
        params,
    ).fetchall()
    out = []
    for saga_id, details in rows:
        try:
            d = json.loads(details)
            out.append(Settled(saga_id, d["status"], d["by"], float(d["at"]), d["note"]))
        except (TypeError, ValueError, KeyError) as exc:  # a byte changed on disk
            raise JournalError(
                f"{journal.path} is damaged (the settled event of {saga_id!r}: {exc!r})"
            ) from None
    return out


def table(journal: Journal) -> str:
    """The sagas and their status, as a text table (``rollback-lessons journal show``), and
    under it a line for each saga settled by hand: who, when, and their note. ``leaked``
    counts the steps that may stand with nothing to undo them (a step with no undo too),
    which ``undos``, the undos logged, does not."""
    from .report import ran_on_pending  # (a halt left its undo pending: attack100 F7)

    done = {s.saga_id: s for s in settled(journal)}
    header = ("saga", "name", "status", "undos", "undone", "dead letters", "leaked")
    rows = [
        (_cell(s.id), _cell(s.name), _cell(s.status) + (", settled" if s.id in done else ""),
         *_undone(journal, s.id, s.undos, s.undone, s.leaked), str(s.dead),
         str(s.leaked + len(ran_on_pending(journal, s))))
        for s in journal.sagas()
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]]
    return "\n".join([line.rstrip() for line in lines] + [str(s) for s in done.values()]
                     + _ended_owners(journal))  # fmt: skip


def _ended_owners(journal: Journal) -> list[str]:
    """A line for each saga shown ``running`` whose process has ended, and that no live
    ``recover`` holds: left for ``recover`` (attack307: listed ``running``, nothing
    saying it waits for recover, not for its process)."""
    return [
        f"{_cell(s.id)}: {s.status}, but the process that ran it has ended: run `recover` on it"
        for s in journal.sagas()
        if s.status in ("running", "rolling_back")  # (a crash mid-rollback too: 312 F1)
        and s.owner_alive() is False
        and not s.claim_alive()
    ]


def _undone(journal: Journal, saga: str, undos: int, undone: int, leaked: int) -> tuple[str, str]:
    """The ``undos`` and ``undone`` cells: a leaked step whose undo was logged counts among the
    undos, and one undone as its work ran on (``EARLY``) among the undone too (attack97 F4:
    "undos 1, undone 1" of two undos logged and run, one read as never made)."""
    if leaked:
        from ..outcome import EARLY
        from .report import ran_on_said

        rows = [u for u in journal.undos(saga) if u.state == "leaked"]
        undos += len(rows)
        undone += sum(1 for u in rows if ran_on_said(u.error) == EARLY)
    return str(undos), str(undone)
