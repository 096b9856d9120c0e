"""Progress kept by several kernels at once (attack41 F10): real processes recording solves
together lose none, a reader never sees a damaged record, and a damaged record is kept
aside (said once), never silently replaced by a smaller one."""

import json
import subprocess
import sys
import time

import pytest

from rollback_lessons.lab.exercises import tracking

WRITER = """
import sys, time
from rollback_lessons.lab.exercises import tracking
start = float(sys.argv[3])
while time.time() < start:  # every writer begins at the same moment
    pass
for i in range(int(sys.argv[2])):
    tracking.record(f"{sys.argv[1]}.q{i}")
"""


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path))
    return tmp_path


def kept(path):
    """The exercises in the record, read as any reader would (a damaged one: ValueError)."""
    return set(json.loads(path.read_text())["solved"])


def writers(data_dir, lessons, each, env_extra=None):
    start = time.time() + 1.0
    env = {**__import__("os").environ, "JUPYTER_DATA_DIR": str(data_dir), **(env_extra or {})}
    return [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, lesson, str(each), str(start)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for lesson in lessons
    ]


def test_kernels_recording_at_once_lose_no_solve_and_a_reader_never_sees_a_damaged_record(
    data_dir,
):
    path = tracking.progress_file()
    path.parent.mkdir(parents=True)
    before = {f"01.q{i}" for i in range(30)}
    path.write_text(json.dumps({"solved": sorted(before)}))
    procs = writers(data_dir, ["02", "03", "04"], 80)
    peak = 0
    while any(p.poll() is None for p in procs):
        seen = kept(path)  # a damaged record: ValueError
        assert before <= seen and len(seen) >= peak  # never fewer than once seen
        peak = len(seen)
    assert [p.communicate()[1] for p in procs] == ["", "", ""]
    expected = before | {f"{lesson}.q{i}" for lesson in ("02", "03", "04") for i in range(80)}
    assert kept(path) == expected
    assert sorted(p.name for p in path.parent.iterdir()) == ["progress.json", "progress.lock"]


def test_without_fcntl_each_record_is_still_written_whole(data_dir, monkeypatch):
    monkeypatch.setattr(tracking, "fcntl", None)
    tracking.record("02.1")
    tracking.record("02.2")
    assert kept(tracking.progress_file()) == {"02.1", "02.2"}


def test_a_damaged_record_is_kept_aside_said_once_and_never_replaced_unseen(data_dir, capsys):
    path = tracking.progress_file()
    path.parent.mkdir(parents=True)
    for damaged in (b'{"solved": ["01.1", "01.2"', b"[]", b'{"solved": "01.1"}', b"\xff\xfe"):
        path.write_bytes(damaged)
        tracking.record("02.1")
        assert kept(path) == {"02.1"}
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "progress file was damaged: kept as" in err
        [aside] = path.parent.glob("progress.json.damaged-*")
        assert aside.read_bytes() == damaged  # what it held is still there to mend
        tracking.record("02.2")
        assert capsys.readouterr().err == ""  # said once
        aside.unlink()


def test_progress_shown_from_a_damaged_record_sets_it_aside_once(data_dir, capsys):
    path = tracking.progress_file()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert tracking.progress().solved == frozenset()
    assert "progress file was damaged" in capsys.readouterr().err
    assert tracking.progress().solved == frozenset()
    assert capsys.readouterr().err == ""
    assert len(list(path.parent.glob("progress.json.damaged-*"))) == 1
