"""A synchronous run inside async code whose call starts ``loop.run_in_executor(...)`` and
hands it back wrapped in a coroutine (``asyncio.wait_for(fut, 5)``, an ``async def`` that
awaits it): the coroutine cannot be awaited, and closing it does not stop the work. It was
a clean refusal, retried: three charges at once, ``rolled_back`` (attack98 F8). Now: in
doubt, never called again in that run (an action leaked, an undo a dead letter)."""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections import deque
from typing import Any

import pytest

from rollback_lessons import RetryPolicy, Rollback, Saga, Step, UndoPolicy
from rollback_lessons.errors import MayHaveRun

RETRY = RetryPolicy(max_attempts=3, initial_delay=0.01)


class Holding:
    """An awaitable of one's own holding the work."""

    def __init__(self, future: Any) -> None:
        self.future = future

    def __await__(self) -> Any:
        return self.future.__await__()


class Slotted:
    """An awaitable of one's own with ``__slots__`` (no ``vars``) holding the work."""

    __slots__ = ("held",)

    def __init__(self, held: Any) -> None:
        self.held = held

    def __await__(self) -> Any:
        yield from ()


class Box:
    def __init__(self, held: Any) -> None:
        self.held = held


def _wrapped(shape: str, calls: list[str], what: str) -> Any:
    lock = threading.Lock()

    def work() -> None:
        with lock:
            calls.append(f"{what} begins")
        time.sleep(0.05)

    def call(*args: object) -> Any:
        if shape == "thread":  # (work of its own: a thread, a pool's job)
            thread = threading.Thread(target=work)
            thread.start()
            return Slotted(thread)
        if shape == "pool_job":
            from multiprocessing.pool import ThreadPool

            return Slotted(ThreadPool(1).apply_async(work))
        future = asyncio.get_running_loop().run_in_executor(None, work)
        if shape == "wait_for":
            return asyncio.wait_for(future, 5)

        async def waits() -> Any:
            return await future

        async def gen() -> Any:
            yield await future

        if shape == "task":  # (attack102 F6: a Task not begun, its coroutine holding it)
            return asyncio.ensure_future(waits())
        if shape == "asyncgen":
            return gen()
        if shape == "custom":
            return Holding(future)
        if shape == "slots":  # (attack103 F4: held one step further than was looked)
            return Slotted(future)
        if shape == "list":
            return _awaits_all([future])
        if shape == "dict_keys":  # (``{pool.submit(f): x}``, as_completed's: attack104 F2)
            return _awaits_keys({future: "charge"})
        if shape == "deque":
            return _awaits_all(deque([future]))
        if shape == "wait_for_coroutine":
            return asyncio.wait_for(waits(), 5)
        if shape == "box":
            return _awaits_box(Box(future))
        if shape == "iter":  # (held through a builtin iterator: attack104 F2)
            return _awaits_all(iter([future]))
        if shape == "zip":
            return _awaits_pairs(zip(["charge"], [future], strict=True))
        if shape == "map":
            return _awaits_all(map(lambda f: f, [future]))
        if shape == "genexpr":
            return _awaits_all(f for f in [future])
        if shape == "enumerate_filter":
            return _awaits_pairs(enumerate(filter(None, reversed([future]))))
        if shape == "dict_values":  # (a dict's view, a weakref: attack105 F3)
            return _awaits_all({"visa": future}.values())
        if shape == "weakref":
            box = Box(future)
            keep.append(box)
            return _awaits_box_ref(weakref.ref(box))
        return waits()

    return call


async def _awaits_all(futures: Any) -> Any:
    return [await f for f in futures]


async def _awaits_keys(futures: dict[Any, str]) -> Any:
    return [await f for f in futures]


async def _awaits_pairs(pairs: Any) -> Any:
    return [await f for _, f in pairs]


async def _awaits_box(box: Box) -> Any:
    return await box.held


async def _awaits_box_ref(ref: Any) -> Any:
    return await ref().held


keep: list[Any] = []  # (what a weakref refers to, alive as the test runs)


SHAPES = ["wait_for", "closure", "task", "asyncgen", "custom", "slots", "list",
          "wait_for_coroutine", "box", "thread", "pool_job", "dict_keys", "deque", "iter",
          "zip", "map", "genexpr", "enumerate_filter", "dict_values", "weakref"]  # fmt: skip


