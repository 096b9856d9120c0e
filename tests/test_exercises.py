"""Exercises answer back: untouched starters are "not attempted", solutions pass, the grading
core judges shapes and words fairly and shows the learner's own line, checks are the same
every time, hints stop short of the solution, and progress is remembered across sessions.
Every solution, put in its lesson's exercise cell, passes the lesson's check in a kernel,
where one lesson is run whole, solved. (The right and wrong answers of every
exercise are in tests/bank, run by test_exercise_bank.py.)"""

import ast
import inspect
import json
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from rollback_lessons.lab import exercises as ex
from rollback_lessons.lab.exercises import ____, load_all
from rollback_lessons.lab.exercises import lesson02 as l02

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MARKER = re.compile(r"^# exercise: (\d\d\.\d+)", re.M)
HEADING = re.compile(r"^### Exercise (\d\d\.\d+)", re.M)
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


def exercise_texts() -> dict[str, str]:
    """Exercise id -> the markdown that states it."""
    found = {}
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            source = "".join(cell["source"])
            match = HEADING.search(source)
            if cell["cell_type"] == "markdown" and match:
                found[match.group(1)] = source[match.start() :]
    return found


STARTERS = exercise_cells()
TEXTS = exercise_texts()


def test_every_exercise_is_in_a_lesson_and_each_lesson_has_one_to_four():
    assert sorted(STARTERS) == sorted(EXERCISES) == sorted(TEXTS)
    per_lesson = {}
    for key in EXERCISES:
        per_lesson.setdefault(key.split(".")[0], []).append(key)
    assert all(1 <= len(v) <= 4 for v in per_lesson.values()), per_lesson
    assert sorted(per_lesson) == [f"{n:02d}" for n in range(1, 14)]


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_each_exercise_heading_is_the_title_progress_shows(key):
    heading = TEXTS[key].split("\n", 1)[0].removeprefix(f"### Exercise {key}: ")
    assert heading.replace("`", "") == EXERCISES[key].title  # code font aside, one title


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_untouched_starter_is_not_attempted(key):
    result = EXERCISES[key].run(STARTERS[key])
    assert result.status == "not attempted", result
    assert "not attempted yet" in result.message


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_hints_go_from_a_nudge_to_nearly_there_and_the_last_is_not_the_solution(key):
    exercise = EXERCISES[key]
    assert len(exercise.hints) >= 2
    body = [
        line.strip()
        for line in exercise.solution_code.splitlines()
        if len(line.strip()) >= 20 and not line.startswith(("#", "def ", "async def "))
    ]  # the lines that do the work (short ones, `raise`, are the exercise text's own words)
    assert body, key
    for hint in exercise.hints:
        for line in body:
            assert line not in hint, (key, hint)  # no line of the solution, word for word


def bound_names(source: str) -> dict[str, str]:
    """The names a cell's top-level imports bind, and what each is bound to."""
    names = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                names[alias.asname or top] = alias.name if alias.asname else top
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def imported_above() -> dict[str, dict[str, str]]:
    """Exercise id -> what the code cells of its lesson above its cell have imported."""
    found = {}
    for path in NOTEBOOKS:
        names: dict[str, str] = {}
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            match = MARKER.search(source)
            if match:
                found[match.group(1)] = dict(names)
            names.update(bound_names(source))
    return found


IMPORTED = imported_above()


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_an_exercise_runs_with_what_its_lesson_imported_above_its_cell(key):
    """Exercise.run gives the learner's code the names the notebook gives it: setup is the
    lesson's imports above the exercise cell, no more, no fewer."""
    assert bound_names(EXERCISES[key].setup) == IMPORTED[key]


@pytest.mark.parametrize(
    ("key", "code", "says"),
    [
        ("01.1", "Rollback\nrun_with_rollback = 1", "should be a function"),  # imported in §2
        ("03.1", "Retry\nchoices = 1", "answer with a dict"),
        ("10.3", "charge_retry = LESSON_POLICY", "an outage of this gateway lasts up to 3 calls"),
        ("03.1", "choices = Retry2", "your cell raised NameError: name 'Retry2' is not defined"),
        ("02.2", "predicted = [", "your cell is not Python at line 1"),
        ("02.2", "predicted = 1 / 0", "ZeroDivisionError"),
    ],
)
def test_run_never_raises_and_knows_the_lessons_imports(key, code, says):
    result = EXERCISES[key].run(code)
    assert result.status == "incorrect" and says in result.message, result


