"""The worker processes a registry's pools leave running as the command ends (attack190):
stopped, never left to run an undo's work on after the command has ended and let go of its
sagas' claims, for the next ``recover`` to run beside them. A ProcessPoolExecutor's worker
on a job that never ends, its recover interrupted, was left for ever (PPid 1), and ignored a
plain ``kill`` (it had the command's SIGTERM handler); multiprocessing's exit handler
waiting for a registry's own process for ever is given up on, and that process stopped."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import crash_at_first_undo

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
    (tmp_path / "reg_workers.py").write_text(REGISTRY)
    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module("reg_workers")
    finally:
        sys.path.remove(str(tmp_path))
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
        assert len(said) == 1 and "stopped" in said[0], done.stderr
    finally:
        if not _gone(worker):
            os.kill(worker, signal.SIGKILL)
