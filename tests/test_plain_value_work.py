"""A call that returns a plain value holding work that had begun (a list or dict of
Futures, a thread alive, ``ThreadPool.imap``, ``pool.map``'s or ``as_completed``'s
generator): the run does not wait for what a value holds, so the step is in doubt, its work
going on: never taken as done with its undo run before the work lands (attack105 F1: the
refund ran first, ``rolled_back``), nor as a refusal retried (F2: three charges), nor an
undo called again (three refunds). A value holding only ended work is a result."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from multiprocessing.pool import ThreadPool
from typing import Any

import pytest

from rollback_lessons import RetryPolicy, Rollback, Saga, Status, Step, UndoPolicy
from rollback_lessons.errors import MayHaveRun

RETRY = RetryPolicy(max_attempts=3, initial_delay=0.01)
SHAPES = ["list", "dict", "thread", "imap", "executor_map", "as_completed", "genexpr"]


def _handing_back(shape: str, world: list[str], what: str) -> Any:
    pool = ThreadPoolExecutor(2)

    def work(*_: object) -> None:
        time.sleep(0.2)
        world.append(f"{what} landed")

    def call(*_: object) -> Any:
        world.append(f"{what} called")
        if shape == "list":
            return [pool.submit(work)]
        if shape == "dict":
            return {"visa": pool.submit(work)}
        if shape == "thread":
            thread = threading.Thread(target=work)
            thread.start()
            return thread
        if shape == "imap":
            return ThreadPool(1).imap(work, ["visa"])
        if shape == "executor_map":
            return pool.map(work, ["visa"])
        if shape == "as_completed":
            return as_completed([pool.submit(work)])
        return (f.result() for f in [pool.submit(work)])

    return call


def _landed(world: list[str], line: str) -> None:
    """Wait for the work handed back to land (0.2 s; 10 s at most, as a loaded machine may
    take: a fixed 0.4 s missed it once in a CI run)."""
    deadline = time.monotonic() + 10
    while line not in world and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.05)  # (and anything made again beside it: seen)


def _run(driver: str, steps: list[Step], policy: Any = "continue") -> Any:
    if driver == "arun":
        return asyncio.run(Saga(steps, policy=policy).arun({}))
    if driver == "saga.run":
        return Saga(steps, policy=policy).run({})
    rb = Rollback()
    with pytest.raises(MayHaveRun), rb:
        for step in steps:
            rb.do(step.name, lambda f=step.action: f({}), lambda f=step.undo: f({}),
                  retry=step.retry)  # fmt: skip
    return rb.outcome


@pytest.mark.parametrize("driver", ["saga.run", "arun", "Rollback"])
@pytest.mark.parametrize("shape", SHAPES)
def test_an_action_handing_back_a_value_holding_begun_work_is_in_doubt_once(shape, driver):
    world: list[str] = []
    charge = _handing_back(shape, world, "charge")
    steps = [
        Step("charge", charge, lambda s: world.append("refund"), retry=RETRY),
        Step("email", lambda s: 1 / 0, lambda s: None),
    ]
    outcome = _run(driver, steps)
    _landed(world, "charge landed")
    assert world.count("charge called") == 1 and world.count("charge landed") == 1, world
    assert "refund" not in world, world  # (never undone before, or beside, its work)
    assert outcome.status is Status.ROLLBACK_INCOMPLETE and outcome.leaked == ("charge",)
    assert isinstance(outcome.error, MayHaveRun), outcome.error
    assert "holding work that had begun" in str(outcome.error)


@pytest.mark.parametrize("shape", SHAPES)
def test_an_undo_handing_back_a_value_holding_begun_work_is_not_called_again(shape):
    world: list[str] = []
    refund = _handing_back(shape, world, "refund")
    steps = [Step("charge", lambda s: None, refund), Step("email", lambda s: 1 / 0)]
    outcome = _run("saga.run", steps, policy=UndoPolicy(RETRY))
    _landed(world, "refund landed")
    assert world == ["refund called", "refund landed"], world
    [dead] = outcome.dead_letters
    assert (dead.step, dead.attempts, type(dead.error)) == ("charge", 1, MayHaveRun)


def test_a_value_holding_only_ended_work_is_a_result():
    """No false doubt: done Futures, a thread that ended, a daemon thread, an imap read to
    its end, an exhausted generator."""
    pool = ThreadPoolExecutor(1)
    done = pool.submit(lambda: 7)
    done.result()
    ended = threading.Thread(target=lambda: None)
    ended.start()
    ended.join()
    daemon = threading.Thread(target=time.sleep, args=(0.3,), daemon=True)
    daemon.start()
    mapped = ThreadPool(1).imap(abs, [-1])
    assert list(mapped) == [1]
    value = {"futures": [done], "thread": ended, "daemon": daemon, "imap": mapped}
    outcome = Saga([Step("a", lambda s: value, lambda s: None)]).run({})
    assert outcome.status is Status.COMMITTED, outcome


class _Receipt:
    __slots__ = ("__job",)  # (a private slot: stored by its mangled name)

    def __init__(self, job: Any) -> None:
        self.__job = job


@pytest.mark.parametrize("shape", ["chain", "islice", "tee", "mappingproxy", "numpy",
                                   "private_slot", "call_later"])  # fmt: skip
def test_more_shapes_holding_begun_work_are_in_doubt(shape):
    """attack106 F5-F7: an itertools object, a MappingProxyType, a numpy object array, a
    private slot, a ``loop.call_later`` handle: the refund ran before the charge landed."""
    import itertools
    from types import MappingProxyType

    world: list[str] = []
    pool = ThreadPoolExecutor(1)

    def work() -> None:
        time.sleep(0.2)
        world.append("charge landed")

    def charge(state: Any) -> Any:  # (arun's step runs in the loop: call_later reaches it)
        if shape == "call_later":
            return asyncio.get_running_loop().call_later(0.2, world.append, "charge landed")
        future = pool.submit(work)
        if shape == "chain":
            return itertools.chain([future])
        if shape == "islice":
            return itertools.islice([future], 1)
        if shape == "tee":
            return itertools.tee(iter([future]))[0]
        if shape == "mappingproxy":
            return MappingProxyType({"visa": future})
        if shape == "numpy":
            numpy = pytest.importorskip("numpy")
            held = numpy.empty(1, dtype=object)
            held[0] = future
            return held
        return _Receipt(future)

    outcome = arun_charge_then_fail(charge, world)
    assert world == ["charge landed"], world
    assert outcome.status is Status.ROLLBACK_INCOMPLETE and outcome.leaked == ("charge",)


def arun_charge_then_fail(charge: Any, world: list[str]) -> Any:
    """``arun`` of charge (its undo noting "refund"), then a step that fails; its outcome,
    read once the work a charge may hold has had time to land (0.4 s)."""

    async def main() -> Any:
        steps = [Step("charge", charge, lambda s: world.append("refund")),
                 Step("ship", lambda s: 1 / 0)]  # fmt: skip
        outcome = await Saga(steps, policy="continue").arun({})
        await asyncio.sleep(0.4)
        return outcome

    return asyncio.run(main())


def _ends_within(seconds: float, run: Any) -> Any:
    """``run()``'s value, which must come within ``seconds`` (a hang fails, never hangs)."""
    box: list[Any] = []
    worker = threading.Thread(target=lambda: box.append(run()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert box, f"no end within {seconds} s"
    return box[0]


@pytest.mark.parametrize("driver", ["saga.run", "arun", "Rollback"])
@pytest.mark.parametrize("shape", ["Mock", "MagicMock", "nested Mock", "nested MagicMock",
                                   "xmlrpc proxy", "nested xmlrpc proxy"])  # fmt: skip
def test_a_result_answering_any_name_is_a_plain_result_asked_nothing(shape, driver):
    """attack106 F1-F3: a Mock taken for an asyncio Future hung every driver; the walk of a
    result holding one called it (a MagicMock for ever, 9 GB); an XML-RPC proxy was sent
    requests (59), one of which failed the step. None is asked anything: a result."""
    import xmlrpc.client
    from dataclasses import dataclass
    from unittest.mock import MagicMock, Mock

    sent: list[str] = []

    class Recording(xmlrpc.client.Transport):
        def request(self, host: Any, handler: Any, body: Any, verbose: bool = False) -> Any:
            sent.append(xmlrpc.client.loads(body)[1] or "?")
            raise xmlrpc.client.Fault(1, "no such method")

    @dataclass
    class Booking:
        number: int
        client: Any

    if "xmlrpc" in shape:
        client: Any = xmlrpc.client.ServerProxy("http://127.0.0.1:9", transport=Recording())
    else:
        client = MagicMock() if "MagicMock" in shape else Mock()
    value = Booking(1, client) if shape.startswith("nested") else client
    steps = [Step("book", lambda s: value, lambda s: None)]
    if driver == "arun":
        outcome = _ends_within(30, lambda: asyncio.run(Saga(steps).arun({})))
    elif driver == "saga.run":
        outcome = _ends_within(30, lambda: Saga(steps).run({}))
    else:
        rb = Rollback()

        def block() -> Any:
            with rb:
                rb.do("book", lambda: value, lambda: None)
            return rb.outcome

        outcome = _ends_within(30, block)
    assert outcome.status is Status.COMMITTED, outcome
    assert sent == [] and ("xmlrpc" in shape or client.mock_calls == [])


@pytest.mark.parametrize("held", ["current task", "event", "queue", "lock"])
def test_asyncio_objects_someone_else_waits_on_are_no_begun_work(held):
    """attack106 F4: a result holding the task it ran in, or an Event, Queue or Lock another
    task waits on, made a saga whose every step succeeded ``rollback_incomplete``."""
    from dataclasses import dataclass

    @dataclass
    class Conn:
        gate: Any

    async def main() -> Any:
        gate: Any = {"event": asyncio.Event, "queue": asyncio.Queue, "lock": asyncio.Lock}.get(
            held, lambda: None
        )()
        if held == "lock":
            await gate.acquire()
        waiter = asyncio.create_task(
            gate.wait() if held == "event" else gate.get() if held == "queue"
            else gate.acquire() if held == "lock" else asyncio.sleep(0)
        )  # fmt: skip
        await asyncio.sleep(0)
        value = (
            (lambda s: Conn(asyncio.current_task()))
            if held == "current task"
            else (lambda s: Conn(gate))
        )
        outcome = await Saga([Step("connect", value, lambda s: None)]).arun({})
        waiter.cancel()
        return outcome

    outcome = asyncio.run(main())
    assert outcome.status is Status.COMMITTED and outcome.leaked == (), outcome
