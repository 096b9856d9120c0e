"""The same ``Saga`` on production engines: ``runners.temporal`` (Temporal),
``runners.stepfunctions`` (AWS Step Functions, on moto), ``runners.bpmn`` (BPMN, on
SpiffWorkflow). Every server the lessons start listens on 127.0.0.1 only."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A free TCP port on 127.0.0.1, for a server to listen on (and nowhere else)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
