"""Jupyter kernels' ports from ``rollback_lessons.runners.free_port`` (below the ephemeral
range) instead of jupyter_client's own pick (any port the system gives, in that range).

jupyter_client finds five free ports, closes them and starts the kernel, which binds them a
moment later; on a busy machine (the tests open thousands of connections to moto, Temporal
and Chromium, each with a local port from the ephemeral range) one of them can be taken in
between. A kernel whose iopub or heartbeat port is taken does not exit: it stays up, half
bound, and nbval or JupyterLab waits 60 s for an answer that never comes ("Kernel didn't
respond in 60 seconds"; seen once in CI, and reproduced by holding the port). Installed in
every pytest process (``startup``) and in the JupyterLab the browser tests start (its
``sitecustomize``)."""

from __future__ import annotations


def install() -> None:
    from jupyter_client.connect import LocalPortCache

    from rollback_lessons.runners import free_port

    def find_available_port(self: LocalPortCache, ip: str) -> int:
        while True:
            port = free_port()  # 127.0.0.1: the only interface a kernel here listens on
            if port not in self.currently_used_ports:
                self.currently_used_ports.add(port)
                return port

    LocalPortCache.find_available_port = find_available_port  # type: ignore[method-assign]
