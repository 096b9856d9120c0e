"""nbval's kernels on Unix sockets (the root conftest.py): over TCP a port picked free was
now and then taken by another process before the kernel bound it, and the kernel died
before it answered (a lesson's every cell an error). A kernel started the way nbval starts
one, in the lesson's directory (not this process's), runs a cell over sockets in files."""

import importlib.util
import os
from pathlib import Path
from types import SimpleNamespace

import nbval.kernel

ROOT = Path(__file__).resolve().parents[1]


def test_an_nbval_kernel_runs_a_cell_over_unix_sockets_from_another_directory(
    tmp_path, monkeypatch
):
    spec = importlib.util.spec_from_file_location("root_conftest_kernels", ROOT / "conftest.py")
    assert spec is not None and spec.loader is not None
    root_conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(root_conftest)
    monkeypatch.setattr(nbval.kernel, "KernelManager", nbval.kernel.KernelManager)
    config = SimpleNamespace()
    root_conftest._nbval_kernels_on_unix_sockets(config)
    lesson_dir = tmp_path / "notebooks"
    lesson_dir.mkdir()
    kernel = nbval.kernel.RunningKernel(nbval.kernel.CURRENT_ENV_KERNEL_NAME, str(lesson_dir))
    try:
        assert kernel.km.transport == "ipc"
        assert os.path.isabs(kernel.km.ip) and kernel.km.ip.startswith(
            config._rollback_lessons_sockets
        )
        sockets = os.listdir(config._rollback_lessons_sockets)
        assert len(sockets) == 5  # (shell, iopub, stdin, control, heartbeat: no TCP port)
        reply = kernel.kc.execute_interactive("print(6 * 7)", timeout=60)
        assert reply["content"]["status"] == "ok"
    finally:
        kernel.stop()
    assert os.listdir(config._rollback_lessons_sockets) == []  # (its files removed with it)
