"""``make bench`` stays out of ``make test``, but its measures must still run: the journal's
recovery measure wrote sagas owned by pid 0, which recover refuses as damage, and ``make
bench`` stopped there unnoticed. Each journal measure runs here on a few sagas (no timing)."""

from __future__ import annotations

import importlib

import pytest

from benchmarks import journal


def test_the_journal_measures_run_on_a_few_sagas(tmp_path):
    assert journal.bare_commits(tmp_path / "bare.db", 3) > 0
    assert journal.journal_steps(tmp_path / "steps.db", 2, 3) > 0
    assert journal.recovery_seconds(tmp_path / "recover.db", 5) > 0


@pytest.mark.parametrize(
    "name", ["durability", "engine", "exercises", "explorer", "journal", "panel", "parallel"]
)
def test_every_benchmark_module_imports(name):
    assert callable(importlib.import_module(f"benchmarks.{name}").run)
