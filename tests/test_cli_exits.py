"""Issue 25, attack23's F3 and F7: how every CLI command ends when something other than
argparse calls ``sys.exit`` (a registry's SIGTERM handler turning the signal into
``sys.exit(0)``, between two undos of ``recover``), and the registry and disk odds and ends.

F3: ``cli.main`` took any ``SystemExit`` with a false code for argparse's ``--help``: exit
0, not a word, the saga left ``rolling_back``. Now only argparse's own exit (``UsageExit``)
is; any other is an interrupt: one line naming what is left, never exit 0.
"""

import os
import re
import sys

import pytest
from conftest import crash_at_first_undo, registry_module

from rollback_lessons import Saga, Step, cli
from rollback_lessons.cli import main
from rollback_lessons.durable import recovery
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry

CALLS: list[str] = []
registry = Registry()  # (importable by name: ``--registry test_cli_exits``)


def UNDO(step, idempotency_key=None):
    CALLS.append(step)


COMP = registry.add("exits.undo", UNDO)


def _crashed(tmp_path, steps="abc"):
    """A journal whose saga (steps undone by exits.undo, then one that fails) crashed
    before its first undo: all its undos pending, its owner dead."""
    path = tmp_path / "j.db"
    saga = Saga([Step(k, lambda s: None, COMP.bind(step=k)) for k in steps]
                + [Step("z", lambda s: 1 / 0)])  # fmt: skip
    crash_at_first_undo(path, saga)
    CALLS.clear()
    return path


def _exits_after(monkeypatch, n: int, code: object) -> None:
    """``sys.exit(code)`` in recover after its ``n``-th undo ran, outside any undo (where a
    signal handler's exit lands between two undos: the write of what the undo did)."""
    real = recovery.Writer.undo_ran
    count = [0]

    def undo_ran(self, run):
        real(self, run)
        count[0] += 1
        if count[0] == n:
            sys.exit(code)

    monkeypatch.setattr(recovery.Writer, "undo_ran", undo_ran)


@pytest.mark.parametrize(("code", "status"), [(0, 2), (None, 2), (143, 143), ("bye", 2)])
def test_a_sys_exit_between_two_undos_of_recover_is_an_interrupt(
    tmp_path, monkeypatch, capsys, code, status
):
    """The defect: exit 0 and not a word (code 0), or exit 143 and not a word, the saga
    left rolling_back. Now one line naming the saga left, a failure status (a handler's
    own failure code kept), and the next recover finishes it."""
    path = _crashed(tmp_path)
    _exits_after(monkeypatch, 1, code)
    assert main(["recover", str(path), "--registry", "test_cli_exits"]) == status
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1, err
    assert f"recover interrupted (sys.exit({code!r}) was called" in err
    assert "left unfinished for the next recover: saga 's'" in err
    assert CALLS == ["c"]
    monkeypatch.undo()
    with Journal(path) as journal:
        assert journal.saga("s").status == "rolling_back"
        [done] = recover(journal, registry).recovered
    assert str(done.status) == "rolled_back" and CALLS == ["c", "b", "a"]


def test_a_sys_exit_inside_an_undo_keeps_its_failure_code(tmp_path, monkeypatch, capsys):
    """The same signal landing inside an undo: the same status as between two undos."""
    path = _crashed(tmp_path)

    def undo(step, idempotency_key=None):
        if step == "b":
            sys.exit(143)
        UNDO(step)

    monkeypatch.setitem(registry._fns, "exits.undo", undo)
    assert main(["recover", str(path), "--registry", "test_cli_exits"]) == 143
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "sys.exit(143) was called during the undo of 'b'" in err
    assert CALLS == ["c"]


def test_a_recover_interrupted_after_finishing_a_saga_says_none_is_left(
    tmp_path, monkeypatch, capsys
):
    """The exit after the last undo (its saga written as finished): nothing claimed is
    left, and it says so; still not a success (the command was cut short)."""
    path = _crashed(tmp_path, steps="a")
    real = recovery.Writer.finished

    def finished(self, run, report):
        real(self, run, report)
        self.flush()
        sys.exit(0)

    monkeypatch.setattr(recovery.Writer, "finished", finished)
    assert main(["recover", str(path), "--registry", "test_cli_exits"]) == 2
    out, err = capsys.readouterr()
    assert out.startswith("s (saga): rolled_back")  # the saga it finished, told
    assert len(err.splitlines()) == 1 and "no saga it claimed is left unfinished" in err


