"""The lessons agree with themselves, with each other and with the engines: what their prose
says is checked against the outputs stored beside it (which strict nbval checks against a
fresh run). Each test reads the committed notebooks; none runs them."""

import ast
import json
import re
import textwrap
from pathlib import Path

import pytest

from rollback_lessons.events import EventKind

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
LESSONS = [p for p in NOTEBOOKS if p.name[:2] != "00"]
WORD_LIMIT = 1000
NO_EXERCISES_YET: set[str] = set()
"""Lessons whose exercises are still to write (README's table says so)."""


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def prose(path: Path) -> str:
    return "\n".join("".join(c["source"]) for c in cells(path) if c["cell_type"] == "markdown")


def text_outputs(path: Path) -> str:
    """What the learner reads under the code cells: streams and plain-text results."""
    found = []
    for cell in cells(path):
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream":
                found.append("".join(output["text"]))
            elif "data" in output:
                found.append("".join(output["data"].get("text/plain", "")))
    return "\n".join(found)


def ids(path: Path) -> str:
    return path.stem


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_no_lesson_has_more_than_about_a_thousand_words_of_prose(path):
    words = len(re.findall(r"\S+", prose(path)))
    assert words <= WORD_LIMIT, f"{path.name}: {words} words of prose; trim it"


@pytest.mark.parametrize("path", LESSONS, ids=ids)
def test_each_lesson_opens_with_its_goals_and_ends_with_what_you_learned_and_the_next(path):
    markdown = [("".join(c["source"])) for c in cells(path) if c["cell_type"] == "markdown"]
    assert "**By the end of this lesson you will be able to**" in markdown[0]
    n = int(path.name[:2])
    following = NOTEBOOKS[n + 1].name if n + 1 < len(NOTEBOOKS) else NOTEBOOKS[0].name
    top = markdown[0].split("\n\n")[1]  # the line under the title: back and next
    assert re.search(rf"\[[^\]]*→\]\({re.escape(following)}\)", top), top
    last = markdown[-1]
    assert last.startswith("## What you learned"), f"{path.name} ends with {last[:40]!r}"
    assert f"]({following})" in last
    headings = [m.split("\n")[0] for m in markdown]
    exercises = [i for i, h in enumerate(headings) if h.startswith("## Exercise")]
    if path.name in NO_EXERCISES_YET:
        assert not exercises, f"{path.name} has exercises now: take it out of NO_EXERCISES_YET"
        return
    assert exercises and exercises[-1] < len(markdown) - 1  # exercises before the summary


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_run_counts_in_the_text_are_the_ones_in_the_outputs(path):
    outputs = text_outputs(path)
    for count in re.findall(r"\b(\d[\d,]*) runs\b", prose(path)):
        assert re.search(rf"\b{count} runs\b", outputs), f"{path.name}: '{count} runs'"


KINDS = {str(kind) for kind in EventKind}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_event_names_in_the_text_appear_in_the_outputs(path):
    """An event a lesson names (`halted`, `undo_failed`...) is one the learner can see there."""
    outputs = text_outputs(path)
    named = set(re.findall(r"`([a-z_]+)`", prose(path))) & KINDS
    missing = sorted(k for k in named if not re.search(rf"\b{k}\b", outputs))
    assert missing == [], f"{path.name} names events its outputs never show: {missing}"


def test_the_schedules_lesson_10_names_are_the_ones_its_outputs_show():
    path = ROOT / "notebooks" / "10_sagas_are_not_isolated.ipynb"
    outputs = text_outputs(path).splitlines()
    shown = {}  # schedule -> what happened in it, as printed
    for line in outputs:
        match = re.match(r"^(?:schedule )?([ABDRS]{3,})\s*(.*)$", line)
        if match:
            shown.setdefault(match.group(1), match.group(2))
    named = re.findall(r"`([ABDRS]{3,})`", prose(path))
    assert named
    for schedule in named:
        assert schedule in shown, f"lesson 10 names schedule {schedule!r}, no output shows it"
    for sentence in re.split(r"(?<=[.:])\s", prose(path)):
        if "broke" in sentence:
            for schedule in re.findall(r"`([ABDRS]{3,})`", sentence):
                assert shown[schedule] not in ("", "fine"), (schedule, shown[schedule])


UNDONE = re.compile(r"(?<!not )undone\b[^|\n]*")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_no_engine_in_any_lesson_undoes_the_email(path):
    """Lessons 04 and 06 teach that the email is the pivot: nothing unsends it. Every
    engine's output that lists what was undone agrees (a correction email is listed apart,
    as answered by a new action)."""
    for line in text_outputs(path).splitlines():
        for listed in UNDONE.findall(line):
            assert "send_email" not in listed, f"{path.name}: {line.strip()}"


def test_lesson_09_shows_every_engine_refund_a_charge_that_timed_out():
    """The undo logged before its step (a charge that times out after charging) is run by
    every engine lesson 09 shows, as its table says."""
    path = ROOT / "notebooks" / "09_step_functions_and_bpmn.ipynb"
    lines = [
        line
        for line in text_outputs(path).splitlines()
        if re.search(r"charged \d+, refunded", line)
    ]
    engines = {line.split(" ")[0] for line in lines}
    assert {"in", "Step", "BPMN,"} <= engines, lines
    for line in lines:
        charged, refunded = re.search(r"charged (\d+), refunded (\d+)", line).groups()
        assert charged == refunded != "0", line


