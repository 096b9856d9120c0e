"""For every pytest run in this repository (the tests and the lessons under nbval): empty
Jupyter data directories, so that the exercises' progress file of whoever runs the tests
is neither read nor written. The lessons (nbval's kernels inherit the environment) share
one that no test writes to, so a lesson's progress cell shows the same output on every
machine and in any order; each test gets its own, so a check it passes is remembered only
there."""

import os
import tempfile

import pytest

_DATA_DIR = tempfile.TemporaryDirectory(prefix="rollback-lessons-jupyter-data-")


def pytest_configure(config):
    os.environ["JUPYTER_DATA_DIR"] = _DATA_DIR.name


def pytest_unconfigure(config):
    _DATA_DIR.cleanup()


@pytest.fixture(autouse=True)
def _own_jupyter_data_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path_factory.mktemp("jupyter-data")))


# -- make test on every core (pytest-xdist: -n auto --dist loadfile) -------------------------
# Each test is a unit of work of its own, shared out between the workers, except where a
# file must stay on one worker: a notebook (its cells share one kernel) and the modules in
# TOGETHER, whose module-scoped fixtures start a server (Temporal, moto, the mail server,
# DBOS, a built wheel, JupyterLab and Chromium) once for the module. The browser tests'
# Playwright (sync API) keeps an event loop running in the worker's main thread while it is
# open, so it must close with its module: asyncio.run fails beside it. xdist's own way to
# say this (--dist loadgroup, xdist_group marks) groups nothing under pytest 9.2
# (pytest-dev/pytest-xdist#1386): this scheduler says it instead. A new module with a
# module-scoped server belongs in TOGETHER.
TOGETHER = (
    "tests/test_bpmn.py",
    "tests/test_browser.py",
    "tests/test_conformance.py",
    "tests/test_dbos.py",
    "tests/test_packaging.py",
    "tests/test_services.py",
    "tests/test_stepfunctions.py",
    "tests/test_temporal.py",
    "tests/test_temporal_booking.py",
    "tests/test_temporal_edges.py",
    "tests/test_viz.py",
)


# The browser tests are the longest unit (a JupyterLab and a Chromium, every lesson run in
# them): in two halves, on two workers at once, each with its own JupyterLab and Chromium
# (a few CPU seconds more, half the wall time). Each half still runs as one unit, so that a
# worker's Playwright closes with its half.
BROWSER = "tests/test_browser.py"
BROWSER_FIRST_HALF = (
    *(f"[0{n}_" for n in range(8)),  # lessons 00-07
    "::test_a_panel_run_too_early_says_which_cell_to_run_first",
    "::test_a_panel_whose_kernel_restarted_says_so",
)


def unit_of_work(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    if path == BROWSER:
        return f"{path} (half {1 if any(m in nodeid for m in BROWSER_FIRST_HALF) else 2})"
    return path if path.endswith(".ipynb") or path in TOGETHER else nodeid


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FilesThatMustStayTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of_work(nodeid)

    return FilesThatMustStayTogether(config, log)
