"""The CLI's commands on a journal file (``journal show``, ``journal settle``, ``recover``),
here in the durable layer they use (cli.py, the terminal, stays small): every failure is
one line and an exit status, never a traceback; output comes once the journal is closed."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .._words import counted
from ..errors import InvalidNameError
from .shell import for_shell


def journal_command(args: argparse.Namespace) -> int:
    """``journal show``, ``journal settle`` and ``recover``: each error one line, exit 2."""
    settling = args.command == "journal" and args.journal_command == "settle"
    try:  # (a signal as these load: a settle says nothing was settled, attack68 L1)
        ENTERED.append(True)  # (before: ``cli._interrupted`` says so, attack229 F3)
        import sqlite3

        from .._held import telling
        from ..cli import (
            STDOUT,
            CommandError,
            OutputError,
            _quiet_stdout,
            _say,
            _warn,
            interrupted_by,
            load_registry,
        )
        from ..events import one_line
        from .journal import Journal, JournalError
        from .recovery import recover
        from .report import _safe
        from .room import no_room, written_back
    except BaseException as exc:  # (a Ctrl-C Python 3.11 wrapped as a class was made too)
        from .._starting import unwrapped
        from ..cli import interrupted_by as cut_by

        cut = unwrapped(exc) if isinstance(exc, RuntimeError) else exc
        if not settling or isinstance(cut, Exception):
            raise
        return told(_settle_interrupted(args, None, *cut_by(cut), opened=False))
    readonly = args.command == "journal" and not settling
    settled, report, journal = None, None, None  # (no journal: cut as it opened, attack63 F5)
    try:
        with Journal(args.file, create=False, readonly=readonly, timeout=args.wait) as journal:
            if not readonly:  # (a -wal that fills its disk written back first: attack286 F9)
                written_back(journal)
            if settling:
                settled = journal.settle(args.saga_id, args.note)
            elif readonly:
                damage = journal.quick_check()
                if damage != "ok":  # a damaged file would show wrong numbers: say so instead
                    raise JournalError(f"{args.file} is damaged ({damage[:200]})")
                table = journal.table()
            else:
                report = recover(journal, load_registry(args.registry), force=args.force)
    except (CommandError, JournalError, InvalidNameError) as exc:
        for done in getattr(exc, "recovered", ()):  # what a recover stopped midway finished
            _say(_safe(str(done)))
        left = getattr(exc, "unfinished", ())  # (and the others it claimed: attack50 F3)
        _warn(str(exc) + (f"; {_left(exc)}" if len(left) > 1 else ""))
        exited = getattr(exc, "exited", None)  # (an undo's sys.exit: its failure code kept)
        return interrupted_by(exited)[1] if exited is not None else 2
    except (KeyboardInterrupt, SystemExit) as exc:  # a Ctrl-C, or a sys.exit (a signal
        # handler's graceful exit): an interrupt either way, one line, never exit 0
        why, status = interrupted_by(exc)
        if settling:  # (its read-back tries the lock once: a second signal is held now)
            done = settled or getattr(exc, "settled", None)
            return told(_settle_interrupted(args, done, why, status, journal is not None))
        if readonly:
            raise
        finished = getattr(exc, "recovered", None)
        if finished is None and report is not None:  # (it had returned: heard as the
            finished, exc.unfinished = report.recovered, ()  # type: ignore[union-attr]
            # journal closed, attack48 F11)
        during = getattr(exc, "during", "")  # (an undo cut: it runs again, attack75 F3)
        before = "what it undid before it is recorded" if during else "what it undid is recorded"
        recorded = getattr(exc, "unrecorded", before)  # (attack63 F2)
        line = f"recover interrupted ({why}){during}; {recorded}, and {_left(exc)}"
        ending = [status, f"rollback-lessons: {one_line(line)}\n".encode(errors="replace")]
        with telling(ending):  # (a second one: held, attack66 F1, F3; ends it as
            try:  # its output blocks, attack71 F2)
                for done in finished or ():
                    _say(_safe(str(done)))
            except (OSError, OutputError):  # (stdout closed, full: the line said, F3)
                _quiet_stdout()
            _warn(line)
            ending[1] = b""
            return told(status)
    except sqlite3.OperationalError as exc:
        waited = f"waited {args.wait:g} s; a longer --wait waits more"  # (attack53 L1)
        hint = f" (another process holds it; {waited})" if "locked" in str(exc) else ""
        _warn(f"cannot use {args.file}: {exc}{hint or no_room(Path(args.file), str(exc))}")
        return 2
    except sqlite3.DatabaseError as exc:
        _warn(f"{args.file} is damaged: {exc}; no undo was run")
        return 2
    except OSError as exc:  # a name too long, a folder that cannot be read, ...
        _warn(f"cannot use {args.file}: {exc.strerror or exc}")
        return 2
    # (printed once the journal is closed: an output that fails is the output's, not its)
    if settling:
        try:
            _say(_safe(str(settled)))
            STDOUT.flush()
            DONE.append((0, "the saga is settled"))  # (from here on, said so: attack60 F2)
            SETTLED.append(True)
        except OutputError as exc:  # (settled, written: say so, attack41 F3)
            raise OutputError(f"{exc}; the saga is settled ({args.file}: journal show)") from None
        except (KeyboardInterrupt, SystemExit) as exc:  # (as it was said: attack50 F2; 0:
            why, _ = interrupted_by(exc)  # settled, the status says so, attack286 F4)
            _warn(f"interrupted ({why}) once the settle was written: the saga is settled")
            return told(0)
        return 0
    if readonly:
        _say(table)
        return 0
    assert report is not None
    try:  # (the report and its closing lines: its work done, said if cut: attack50 L1)
        _say(str(report), *(_safe(str(w)) for w in report.waiting))
        STDOUT.flush()
        left = _summary(report, args.file)
        DONE.append((1 if left else 0, f"recover finished (its report above; {args.file})"))
    except OutputError as exc:
        raise OutputError(
            f"{exc}; what recover did is recorded in {args.file} (journal show)"
        ) from None
    except (KeyboardInterrupt, SystemExit) as exc:  # (its work done: said, attack48 F11)
        why, status = interrupted_by(exc)
        _warn(
            f"interrupted ({why}) as recover printed its report: it finished "
            f"{counted(len(report.recovered), 'saga')}"
            f"{_named([r.saga_id for r in report.recovered])}, "
            f"recorded (`rollback-lessons journal show {for_shell(str(args.file))}` lists them)"
        )
        return told(status)
    return 1 if left else 0


DONE: list[tuple[int, str]] = []
"""The command's status and what it did, once its work is done and said: a Ctrl-C or a
``sys.exit`` heard after (as it returns) is said so, the status kept (``cli._interrupted``)."""

SETTLED: list[bool] = []
"""A settle written and said: its status, 0, stands whatever interrupt comes after, to the
process's end (attack285 F2: exit 130, and a script trusting it retried, refused: settled)."""

