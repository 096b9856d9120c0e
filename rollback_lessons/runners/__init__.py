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

import socket
from typing import Any, Protocol, runtime_checkable

from ..saga import Saga, State


def free_port() -> int:
    """A free TCP port on 127.0.0.1, for a server to listen on (and nowhere else)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@runtime_checkable
class Runner(Protocol):
    """An engine that runs a Saga and answers with ``saga.run``'s Outcome.

    ``Runner.start(...)`` makes one (its server, its client, its process-wide state),
    ``runner.run(saga, state, inject=..., policy=...)`` runs a saga to its end, and
    ``runner.close()`` stops what ``start`` started; a runner is also a context manager. An
    engine with an async client (Temporal) answers awaitables: ``await`` each call.
    """

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> Any: ...

    def run(self, saga: Saga, state: State | None = None, **options: Any) -> Any: ...

    def close(self) -> Any: ...


__all__ = ["Runner", "free_port"]
