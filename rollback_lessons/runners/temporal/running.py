"""The calls under way in this process's workers, by task queue and run: what a runner's
``close`` names abandoned when a call does not end in its grace (its own runs' only: two
runners of one process may name their queues alike, on two servers: attack228 F3)."""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator

from temporalio import activity

RUNNING: dict[str, dict[str, str]] = {}
"""The calls under way, by task queue (one per runner): what ``close`` reports as
abandoned when a call does not end in time."""


def running_of(task_queue: str, runs: Collection[str], *, forget: bool = False) -> tuple[str, ...]:
    """The calls under way on ``task_queue`` of ``runs`` (a runner's: two runners of one
    process may name their queues alike, on two servers: attack228 F3, one's close named the
    other's call abandoned); ``forget``: dropped from ``RUNNING`` too."""
    calls = RUNNING.get(task_queue, {})
    mine = [key for key in list(calls) if key.rsplit("/", 1)[0] in runs]
    said = tuple(calls[key] for key in mine if key in calls)
    if forget:
        for key in mine:
            calls.pop(key, None)
    return said


@contextlib.contextmanager
def running(what: str) -> Iterator[None]:
    info = activity.info()
    calls = RUNNING.setdefault(info.task_queue, {})
    key = f"{info.workflow_id}/{info.activity_id}"
    calls[key] = f"{what} (run {info.workflow_id})"
    try:
        yield
    finally:
        calls.pop(key, None)
