"""Servers' and kernels' ports come from below the ephemeral range, where no outgoing
connection can take them between the probe and the bind (rollback_lessons.runners.free_port;
tests/plugins/kernel_ports.py for Jupyter's kernels)."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rollback_lessons.runners import EPHEMERAL, free_port


def _ephemeral_low() -> int:
    try:
        return int(Path(EPHEMERAL).read_text().split()[0])
    except OSError:
        pytest.skip("no ephemeral port range to read here")


def test_a_free_port_is_below_the_ephemeral_range_and_free():
    low = _ephemeral_low()
    for _ in range(50):
        port = free_port()
        assert 1024 <= port < low
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))  # free: a server can listen on it


def test_a_port_taken_by_a_listening_server_is_never_handed_out():
    low = _ephemeral_low()
    held = []
    try:  # every port of a small window taken, so a pick that skips none would land on one
        for port in range(low - 64, low):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            s.listen()
            held.append(s)
        taken = {s.getsockname()[1] for s in held}
        assert not taken & {free_port() for _ in range(200)}
    finally:
        for s in held:
            s.close()


def test_kernels_get_their_ports_from_free_port_in_pytest_and_in_the_lab_server():
    from jupyter_client.connect import LocalPortCache

    low = _ephemeral_low()
    cache = LocalPortCache.instance()
    ports = [cache.find_available_port("127.0.0.1") for _ in range(5)]
    for port in ports:
        cache.return_port(port)
    assert all(port < low for port in ports)
    assert len(set(ports)) == 5
    # the JupyterLab of the browser tests: its sitecustomize installs the same in the server
    plugins = Path(__file__).parent / "plugins"
    code = (
        "import sys; from jupyter_client.connect import LocalPortCache as C;"
        "print(C.instance().find_available_port('127.0.0.1'))"
    )
    env = {"PYTHONPATH": f"{plugins / 'server'}:{plugins}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code, "jupyterlab"], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) < low
    # and only there: another Python with that path (a lesson's own subprocess) keeps
    # jupyter_client as it is (its pick is any port the system gives)
    plain = subprocess.run(
        [sys.executable, "-c", "import sitecustomize, sys; print('kernel_ports' in sys.modules)"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert plain.stdout.strip() == "False", plain.stderr
