"""A step the machine says was never run (``Machine.not_run``: a Ctrl-C as it started, its
intent row written or not): its row is written not run at once, on its own, not only by the
run's last write (attack58 F3: a second Ctrl-C in the rollback, or as the run ended, left
the intent row, and ``recover`` reported a step nobody called leaked, and for a pivot asked a
person about it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .journaling import JournalWriter

ATTEMPTS = 3  # a second Ctrl-C in the write: tried this often, then raised


def not_run_now(w: JournalWriter, step: str) -> None:
    """Write ``step``'s intent row not run (its pivot's start refused, an undo logged before
    it withdrawn) now, fenced, as ``abandon_now`` does after a Ctrl-C. A write that fails
    (a full disk, a takeover) leaves it to the run's end, as before; a Ctrl-C that cuts it
    is kept, the write tried again, and raised after (it cuts the run where it landed)."""
    jrun, position = w.jrun, w.intents.get(step)
    if jrun is None:
        return
    pivot, start = (step if step == w.pivot else None), w.withdrawn
    withdrawn = list(w.m.withdrawn[start:])
    if position is None and pivot is None and not withdrawn:
        return
    kept: BaseException | None = None
    for _ in range(ATTEMPTS):
        try:
            jrun.abandon_now([] if position is None else [position], pivot, withdrawn)
        except Exception:  # (its run's end tries again: ``JournalWriter.end``)
            break
        except BaseException as exc:  # a second Ctrl-C: raised once the row is written
            kept = kept or exc
            continue
        if position is not None and w.intents.get(step) == position:
            del w.intents[step]  # (written: the run's end leaves it)
        w.withdrawn = max(w.withdrawn, start + len(withdrawn))
        break
    if kept is not None:
        raise kept
