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
