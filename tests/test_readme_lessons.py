"""README's sentence on which lessons have a panel and which end with exercises is what
the lessons hold (newuser11: it said 02-06 and 01-12; 10-12 have panels, 13 exercises)."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PANELS = ("RollbackLab(", "IsolationLab(", "ExplorerGrid(")


def lessons(said: str) -> set[int]:
    """ "02-06 and 10-12" -> {2, ..., 6, 10, 11, 12}."""
    out: set[int] = set()
    for first, last in re.findall(r"(\d\d)(?:-(\d\d))?", said):
        out.update(range(int(first), int(last or first) + 1))
    return out


def holding(*marks: str) -> set[int]:
    found = set()
    for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"):
        cells = json.loads(path.read_text())["cells"]
        code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        if any(re.search(m, code) for m in marks):
            found.add(int(path.name[:2]))
    return found


def test_readme_names_the_lessons_with_a_panel_and_with_exercises():
    text = " ".join((ROOT / "README.md").read_text().split())
    panels = re.search(r"lessons ([\d\- and,]+?) have a panel", text)
    exercises = re.search(r"lessons ([\d\- and,]+?) end with exercises", text)
    assert panels and exercises
    assert lessons(panels.group(1)) == holding(*map(re.escape, PANELS))
    assert lessons(exercises.group(1)) == holding(r"lesson\d\d\.q\d+\.check\(")
