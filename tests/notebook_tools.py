"""Execute lessons in place and keep their stored outputs clean (`make notebooks`).

Stored widget views are dropped: without a live kernel they only show "model not found"
in JupyterLab, and their saved state (with every PNG in it) bloats the repository. The
static picture and printouts next to each widget stay, for readers of a static copy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if WIDGET_VIEW not in o.get("data", {})]
    return nb


def execute(path: Path, timeout: int = 120) -> None:
    subprocess.run([sys.executable, "-m", "ruff", "format", "-q", str(path)], check=True)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    nbformat.write(clean(nb), path)


if __name__ == "__main__":
    # an empty Jupyter data directory: the exercises' progress file of whoever runs this
    # must not show in the stored outputs (conftest.py does the same for the tests)
    with tempfile.TemporaryDirectory() as data_dir:
        os.environ["JUPYTER_DATA_DIR"] = data_dir
        for name in sys.argv[1:]:
            print(f"executing {name}")
            execute(Path(name))
