"""A check cell (``lessonNN.qK.check(...)``), run first in a fresh kernel, says which cell
to run first (newuser11's finding 1: a bare NameError in every lesson, 01-13, since the
hint's handler came only with an import of the package). So do the cells a learner is
likely to run alone: 07's journal, 09's history, 11's grid, and the cell under each panel
that prints its run (``print(lab.outcome)``, newuser12: bare in 02-06).

Each cell runs in a kernel of its own, started as JupyterLab starts one (the notebook's
folder, its session name), with nothing run before it: a third of them in make test (a
different third each run, ``a_part``), all in make soak. Every one of them starts with
the package's import, which brings the hint (checked for all, without a kernel)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from conftest import a_part

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CHECK = re.compile(r"^lesson\d\d\.q\d+\.check\(", re.M)
ALONE = {  # cells a learner runs alone, by their first line of code
    "07_crash_recovery.ipynb": "journal = Journal(journal_path)",
    "09_step_functions_and_bpmn.ipynb": "execution.history_table()",
    "11_testing_a_saga.ipynb": "run = grid.open(",
}
PRINTED = "print(lab.outcome)"  # under a panel: its run in words (and its picture)
HINT = "is made by a cell that has not run yet in this kernel"


def early_cells(path: Path) -> list[str]:
    """The check cells of a lesson, and the cell of it a learner runs alone."""
    found = []
    for cell in json.loads(path.read_text())["cells"]:
        source = "".join(cell["source"])
        alone = ALONE.get(path.name)
        early = CHECK.search(source) or PRINTED in source or (alone and alone in source)
        if cell["cell_type"] == "code" and early:
            found.append(source)
    return found


CELLS = [(p.name, n, source) for p in NOTEBOOKS for n, source in enumerate(early_cells(p))]


def test_every_such_cell_starts_with_the_packages_import():
    """What makes the hint (its handler comes with the package's import) is among the
    cell's own imports, before its first other line, so the cell says it whatever ran
    before it."""
    assert len(CELLS) >= 13 + 5
    for notebook, _, source in CELLS:
        code = [line for line in source.splitlines() if line.strip() and not line.startswith("#")]
        first = next(i for i, ln in enumerate(code) if not ln.startswith(("from", "import")))
        imports = code[:first]
        assert any(re.match(r"(from|import) rollback_lessons\b", ln) for ln in imports), notebook


@pytest.mark.parametrize(
    ("notebook", "source"),
    [pytest.param(nb, src, id=f"{nb}-{n}") for nb, n, src in a_part(CELLS, 3, name="early cells")],
)
def test_every_check_cell_says_which_cell_to_run_first_when_run_first(notebook, source):
    from jupyter_client.manager import start_new_kernel

    path = ROOT / "notebooks" / notebook
    env = {**os.environ, "JPY_SESSION_NAME": str(path)}
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(path.parent), env=env)
    try:
        errors = []

        def keep(msg):
            if msg["msg_type"] == "error":
                errors.append(msg["content"])

        client.execute_interactive(source, timeout=60, output_hook=keep)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert len(errors) == 1, (source, errors)
    said = " ".join(" ".join(errors[0]["traceback"]).split())
    assert errors[0]["ename"] == "NameError", said
    assert HINT in said, (source.splitlines()[-1], said)
    assert "Run → Run All Above Selected Cell" in said