# Values the lessons print that an answer must not hard-code, so no exercise text suggests one
PRINTED = {
    "04.2": ('"booking-1"', "KEY", "120"),
    "06.1": ("evt-",),
    "06.2": ("booking-42", "240"),
    "07.1": ('"step2"',),
    "10.1": ("100", "130", "150"),
    "11.1": ('"booking-1"', "KEY", "120"),
}


def test_help_on_the_lesson_02_saga_does_not_name_the_undo_exercise_02_1_asks_for():
    from rollback_lessons.worlds.examples import account_saga, account_state

    default = inspect.signature(account_saga).parameters["undo_deposit"].default
    assert default is None  # help() shows None, not the lesson's own undo
    outcome = account_saga().run(account_state(), inject={"notify": "fail"})
    assert outcome.status == "rolled_back" and outcome.state_after == account_state()


@pytest.mark.parametrize("key", sorted(PRINTED))
def test_no_exercise_text_suggests_a_hard_coded_value(key):
    said = TEXTS[key] + " ".join(EXERCISES[key].hints)
    for value in PRINTED[key]:
        assert value not in said, (key, value)


# -- the grading core ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "def f(state): pass",
        "def f(state, amount=100): pass",
        "def f(state, *args): pass",
        "def f(*args): pass",
        "def f(state, *, key='k'): pass",
        "def f(state, **options): pass",
        "f = lambda state: None",
        "class F:\n    def __call__(self, state): pass\nf = F()",
    ],
)
def test_an_answer_callable_as_the_engine_calls_it_is_accepted(source):
    namespace = {}
    exec(source, namespace)
    assert ex.function(namespace["f"], "undo(state)") is namespace["f"]


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("def f(state, amount): pass", "give amount a default"),
        ("def f(): pass", "it takes 0"),
        ("def f(state, *, key): pass", "key must be given by keyword"),
        ("f = 100", "should be a function"),
    ],
)
def test_an_answer_the_engine_cannot_call_is_refused_saying_why(source, says):
    namespace = {}
    exec(source, namespace)
    with pytest.raises(ex.Incorrect, match=re.escape(says)):
        ex.function(namespace["f"], "undo(state)")


@pytest.mark.parametrize(
    ("said", "meant"),
    [
        ("Retry", "retry"),
        ("  HALT ", "halt"),
        ("continues", "continue"),
        ("retries", "retry"),
        ("commutative update", "commutative updates"),
        ("Commutative-Updates", "commutative updates"),
        ("re-read value", "reread value"),
        ("semantic_locks", "semantic lock"),
        (None, "none"),
        ("None", "none"),
    ],
)
def test_word_answers_are_normalised(said, meant):
    choices = ("continue", "retry", "halt", "commutative updates", "reread value")
    choices += ("semantic lock", "none")
    assert ex.choose(said, choices, "answer") == meant


def test_a_word_that_is_not_a_choice_lists_the_choices():
    with pytest.raises(ex.Incorrect, match="'again' is not one of: 'continue', 'retry'"):
        ex.choose("again", ("continue", "retry"), "policy")


def test_lists_of_names_in_any_spelling():
    names = ("verify_card", "send_email", "pack")
    assert ex.names_list("Verify card, send-email", names, "order") == ["verify_card", "send_email"]
    assert ex.names_list("pack -> verify_card", names, "order") == ["pack", "verify_card"]
    assert ex.names_list(("PACK",), names, "order") == ["pack"]
    assert ex.names_list(None, names, "order") == ex.names_list("none", names, "order") == []


def test_when_an_answer_raises_the_feedback_shows_the_learners_own_line():
    result = l02.q1.run(
        "def undo_deposit(state):\n    accounts = state['accounts']\n    accounts['acct-9'] -= 100"
    )
    assert result.status == "incorrect"
    assert "KeyError: 'acct-9'" in result.message
    assert "at line 3 of undo_deposit: `accounts['acct-9'] -= 100`" in result.message
    assert "rollback_lessons" not in result.message and "_run.py" not in result.message


