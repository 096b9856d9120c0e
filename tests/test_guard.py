"""A lesson cell run before the cells it needs says which cell to run first (lab.guard):
in a real IPython shell, on a real notebook file."""

import json

import pytest
from IPython.core.interactiveshell import InteractiveShell

from rollback_lessons.lab import guard


def notebook(tmp_path, cells):
    path = tmp_path / "lesson.ipynb"
    path.write_text(
        json.dumps(
            {
                "cells": [
                    {"cell_type": kind, "source": source, "metadata": {}}
                    | ({"outputs": [], "execution_count": None} if kind == "code" else {})
                    for kind, source in cells
                ],
                "metadata": {},
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        )
    )
    return path


@pytest.fixture
def shell(tmp_path, capfd):
    path = notebook(
        tmp_path,
        [
            ("markdown", "# Lesson\n## 3. The declarative form"),
            ("code", "from rollback_lessons.worlds.demo import xyz_saga\n\nsaga = xyz_saga()"),
            ("markdown", "## 4. See it"),
            ("code", "from rollback_lessons.lab.widgets import RollbackLab\n\nRollbackLab(saga)"),
        ],
    )
    ip = InteractiveShell.instance()
    ip.user_ns["__session__"] = str(path)
    ip.set_custom_exc((), None)
    ip._rollback_lessons_guard = False
    guard.install()
    yield ip
    ip.set_custom_exc((), None)
    ip._rollback_lessons_guard = False


def test_a_panel_cell_run_first_names_the_cell_that_makes_the_saga(shell, capfd):
    shell.run_cell("from rollback_lessons.lab.widgets import RollbackLab\n\nRollbackLab(saga)")
    printed = capfd.readouterr().out
    # in lines JupyterLab never breaks (it breaks a long one mid-word: newuser7), whole words
    assert max(len(line) for line in printed.splitlines()) <= guard.WIDTH
    out = " ".join(printed.split())
    assert "NameError" in out and "name 'saga' is not defined" in out
    assert "`saga` is made by a cell that has not run yet in this kernel: the cell under " in out
    assert '"3. The declarative form" that starts `from rollback_lessons.worlds.demo' in out
    assert "Run → Run All Above Selected Cell" in out
    # the hint first, then the error in one line: no traceback to scroll past
    assert out.index("is made by a cell") < out.index("NameError: name 'saga' is not defined")
    assert "Traceback" not in out and "Cell In[" not in out and "----" not in out


def test_the_hint_quotes_the_cells_first_line_whole(tmp_path):
    first = "from rollback_lessons.worlds.examples import folder_saga, folder_state, other_name"
    cells = [{"cell_type": "code", "source": f"{first}\n\nsaga = folder_saga()"}]
    assert guard.where_defined(cells, "saga", None) == f"the cell that starts `{first}`"


def test_a_typo_gets_the_plain_error(shell, capfd):
    shell.run_cell("sagga")
    out = capfd.readouterr().out
    assert "name 'sagga' is not defined" in out and "has not run yet" not in out


def test_a_name_error_inside_a_library_is_left_alone(shell, capfd, tmp_path, monkeypatch):
    (tmp_path / "somelib.py").write_text("def f():\n    return saga\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    shell.run_cell("import somelib\nsomelib.f()")
    out = capfd.readouterr().out
    assert "name 'saga' is not defined" in out and "has not run yet" not in out


def test_bound_names_covers_what_a_cell_can_define():
    source = (
        "import os.path\nfrom x import a as b, c\nd = e = 1\nf: int = 2\nfor g, h in []:\n"
        "    pass\nwith open('x') as i:\n    pass\ndef j(): pass\nclass K: pass\n"
        "if (m := 3):\n    n = 4\n%time o = 5\n"
    )
    assert guard.bound_names(source) >= {"os", "b", "c", "d", "e", "f", "g", "h", "i", "j",
                                         "K", "m", "n"}  # fmt: skip
    assert "a" not in guard.bound_names(source)


def test_outside_ipython_nothing_is_installed(monkeypatch):
    import sys

    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    guard.install()  # no shell: nothing to do, no error


def test_the_hint_names_a_cells_first_line_of_code_not_its_nbval_marker():
    """newuser11's finding 6: every panel cell opens with `# NBVAL_IGNORE_OUTPUT`."""
    source = "# NBVAL_IGNORE_OUTPUT\n# a comment\n\ngrid = ExplorerGrid(flawed)\ngrid"
    cells = [{"cell_type": "markdown", "source": "## 3. Sagas with flaws"},
             {"cell_type": "code", "source": source}]  # fmt: skip
    said = guard.where_defined(cells, "grid", None)
    assert said == 'the cell under "3. Sagas with flaws" that starts `grid = ExplorerGrid(flawed)`'
