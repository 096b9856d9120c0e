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


def test_readme_names_the_lessons_that_start_a_temporal_server():
    """review76 F5: it said "lessons 08 and 12"; lesson 09 starts one too, for its table's
    Temporal column, and a room set up without the `temporal` CLI fails there."""
    text = " ".join((ROOT / "README.md").read_text().split())
    said = re.search(r"lessons ([\d\- and,]+?) start a real Temporal server", text)
    assert said
    assert lessons(said.group(1)) == holding(re.escape("TemporalRunner.start("))


def test_readme_cites_only_sections_a_lesson_has():
    """review76 F6: a benchmark row cited lesson 08's "what durability costs", a section
    removed from it (c8e0440). A lesson named with a quoted section has those words."""
    text = (ROOT / "README.md").read_text()
    cited = re.findall(r"lesson (\d\d)'s \"([^\"]+)\"", text)
    for number, section in cited:
        path = next((ROOT / "notebooks").glob(f"{number}_*.ipynb"))
        cells = json.loads(path.read_text())["cells"]
        prose = " ".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        assert section.lower() in prose.lower(), f"lesson {number} has no {section!r}"


def test_readme_counts_the_explorers_invariants_as_the_explorer_does():
    """review76 F4: "checks four invariants" was followed by five clauses; the fifth (each
    step said compensated is restored) reports as "not restored", the third's name."""
    from rollback_lessons.explore import INVARIANTS

    text = " ".join((ROOT / "README.md").read_text().split())
    said = text.split("checks four invariants: ", 1)[1].split("In your own tests:")[0]
    assert len(INVARIANTS) == 4
    assert re.findall(r"\((\d)\) ", said) == ["1", "2", "3", "4"]
    assert "*not restored*" in said.split("(3) ")[1].split("(4) ")[0]
