"""Exercises answer back: untouched starters are "not attempted", solutions pass, and every
deliberately wrong answer is rejected. A solved copy of each lesson passes all its checks."""

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from rollback_lessons.lab.exercises import ____, load_all
from rollback_lessons.lab.exercises import lesson02 as l02

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MARKER = re.compile(r"^# exercise: (\d\d\.\d+)", re.M)
EXERCISES = load_all()


def exercise_cells() -> dict[str, str]:
    """Exercise id -> the starter code as shipped in its lesson."""
    found = {}
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            source = "".join(cell["source"])
            match = MARKER.search(source)
            if cell["cell_type"] == "code" and match:
                found[match.group(1)] = source
    return found


STARTERS = exercise_cells()


def test_every_exercise_is_in_a_lesson_and_each_lesson_has_two_to_four():
    assert sorted(STARTERS) == sorted(EXERCISES)
    per_lesson = {}
    for key in EXERCISES:
        per_lesson.setdefault(key.split(".")[0], []).append(key)
    assert all(1 <= len(v) <= 4 for v in per_lesson.values()), per_lesson
    assert sorted(per_lesson) == ["01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11"]


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_untouched_starter_is_not_attempted(key):
    result = EXERCISES[key].run(STARTERS[key])
    assert result.status == "not attempted", result
    assert "not attempted yet" in result.message


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_solution_passes(key):
    result = EXERCISES[key].run(EXERCISES[key].solution_code)
    assert result.passed, result


@pytest.mark.parametrize(
    ("key", "index"),
    [(k, i) for k in sorted(EXERCISES) for i in range(len(EXERCISES[k].wrong_answers))],
)
def test_each_wrong_answer_is_rejected_with_a_reason(key, index):
    exercise = EXERCISES[key]
    assert len(exercise.wrong_answers) >= 3 or key == "05.2"
    result = exercise.run(exercise.wrong_answers[index])
    assert result.status == "incorrect", result
    assert len(result.message) > 20  # says what is wrong, not just "no"


@pytest.mark.parametrize(
    ("key", "index"),
    [(k, i) for k in sorted(EXERCISES) for i in range(len(EXERCISES[k].right_answers))],
)
def test_each_other_shape_of_a_right_answer_passes(key, index):
    result = EXERCISES[key].run(EXERCISES[key].right_answers[index])
    assert result.passed, result


def test_a_right_answer_with_a_caveat_hears_it_truthfully():
    result = l02.q1.run('def undo_deposit(state):\n    state["accounts"]["acct-1"] = 0')
    assert result.passed and "lost update" in result.message
    plain = l02.q1.run(l02.q1.solution_code)
    assert plain.passed and "lost update" not in plain.message


def test_precise_messages():
    wrong = "def undo_deposit(state):\n    pass"
    assert "balance was 100" in l02.q1.run(wrong).message
    assert "the order the steps ran in" in l02.q2.check(["a", "b", "c", "d"]).message
    assert "logs its undo before it runs" in l02.q2.check(["c", "b", "a"]).message
    assert l02.q2.check(____).status == "not attempted"
    assert l02.q2.check(["c", ____]).status == "not attempted"


def test_hints_come_one_at_a_time_and_solution_is_code():
    q = EXERCISES["04.2"]
    q._next_hint = 0
    first, second = q.hint(), q.hint()
    assert first.startswith("Hint 1/3") and second.startswith("Hint 2/3")
    assert q.hint(3).startswith("Hint 3/3")
    with pytest.raises(ValueError, match="there are 3 hints"):
        q.hint(4)
    solution = q.solution()
    assert "def refund(state):" in str(solution)
    assert solution._repr_markdown_().startswith("```python")


def solved_copy(path: Path, tmp_path: Path) -> Path:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        match = MARKER.search(cell.source) if cell.cell_type == "code" else None
        if match:
            cell.source = EXERCISES[match.group(1)].solution_code
    out = tmp_path / path.name
    nbformat.write(nb, out)
    return out


LESSONS_WITH_EXERCISES = [
    p
    for p in NOTEBOOKS
    if any(MARKER.search("".join(c["source"])) for c in json.loads(p.read_text())["cells"])
]


@pytest.mark.parametrize("path", LESSONS_WITH_EXERCISES, ids=lambda p: p.stem)
def test_solved_copy_passes_every_check(path, tmp_path):
    copy = solved_copy(path, tmp_path)
    nb = nbformat.read(copy, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    checks = [c for c in nb.cells if c.cell_type == "code" and ".check(" in c.source]
    assert len(checks) >= 1
    for cell in checks:
        text = "".join(o.get("data", {}).get("text/plain", "") for o in cell.outputs)
        assert text.startswith("✓ Correct"), f"{path.name}: {cell.source!r} -> {text!r}"


def test_start_here_names_the_lessons_that_have_exercises():
    start = (ROOT / "notebooks" / "00_start_here.ipynb").read_text()
    lessons = sorted({key.split(".")[0] for key in EXERCISES})
    assert f"Lessons {lessons[0]} to {lessons[-1]} end with exercises" in start
    assert lessons == [f"{n:02d}" for n in range(int(lessons[0]), int(lessons[-1]) + 1)]
