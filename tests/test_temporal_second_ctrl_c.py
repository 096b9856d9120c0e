"""A second Ctrl-C under ``asyncio.run`` raises KeyboardInterrupt wherever the main thread
is: ci124 saw it land in ``TemporalRunner.run``'s own frame as it waited for the cancelled
saga to compensate (``left.compensated``), and the process ended with a bare traceback, no
``WorkerGone`` line saying where the saga was left. Now it is said there too: the loop, and
the runner's worker with it, end next. The interrupt is injected where it landed."""

from __future__ import annotations

import asyncio
import warnings
from types import SimpleNamespace
from typing import Any

import pytest

from rollback_lessons.runners.temporal import WorkerGone, left


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
def test_a_second_ctrl_c_in_the_wait_to_compensate_says_where_the_saga_is_left(monkeypatch, kind):
    cancels: list[str] = []
    real_wait = asyncio.wait

    async def interrupted(fs: Any, timeout: float | None = None) -> Any:
        monkeypatch.setattr(asyncio, "wait", real_wait)  # (once: as the signal landed)
        raise kind()

    async def main() -> None:
        worker = asyncio.ensure_future(asyncio.Event().wait())  # (its worker, running)

        async def cancel() -> None:
            cancels.append("sent")

        async def outcome() -> Any:
            await asyncio.Event().wait()  # (the saga compensating on the server, not over)

        runner = SimpleNamespace(
            env=None, db_file=None, address="127.0.0.1:7233", task_queue="q",
            _worker_task=worker,
        )  # fmt: skip
        handle = SimpleNamespace(runner=runner, run_id="r-second", cancel=cancel,
                                 outcome=outcome)  # fmt: skip
        monkeypatch.setattr(asyncio, "wait", interrupted)
        try:
            await left.compensated(handle, asyncio.CancelledError())  # type: ignore[arg-type]
        finally:
            worker.cancel()

    with warnings.catch_warnings(record=True) as said, pytest.raises(kind) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", ResourceWarning)  # (another test's pipes, collected)
        asyncio.run(main())
    assert cancels == ["sent"]  # (the saga's cancel reached the server all the same)
    [note] = caught.value.__notes__
    assert "r-second was stopped" in note and "The server at 127.0.0.1:7233 keeps it" in note
    assert [type(w.message) for w in said] == [WorkerGone], [str(w.message) for w in said]


def test_the_wait_to_compensate_cut_by_the_loops_end_is_said_once_with_its_cancel():
    """attack168 F3 (2 of 9 double Ctrl-Cs): the loop's end cancelled the wait for the
    saga's outcome before ``compensated`` saw the worker gone: ``outcome()``'s own path said
    ``WorkerGone`` (no word of the cancel), then ``compensated`` said it again. Once now,
    with the cancel."""

    async def main() -> None:
        worker = asyncio.ensure_future(asyncio.Event().wait())  # (its worker, running)

        async def cancel() -> None:
            pass

        async def outcome() -> Any:  # (as ``SagaHandle.outcome``: cut as the worker went)
            worker.cancel()
            await asyncio.sleep(0)
            try:
                raise asyncio.CancelledError
            except asyncio.CancelledError as exc:
                left.gone_unsaid(handle, exc)  # type: ignore[arg-type]
                raise

        runner = SimpleNamespace(
            env=None, db_file=None, address="127.0.0.1:7233", task_queue="q",
            _worker_task=worker,
        )  # fmt: skip
        handle = SimpleNamespace(runner=runner, run_id="r-cut", cancel=cancel, outcome=outcome)
        await left.compensated(handle, asyncio.CancelledError())  # type: ignore[arg-type]

    with warnings.catch_warnings(record=True) as said, pytest.raises(asyncio.CancelledError):
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", ResourceWarning)  # (another test's pipes, collected)
        asyncio.run(main())
    assert [type(w.message) for w in said] == [WorkerGone], [str(w.message) for w in said]
    assert "compensat" in str(said[0].message), str(said[0].message)
