"""What a call returns is looked into by its type alone (attack107): a Mock of a Future is
no Future (it hung arun, AsyncRollback and recover for ever), a lazy value is not loaded
(a query ran; a loader that failed was called begun work), an object's own
``__getattribute__`` is not asked; a stream, a Manager's proxy are no begun work, and an
``asyncio.Queue``'s items are looked into. Numbers of other types are durations too."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any
from unittest.mock import Mock

import pytest

from rollback_lessons import AsyncRollback, RetryPolicy, Rollback, Saga, Status, Step


def _ends_within(seconds: float, run: Any) -> Any:
    box: list[Any] = []
    worker = threading.Thread(target=lambda: box.append(run()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert box, f"no end within {seconds} s"
    return box[0]


@dataclass
class Holder:
    held: Any


class Lazy:
    """A lazy value (a proxy loading its object on first use, as lazy_object_proxy's)."""

    def __init__(self, load: Any) -> None:
        object.__setattr__(self, "_load", load)

    def __getattribute__(self, name: str) -> Any:
        return getattr(object.__getattribute__(self, "_load")(), name)


@pytest.mark.parametrize("driver", ["saga.run", "arun", "Rollback", "AsyncRollback"])
@pytest.mark.parametrize("shape", ["Mock(spec=Future)", "Mock(spec=asyncio.Future)",
                                   "nested Mock(spec=Future)", "lazy", "lazy, down"])  # fmt: skip
def test_a_result_is_looked_into_by_its_type_alone(shape, driver):
    asked: list[str] = []

    def load() -> Any:
        asked.append("load")
        if shape == "lazy, down":
            raise ConnectionError("database down")
        return {"id": 1}

    if shape.startswith("lazy"):
        value: Any = Holder(Lazy(load))
    else:
        mock = Mock(spec=asyncio.Future if "asyncio" in shape else Future)
        value = Holder(mock) if shape.startswith("nested") else mock

    async def block() -> Any:
        rb = AsyncRollback()
        async with rb:
            await rb.do("a", lambda: value, lambda: None)
        return rb.outcome

    def sync_block() -> Any:
        rb = Rollback()
        with rb:
            rb.do("a", lambda: value, lambda: None)
        return rb.outcome

    steps = [Step("a", lambda s: value, lambda s: None)]
    run = {
        "saga.run": lambda: Saga(steps).run({}),
        "arun": lambda: asyncio.run(asyncio.wait_for(Saga(steps).arun({}), 10)),
        "Rollback": sync_block,
        "AsyncRollback": lambda: asyncio.run(asyncio.wait_for(block(), 10)),
    }[driver]
    outcome = _ends_within(20, run)
    assert outcome.status is Status.COMMITTED and outcome.leaked == (), outcome
    assert asked == [] and (shape.startswith("lazy") or value is not None)
    if not shape.startswith("lazy"):
        mock = value.held if shape.startswith("nested") else value
        assert mock.mock_calls == [], mock.mock_calls


def test_an_open_connections_writer_is_no_begun_work():
    """attack107 F3: a result holding an open connection's writer (its protocol's futures
    not done while it is open) made a committed saga ``rollback_incomplete``."""

    async def main() -> Any:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            conn: dict[str, Any] = {}

            async def connect(state: Any) -> Any:
                conn["reader"], conn["writer"] = await asyncio.open_connection("127.0.0.1", port)
                return Holder(conn["writer"])

            step = Step("connect", lambda s: connect(s), lambda s: None)
            outcome = await Saga([step]).arun({})
            conn["writer"].close()
            return outcome
        finally:
            server.close()
            await server.wait_closed()

    outcome = asyncio.run(main())
    assert outcome.status is Status.COMMITTED and outcome.leaked == (), outcome


def test_work_held_in_an_asyncio_queue_is_in_doubt():
    """attack107 F4: a Queue's items were taken as its waiters (someone else's): the refund
    ran, then the charge landed, ``rolled_back``."""
    world: list[str] = []
    pool = ThreadPoolExecutor(1)

    def work() -> None:
        time.sleep(0.2)
        world.append("charge landed")

    def charge(state: Any) -> Any:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        queue.put_nowait(pool.submit(work))
        return queue

    async def main() -> Any:
        steps = [Step("charge", charge, lambda s: world.append("refund")),
                 Step("ship", lambda s: 1 / 0)]  # fmt: skip
        outcome = await Saga(steps, policy="continue").arun({})
        await asyncio.sleep(0.4)
        return outcome

    outcome = asyncio.run(main())
    assert world == ["charge landed"] and outcome.leaked == ("charge",), (world, outcome)


@pytest.mark.parametrize("number", ["int64", "float32", "Decimal", "Fraction"])
def test_durations_of_other_number_types_are_read_as_their_number(number):
    """attack107 F8: refused "must be a finite number of seconds > 0, got np.int64(1)"."""
    numpy = pytest.importorskip("numpy")
    one = {"int64": numpy.int64(1), "float32": numpy.float32(1.0), "Decimal": Decimal("1"),
           "Fraction": Fraction(1, 1)}[number]  # fmt: skip
    step = Step("a", lambda s: None, lambda s: None, undo_timeout=one)
    assert type(step.undo_timeout) in (int, float) and step.undo_timeout == 1
    retry = RetryPolicy(initial_delay=one, max_delay=one, multiplier=one, timeout=one)
    assert {type(getattr(retry, n)) for n in ("initial_delay", "max_delay", "multiplier",
                                              "timeout")} <= {int, float}  # fmt: skip
    rb = Rollback()
    with rb:
        rb.do("a", lambda: None, lambda: None, undo_timeout=one)
    assert rb.outcome is not None and rb.outcome.status is Status.COMMITTED


@pytest.mark.parametrize("register", ["before", "after"])
def test_a_ctrl_c_as_a_block_waits_for_a_thread_pools_job_waits_for_its_end(register):
    """attack107 F5: a ``ThreadPool.apply_async`` job (threads: no Ctrl-C stops them) was
    given up at once: the refund ran, then the charge landed, ``rolled_back``, no note."""
    import os
    import signal
    from multiprocessing.pool import ThreadPool

    world: list[str] = []
    pool = ThreadPool(1)

    def charge() -> None:
        time.sleep(0.3)
        world.append("charge landed")

    rb = Rollback()
    threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()  # (a real one: it
    # wakes the wait, as interrupt_main does not)
    with pytest.raises(KeyboardInterrupt), rb:
        rb.do("charge", lambda: pool.apply_async(charge), lambda: world.append("refund"),
              register=register)  # fmt: skip
    assert world == ["charge landed", "refund"], world
    assert rb.outcome is not None and rb.outcome.compensated == ("charge",), rb.outcome
    pool.close()
