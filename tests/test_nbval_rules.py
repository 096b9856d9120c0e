"""nbval_rules (the browser tests' Run All checked by strict nbval's rules) fails what strict
nbval fails and passes what it passes: each case a lesson's committed outputs as a run,
changed one way. No kernel: the rules only compare."""

import copy
from pathlib import Path

import nbformat
import pytest
from nbval_rules import differences, runnable

LESSON = Path(__file__).resolve().parent.parent / "notebooks" / "02_why_reversed.ipynb"


def committed() -> dict:
    return nbformat.read(LESSON, as_version=4)


def code(run: dict, n: int):
    return [c for c in run["cells"] if c["cell_type"] == "code"][n]


def changed(session, change) -> list[str]:
    run = copy.deepcopy(committed())
    change(run)
    return differences(session, LESSON, run)


@pytest.fixture
def session(request) -> pytest.Session:
    return request.session


def test_the_committed_outputs_as_a_run_pass(session) -> None:
    assert changed(session, lambda run: None) == []
    assert runnable(LESSON)


def stdout_changed(run) -> None:
    code(run, 0)["outputs"][0]["text"] += "one more line\n"


def stdout_split(run) -> None:  # two stream messages, as a kernel may send one print
    out = code(run, 0)["outputs"][0]
    head, tail = out["text"][:5], out["text"][5:]
    code(run, 0)["outputs"][:1] = [dict(out, text=head), dict(out, text=tail)]


def stderr_added(run) -> None:
    code(run, 1)["outputs"].append(
        nbformat.v4.new_output("stream", name="stderr", text="a warning\n")
    )


def error_added(run) -> None:
    code(run, 9)["outputs"].append(
        nbformat.v4.new_output("error", ename="ValueError", evalue="no", traceback=[])
    )


def error_in_an_ignored_cell(run) -> None:  # NBVAL_IGNORE_OUTPUT does not let a cell raise
    cell = next(c for c in run["cells"] if "NBVAL_IGNORE_OUTPUT" in c["source"])
    cell["outputs"].append(
        nbformat.v4.new_output("error", ename="NameError", evalue="saga", traceback=[])
    )


def html_changed(run) -> None:
    data = code(run, 3)["outputs"][0]["data"]
    data["text/html"] = data["text/html"].replace("</", "x</", 1)


def plain_changed(run) -> None:
    code(run, 3)["outputs"][0]["data"]["text/plain"] += " "


def an_output_missing(run) -> None:
    code(run, 5)["outputs"].pop()


def a_mime_type_more(run) -> None:
    code(run, 3)["outputs"][0]["data"]["text/markdown"] = "**x**"


def ran_twice(run) -> None:
    code(run, 2)["execution_count"] = 99


def not_run(run) -> None:
    code(run, 2)["execution_count"], code(run, 2)["outputs"] = None, []


def a_cell_more(run) -> None:
    run["cells"].append(nbformat.v4.new_code_cell("print(1)", execution_count=18))


@pytest.mark.parametrize(
    "change",
    [stdout_changed, stderr_added, error_added, error_in_an_ignored_cell, html_changed,
     plain_changed, an_output_missing, a_mime_type_more, ran_twice, not_run, a_cell_more],
)  # fmt: skip
def test_what_strict_nbval_fails_fails(session, change) -> None:
    assert changed(session, change) != []


def picture_changed(run) -> None:  # nbval compares no image bytes
    code(run, 5)["outputs"][1]["data"]["image/png"] = "iVBORw0KGgo="


def ignored_output_changed(run) -> None:  # the panel's cell: NBVAL_IGNORE_OUTPUT
    cell = next(c for c in run["cells"] if "NBVAL_IGNORE_OUTPUT" in c["source"])
    cell["outputs"] = [
        nbformat.v4.new_output(
            "display_data",
            data={"text/plain": "RollbackLab(...)",
                  "application/vnd.jupyter.widget-view+json": {"model_id": "abc"}},
        )
    ]  # fmt: skip


def metadata_changed(run) -> None:
    code(run, 5)["outputs"][1]["metadata"] = {"width": 10}


@pytest.mark.parametrize(
    "change", [stdout_split, picture_changed, ignored_output_changed, metadata_changed]
)
def test_what_strict_nbval_passes_passes(session, change) -> None:
    assert changed(session, change) == []


def test_memory_addresses_are_sanitized_as_nbval_sanitizes_them(session, tmp_path) -> None:
    lesson = tmp_path / LESSON.name
    stored = committed()
    code(stored, 0)["outputs"][0]["text"] += "<object at 0x7fffcafe0000>\n"
    nbformat.write(stored, lesson)
    run = copy.deepcopy(stored)
    code(run, 0)["outputs"][0]["text"] = code(run, 0)["outputs"][0]["text"].replace(
        "0x7fffcafe0000", "0x7f00deadbeef"
    )
    assert differences(session, lesson, run) == []
    code(run, 0)["outputs"][0]["text"] += "x"
    assert differences(session, lesson, run) != []


def test_a_lesson_with_a_cell_nbval_skips_or_lets_raise_is_not_runnable(session, tmp_path) -> None:
    for marker in ("# NBVAL_SKIP", "# NBVAL_RAISES_EXCEPTION"):
        lesson = tmp_path / f"{marker[8:].lower()}.ipynb"
        nb = committed()
        code(nb, 2)["source"] = f"{marker}\n{code(nb, 2)['source']}"
        nbformat.write(nb, lesson)
        assert not runnable(lesson)
        assert differences(session, lesson, nb) != []
