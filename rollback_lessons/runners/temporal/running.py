"""The calls under way in this process's workers, by the runner's executor (``Threads``)
that runs them: what a runner's ``close`` names abandoned when a call does not end in its
grace: those its own worker runs, and only those (attack228 F3: two runners of one process
whose queues bore one name, on two servers, each named the other's; attack233 F1: one
sharing a queue on one server abandoned a call of another's run, named none)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from temporalio import activity

RUNNING: dict[int, dict[str, str]] = {}
"""The calls under way, by the ``id`` of the executor that runs them (one per runner)."""


def running_of(executor: object, *, forget: bool = False) -> tuple[str, ...]:
    """The calls under way on ``executor``'s threads; ``forget``: dropped from ``RUNNING``."""
    calls = RUNNING.pop(id(executor), {}) if forget else RUNNING.get(id(executor), {})
    return tuple(list(calls.values()))


@contextlib.contextmanager
def running(what: str, executor: object) -> Iterator[None]:
    info = activity.info()
    calls = RUNNING.setdefault(id(executor), {})
    key = f"{info.workflow_id}/{info.activity_id}"
    calls[key] = f"{what} (run {info.workflow_id})"
    try:
        yield
    finally:
        calls.pop(key, None)
