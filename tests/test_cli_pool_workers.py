"""The worker processes a registry's pools leave running as the command ends (attack190):
stopped, never left to run an undo's work on after the command has ended and let go of its
sagas' claims, for the next ``recover`` to run beside them. A ProcessPoolExecutor's worker
on a job that never ends, its recover interrupted, was left for ever (PPid 1), and ignored a
plain ``kill`` (it had the command's SIGTERM handler); multiprocessing's exit handler
waiting for a registry's own process for ever is given up on, and that process stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import crash_at_first_undo, registry_module

from rollback_lessons import Saga, Step

REGISTRY = (
    "import os, time\nimport multiprocessing as mp\n"
    "from concurrent.futures import ProcessPoolExecutor\n"
    "from rollback_lessons.durable.registry import Registry\n"
    "registry = Registry()\nKEPT = []\n"
    "def _forever(world):\n"
    "    with open(world, 'a') as f:\n"
    "        f.write(f'{os.getpid()}\\n')\n"
    "    while True:\n"
    "        time.sleep(1)\n"
    "def pooled(world, idempotency_key=None):  # (its work handed back, never ending)\n"
    "    KEPT.append(ProcessPoolExecutor(1, mp_context=mp.get_context('fork')))\n"
    "    return KEPT[-1].submit(_forever, world)\n"
    "def process(world, idempotency_key=None):  # (a process of its own, left running)\n"
    "    child = mp.get_context('fork').Process(target=_forever, args=(world,))\n"
    "    child.start()\n"
    "    KEPT.append(child)\n"
    "POOLED = registry.add('workers.pooled', pooled)\n"
    "PROCESS = registry.add('workers.process', process)\n"
)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:  # (a zombie: ended, not yet reaped by init)
        return f.read().rpartition(")")[2].split()[0] == "Z"


def _recover(tmp_path, kind: str, interrupt: bool) -> tuple[subprocess.CompletedProcess, int]:
    module = registry_module(tmp_path, "reg_workers", REGISTRY)
    world = tmp_path / "world.txt"
    undo = getattr(module, kind.upper()).bind(world=str(world))
    crash_at_first_undo(tmp_path / "j.db", Saga([Step("a", lambda s: None, undo),
                                                 Step("z", lambda s: 1 / 0)]))  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    command = [sys.executable, "-m", "rollback_lessons", "recover", "j.db",
               "--registry", "reg_workers"]  # fmt: skip
    with subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:  # fmt: skip
        end = time.monotonic() + 30
        while not (world.exists() and world.read_text()) and time.monotonic() < end:
            time.sleep(0.02)
        worker = int(world.read_text())
        if interrupt:
            proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=60)  # (a worker left holds the pipes open)
        except subprocess.TimeoutExpired:
            os.kill(worker, signal.SIGKILL)
            proc.kill()
            raise
    return subprocess.CompletedProcess(command, proc.returncode, out, err), worker


def test_a_pool_worker_on_a_job_that_never_ends_is_stopped_with_its_interrupted_recover(
    tmp_path,
):
    done, worker = _recover(tmp_path, "pooled", interrupt=True)
    try:
        assert done.returncode == 130, done.stderr
        assert "Traceback" not in done.stderr and "interrupted (Ctrl-C)" in done.stderr
        end = time.monotonic() + 10
        while not _gone(worker) and time.monotonic() < end:
            time.sleep(0.05)
        assert _gone(worker), "the pool's worker runs on after its recover ended"
    finally:
        if not _gone(worker):
            os.kill(worker, signal.SIGKILL)


@pytest.mark.parametrize("interrupt", [False, True])
def test_a_registrys_own_process_left_running_is_stopped_as_the_command_ends(tmp_path, interrupt):
    """multiprocessing's exit handler joins a process not a daemon for ever: given up on, in
    one line that says the process was stopped; the command's status stands."""
    done, worker = _recover(tmp_path, "process", interrupt=interrupt)
    try:
        assert _gone(worker), "the registry's process runs on after its recover ended"
        assert done.returncode == (130 if interrupt else 0), done.stderr
        assert "Traceback" not in done.stderr
        said = [line for line in done.stderr.splitlines() if "1 worker process" in line]
        assert all("stopped" in line for line in said) and len(said) <= 1, done.stderr
        assert said or interrupt, done.stderr  # (a Ctrl-C as it began: once seen unsaid, s78)
    finally:
        if not _gone(worker):
            os.kill(worker, signal.SIGKILL)