def test_a_sys_exit_in_every_other_command_is_one_line_and_a_failure(tmp_path, monkeypatch, capsys):
    """demo, journal show, journal settle: the same rule (before: exit 0, nothing said)."""
    path = _crashed(tmp_path)

    def exits(*args, **kwargs):
        sys.exit(0)

    monkeypatch.setattr(cli, "run_demo", exits)
    assert main(["demo"]) == 2
    monkeypatch.setattr(Journal, "table", exits)
    assert main(["journal", "show", str(path)]) == 2
    monkeypatch.setattr(Journal, "settle", exits)
    assert main(["journal", "settle", str(path), "s", "--note", "done by hand"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3 and all("sys.exit(0) was called" in line for line in lines)
    assert lines[0].endswith("the command did not finish")
    assert "before the settle was written: nothing was settled" in lines[2]


@pytest.mark.parametrize("where", ["its arguments read", "its command loading"])
def test_a_ctrl_c_before_a_settle_began_says_nothing_was_settled(
    tmp_path, monkeypatch, capsys, where
):
    """attack229 F3: a Ctrl-C as the settle's arguments were read, or its command loaded,
    said only "interrupted (Ctrl-C)", not that nothing was settled."""
    import types

    path = _crashed(tmp_path)

    def cut(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        if where == "its arguments read":
            patch.setattr(cli, "build_parser", cut)
        else:  # (the module half made, as an import is when a Ctrl-C cuts it)
            patch.setitem(sys.modules, cli._COMMAND, types.ModuleType(cli._COMMAND))
            patch.setattr(cli, "_main", cut)
        assert main(["journal", "settle", str(path), "s", "--note", "by hand"]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted (Ctrl-C)" in err
    assert "before the settle was written: nothing was settled" in err, err
    main(["journal", "show", str(path)])
    assert "by hand" not in capsys.readouterr().out


def test_argparse_own_exits_stay_what_they_were(capsys):
    """--help: its text, exit 0; a usage error: argparse's lines, SystemExit(2)."""
    assert main(["--help"]) == 0
    assert "usage:" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--fail-at", "nope"])
    assert exit_.value.code == 2 and "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["recover"], ["journal", "show"], ["demo", "--fail-at", "x"]])
def test_a_usage_error_of_the_program_is_its_one_line_and_exit_2(argv):
    """The program's end (``run``) took argparse's exit for an interrupt: a second line,
    "interrupted: sys.exit(2) was called (a signal handler's?)", under the usage error."""
    import subprocess

    done = subprocess.run([sys.executable, "-m", "rollback_lessons", *argv], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2 and done.stdout == "", done
    assert done.stderr.count("\n") == 1 and " error: " in done.stderr, done.stderr
    assert done.stderr.endswith(" --help` shows usage)\n"), done.stderr


# -- F7: a registry's thread, the package's own __main__ as a registry, a full disk ------------


def test_a_thread_the_registry_leaves_running_does_not_keep_the_command_forever(tmp_path):
    """The defect: recover did its work, printed, then never exited (Python waits for every
    thread that is not a daemon). Now it waits THREAD_WAIT seconds (here 0.2), then ends
    with the command's own status and one line saying so."""
    import subprocess

    (tmp_path / "reg_thread.py").write_text(
        "import threading, time\n"
        "from rollback_lessons.durable.registry import Registry\n"
        "registry = Registry()\n"
        "threading.Thread(target=lambda: time.sleep(3600), name='sleeper').start()\n"
    )
    with Journal(tmp_path / "j.db"):
        pass
    code = (
        "import sys\nfrom rollback_lessons import cli\ncli.THREAD_WAIT = 0.2\n"
        "sys.argv[1:] = ['recover', 'j.db', '--registry', 'reg_thread']\ncli.run()\n"
    )
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == "recovered 0 sagas, left 0\n"
    assert out.stderr == (
        "rollback-lessons: thread 'sleeper' (not ours: the registry's?) still ran 0.2 s "
        "after the command ended; the process ends without it (what the command did is "
        "recorded)\n"
    )


def test_the_program_ends_through_run_both_ways_it_is_started():
    """``rollback-lessons`` and ``python -m rollback_lessons`` both end through ``run``."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    assert 'rollback-lessons = "rollback_lessons.cli:run"' in (root / "pyproject.toml").read_text()
    assert "    run()" in (root / "rollback_lessons" / "__main__.py").read_text()


def test_the_packages_own_main_as_a_registry_is_one_line(tmp_path, capsys):
    """The defect: importing rollback_lessons.__main__ ran the command again, inside the
    import: two contradictory lines ("has no `registry`", then "it called sys.exit(2)")."""
    with Journal(tmp_path / "j.db"):
        pass
    sys.modules.pop("rollback_lessons.__main__", None)
    try:
        code = main(["recover", str(tmp_path / "j.db"), "--registry", "rollback_lessons.__main__"])
    finally:
        sys.modules.pop("rollback_lessons.__main__", None)
    assert code == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (
        "rollback-lessons: module 'rollback_lessons.__main__' has no `registry`: define "
        "`registry = Registry()` there and register the compensations on it\n"
    )


def test_no_room_names_a_full_disk_and_nothing_else(tmp_path, monkeypatch):
    import os

    from rollback_lessons.durable import room

    assert room.no_room(tmp_path / "j.db") == ""  # (room here)
    full = os.statvfs_result((4096, 4096, 100, 0, 0, 10, 0, 0, 0, 255))
    monkeypatch.setattr(room.os, "statvfs", lambda path: full)
    said = room.no_room(tmp_path / "j.db")
    assert said.startswith("; no room on its disk (0 bytes free)") and "j.db-shm" in said


def test_a_disk_sqlite_said_full_is_told_full_whatever_is_free_by_then(tmp_path):
    """attack41 F4: recover on a full disk said only "database or disk is full": the room
    was measured once the journal was closed, and closing it had removed its -wal."""
    from rollback_lessons.durable import room

    said = room.no_room(tmp_path / "j.db", "database or disk is full")
    assert said.startswith("; no room on its disk (")  # (room here: free by now, attack174 F2)
    assert "bytes free by now, SQLite's own files let go)" in said
    assert room.no_room(tmp_path / "j.db", "database is locked") == ""  # (room here)
    opened = room.unopened(tmp_path / "j.db", "database or disk is full")
    free = re.compile(r"\(\d+ bytes free[^)]*\)")  # (others write to this disk meanwhile)
    assert free.sub("", opened) == free.sub("", said) and opened.count("j.db-shm") == 1


def _can_mount_tmpfs() -> bool:
    import os
    import shutil
    import subprocess

    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = ["unshare", "--mount", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"]
    return subprocess.run(probe, capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs root, unshare and tmpfs")
@pytest.mark.parametrize(
    "command", ["journal show {j}", "recover {j} --registry x", "journal settle {j} s --note x"]
)
def test_a_journal_whose_shm_cannot_be_made_on_a_full_disk_says_no_room(tmp_path, command):
    """The defect: "cannot open ...: disk I/O error", nothing of room. A real full disk: a
    1 MB tmpfs of this test's own (a mount namespace: gone with it), the journal's -shm
    removed by its clean close, the disk then filled."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    script = (
        f"mount -t tmpfs -o size=1m tmpfs {disk} && "
        f"{sys.executable} -c 'from rollback_lessons.durable.journal import Journal; "
        f'Journal("{disk}/j.db").close()\' && '
        f"(dd if=/dev/zero of={disk}/fill bs=4k 2>/dev/null; true) && "
        f"{sys.executable} -m rollback_lessons {command.format(j=f'{disk}/j.db')}"
    )
    out = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2, out.stderr
    [line] = out.stderr.splitlines()
    assert line.startswith(f"rollback-lessons: cannot open {disk}/j.db: ")
    assert "no room on its disk" in line and line.count("j.db-shm") == 1


@pytest.mark.parametrize("command", [["recover", "--registry", "json"], ["journal", "show"]])
def test_a_journal_path_with_a_line_break_is_named_on_one_line(tmp_path, command):
    """attack36 F6: ``no journal at new`` then ``line.db`` on the next line."""
    import subprocess

    path = str(tmp_path / "new\nline.db")
    args = [*command[:1], *(command[1:2] if command[0] == "journal" else []), path,
            *(command[1:] if command[0] == "recover" else [])]  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "rollback_lessons", *args],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "no journal at " in done.stderr and "new\\nline.db" in done.stderr


@pytest.mark.parametrize(
    "raised, status, said",
    [("KeyboardInterrupt", 2, "a KeyboardInterrupt (raised; no Ctrl-C was sent) came"),
     ("os.kill(os.getpid(), signal.SIGINT) or time.sleep(5)", 130, "a Ctrl-C came"),
     ("SystemExit(0)", 2, "a sys.exit came"),
     ("SystemExit(143)", 143, "a sys.exit came"),
     # attack45 L1: Python's "Exception ignored in atexit callback" and a traceback
     ("RuntimeError('pool gone')", 0, "an exit handler raised RuntimeError: pool gone")],
)  # fmt: skip
def test_a_ctrl_c_or_exit_in_an_exit_handler_is_one_line_and_its_status(
    tmp_path, raised, status, said
):
    """attack39 F1: a Ctrl-C (or a SIGTERM handler's sys.exit) as the process ended, in an
    exit handler a registry module registered (a client's pool closing): Python printed the
    handler's traceback and exited 0; a real SIGINT just after the last line killed it with no
    line at all. The CLI runs the exit handlers itself: one line, its status."""
    import subprocess

    (tmp_path / "reg_at_exit.py").write_text(
        "import atexit, os, signal, time\nfrom rollback_lessons.durable.registry import Registry\n"
        "registry = Registry()\n"
        f"def close_pool():\n    raise {raised}\n"
        "atexit.register(close_pool)\n"
    )
    ok = tmp_path / "ok.db"
    from rollback_lessons.durable.journal import Journal

    Journal(ok).close()
    path = f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    done = subprocess.run(
        [sys.executable, "-m", "rollback_lessons", "recover", str(ok), "--registry", "reg_at_exit"],
        capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": path},
    )  # fmt: skip
    assert done.returncode == status, done
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"{said} as the process ended" in done.stderr


POOLED = (
    "import os\nfrom concurrent.futures import ProcessPoolExecutor\n"
    "from rollback_lessons.durable.registry import Registry\n"
    "registry = Registry()\nPOOL = []\n"
    "def _refund(world):\n"
    "    with open(world, 'a') as f:\n"
    "        f.write(f'refunded {os.getpid()}\\n')\n"
    "def refund(world, idempotency_key=None):  # (its work handed back, as the README says)\n"
    "    if not POOL:\n"
    "        POOL.append(ProcessPoolExecutor(1))\n"
    "    return POOL[0].submit(_refund, world)\n"
    "REFUND = registry.add('pooled.refund', refund)\n"
)


def test_a_registry_whose_undo_hands_work_to_a_process_pool_lets_the_command_end(tmp_path):
    """attack186 F1: recover did the work and said so, then never ended: the pool, never told
    to stop (the program ends by ``os._exit``, past threading's exit hooks), left
    multiprocessing's exit handler waiting for its idle worker for ever, the saga's claim
    held meanwhile. The pools are told to stop as Python's own exit would."""
    import subprocess

    pooled = registry_module(tmp_path, "reg_pooled", POOLED)
    world = tmp_path / "world.txt"
    saga = Saga([Step("a", lambda s: None, pooled.REFUND.bind(world=str(world))),
                 Step("z", lambda s: 1 / 0)])  # fmt: skip
    crash_at_first_undo(tmp_path / "j.db", saga)
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "rollback_lessons", "recover", "j.db", "--registry", "reg_pooled"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (out.returncode, out.stderr) == (0, ""), out.stderr
    assert out.stdout.endswith("recovered 1 saga, left 0\n"), out.stdout
    assert len(world.read_text().splitlines()) == 1


MP_POOLED = (
    "import os, time\nimport multiprocessing as mp\n"
    "from rollback_lessons.durable.registry import Registry\n"
    "registry = Registry()\nPOOL = []\n"
    "def _slow(world):\n"
    "    with open(world, 'a') as f:\n"
    "        f.write('began\\n')\n"
    "    time.sleep(60)\n"
    "def refund(world, wait, idempotency_key=None):\n"
    "    if not POOL:\n"
    "        POOL.append(mp.get_context('fork').Pool(1))\n"
    "    job = POOL[0].apply_async(_slow, (world,))\n"
    "    return job if wait else None  # (handed back, or left running in the pool)\n"
    "REFUND = registry.add('mp.refund', refund)\n"
)


@pytest.mark.parametrize("cut", [None, "SIGINT", "SIGTERM"])
def test_a_multiprocessing_pools_workers_stopped_as_recover_ends_are_silent(tmp_path, cut):
    """attack190 F1: the command's Ctrl-C and SIGTERM handlers were inherited by the workers
    of a registry's ``multiprocessing.Pool`` (forked): stopped by SIGTERM as the command
    ended (the pool's finalizer terminates busy workers), each raised ``Terminated`` in its
    job, a traceback each, after the command's one line (exit 0 too). A fork's signals are
    Python's again: the workers end as they would without the package."""
    import signal
    import subprocess
    import time

    mp_reg = registry_module(tmp_path, "reg_mp", MP_POOLED)
    world = tmp_path / "world.txt"
    undo = mp_reg.REFUND.bind(world=str(world), wait=cut is not None)
    crash_at_first_undo(tmp_path / "j.db", Saga([Step("a", lambda s: None, undo),
                                                 Step("z", lambda s: 1 / 0)]))  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    command = [sys.executable, "-m", "rollback_lessons", "recover", "j.db", "--registry", "reg_mp"]
    with subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:  # fmt: skip
        if cut is not None:
            end = time.monotonic() + 30
            while not (world.exists() and world.read_text()) and time.monotonic() < end:
                time.sleep(0.02)
            proc.send_signal(getattr(signal, cut))
        out, err = proc.communicate(timeout=60)
    assert world.read_text() == "began\n"
    if cut is None:
        assert (proc.returncode, err) == (0, ""), err
        assert out.endswith("recovered 1 saga, left 0\n"), out
    else:
        said = {"SIGINT": "Ctrl-C", "SIGTERM": "SIGTERM"}[cut]
        assert proc.returncode == {"SIGINT": 130, "SIGTERM": 143}[cut], err
        assert err.count("\n") == 1 and f"interrupted ({said})" in err, err


def test_a_second_interrupt_as_the_process_ends_is_said_once(monkeypatch):
    """attack197 F3: a second Ctrl-C as the exit handlers ran, the first heard as the threads
    were waited for: "a Ctrl-C came as the process ended" twice. Said once."""
    from rollback_lessons import _ending

    monkeypatch.setattr(_ending, "_SAID", [])
    said: list[str] = []
    _ending.at_end(KeyboardInterrupt(), 0, said.append)
    _ending.at_end(KeyboardInterrupt(), 0, said.append)
    assert said == [_ending.AT_END.format("a Ctrl-C")]


def test_an_interrupt_under_threading_s_own_error_is_named_as_itself():
    """attack286 F8: a SIGTERM landing as the end's watchdog thread started (threading's
    Condition.wait) came out as RuntimeError('release unlocked lock') over it, and the end's
    line said "a sys.exit came" (about 1 in 2 of a SIGTERM and a Ctrl-C sent at once)."""
    from rollback_lessons._ending import came
    from rollback_lessons._starting import Terminated
    from rollback_lessons.cli import interrupted_by

    for signal_error, said, status in (
        (Terminated(), "a SIGTERM", 143),
        (SystemExit(3), "a sys.exit", 3),
    ):
        try:
            try:
                raise signal_error
            except BaseException:
                raise RuntimeError("release unlocked lock")  # noqa: B904 (as threading does)
        except RuntimeError as error:
            assert came(error) == said and interrupted_by(error)[1] == status
    assert came(RuntimeError("its own")) == "an error (RuntimeError)"