def test_the_explorer_grid_counts_its_runs_as_the_explorer_does():
    """Lesson 11's grid has a cell per run with faults; its title says so, and with the one
    run without a fault it makes the explorer's count (no "61 runs" beside "62 runs")."""
    from rollback_lessons.explore import explore
    from rollback_lessons.lab.grid import ExplorerGrid, draw_grid
    from rollback_lessons.lab.grid import cells as grid_cells
    from rollback_lessons.worlds.examples import booking_restored, booking_saga, booking_state

    exploration = explore(booking_saga(), booking_state, restored=booking_restored)
    shown = grid_cells(exploration, "continue")
    fig = draw_grid(exploration)
    title = next(t.get_text() for t in fig.texts if "policy continue" in t.get_text())
    without = [run for run in exploration.runs if not run.faults]
    assert len(shown) + len(without) == len(exploration.runs)
    assert exploration.summary().startswith(f"{len(exploration.runs)} runs")
    said = f": {len(exploration.runs)} runs ({len(shown)} with faults, the cells; 1 without)"
    assert said in title, title
    broken = len(exploration.failures)
    assert f"), {broken} break an invariant" in title
    # newuser7: the widget grid said "61 runs" under the cell printing "62 runs"
    grid = ExplorerGrid(exploration, booking_state)
    legend = grid.legend.value
    assert said in legend and f"{broken} break an invariant" in legend


def sentences(text: str) -> list[str]:
    return re.split(r"(?<=[.!?])\s+", text)


def test_lesson_08_shows_the_sample_trying_the_email_once_and_never_undoing_it():
    """The hand-written Temporal saga follows the pivot rule (``machine.pivot_in_doubt``),
    and lesson 08's outputs show it: the email's retry policy is one attempt, the source
    printed appends no compensation for it, and the run whose email timed out after it
    went tried it once, undid nothing, and went on only after a person's Signal."""
    from rollback_lessons.worlds.temporal_booking import workflows

    path = ROOT / "notebooks" / "08_sagas_on_temporal.ipynb"
    outputs = text_outputs(path)
    assert workflows.ONCE.maximum_attempts == 1
    email_policy = re.search(r"the email: +(RetryPolicy\(.*\))", outputs)
    assert email_policy and "maximum_attempts=1," in email_policy.group(1)
    end = 'return BookingResult("committed")'
    printed = outputs[outputs.index("    @workflow.run") : outputs.index(end) + len(end)]
    tree = ast.parse(textwrap.dedent(printed))
    pivot_calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and ast.unparse(node.func) == "workflow.execute_activity"
        and "step_input(booking, PIVOT)" in [ast.unparse(a) for a in node.args]
    ]
    assert len(pivot_calls) == 1
    policy = {k.arg: ast.unparse(k.value) for k in pivot_calls[0].keywords}["retry_policy"]
    assert policy == "ONCE"
    loops_appending = [
        ast.unparse(node.iter)
        for node in ast.walk(tree)
        if isinstance(node, ast.For) and "compensations.append" in ast.unparse(node)
    ]
    appends = ast.unparse(tree).count("compensations.append")
    assert loops_appending == ["COMPENSABLE"] and appends == 1  # never the email's
    assert workflows.PIVOT not in workflows.COMPENSABLE
    assert re.search(r"email attempts: 1 \|", outputs)
    waited = re.search(r"effects while it waited: (.*)", outputs)
    assert waited and "send_email DONE" in waited.group(1) and "undone" not in waited.group(1)
    rows = [" ".join(line.split()) for line in outputs.splitlines()]  # the history's rows
    assert rows.count("activity scheduled action send_email") == 1
    timed_out = rows.index("activity timed out action send_email")
    assert timed_out < rows.index("signal resolve sent")  # a person's answer, after it
    assert not [row for row in rows if re.match(r"activity \w+( \w+)? undo send_email", row)]


def test_lesson_08s_table_says_what_the_sample_does_with_the_pivot():
    path = ROOT / "notebooks" / "08_sagas_on_temporal.ipynb"
    row = next(line for line in prose(path).splitlines() if line.startswith("| the pivot |"))
    assert "no compensation" in row and "one attempt" in row
    assert "refused" in row and "timed out" in row and "Signal" in row


DELAY_ROW = re.compile(r"^(\S.*?)\s{2,}delay\s+(\d+)\s+(\d+)\s*$")


