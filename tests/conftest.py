import pytest

from rollback_lessons import VirtualClock


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


def dead_pid() -> int:
    """The pid of a process that has ended and been reaped."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def orphan(path, saga_id: str) -> None:
    """Make a saga look as if its process died (a crash), without killing this one."""
    import sqlite3

    con = sqlite3.connect(path)
    try:
        con.execute(
            "UPDATE sagas SET owner_pid = ?, owner_started = NULL WHERE id = ?",
            (dead_pid(), saga_id),
        )
        con.commit()
    finally:
        con.close()


@pytest.fixture
def crashed(tmp_path):
    """A journal whose process was killed after two of three steps (undos logged first)."""
    import subprocess
    import sys

    journal, world = tmp_path / "j.db", tmp_path / "w.db"
    crash = subprocess.run(
        [sys.executable, "-m", "rollback_lessons.worlds.crashlab", "--journal", str(journal),
         "--world", str(world), "--kill-at", "4"],
        capture_output=True, check=False,
    )  # fmt: skip
    assert crash.returncode == -9
    return journal, world
