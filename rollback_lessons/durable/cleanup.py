"""What a recover that stops midway writes before it ends, and what it tells: what ran
recorded if it can be, its claims given back, and on the exception the facts the CLI's one
line says (what it finished, what it left, whether what it undid is recorded).

How long those writes wait for the journal's lock: after an interrupt, one try (SQLite's
0.1 s turn), never the whole wait again (attack63 F1, F3); a second interrupt meanwhile is
held, so the first one's facts are told (attack66 F1; in the command, from the first one's
handler on, before ``held`` here: ``_starting.handling``, attack68 F1). After any other
stop (a registry that fails, in a process that lives on: a service, a notebook) the claims'
release waits as the journal's wait says, so the next recover can take those sagas
(attack66 F2)."""

from __future__ import annotations

import contextlib
from functools import partial

from .._held import held
from .forked import JournalForked
from .journal import Journal, JournalError
from .owner import me
from .records import GIVE_BACK, Claimed
from .room import was_full
from .undo_call import file_id, left_running
from .writer import RECORDED_LATER, UNRECORDED, Writer, briefly


def cleaned(
    journal: Journal, writer: Writer, exc: BaseException, claimed: list[Claimed] | None
) -> None:
    """``exc`` stopped recover: what it ran written, its claims given back, ``exc`` told."""
    interrupt = not isinstance(exc, Exception)
    with held([]) if interrupt else contextlib.nullcontext():  # (a second one: attack66 F1)
        with contextlib.suppress(Exception):  # (what the saga being undone did, not taken)
            if writer.run is not None:
                writer.run.give(writer.statements)
        try:
            briefly(journal, partial(_flush, writer, exc), interrupt or bool(writer.failed))
            told(exc, writer, claimed)
            briefly(journal, partial(_release, journal), interrupt)
            if any(isinstance(run, GiveBack) for run in journal.owed.runs()):
                said(exc, CLAIMS_KEPT)
        except BaseException as second:  # (a Ctrl-C in a wait: the first one's facts, its)
            told(second, writer, claimed)
            raise


def _flush(writer: Writer, exc: BaseException) -> None:
    """What ran recorded if it can be (the first error is the one told); a write that ran
    out of its wait and is written now is said so, never "will run again" (attack66 F4)."""
    failed = writer.failed
    with contextlib.suppress(JournalError):
        writer.flush()
    if failed and not writer.statements and isinstance(exc, JournalError):
        with contextlib.suppress(Exception):
            exc.args = (f"{failed}; {RECORDED_LATER}",)


def told(exc: BaseException, writer: Writer, claimed: list[Claimed] | None) -> None:
    """``exc`` told what recover finished and left (a fork finished none: its parent's, L8),
    and, an interrupt, that what it undid is not recorded if it is not (attack63 F2)."""
    with contextlib.suppress(Exception):
        if writer.reruns() and not isinstance(exc, Exception):  # (ends only: L2)
            exc.unrecorded = UNRECORDED  # type: ignore[attr-defined]
        done = {r.saga_id for r in writer.recorded}
        forked = isinstance(exc, JournalForked)
        exc.recovered = () if forked else tuple(writer.recorded)  # type: ignore[attr-defined]
        if claimed is not None:
            left = [] if forked else [c.saga.id for c in claimed if c.saga.id not in done]
            exc.unfinished = tuple(left)  # type: ignore[attr-defined]


def _release(journal: Journal) -> None:
    """This process's claims given back (attack45 F6: a process that lives on held them, no
    other recover took them); each its own (its claim's return cut too), read first (attack50).
    A saga a call of which this recover left running (past its timeout, or cut: ``LEFT``) is
    kept, as the run keeps it (``HELD``), until this process ends (attack181 F1: another
    process's recover took it at once and made the undo again beside that call)."""
    with contextlib.suppress(Exception):
        pid, host, _, space = me()
        runs_on = left_running(file_id(journal.path))
        held = [s.id for s in journal.sagas(_HELD, (pid, host, space)) if s.id not in runs_on]
        if held:  # (nothing claimed, nothing written: no lock waited for again, attack50)
            back = GiveBack(journal, [(GIVE_BACK, (pid, host, space, s)) for s in held])
            try:
                back.flush()
            except Exception as exc:  # (a full disk: given back with the journal's next
                if was_full(exc):  # write or claim, its close or the process's end;
                    journal.owed.add(back)  # attack276 F2: held for the service's life,
                raise  # refused elsewhere. A lock held: tried once, as ever, attack63 F1)


CLAIMS_KEPT = (
    "its claims could not be given back: they stay with this process until its journal "
    "writes again (a saga, a recover, its close) or the process ends"
)


def said(exc: BaseException, what: str) -> None:
    """``what`` added to the error's one line (a JournalError's), or as a note."""
    with contextlib.suppress(Exception):
        if isinstance(exc, JournalError) and len(exc.args) == 1:
            exc.args = (f"{exc.args[0]}; {what}",)
        else:
            exc.add_note(what)


class GiveBack:
    """A stopped recover's claims, given back (each only if still this process's). Not said
    at the process's end: the claims go with it (recover takes them), nothing is lost."""

    told_at_end, left_said = False, ""

    def __init__(self, journal: Journal, statements: list[tuple[str, tuple[object, ...]]]):
        self.journal, self.statements = journal, statements
        self.saga_id = ", ".join(str(args[-1]) for _, args in statements)

    def flush(self, *, sync: bool = True) -> None:
        self.journal.write(self.statements, sync=sync)


_HELD = (  # this process's claims, read (no lock waited for) before any is given back
    "WHERE s.claim_pid = ? AND s.claim_host = ? AND s.claim_space IS ?"
    " AND s.status IN ('running', 'rolling_back')"
)
