"""The same ``Saga`` on production engines: ``runners.temporal`` (Temporal),
``runners.stepfunctions`` (AWS Step Functions, on moto), ``runners.bpmn`` (BPMN, on
SpiffWorkflow), ``runners.dbos`` (DBOS Transact). Every server the lessons start listens on
127.0.0.1 only.

Each runner is a driver of the one saga machine (``machine.py``): the machine decides, the
engine carries it out (``wire``: the saga and its record as data; ``remote``: one task done
in this process; ``history``: walking an engine's own history; ``owed``: what the machine
would do, asked beforehand by the writers of state machines; ``hosted``: what a run needs
from the process that started it). They share one shape, ``Runner``.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..saga import Saga, State
from .closed import RunnerClosed

EPHEMERAL = "/proc/sys/net/ipv4/ip_local_port_range"


def free_port() -> int:
    """A free TCP port on 127.0.0.1, for a server to listen on (and nowhere else).

    Below the system's ephemeral range where there is room: the kernel hands out ports in
    that range to every outgoing connection, so a port found free there can be taken by one
    between this probe and the server's bind (on a busy machine, a server that then cannot
    start, or a Jupyter kernel that hangs half-bound). Elsewhere, any port the system gives."""
    try:
        low = int(Path(EPHEMERAL).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 0
    if low - 1024 >= 4096:
        for _ in range(64):
            port = random.randrange(max(1024, low - 16384), low)
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_in_use(port: int) -> bool:
    """Is ``port`` on 127.0.0.1 taken, the way a server binds it (SO_REUSEADDR, as the
    Temporal dev server and JupyterLab do)? A port whose last server's connections sit in
    TIME_WAIT (up to 60 s after it stopped) is free to them, though a plain bind is refused."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@runtime_checkable
class Runner(Protocol):
    """An engine that runs a Saga and answers with ``saga.run``'s Outcome.

    ``Runner.start(...)`` makes one (its server, its client, its process-wide state),
    ``runner.run(saga, state, inject=..., policy=...)`` runs a saga to its end, and
    ``runner.close()`` stops what ``start`` started (then every call is refused,
    ``RunnerClosed``, before anything runs); a runner is also a context manager. An
    engine with an async client (Temporal) answers awaitables: ``await`` each call.
    """

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> Any: ...

    def run(self, saga: Saga, state: State | None = None, **options: Any) -> Any: ...

    def close(self) -> Any: ...


__all__ = ["Runner", "RunnerClosed", "free_port"]