def test_a_check_given_too_few_or_too_many_answers_names_what_it_takes():
    """learn73 F5: 06.2 given only refund_booking answered with the check's own TypeError."""
    q2 = EXERCISES["06.2"]

    def refund_booking(world):
        world["payments"].refund(world["booking"]["key"])

    for answers, got in (((refund_booking,), 1), (("before", refund_booking, None), 3)):
        result = q2.check(*answers)
        assert result.status == "incorrect"
        assert result.message.endswith(
            f"check(charge_register, refund_booking) takes 2 answers; it got {got}"
        ), result.message
    assert "Correct" in str(q2.check("before", refund_booking))


def test_a_half_filled_answer_is_told_which_blanks_are_left_not_that_it_was_not_attempted():
    """learn73 F12: 03.1 with one blank left said "not attempted yet"."""
    half = EXERCISES["03.1"].check({"refund": "retry", "temp_file": ____, "ledger": "halt"})
    assert half.status == "not attempted"
    assert half.message == "still blank: choices['temp_file']; fill in every blank.", half
    story = {"failed_step": "pay", "undone": ____, "dead_letters": ____}
    assert (
        "still blank: story['undone'], story['dead_letters']"
        in EXERCISES["05.1"].check(story).message
    )
    untouched = EXERCISES["10.2"].check({"a": ____, "b": ____, "c": ____, "d": ____})
    assert untouched.message == "not attempted yet: fill in the blanks."


def test_09_1_says_the_entry_it_does_not_need_may_be_left_out():
    """learn73 F8: a wiring without "Undo <last step>" passes (that undo never runs), so
    the task, which asked for "each state", says so."""
    assert "the last step's undo, never logged, may be left out" in TEXTS["09.1"]


def test_worlds_are_tried_smallest_first_and_a_failure_names_the_smallest():
    def holds(n):
        if n >= 3:
            raise ex.Incorrect(f"fails at {n}")

    with pytest.raises(ex.Incorrect, match=r"fails at 3$"):
        ex.forall([9, 4, 3, 12, 1], holds, size=lambda n: n)
    assert ex.forall([2, 1], holds, size=lambda n: n) == 2


def test_an_answer_that_keeps_state_between_calls_is_told_so():
    calls = []

    def holds(n):
        calls.append(n)
        if len(calls) == 1:
            raise ex.Incorrect("wrong the first time")

    with pytest.raises(ex.Incorrect, match="keep something between calls"):
        ex.forall([1], holds, size=lambda n: n)


def test_what_the_answer_printed_in_the_failing_world_is_shown():
    result = l02.q1.run(
        "def undo_deposit(state):\n    print('balance', state['accounts']['acct-1'])\n"
        "    state['accounts']['acct-1'] = 0"
    )
    assert result.status == "incorrect"
    assert "In that world your code printed:\n  balance 130" in result.message


def test_the_same_answer_gets_the_same_verdict_every_time():
    wrong = "def undo_deposit(state):\n    accounts = state['accounts']\n"
    wrong += "    accounts[list(accounts)[-1]] -= 100"
    first, second = l02.q1.run(wrong), l02.q1.run(wrong)
    assert first.status == "incorrect" and first.message == second.message


def test_lesson_10_and_exercise_02_1_agree_on_the_concurrent_deposit():
    """Lesson 10 says 02.1 asked for an undo that leaves money arriving meanwhile alone:
    02.1 rejects an undo that sets the balance, naming the lost update."""
    lesson10 = (ROOT / "notebooks" / "10_sagas_are_not_isolated.ipynb").read_text()
    assert "Exercise 02.1 asked for this" in lesson10
    assert "another payer's money lands in `acct-1`" in TEXTS["02.1"]
    result = l02.q1.run('def undo_deposit(state):\n    state["accounts"]["acct-1"] = 0')
    assert result.status == "incorrect" and "lost update" in result.message


def test_precise_messages():
    assert "the order the steps ran in" in l02.q2.check(["pack", "bill", "label", "insure"]).message
    assert "logs its undo before it runs" in l02.q2.check(["label", "bill", "pack"]).message
    assert l02.q2.check(____).status == "not attempted"
    assert l02.q2.check(["insure", ____]).status == "not attempted"


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


# -- progress ------------------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path))
    return tmp_path


