"""Which exercises a learner has solved, across lessons and sessions, the way Kaggle's
learntools keeps it: a small JSON file in the user's Jupyter data directory."""

from __future__ import annotations

import html
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


def progress_file() -> Path:
    """Where progress is kept: ``rollback_lessons/progress.json`` in the Jupyter data
    directory (``JUPYTER_DATA_DIR`` when set, as Jupyter itself does)."""
    try:
        from jupyter_core.paths import jupyter_data_dir

        base = Path(jupyter_data_dir())
    except ImportError:  # no Jupyter installed: its default place
        base = Path(os.environ.get("JUPYTER_DATA_DIR") or Path.home() / ".local/share/jupyter")
    return base / "rollback_lessons" / "progress.json"


def _solved() -> set[str]:
    try:
        data = json.loads(progress_file().read_text())
        return {str(k) for k in data.get("solved", [])}
    except (OSError, ValueError, AttributeError):
        return set()  # none yet, or a damaged file: start again rather than fail a check


def _save(solved: Iterable[str]) -> None:
    path = progress_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"solved": sorted(solved)}, indent=1) + "\n")
        tmp.replace(path)
    except OSError as exc:  # a read-only home: the check still answers
        print(f"(progress not saved: {exc})", file=sys.stderr)


def record(exercise: str) -> None:
    """Remember that ``exercise`` is solved (a correct check calls it)."""
    solved = _solved()
    if exercise not in solved:
        _save(solved | {exercise})


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
        _save(())
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
