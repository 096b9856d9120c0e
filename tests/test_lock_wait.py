"""Waiting for the journal's write lock another process holds (attack55 L3): SQLite's busy
wait is a C loop no Ctrl-C reaches, so the wait goes in short turns: a Ctrl-C is heard
within one, the whole wait is still the journal's ``timeout``, and its end the same error."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time

import pytest

from rollback_lessons import Rollback
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry, compensation


def _held(path: str) -> sqlite3.Connection:
    Journal(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write
    return holder


def _block(journal: Journal, world: list[str]) -> None:
    undo = compensation(f"u{id(world)}", Registry())(lambda: world.append("undo a"))
    with Rollback(journal=journal, run_id="r") as rb:
        rb.do("a", lambda: world.append("do a"), undo.bind())


def test_a_ctrl_c_while_waiting_for_the_lock_is_heard_at_once(tmp_path):
    path = str(tmp_path / "j.db")
    holder = _held(path)
    world: list[str] = []
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    with Journal(path, timeout=20) as journal:
        started = time.monotonic()
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            _block(journal, world)
        heard = time.monotonic() - started
        assert journal._con.execute("PRAGMA busy_timeout").fetchone()[0] == 100  # (a turn)
    holder.rollback()
    assert heard < 10, heard  # (before: the whole 20 s wait, then the Ctrl-C)
    assert world == []


def test_the_whole_wait_still_ends_in_the_same_locked_error(tmp_path):
    path = str(tmp_path / "j.db")
    holder = _held(path)
    world: list[str] = []
    with Journal(path, timeout=0.6) as journal:
        started = time.monotonic()
        with pytest.raises(Exception, match="locked") as raised:
            _block(journal, world)
        waited = time.monotonic() - started
    holder.rollback()
    assert waited >= 0.6, (waited, raised.value)
    assert world == []


def _held_exclusive(path: str) -> sqlite3.Connection:
    """A connection that keeps readers out too (locking_mode EXCLUSIVE: attack60 F1)."""
    Journal(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    return holder


def test_opening_a_journal_others_keep_waits_its_timeout_and_says_why(tmp_path):
    """attack60 F1: opening read the file with a fixed 30 s C wait, whatever the timeout
    (``--wait``), and said only "database is locked"."""
    from rollback_lessons.errors import JournalError

    path = str(tmp_path / "j.db")
    holder = _held_exclusive(path)
    for readonly in (False, True):
        started = time.monotonic()
        with pytest.raises(JournalError, match=r"another process holds it; waited 0\.5 s"):
            Journal(path, timeout=0.5, readonly=readonly)
        assert 0.5 <= time.monotonic() - started < 10
    holder.rollback()
    holder.close()
    Journal(path).close()  # (let go: opened at once)


def test_a_ctrl_c_while_opening_a_journal_others_keep_is_heard_at_once(tmp_path):
    path = str(tmp_path / "j.db")
    holder = _held_exclusive(path)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    started = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        Journal(path, timeout=20)
    heard = time.monotonic() - started
    holder.rollback()
    assert heard < 10, heard