def test_a_correct_check_is_remembered_and_one_call_forgets(data_dir):
    assert ex.progress_file() == data_dir / "rollback_lessons" / "progress.json"
    assert str(ex.progress()).startswith(f"Exercises solved: 0 of {len(EXERCISES)}")
    assert l02.q1.run(l02.q1.solution_code).passed
    assert l02.q2.check(["label"]).status == "incorrect"  # a wrong answer is not remembered
    assert json.loads(ex.progress_file().read_text()) == {"solved": ["02.1"]}
    shown = str(ex.progress())
    assert shown.startswith(f"Exercises solved: 1 of {len(EXERCISES)}")
    assert "✓ 02.1 Write the undo of the deposit" in shown
    assert "· 02.2 Predict the undo order" in shown
    assert str(ex.progress("02")).splitlines()[0] == "Exercises solved: 1 of 2"
    assert "<pre>" in ex.progress()._repr_html_()
    assert ex.progress(reset=True).solved == frozenset()
    assert json.loads(ex.progress_file().read_text()) == {"solved": []}
    l02.q1.run(l02.q1.solution_code)
    assert ex.reset_progress().solved == frozenset()


def test_a_damaged_progress_file_starts_again_and_never_fails_a_check(data_dir):
    ex.progress_file().parent.mkdir(parents=True)
    ex.progress_file().write_text("{not json")
    assert ex.progress().solved == frozenset()
    assert l02.q1.run(l02.q1.solution_code).passed
    assert ex.progress().solved == {"02.1"}


def test_progress_of_an_unknown_lesson_is_refused(data_dir):
    with pytest.raises(ValueError, match="no exercises in lesson '14'"):
        ex.progress("14")


# -- the lessons ---------------------------------------------------------------------------


def solved(cell: nbformat.NotebookNode) -> str:
    """A lesson's code cell as a learner who solved its exercise leaves it."""
    match = MARKER.search(cell.source)
    return EXERCISES[match.group(1)].solution_code if match else cell.source


def solved_copy(path: Path, tmp_path: Path) -> Path:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = solved(cell)
    out = tmp_path / path.name
    nbformat.write(nb, out)
    return out


LESSONS_WITH_EXERCISES = [
    p
    for p in NOTEBOOKS
    if any(MARKER.search("".join(c["source"])) for c in json.loads(p.read_text())["cells"])
]
EXERCISE_IMPORT = re.compile(
    r"^from rollback_lessons\.lab\.exercises import .*\blesson\d\d\b", re.M
)


