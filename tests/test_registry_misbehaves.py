"""A registry that misbehaves in ways a plain lookup does not (attack271): its answers to
``in`` that have no truth, an attribute that raises as it is read, a ``resolve`` handing back
what cannot be called or whose signature raises. Each is one line (``RegistryFailed``) with
nothing claimed, or the saga left unfinished for the registry that can; never a traceback,
never a saga ended with dead letters of undos that were never run."""

from __future__ import annotations

import sqlite3

import pytest
from conftest import orphan

from rollback_lessons.durable import files
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import RegistryFailed, recover
from rollback_lessons.durable.registry import Registry


def left(tmp_path):
    """A journal whose saga 't' died with the undos of a and b ("u") pending."""
    path = tmp_path / "j.db"
    undo = Registry().add("u", lambda n, idempotency_key=None: None)
    with Journal(path) as journal:
        run = journal.start("trip", "t")
        for step in ("a", "b"):
            run.register(step, undo.bind(n=step), "pending")
    orphan(path, "t")
    return path


def finished_by_the_right_registry(path) -> None:
    calls: list[str] = []
    right = Registry()
    right.add("u", lambda n, idempotency_key=None: calls.append(n))
    with Journal(path) as journal:
        report = recover(journal, right)
    assert calls == ["b", "a"] and [s.status.value for s in report.recovered] == ["rolled_back"]


class NoTruth:
    def __bool__(self):
        raise ValueError("no truth")


class AnswersWithoutTruth(Registry):
    def __contains__(self, name):
        return NoTruth()


class Down(Registry):
    @property
    def resolve(self):  # (a proxy whose service is down: the attribute itself raises)
        raise RuntimeError("compensation service is down")


class DownByOS(Registry):
    @property
    def resolve(self):  # (an OSError: the registry's, never told as the journal file's)
        raise ConnectionError("compensation service is down")


@pytest.mark.parametrize("cls", [AnswersWithoutTruth, Down, DownByOS])
def test_a_registry_failing_outside_its_lookup_call_is_one_line_nothing_claimed(tmp_path, cls):
    reg = cls()
    reg.add("u", lambda n, idempotency_key=None: pytest.fail("run by a failing registry"))
    path = left(tmp_path)
    with Journal(path) as journal, pytest.raises(RegistryFailed) as caught:
        recover(journal, reg)
    said = str(caught.value)
    assert f"the registry ({cls.__name__}) raised" in said and "nothing was claimed" in said
    assert "\n" not in said
    finished_by_the_right_registry(path)


class GivesNumbers(Registry):
    def resolve(self, name):
        return 42


class Unsigned:
    @property
    def __signature__(self):
        raise RuntimeError("no signature here")

    def __call__(self, **kwargs):
        pytest.fail("called though its signature could not be read")


class GivesUnsigned(Registry):
    def resolve(self, name):
        return Unsigned()


@pytest.mark.parametrize(
    ("cls", "why"),
    [(GivesNumbers, "an object of type int, not a function"),
     (GivesUnsigned, "its signature cannot be read: RuntimeError")],
)  # fmt: skip
def test_a_registry_handing_back_what_cannot_be_called_leaves_the_saga_unfinished(
    tmp_path, cls, why
):
    """attack271 F2: ``resolve`` returning 42 passed the claim's check (no signature: "its
    call is the check"): the saga claimed, each undo a dead letter never run, the saga
    ended for good, a later recover with the right registry finding nothing to do."""
    reg = cls()
    reg.add("u", lambda n, idempotency_key=None: None)
    path = left(tmp_path)
    with Journal(path) as journal:
        report = recover(journal, reg)
    assert not report.recovered and len(report.skipped) == 1, report
    reason = report.skipped[0].reason
    assert why in reason and "cannot be called with the arguments" in reason, reason
    finished_by_the_right_registry(path)


def test_a_builtin_without_a_signature_is_still_called(tmp_path):
    """(its call is the check: a builtin has no signature to ask, and is no misfit)"""
    import inspect

    with pytest.raises(ValueError):
        inspect.signature(dict)
    path = left(tmp_path)
    builtin = Registry()
    builtin.add("u", dict)  # (called dict(n=...): no key, as it takes none that it says)
    with Journal(path) as journal:
        report = recover(journal, builtin)
    assert [s.status.value for s in report.recovered] == ["rolled_back"], report


@pytest.mark.parametrize("version", range(2, files.SCHEMA_VERSION))
def test_journal_show_reads_a_journal_of_every_older_schema_it_reads(tmp_path, version, capsys):
    """attack271 F3: ``journal show`` of a journal of schema 2 to 5 said "no such column:
    graph" (a check of the graph column, added in 6, not gated on the version)."""
    from rollback_lessons.cli import main

    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.executescript(files._SCHEMA)
    later = [s for step in range(version, files.SCHEMA_VERSION) for s in files._MIGRATIONS[step]]
    for statement in reversed(later):  # (the migrations taken back: that version's tables)
        words = statement.split()
        assert words[:2] == ["ALTER", "TABLE"] and words[3:5] == ["ADD", "COLUMN"], statement
        con.execute(f"ALTER TABLE {words[2]} DROP COLUMN {words[5]}")
    con.execute("INSERT INTO meta VALUES ('app', 'rollback-lessons'), ('schema_version', ?)",
                (str(version),))  # fmt: skip
    con.execute("INSERT INTO sagas (id, name, status, owner_pid, owner_host, started) VALUES"
                " ('r1', 'order', 'running', 999999, 'elsewhere', 1.0)")  # fmt: skip
    con.commit()
    con.close()
    assert main(["journal", "show", str(path)]) == 0
    out = capsys.readouterr()
    assert "r1" in out.out and "order" in out.out and out.err == "", out
