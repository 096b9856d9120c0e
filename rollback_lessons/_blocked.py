"""Event loops a synchronous call blocks while other threads do its work (``DBOSRunner.run``
inside a notebook cell): work of such a loop handed back there can never be waited for."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

BLOCKED: list[Any] = []
"""The loops blocked now, each once per call that blocks it (``blocking``)."""


@contextlib.contextmanager
def blocking() -> Iterator[None]:
    """The loop running in this thread (if any) is blocked until the block ends: a helper
    thread that finds a Future of it (``loop.run_in_executor``'s) takes it as work it
    cannot wait for, never waits on it for ever (attack98 F7: DBOS in a notebook cell)."""
    asyncio = sys.modules.get("asyncio")
    loop = None if asyncio is None else asyncio._get_running_loop()
    if loop is None:
        yield
        return
    BLOCKED.append(loop)  # (no lock: one list call each, whole under the GIL; a Ctrl-C
    try:  # as a ``with`` lock's exit began left it held, attack118 F1)
        yield
    finally:
        BLOCKED.remove(loop)