def test_lesson_13_says_which_variant_a_delay_breaks_as_its_summary_shows():
    """Lesson 13's claim about delays, against ``explore_choreography().summary()`` as stored
    beside it: the variants a delay broke all lack tombstones, with the counts shown; the
    naive variant (no outbox, no inbox, tombstones kept) survives every delay, for that
    reason."""
    from rollback_lessons.choreo.run import IN_ORDER, NAIVE

    path = ROOT / "notebooks" / "13_choreography.ipynb"
    delays = {}
    for line in text_outputs(path).splitlines():
        match = DELAY_ROW.match(line)
        if match:
            delays[match.group(1)] = (int(match.group(2)), int(match.group(3)))
    assert set(delays) == {"outbox + inbox", str(NAIVE), str(IN_ORDER)}, delays
    text = prose(path)
    claim = next(s for s in sentences(text) if s.startswith("A delay breaks only"))
    assert "without tombstones" in claim
    broken = {variant: counts for variant, counts in delays.items() if counts[1]}
    assert broken, "the text says a delay breaks something"
    for variant, (runs, failed) in broken.items():
        assert variant.endswith("no tombstones"), variant
        assert f"{failed} of {runs}" in claim, (claim, variant, runs, failed)
    naive_runs, naive_broken = delays[str(NAIVE)]
    assert naive_broken == 0
    survives = next(s for s in sentences(text) if "never under a delay" in s)
    assert f"(0 of {naive_runs})" in survives and "not tombstones" in survives
    assert NAIVE.tombstones and not NAIVE.outbox and not IN_ORDER.tombstones


def test_lesson_13_says_one_thing_about_where_a_choreographys_undo_log_lives():
    """Its table (``side_by_side``), its text and what it says you learned agree: the sum
    of the services' records and outboxes; never "no undo log"."""
    path = ROOT / "notebooks" / "13_choreography.ipynb"
    row = next(line for line in text_outputs(path).splitlines() if "where the undo log" in line)
    assert "records and outbox" in row, row
    text = prose(path)
    assert "no undo log" not in text
    said = [s for s in sentences(text) if "undo log" in s and "sum of" in s]
    assert len(said) >= 2 and all("records and outboxes" in s for s in said), said


FORWARD_TERMS = {
    r"`no_retry_on`": 10,
    r"\brecover(y|ed|s)?\b": 7,
    r"\bcancell(ation|ed)\b": 12,
    r"\bchoreograph": 13,
    r"\btombstone": 13,
}
"""A term, and the lesson that teaches it: an earlier lesson that uses it says where."""

LINK = re.compile(r"\[[^\]]*\]\([^)]*\)")


@pytest.mark.parametrize("path", LESSONS, ids=ids)
def test_a_term_used_before_its_lesson_points_to_it(path):
    n = int(path.name[:2])
    text = LINK.sub("", prose(path))  # the links to other lessons name them, not use them
    for term, lesson in FORWARD_TERMS.items():
        if n >= lesson:
            continue
        for sentence in sentences(text):
            if re.search(term, sentence, re.IGNORECASE):
                assert re.search(rf"\blessons? {lesson:02d}\b", sentence), (
                    f"{path.name} uses {term!r}, taught in lesson {lesson:02d}: {sentence!r}"
                )


EXPLAINED_WHERE_FIRST_USED = {
    ("03_when_an_undo_fails", "VirtualClock"): r"`VirtualClock`, which records",
    ("12_parallel", "CancelledError"): r"raises `CancelledError`",
    ("12_parallel", "shielded"): r"\*\*shielded\*\* \(",
}
"""Names a lesson uses before its section about them, or never teaches otherwise: the first
cell that has one (in its code, output or text) is text, and says what it is there."""


@pytest.mark.parametrize(("lesson", "name"), sorted(EXPLAINED_WHERE_FIRST_USED))
def test_a_name_is_explained_before_a_cell_uses_it(lesson, name):
    for cell in cells(ROOT / "notebooks" / f"{lesson}.ipynb"):
        shown = "".join(cell["source"])
        for output in cell.get("outputs", []):
            shown += "".join(output.get("text", "")) + "".join(
                output.get("data", {}).get("text/plain", "")
            )
        if name in shown:
            assert cell["cell_type"] == "markdown", f"{lesson}: {name} used before it is said"
            assert re.search(EXPLAINED_WHERE_FIRST_USED[lesson, name], shown), shown
            return
    raise AssertionError(f"{lesson} never uses {name}")


def test_what_an_exercise_needs_is_shown_above_it():
    """Exercise 12.2's solution looks a step up by name (``saga[name]``): lesson 12 shows
    that before the exercise, not only in a hint."""
    from rollback_lessons.lab.exercises import lesson12

    assert "saga[" in lesson12.q2.solution_code
    above = []
    for cell in cells(ROOT / "notebooks" / "12_parallel.ipynb"):
        source = "".join(cell["source"])
        if "### Exercise 12.2" in source:
            break
        above.append(source)
    assert any("saga[" in source for source in above)


def test_lesson_11_names_each_check_before_its_outputs_use_the_name():
    """The explorer's outputs say 'phantom undo', 'not restored'...: section 1 gives each of
    the four checks its name (a fresh reader met the names in outputs before the text)."""
    from rollback_lessons.explore import INVARIANTS

    lesson = next(p for p in NOTEBOOKS if p.name.startswith("11_"))
    first = next("".join(c["source"]) for c in cells(lesson) if "## 1." in "".join(c["source"]))
    for name in INVARIANTS:
        assert f"*{name}*" in first, f"lesson 11 section 1 does not name the check {name!r}"
