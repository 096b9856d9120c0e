"""A Ctrl-C to ``journal settle`` while it still waits to open the journal (attack63 F5).

Another process keeps the journal (SQLite's EXCLUSIVE locking mode: even a reader waits).
The Ctrl-C was heard within a turn, but the settle then opened the journal again to read
whether the saga was settled, waited the whole ``--wait`` for the same holder, and said it
could not tell. Nothing can be settled before the journal is open: said so, at once.
"""

import sqlite3

from rollback_lessons.cli import main
from rollback_lessons.durable import journal as journal_module
from rollback_lessons.durable.journal import Journal


def test_a_ctrl_c_as_settle_opens_the_journal_says_nothing_was_settled(
    tmp_path, monkeypatch, capsys
):
    path = str(tmp_path / "j.db")
    Journal(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    real, opened = journal_module._inspect, []

    def inspect(*args):  # type: ignore[no-untyped-def]
        opened.append(args)
        if len(opened) == 1:  # (the Ctrl-C heard in the wait for the holder's lock)
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(journal_module, "_inspect", inspect)
    try:
        args = ["journal", "settle", path, "nosuch", "--note", "x", "--wait", "1"]
        assert main(args) == 130
    finally:
        holder.rollback()
        holder.close()
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "rollback-lessons: interrupted (Ctrl-C) before the settle was written: nothing was settled"
    ], err
    assert len(opened) == 1  # (never opened again to read it back: another whole wait)
