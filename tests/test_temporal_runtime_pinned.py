"""attack115 F1: a Ctrl-C as ``TemporalRunner.start`` started its dev server (no client made
yet, so its runtime not yet pinned) left the SDK runtime to the interpreter's end, held by the
KeyboardInterrupt's traceback; its drop there waited for ever on the start's native task,
which could no longer enter Python: the process hung. The runtime is pinned as it is made."""

from __future__ import annotations

import pytest

pytest.importorskip("temporalio")


def test_the_sdk_runtime_is_pinned_as_it_is_made() -> None:
    from rollback_lessons.runners.temporal import pinned, server

    made = server.runtime()  # (made here or by an earlier runner of this process)
    native = made._core_runtime._ref
    assert any(kept is native for kept in pinned._PINNED)
    assert server.runtime() is made  # (one for all runners)
