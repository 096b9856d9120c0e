"""Opening a SQLite file in WAL mode while others open it (durable/wal.py): the switch to WAL
failed at once, "database is locked", while another connection held the new file's write
lock; four threads sharing a journal then lost a saga's first step (ci47: 158 effects of 160,
about 1 run in 500)."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from rollback_lessons.choreo.queues import SqliteQueue
from rollback_lessons.choreo.services import connect as service_db
from rollback_lessons.durable.wal import connect_wal
from rollback_lessons.worlds.crashlab import connect as world_db

OPENERS = {"world": world_db, "service": service_db, "queue": lambda p: SqliteQueue(p).con}


@pytest.mark.parametrize("opener", OPENERS)
def test_a_file_whose_write_lock_another_holds_opens_once_it_is_let_go(tmp_path, opener):
    path = tmp_path / "new.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # (a new file: its rollback-journal mode, locked)
    other.execute("CREATE TABLE IF NOT EXISTS elsewhere (x)")
    let_go = threading.Timer(0.2, other.execute, ("COMMIT",))
    let_go.start()
    try:
        con = OPENERS[opener](path)
    finally:
        let_go.join()
        other.close()
    try:
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        assert "elsewhere" in tables and len(tables) > 1
    finally:
        con.close()


@pytest.mark.parametrize("opener", OPENERS)
def test_four_threads_opening_one_new_file_together_all_open_it(tmp_path, opener):
    errors: list[BaseException] = []
    for trial in range(60):
        path, start = tmp_path / f"{trial}.db", threading.Barrier(4)

        def open_it(path=path, start=start) -> None:
            start.wait()
            try:
                OPENERS[opener](path).close()
            except sqlite3.Error as exc:
                errors.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


def test_a_lock_never_let_go_is_an_error_past_the_timeout(tmp_path):
    path = tmp_path / "held.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            connect_wal(path, "CREATE TABLE IF NOT EXISTS t (x)", timeout=0.1)
    finally:
        other.close()


def test_a_synchronous_level_other_than_full_or_normal_is_refused_before_opening(tmp_path):
    with pytest.raises(ValueError, match="FULL or NORMAL"):
        connect_wal(tmp_path / "x.db", "", synchronous="OFF; DROP TABLE t")
    assert not (tmp_path / "x.db").exists()