@pytest.mark.parametrize("driver", ["saga.run", "Rollback"])
@pytest.mark.parametrize("shape", SHAPES)
def test_an_action_handing_back_begun_work_in_a_coroutine_is_in_doubt_once(shape, driver):
    calls: list[str] = []
    charge = _wrapped(shape, calls, "charge")

    async def main() -> Any:
        if driver == "saga.run":
            a = Step("a", lambda s: calls.append("do a"), lambda s: calls.append("undo a"))
            b = Step("b", charge, lambda s: calls.append("refund b"), retry=RETRY)
            saga = Saga([a, b])
            outcome = saga.run({})
        else:
            rb = Rollback()
            with pytest.raises(MayHaveRun), rb:
                rb.do("a", lambda: calls.append("do a"), lambda: calls.append("undo a"))
                rb.do("b", charge, lambda: calls.append("refund b"))
            outcome = rb.outcome
        await asyncio.sleep(0.2)  # (its thread ends)
        return outcome

    outcome = asyncio.run(main())
    assert sorted(calls) == ["charge begins", "do a", "undo a"]
    assert outcome.status == "rollback_incomplete" and outcome.leaked == ("b",), outcome
    assert isinstance(outcome.error, MayHaveRun) and "holding work that had begun" in str(
        outcome.error
    )


@pytest.mark.parametrize("shape", [s for s in SHAPES if s != "asyncgen"])
def test_an_undo_handing_back_begun_work_in_a_coroutine_is_not_retried(shape):
    calls: list[str] = []
    refund = _wrapped(shape, calls, "refund")

    async def main() -> Any:
        saga = Saga([Step("b", lambda s: None, refund), Step("c", lambda s: 1 / 0)],
                    policy=UndoPolicy(RETRY))  # fmt: skip
        outcome = saga.run({})
        await asyncio.sleep(0.2)
        return outcome

    outcome = asyncio.run(main())
    assert calls == ["refund begins"]
    assert [(d.step, d.attempts, type(d.error)) for d in outcome.dead_letters] == [
        ("b", 1, MayHaveRun)
    ]


def test_a_coroutine_holding_nothing_begun_is_still_a_clean_refusal():
    """``lambda state: book(state)`` (a saga written for ``arun``): nothing began, though
    it holds a pool, the loop and plain data (their idle threads and queues are not the
    call's work), and ``wait_for`` of it leaves no coroutine warned of as never awaited."""
    import gc
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    async def book(state: Any, other: Any = None) -> None:
        raise AssertionError("never runs")

    async def main() -> Any:
        pool = ThreadPoolExecutor(2)
        pool.submit(lambda: None).result()  # (its worker thread alive, idle)
        loop, state = asyncio.get_running_loop(), {"rows": [{"a": 1}] * 50}
        held = [Box(pool), loop, Box(state)]
        steps = [
            Step("a", lambda s: None, lambda s: None),
            Step("b", lambda s: asyncio.wait_for(book(s, held), 5), lambda s: None),
        ]
        try:  # fmt: skip
            return Saga(steps).run(state)
        finally:
            pool.shutdown()

    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        outcome = asyncio.run(main())
        gc.collect()
    assert outcome.status == "rolled_back" and type(outcome.error) is TypeError, outcome
    assert [str(w.message) for w in warned if "never awaited" in str(w.message)] == []


def test_a_child_process_running_is_begun_work():
    """attack104 F2: a running ``Popen`` handed back was a clean refusal, retried."""
    import subprocess
    import sys

    from rollback_lessons._wrapped import holds_work

    async def waits(proc: Any) -> Any:
        return proc.wait()

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        coroutine = waits(child)
        assert holds_work(coroutine)
        coroutine.close()
    finally:
        child.kill()
        child.wait()
    coroutine = waits(child)
    assert not holds_work(coroutine)  # (ended: no work goes on)
    coroutine.close()


class _Client:
    """A client of the usual kinds: a daemon heartbeat thread, the thread that made it, a
    proxy that will not say what it holds, a state of many line items."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.heartbeat = threading.Thread(target=self.stop.wait, daemon=True)
        self.heartbeat.start()
        self.owner = threading.current_thread()
        self.lines = [{"sku": i} for i in range(20_000)]
        self.app = _Shy()

    async def book(self, state: Any) -> None:
        raise AssertionError("never runs")


class _Shy:
    """A proxy out of its context (werkzeug's ``LocalProxy``): its ``__dict__`` raises."""

    @property
    def __dict__(self) -> Any:  # type: ignore[override]
        raise RuntimeError("working outside of application context")


def test_what_a_real_client_holds_is_no_begun_work():
    """attack104 F3: a daemon thread of a client, the caller's own thread, an object that
    raises when looked into, 20,000 line items: said in doubt, though nothing ran."""
    client = _Client()
    try:
        steps = [Step("a", lambda s: None, lambda s: None), Step("x", lambda s: client.book(s))]
        outcome = Saga(steps).run({"lines": client.lines})
    finally:
        client.stop.set()
    assert outcome.status == "rolled_back" and type(outcome.error) is TypeError, outcome