def _ignores_sigterm_then_sleeps() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(600)


def test_a_ctrl_c_as_the_workers_are_stopped_is_held_and_the_stop_goes_on():
    """attack191 F1: a second Ctrl-C as the command stopped the workers (one that ignores
    SIGTERM, waited for before SIGKILL) cut the stop, and the worker ran on (4 of 4). The
    stop is a thread's of its own now; the Ctrl-C is held, and given back for its line."""
    import multiprocessing
    import threading

    from rollback_lessons._ending import stop_children

    child = multiprocessing.get_context("fork").Process(target=_ignores_sigterm_then_sleeps)
    child.start()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        time.sleep(0.2)  # (its SIGTERM ignored by now)
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        held: list[BaseException] = []
        assert stop_children(within=1.0, held=held) == 1
        assert [type(exc) for exc in held] == [KeyboardInterrupt]
        assert not child.is_alive() and child.exitcode == -signal.SIGKILL
    finally:
        signal.signal(signal.SIGINT, previous)
        if child.is_alive():
            child.kill()


BLOCKED_AT_EXIT = (
    "import atexit, os, time\nimport multiprocessing as mp\n"
    "from rollback_lessons.durable.registry import Registry\n"
    "registry = Registry()\nPOOL = []\n"
    "def _job(world):\n"
    "    with open(world, 'a') as f:\n"
    "        f.write(f'{os.getpid()}\\n')\n"
    "    time.sleep(1)\n"
    "def refund(world, idempotency_key=None):  # (its work left running in the pool)\n"
    "    if not POOL:\n"
    "        POOL.append(mp.get_context('fork').Pool(2))\n"
    "        atexit.register(time.sleep, 600)  # (run before multiprocessing's: never returns)\n"
    "    for _ in range(20):\n"
    "        POOL[0].apply_async(_job, (world,))\n"
    "REFUND = registry.add('blocked.refund', refund)\n"
)


def test_a_pool_stopped_as_the_command_gives_up_on_its_exit_handlers_forks_no_new_workers(
    tmp_path,
):
    """attack191 F2: the pool's worker handler, still running (its own exit handler never
    reached: another one blocked), forked a new worker for each one stopped; those outlived
    the command for ever, holding its output open (``recover | cat`` never ended, 6 of 6).
    It is told to stop before its workers are."""
    module = registry_module(tmp_path, "reg_blocked", BLOCKED_AT_EXIT)
    world = tmp_path / "world.txt"
    crash_at_first_undo(tmp_path / "j.db", Saga([Step("a", lambda s: None, module.REFUND.bind(
        world=str(world))), Step("z", lambda s: 1 / 0)]))  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    command = [sys.executable, "-m", "rollback_lessons", "recover", "j.db",
               "--registry", "reg_blocked"]  # fmt: skip
    with subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as proc:  # fmt: skip
        try:
            out, err = proc.communicate(timeout=60)  # (a worker left holds the pipes open)
        finally:
            left = _session(proc.pid)
            for pid in left:
                os.kill(pid, signal.SIGKILL)
    assert left == [], "processes of the command outlived it"
    assert proc.returncode == 0 and out.endswith("recovered 1 saga, left 0\n"), (out, err)
    assert err.count("\n") == 1 and "its 2 worker processes stopped" in err, err


def _session(sid: int) -> list[int]:
    """The processes of session ``sid`` still running (zombies aside)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                found.append(int(entry))
    return found