ENTERED: list[bool] = []
"""Set as the command begins: an interrupt before it (its arguments read, this module
loaded) is told by ``cli._interrupted``, a settle's as nothing settled."""

TOLD: list[int] = []
"""The status of an interrupt the command told in its line: a signal heard after (as it
returns) adds no second line nor another status (``cli._interrupted``; attack68 F3)."""


def told(status: int) -> int:
    """``status``, the command's interrupt told (``TOLD``)."""
    TOLD.append(status)
    return status


def _summary(report: Any, file: str) -> bool:
    """recover's closing lines: what is left for a person, and why (True: something is)."""
    from ..cli import _warn

    dead = [r for r in report.recovered if r.dead_letters]
    person = [r for r in report.recovered if r.for_a_person and not r.dead_letters]

    if dead:
        _warn(
            f"{counted(len(dead), 'saga')} left dead letters, undos that failed (see above): "
            f"a person must finish {_them(dead)}"
        )
    if person:
        _warn(
            f"{counted(len(person), 'saga')} left for a person (see above): halted (at a "
            "pivot, or by the undo policy), or with a step that may have happened and has no "
            f"undo: a person must check {_them(person)} and finish {_them(person)} by hand"
        )
    if report.skipped:
        _warn(f"{counted(len(report.skipped), 'saga')} left unfinished (see above)")
    if report.waiting:
        _warn(
            f"{counted(len(report.waiting), 'saga')} ended earlier still "
            f"wait{'s' * (len(report.waiting) == 1)} for a person (see above; "
            f"`rollback-lessons journal show {for_shell(str(file))}` lists "
            f"{_them(report.waiting)}): "
            "halted, or with dead letters or a step that may have happened with nothing left "
            "to undo it"
        )
    return bool(report.skipped or dead or person or report.waiting)


def _left(exc: BaseException) -> str:
    """What an interrupted recover left for the next one: the sagas it claimed and did not
    finish, named (``unfinished``, set by ``recover``), or in general when not known."""
    left = getattr(exc, "unfinished", None)
    if left is None:
        return "the sagas it did not finish are left for the next recover"
    if not left:
        return "no saga it claimed is left unfinished"
    return f"left unfinished for the next recover: saga{'s' * (len(left) != 1)}{_named(left)}"


def _them(sagas: Any) -> str:
    """How a line points back at ``sagas``: "it" (one) or "them"."""
    return "it" if len(sagas) == 1 else "them"


def _named(ids: Any) -> str:
    """' ' and the first five ids, and how many more (attack49 L1: a count alone)."""
    more = f" and {len(ids) - 5} more" if len(ids) > 5 else ""
    return (" " + ", ".join(map(repr, ids[:5])) + more) if ids else ""


def _settle_interrupted(
    args: argparse.Namespace, done: Any, why: str = "Ctrl-C", status: int = 130,
    opened: bool = True,
) -> int:  # fmt: skip
    """A Ctrl-C during ``journal settle``: whether the saga was settled is said (and is the
    status: 0 if it is, a script's retry refused else, attack285 F2), known (its
    write committed, ``Written``; or the journal not yet ``opened``: nothing, at once, not
    read back after another whole wait for its lock) or read back (the Ctrl-C came as the
    call returned), its lock tried once (a second signal is held meanwhile: no wait one
    must cut; attack68 F1)."""
    from ..cli import _say, _warn
    from .journal import Journal
    from .report import _safe
    from .settle import settled

    known = done is not None or not opened
    if not known:
        try:
            with Journal(args.file, create=False, readonly=True, timeout=0.0) as journal:
                found = [s for s in settled(journal) if s.saga_id == args.saga_id]
            known, done = True, next((s for s in found if s.note == args.note), None)
        except Exception:  # (cannot be read now: say so, never guess)
            pass
    if done is not None:  # (exit 0: settled, whatever cut the command, attack286 F4)
        _say(_safe(str(done)))
        _warn(f"interrupted ({why}) once the settle was written: the saga is settled")
        return 0
    if known:
        _warn(f"interrupted ({why}) before the settle was written: nothing was settled")
    else:
        _warn(
            f"interrupted ({why}); whether it was settled could not be read: see "
            f"`rollback-lessons journal show {for_shell(str(args.file))}`"
        )
    return status
