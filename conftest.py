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
# A unit of work is a file: a notebook's cells share one kernel, and a module's servers
# (Temporal, moto, the mail server) are started once for it. The files in SPREAD hold long,
# independent tests: each of their tests is a unit of its own, shared out between the
# workers (their servers, JupyterLab and Chromium, are one per worker session).
# xdist's own way to say this (--dist loadgroup with xdist_group marks) groups nothing under
# pytest 9.2 (pytest-dev/pytest-xdist#1386), so the scheduler below says it instead.
SPREAD = ("tests/test_browser.py", "tests/test_crash.py")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FilesAndSpreadTests(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return nodeid if path in SPREAD else path

    return FilesAndSpreadTests(config, log)
