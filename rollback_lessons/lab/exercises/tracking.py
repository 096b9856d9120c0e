"""Which exercises a learner has solved, across lessons and sessions, the way Kaggle's
learntools keeps it: a small JSON file in the user's Jupyter data directory."""

from __future__ import annotations

import contextlib
import html
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..whole import write_whole

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, each write still whole
    fcntl = None  # type: ignore[assignment]


def progress_file() -> Path:
    """Where progress is kept: ``rollback_lessons/progress.json`` in the Jupyter data
    directory (``JUPYTER_DATA_DIR`` when set, as Jupyter itself does)."""
    try:
        from jupyter_core.paths import jupyter_data_dir

        base = Path(jupyter_data_dir())
    except ImportError:  # no Jupyter installed: its default place
        base = Path(os.environ.get("JUPYTER_DATA_DIR") or Path.home() / ".local/share/jupyter")
    return base / "rollback_lessons" / "progress.json"


class _Damaged(Exception):
    """progress.json is there but is not a record of ours (cut, or edited by hand)."""


def _read(path: Path) -> set[str]:
    """The exercises solved, as kept; none yet when there is no file; ``_Damaged`` when
    there is one that is not a record (a writer's atomic rename means never a half one)."""
    try:
        text = path.read_bytes()  # (bytes: a record not UTF-8 is damaged, not a traceback)
    except FileNotFoundError:
        return set()
    try:
        data = json.loads(text)
    except ValueError:
        raise _Damaged from None
    solved = data.get("solved") if isinstance(data, dict) else None
    if not isinstance(solved, list):
        raise _Damaged
    return {str(k) for k in solved}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold ``progress.lock`` (beside the record) around a read-modify-write: two kernels
    recording at once lost a solve (attack41 F10). Without ``fcntl`` (Windows), or where
    the folder cannot hold a lock file, no lock: each write is still whole."""
    with contextlib.ExitStack() as held:
        with contextlib.suppress(OSError):  # a read-only folder: the save will say so
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = held.enter_context(path.with_name("progress.lock").open("a"))
            if fcntl is not None:  # (an OSError here: a file system without locks)
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        yield  # (closing the file releases the lock)


def _set_aside(path: Path) -> None:
    """A damaged record is never replaced by a smaller one unseen: it is kept aside as
    ``progress.json.damaged-<time>`` and said once (the file is gone after)."""
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
    n = 1
    while aside.exists():
        n += 1
        aside = aside.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}-{n}")
    os.replace(path, aside)  # (an OSError: the caller says it, and nothing is saved)
    print(
        f"(progress file was damaged: kept as {aside}; progress starts again from here)",
        file=sys.stderr,
    )


def _load(path: Path) -> set[str]:
    """Read the record under the lock; a damaged one is set aside (``_set_aside``)."""
    try:
        return _read(path)
    except _Damaged:
        _set_aside(path)
        return set()


def _solved() -> set[str]:
    path = progress_file()
    try:
        return _read(path)
    except OSError:
        return set()  # unreadable: none shown rather than fail
    except _Damaged:
        pass
    with _locked(path):
        try:
            return _load(path)
        except OSError:
            return set()


def _save(path: Path, solved: Iterable[str]) -> None:
    """Write the record whole (``write_whole``: a temp file of this writer's own; two
    writers sharing one ``progress.tmp`` left a damaged record, attack41 F10)."""
    text = json.dumps({"solved": sorted(solved)}, indent=1) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_whole(path, text.encode())


def record(exercise: str) -> None:
    """Remember that ``exercise`` is solved (a correct check calls it)."""
    path = progress_file()
    try:
        with _locked(path):
            solved = _load(path)
            if exercise not in solved:
                _save(path, solved | {exercise})
    except OSError as exc:  # a read-only home: the check still answers
        print(f"(progress not saved: {exc})", file=sys.stderr)


def _forget() -> None:
    path = progress_file()
    try:
        with _locked(path):
            _save(path, ())
    except OSError as exc:
        print(f"(progress not saved: {exc})", file=sys.stderr)


@dataclass(frozen=True)
class Progress:
    """Which exercises are solved: one line per lesson, ✓ solved, · not yet."""

    exercises: tuple[tuple[str, str], ...]  # (id, title), in order
    solved: frozenset[str]

    def lines(self) -> list[str]:
        done = sum(1 for key, _ in self.exercises if key in self.solved)
        out = [f"Exercises solved: {done} of {len(self.exercises)}"]
        by_lesson: dict[str, list[str]] = {}
        for key, title in self.exercises:
            mark = "✓" if key in self.solved else "·"
            by_lesson.setdefault(key.split(".")[0], []).append(f"{mark} {key} {title}")
        out += [f"  lesson {lesson}: " + "   ".join(items) for lesson, items in by_lesson.items()]
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(str(self))}</pre>"


def progress(lesson: str | int | None = None, *, reset: bool = False) -> Progress:
    """The exercises solved so far, across lessons and sessions (``lesson="02"``: one
    lesson's only). ``reset=True`` forgets every solved exercise first."""
    if reset:
        _forget()
    from . import load_all

    exercises = load_all()
    keys = sorted(exercises)
    if lesson is not None:
        prefix = f"{int(lesson):02d}." if str(lesson).isdigit() else f"{lesson}."
        keys = [k for k in keys if k.startswith(prefix)]
        if not keys:
            raise ValueError(f"no exercises in lesson {lesson!r}")
    return Progress(tuple((k, exercises[k].title) for k in keys), frozenset(_solved()))


def reset_progress() -> Progress:
    """Forget every solved exercise (the same as ``progress(reset=True)``)."""
    return progress(reset=True)