def exercise_section(path: Path) -> tuple[str, list[str]]:
    """What a learner runs to answer a lesson's exercises: the lesson's imports above its
    exercise section (the names every answer may use, as ``Exercise.setup`` has them), and
    the section's code cells from the one importing ``lessonNN`` to the end (each exercise
    cell solved, each check, and what lies between), without re-running the lesson."""
    code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    start = next(i for i, c in enumerate(code) if EXERCISE_IMPORT.search(c.source))
    assert not any(MARKER.search(c.source) for c in code[:start]), path.name
    imports = [
        ast.unparse(node)
        for cell in code[:start]
        for node in ast.parse(cell.source).body
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    return "\n".join(imports), [solved(c) for c in code[start:]]


FRESH = """\
from rollback_lessons.lab.exercises import reset_progress

reset_progress()
_ns, _hidden = get_ipython().user_ns, get_ipython().user_ns_hidden
for _name in [n for n in _ns if not n.startswith("_") and n not in _hidden]:
    del _ns[_name]
"""
"""Before each lesson's section: no exercise solved yet, and no name left by the last one
(what ``%reset -f`` clears, without its second of garbage collection each time)."""
WHOLE = "10_sagas_are_not_isolated.ipynb"
"""The lesson run whole, solved, first in the kernel: three exercises, and among the
quickest lessons to run."""


def test_every_solved_exercise_passes_its_lessons_check_in_a_kernel(tmp_path, data_dir):
    """Each lesson's exercise section, solved, run in a Jupyter kernel after the lesson's
    imports (the lessons one after the other in one kernel, each in a fresh namespace, the
    progress file emptied before each): every check cell shows "✓ Correct" and the file
    the kernel wrote holds that lesson's exercises. The kernel path end to end: the check
    as the lesson calls it (its names, in its order), the kernel's event loop already
    running (08.1), the displayed result and the Jupyter data directory. This is where
    every exercise's own solution is checked (the bank's right answers go through
    ``Exercise.run``). One lesson (``WHOLE``) runs first and whole, top to bottom in the
    fresh kernel, as a learner's Run All of a solved copy; the rest of each lesson runs
    under strict nbval."""
    whole = ROOT / "notebooks" / WHOLE
    assert whole in LESSONS_WITH_EXERCISES
    nb = nbformat.v4.new_notebook()
    sections = {}
    for path in [whole] + [p for p in LESSONS_WITH_EXERCISES if p != whole]:
        if path == whole:
            code = nbformat.read(solved_copy(path, tmp_path), as_version=4).cells
            cells = [c.source for c in code if c.cell_type == "code"]
        else:
            imports, section = exercise_section(path)
            cells = [imports, *section]
        nb.cells.append(nbformat.v4.new_code_cell(FRESH))
        first = len(nb.cells)
        nb.cells += [nbformat.v4.new_code_cell(source) for source in cells]
        nb.cells.append(nbformat.v4.new_code_cell(
            "import json\nfrom rollback_lessons.lab.exercises import progress\n"
            "print(json.dumps(sorted(progress().solved)))"
        ))  # fmt: skip
        sections[path.name] = (first, len(nb.cells) - 1)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # fmt: skip
    for name, (first, last) in sections.items():
        checks = [c for c in nb.cells[first:last] if ".check(" in c.source]
        lesson = name[:2]
        mine = sorted(key for key in EXERCISES if key.startswith(f"{lesson}."))
        assert len(checks) == len(mine), name
        for cell in checks:
            text = "".join(o.get("data", {}).get("text/plain", "") for o in cell.outputs)
            assert text.startswith("✓ Correct"), f"{name}: {cell.source!r} -> {text!r}"
        printed = "".join(o.get("text", "") for o in nb.cells[last].outputs)
        assert json.loads(printed) == mine, name  # the kernel wrote it where this test looks


def test_the_rule_exercise_13_2_grades_is_what_the_choreography_does():
    """13.2's answer key, on the lesson's own chain, is the order in which the real
    choreography (rollback_lessons.choreo) compensates: after a failure, and after the
    guest cancels a booking every service acted on."""
    from rollback_lessons.choreo import Booking, Choreography, MemoryQueue, book
    from rollback_lessons.choreo.run import COMPENSATION
    from rollback_lessons.choreo.services import publish
    from rollback_lessons.lab.exercises.lesson13 import CANCEL, LESSON_CHAIN, expected

    def undone(log):
        return [e for h in log if h.reaction for e in h.reaction.effects if e in COMPENSATION]

    for booking, fault in ((Booking("b2", card="bad"), "payment"),
                           (Booking("b3", email="bad"), "notification")):  # fmt: skip
        assert undone(book(MemoryQueue(), [booking]).log) == expected(LESSON_CHAIN, fault)
    choreo = Choreography(MemoryQueue())
    choreo.ask([Booking("b1")])
    choreo.run()  # completed: reserved, charged, confirmed
    assert undone(choreo.log) == []
    cancel = Booking("b1", cancel=True).requests()[-1]  # the guest's CancelRequested
    publish(choreo.queue, cancel)
    choreo.run()
    assert (
        undone(choreo.log)
        == expected(LESSON_CHAIN, CANCEL)
        == ["release", "refund", "cancel_notice"]
    )


def test_start_here_names_the_lessons_that_have_exercises_and_shows_progress():
    start = (ROOT / "notebooks" / "00_start_here.ipynb").read_text()
    lessons = sorted({key.split(".")[0] for key in EXERCISES})
    assert f"Lessons {lessons[0]} to {lessons[-1]} end with exercises" in start
    between = [p.name[:2] for p in NOTEBOOKS if lessons[0] <= p.name[:2] <= lessons[-1]]
    assert lessons == between  # every lesson between the first and the last has exercises
    assert "progress()" in start


def test_an_error_with_no_line_of_the_learner_is_told_by_its_cause():
    """_grade's last resort (fixex73's note): the engine's own errors say what the engine
    refused; only an error reading a record asks about a record replaced."""
    from rollback_lessons.errors import InvalidPipelineError, TakenOver
    from rollback_lessons.lab.exercises.unread import unread

    refused = unread(InvalidPipelineError("retry of step 'x' has timeout=0.001"), ())
    assert refused == (
        "the engine refuses what your answer gave it "
        "(InvalidPipelineError: retry of step 'x' has timeout=0.001)"
    )
    assert unread(TakenOver("fenced"), ()).startswith("the engine stopped on what your answer")
    assert "replace or remove a record" in unread(KeyError("charges"), ())
    assert unread(ZeroDivisionError("division by zero"), ()) == (
        "the check broke on what your answer did (ZeroDivisionError: division by zero)"
    )
    not_theirs = TypeError("RetryPolicy.retries() missing 1 required positional argument")
    assert "replace or remove a record" in unread(not_theirs, ())  # (no function of theirs)


def _learner_raising(error: BaseException):
    """A learner's function (its code in a cell's file) that raises ``error``."""
    namespace: dict = {"error": error}
    exec(compile("def give_up(*args):\n    raise error\n", "<exercise 99.9>", "exec"), namespace)
    return namespace["give_up"]


@pytest.mark.parametrize("key", sorted(EXERCISES))
@pytest.mark.parametrize(
    ("error", "says"),
    [
        (SystemExit(0), "SystemExit: 0, at line 2 of give_up. SystemExit asks"),
        (__import__("asyncio").CancelledError(), "the task running your code was cancelled"),
    ],
    ids=["SystemExit", "CancelledError"],
)
def test_a_base_exception_the_learners_code_raises_is_told_not_a_crash(key, error, says):
    """fixex's note (s61): SystemExit or asyncio.CancelledError raised in a learner's
    function went out of check() (SystemExit ended the process); every check's path
    (``_grade``) now tells it, and that it is no failure of the call."""
    import dataclasses

    fn = _learner_raising(error)
    exercise = dataclasses.replace(EXERCISES[key], checker=lambda *answers: fn())
    result = exercise.check(*[object()] * len(exercise.answer_names))
    assert result.status == "incorrect" and says in result.message, result
    assert result.message.endswith("to say the call failed, raise an Exception (a ValueError, say)")


def test_a_ctrl_c_or_a_stop_not_the_learners_still_stops_check():
    """A real Ctrl-C must stop check() wherever it lands (in the learner's code too); a
    SystemExit with no line of theirs (a signal handler's, say) is a real stop as well."""
    import dataclasses

    exercise = EXERCISES["02.1"]
    fn = _learner_raising(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        dataclasses.replace(exercise, checker=lambda answer: fn()).check(object())

    with pytest.raises(SystemExit):  # (sys.exit is no Python code: no line of the learner's)
        dataclasses.replace(exercise, checker=__import__("sys").exit).check(2)
    with pytest.raises(KeyboardInterrupt):
        exercise.run("raise KeyboardInterrupt")
    told = exercise.run("import asyncio\nraise asyncio.CancelledError()")
    assert (
        told.message
        == "your cell raised CancelledError, at line 2: `raise asyncio.CancelledError()`"
    )


def test_12_2s_steps_with_no_undo_are_lookups_that_change_nothing():
    """learn80 F1's part in the checker: lesson 02 says undo=None is for a step with nothing
    to undo, so 12.2's worlds have no booking without its undo: such a step is a lookup,
    told as one, and its action reads the state and changes nothing. learn81 F1: its name
    is ``check_<x>`` or plain, and some bookings are named like lookups (``check_in``), so
    only ``undo is None`` tells one (a filter by name is in the bank)."""
    from rollback_lessons.lab.exercises.moments import LOOKUP, cases

    lookups, plain, like = 0, 0, 0  # (learn81 F1: no name or label tells a lookup)
    for case in cases():
        saga = case.saga()
        ended = {*case.moment.done, *case.moment.running} - {*case.moment.will_fail}
        for step in saga.steps:
            state = {"room": "booked"}
            step.action(state)
            if step.undo is None:
                lookups += 1
                plain += step.name in ended and not step.name.startswith("check")
                told = "check the" if step.name.startswith(LOOKUP) else "look up the"
                assert step.label.startswith(told), step
                assert state == {"room": "booked"}, step.name
                assert f"{step.name}, a lookup" in str(case) or "lookups that change" in str(case)
            else:
                like += step.name in ended and step.name.startswith("check")
                assert state[step.name] == "booked"
                step.undo(state)
                assert step.name not in state
    assert lookups > 5 and plain > 5 and like > 5  # (where a cancel's truth turns on them)


def test_13_1_a_crash_caught_by_the_handler_is_a_crash_and_the_feedback_says_so():
    """learn80 F3: the check's crash is a BaseException a bare except can catch; a process
    that dies runs no except clause, so what the handler wrote is rolled back all the same
    (the story's "its writes to db rolled back" is then true), and the feedback says it
    caught the crash. The lesson's solution inside a bare except is the solution."""
    q = EXERCISES["13.1"]
    inside = q.solution_code.replace("def handle(db, message):\n", "def solution(db, message):\n")
    caught = q.run(
        inside + "\n\ndef handle(db, message):\n    try:\n        solution(db, message)\n"
        "    except:  # noqa: E722\n        pass"
    )
    assert caught.passed, caught
    assert "your handler caught the check's stand-in for a crash" in caught.message
    assert "a process that dies runs no except clause" in caught.message
    plain = q.run(q.solution_code)
    assert plain.passed and "caught" not in plain.message


def test_13_1_tells_a_crash_caught_only_where_it_was_caught():
    """learn81 F4: the note that the handler caught the crash went with any failure once a
    crash had been caught anywhere (in the probe), so a plain duplicate with no crash in it
    read as caused by one. It now goes with a failure only in the run that caught it."""
    q = EXERCISES["13.1"]
    duplicate = q.run(
        "def handle(db, message):\n    try:\n"
        '        db["charges"].append((message.booking, message.data["amount"]))\n'
        "    except BaseException:\n        pass"
    )
    assert duplicate.status == "incorrect", duplicate
    assert "again: ('b1', 120) was charged 2" in duplicate.message
    assert "caught" not in duplicate.message and "crash" not in duplicate.message, duplicate


def test_08_1_names_each_temporal_case_in_grammar():
    """learn82 F1 (01.1's "the undo of 2 and 1 fails too"): 08.1 said "the undo of
    reserve_room and charge_card fails too" of its case with two failing undos."""
    from rollback_lessons.lab.exercises import lesson08

    said = [lesson08.on_temporal_when(fail_at, broken) for fail_at, broken in lesson08.CASES]
    assert said == [
        "on Temporal, when send_email fails",
        "on Temporal, when charge_card fails",
        "on Temporal, when send_email fails and the undo of charge_card fails too",
        "on Temporal, when send_email fails and the undos of reserve_room and charge_card fail too",
    ]


def test_an_object_with_an_async_call_is_told_async_as_the_engines_tell_it():
    """learn83 F5: 08.1 told `Comp()` (its ``__call__`` an ``async def``) "compensate must be
    `async def`", yet the engines await it (``calls.is_async``, the one rule): an exercise
    that awaits its answer takes it; one that does not refuses it, saying why."""
    from rollback_lessons.calls import is_async

    class Comp:
        async def __call__(self, compensations, undo, dead_letters):
            pass

    class Plain:
        def __call__(self, state):
            pass

    assert is_async(Comp()) and not is_async(Plain())
    call = "compensate(compensations, undo, dead_letters)"
    assert ex.function(Comp(), call, asynchronous=True) is not None
    with pytest.raises(ex.Incorrect, match="must be `def`: the engine calls it and does not"):
        ex.function(Comp(), "undo(a, b, c)")
    assert ex.function(Plain(), "undo(state)") is not None
    with pytest.raises(ex.Incorrect, match="must be `async def`"):
        ex.function(Plain(), "compensate(state)", asynchronous=True)


def test_counted_nouns_are_inflected_not_templated():
    """learn83 F7: "after 1 call(s)", "3 attempt(s)": one rule says a count."""
    from rollback_lessons._words import counted

    assert [counted(n, "call") for n in (0, 1, 3)] == ["0 calls", "1 call", "3 calls"]
    assert counted(2, "message id") == "2 message ids"
    assert counted(2, "child", "children") == "2 children"
