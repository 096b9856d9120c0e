"""For every pytest run in this repository (the tests and the lessons under nbval): a fresh,
empty Jupyter data directory, so that the exercises' progress file of whoever runs the
tests is neither read nor written, and a lesson's progress cell shows the same output on
every machine. Kernels started by nbval and nbclient inherit it."""

import os
import tempfile

_DATA_DIR = tempfile.TemporaryDirectory(prefix="rollback-lessons-jupyter-data-")


def pytest_configure(config):
    os.environ["JUPYTER_DATA_DIR"] = _DATA_DIR.name


def pytest_unconfigure(config):
    _DATA_DIR.cleanup()
