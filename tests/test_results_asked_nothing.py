"""What a call returns is looked into by its type alone (attack107): a Mock of a Future is
no Future (it hung arun, AsyncRollback and recover for ever), a lazy value is not loaded
(a query ran; a loader that failed was called begun work), an object's own
``__getattribute__`` is not asked; a stream, a Manager's proxy are no begun work, and an
``asyncio.Queue``'s items are looked into. Numbers of other types are durations too."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, ClassVar
from unittest.mock import Mock

import pytest
from test_plain_value_work import _ends_within, _Receipt, arun_charge_then_fail

from rollback_lessons import AsyncRollback, RetryPolicy, Rollback, Saga, Status, Step
from rollback_lessons.errors import MayHaveRun


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


@pytest.mark.parametrize("held", ["writer", "transport"])
def test_an_open_connections_writer_is_no_begun_work(held):
    """attack107 F3: a result holding an open connection's writer (its protocol's futures
    not done while it is open) made a committed saga ``rollback_incomplete``."""

    async def main() -> Any:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            conn: dict[str, Any] = {}

            async def connect(state: Any) -> Any:
                conn["reader"], conn["writer"] = await asyncio.open_connection("127.0.0.1", port)
                writer = conn["writer"]  # (its transport too: attack109 F4)
                return Holder(writer if held == "writer" else writer.transport)

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

    outcome = arun_charge_then_fail(charge, world)
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


class _Falsy:
    """A result whose length reads 0 while the work it holds still runs."""

    def __init__(self, job: Any) -> None:
        self.job = job

    def __len__(self) -> int:
        return 0


def test_an_async_blocks_result_is_never_asked_if_it_is_true():
    """attack108 F1: AsyncRollback asked ``done and checked(done)``: numpy's array failed a
    step that charged (its truth ambiguous), and a result of length 0 holding begun work
    was taken as done (the refund ran first)."""
    numpy = pytest.importorskip("numpy")
    world: list[str] = []
    pool = ThreadPoolExecutor(1)

    def work() -> None:
        time.sleep(0.2)
        world.append("charge landed")

    async def block(result: Any) -> Any:
        rb = AsyncRollback()
        with pytest.raises((RuntimeError, MayHaveRun)):
            async with rb:
                await rb.do("charge", lambda: result(), lambda: world.append("refund"))
                raise RuntimeError("later failure")
        return rb.outcome

    outcome = asyncio.run(block(lambda: numpy.array([10.0, 20.0])))
    assert outcome.status is Status.ROLLED_BACK and outcome.compensated == ("charge",), outcome
    world.clear()
    outcome = asyncio.run(block(lambda: _Falsy(pool.submit(work))))
    time.sleep(0.4)
    assert outcome.leaked == ("charge",) and world == ["charge landed"], (outcome, world)


@pytest.mark.parametrize("driver", ["Rollback", "AsyncRollback"])
def test_work_whose_end_is_more_begun_work_is_never_told_done_after_an_interruption(driver):
    """attack108 F2: a Ctrl-C (or a cancel) as a block waited for pool work that ended by
    handing back a value holding more begun work: told done, refunded, then the charge
    landed; ``rolled_back`` with no note."""
    import os
    import signal

    world: list[str] = []
    pool = ThreadPoolExecutor(2)

    def charge() -> None:
        time.sleep(0.5)
        world.append("charge landed")

    def outer() -> Any:
        time.sleep(0.3)
        return Holder(pool.submit(charge))

    def refund() -> None:
        world.append("refund")

    if driver == "Rollback":
        rb: Any = Rollback()
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
        with pytest.raises(KeyboardInterrupt), rb:
            rb.do("charge", lambda: pool.submit(outer), refund, register="before")
    else:

        async def main() -> Any:
            block = AsyncRollback()

            async def body() -> None:
                async with block:
                    await block.do("charge", lambda: pool.submit(outer), refund,
                                   register="before")  # fmt: skip

            task = asyncio.create_task(body())
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return block

        rb = asyncio.run(main())
    time.sleep(0.8)  # (in doubt, its work going on: leaked, said; an undo logged before it
    # runs, "undone, but it still ran", as for a wait given up)
    assert "charge landed" in world and rb.outcome.leaked == ("charge",), (world, rb.outcome)
    assert [n for n in rb.outcome.notes if "may land after any undo" in n], rb.outcome.notes


def test_an_asyncio_subprocess_running_is_begun_work():
    """attack108 F3: every asyncio transport and protocol was taken as a connection's own,
    so a child process the action started (``create_subprocess_exec``) was missed: the
    refund ran, then the child's charge landed."""
    import sys

    world: list[str] = []

    async def main() -> Any:
        async def start() -> Any:
            return await asyncio.create_subprocess_exec(sys.executable, "-c",
                                                        "import time; time.sleep(0.3)")  # fmt: skip

        steps = [Step("charge", lambda s: start(), lambda s: world.append("refund")),
                 Step("ship", lambda s: 1 / 0)]  # fmt: skip
        outcome = await Saga(steps, policy="continue").arun({})
        await asyncio.sleep(0.6)
        return outcome

    outcome = asyncio.run(main())
    assert world == [] and outcome.leaked == ("charge",), (world, outcome)


class _Paged(list):  # type: ignore[type-arg]
    """A list whose own iteration fetches a page (a call): never made by the walk."""

    def __iter__(self) -> Any:
        raise AssertionError("the walk fetched a page")


class _Counted(dict):  # type: ignore[type-arg]
    def values(self) -> Any:
        raise AssertionError("the walk called values()")


class _LoadsDict:
    """An object whose type defines ``__dict__`` as a property that loads (a slots proxy)."""

    __slots__ = ("load",)

    loaded: ClassVar[list[str]] = []

    @property
    def __dict__(self) -> Any:  # type: ignore[override]
        _LoadsDict.loaded.append("loaded")
        return {}


@pytest.mark.parametrize("shape", ["list subclass", "dict subclass", "__dict__ property"])
def test_containers_own_methods_are_never_called_and_the_walk_is_bounded(shape):
    """attack108 F4, F5: a dict subclass's ``values()``, a list subclass's ``__iter__``, a
    ``__dict__`` property were called (and 1,000 views of one 100,000-key dict took 836 MB:
    what is queued is bounded now too)."""
    pool = ThreadPoolExecutor(1)
    future = pool.submit(time.sleep, 0.3)
    value: Any = {
        "list subclass": lambda: _Paged([future]),
        "dict subclass": lambda: _Counted(visa=future),
        "__dict__ property": lambda: _LoadsDict(),
    }[shape]()
    outcome = Saga([Step("a", lambda s: value, lambda s: None)]).run({})
    if shape in ("list subclass", "dict subclass"):  # (its items read by the builtin's own)
        assert outcome.leaked == ("a",), outcome
    else:
        assert outcome.status is Status.COMMITTED, outcome
    assert _LoadsDict.loaded == []
    future.result()


def test_durations_are_checked_everywhere_and_numpy_bool_is_a_bool():
    """attack108 F8, F9: Temporal's ``step_timeout`` and ``halt_wait`` were never checked
    (-5, nan or 'ten' hung the run past any cancel); np.True_ was one second; Journal
    refused np.int64 with a false line; to_asl refused it as "not an int"."""
    numpy = pytest.importorskip("numpy")
    from rollback_lessons.errors import InvalidPipelineError
    from rollback_lessons.runners.stepfunctions import to_asl
    from rollback_lessons.runners.temporal.plan import plan_for

    saga = Saga([Step("a", lambda s: None, lambda s: None)], name="d")
    for bad in (-5, float("nan"), "ten", True, numpy.True_):
        with pytest.raises(InvalidPipelineError, match="step_timeout must be a finite"):
            plan_for(saga, step_timeout=bad)
        with pytest.raises(InvalidPipelineError, match="halt_wait must be a finite"):
            plan_for(saga, halt_wait=bad)
    with pytest.raises(InvalidPipelineError, match="step_timeout must be at most"):
        plan_for(saga, step_timeout=1e14)  # (attack109 F6: past timedelta's end, it hung)
    plan = plan_for(saga, step_timeout=numpy.int64(5), halt_wait=Decimal("2"))
    assert (plan.step_timeout, plan.halt_wait) == (5, 2.0)
    assert type(plan.step_timeout) is int and type(plan.halt_wait) is float
    with pytest.raises(InvalidPipelineError, match=r"got np\.True_"):
        Step("a", lambda s: None, lambda s: None, undo_timeout=numpy.True_)
    assert to_asl(saga, timeout=numpy.int64(5))["States"]


def test_a_journals_timeout_of_numpys_type_is_its_number(tmp_path):
    numpy = pytest.importorskip("numpy")
    from rollback_lessons.durable.journal import Journal

    with Journal(tmp_path / "j.db", timeout=numpy.int64(1)) as journal:
        assert journal.path.exists()


@pytest.mark.parametrize("bad", [Decimal("-1"), Fraction(-1, 3), Decimal("2.5")])
def test_a_refused_timeout_is_named_as_it_was_given(tmp_path, bad):
    """Journal's and to_asl's refusals named the number they converted ("got -1.0" for
    Decimal('-1')), not the value the caller wrote."""
    from rollback_lessons.durable.journal import Journal
    from rollback_lessons.errors import InvalidPipelineError
    from rollback_lessons.runners.stepfunctions import to_asl

    if bad >= 0:  # (a Journal waits 2.5 s; AWS's TimeoutSeconds is whole seconds)
        with Journal(tmp_path / "j.db", timeout=bad):
            pass
    else:
        with pytest.raises(ValueError, match=re.escape(f"got {bad!r}")):
            Journal(tmp_path / "j.db", timeout=bad)
        assert not (tmp_path / "j.db").exists()  # (refused before any file is touched)
    saga = Saga([Step("a", lambda s: None, lambda s: None)], name="d")
    with pytest.raises(InvalidPipelineError, match=re.escape(f"got {bad!r}")):
        to_asl(saga, timeout=bad)


class _Remote(dict):  # type: ignore[type-arg]
    """A mapping whose reads are remote calls (logged): never made by the walk."""

    calls: ClassVar[list[str]] = []

    def keys(self) -> Any:
        _Remote.calls.append("keys")
        return super().keys()

    def __iter__(self) -> Any:
        _Remote.calls.append("iter")
        return super().__iter__()


class _ChainOfMine(__import__("itertools").chain):  # type: ignore[misc]
    pass


@pytest.mark.parametrize("shape", ["mappingproxy", "SimpleQueue", "chain subclass",
                                   "exception args", "cell", "dict iterator"])  # fmt: skip
def test_c_containers_are_read_by_their_own_traversal(shape):
    """attack109 F1-F3: a mappingproxy's mapping was asked keys() and __iter__; work held in
    a SimpleQueue, an itertools subclass, an exception's args or a closure cell was missed
    (the refund ran first); a dict iterator's reduce copied all it had left (1,000 of them:
    6.9 GB)."""
    import queue
    import types

    pool = ThreadPoolExecutor(1)
    future = pool.submit(time.sleep, 0.3)
    _Remote.calls.clear()
    value: Any = {
        "mappingproxy": lambda: types.MappingProxyType(_Remote(visa=future)),
        "SimpleQueue": lambda: _queued(queue.SimpleQueue(), future),
        "chain subclass": lambda: _ChainOfMine([future]),
        "exception args": lambda: RuntimeError("declined", future),
        "cell": lambda: types.CellType(future),
        "dict iterator": lambda: iter({"visa": future}.items()),
    }[shape]()
    outcome = Saga([Step("a", lambda s: Holder(value), lambda s: None)]).run({})
    assert outcome.leaked == ("a",) and _Remote.calls == [], (outcome, _Remote.calls)
    future.result()


def _queued(q: Any, item: Any) -> Any:
    q.put(item)
    return q


class _Tagged(list):  # type: ignore[type-arg]
    pass


@pytest.mark.parametrize("shape", ["list subclass attribute", "function default",
                                   "exception attribute", "defaultdict factory"])  # fmt: skip
def test_work_held_beside_a_builtins_items_is_found(shape):
    """attack110 F2: a pool job in an attribute of a list subclass, a lambda's default
    (the loop fix ``lambda f=f:``), an exception's attribute or a defaultdict's factory was
    missed: the refund ran first."""
    from collections import defaultdict

    pool = ThreadPoolExecutor(1)
    future = pool.submit(time.sleep, 0.3)
    value: Any
    if shape == "list subclass attribute":
        value = _Tagged()
        value.job = future
    elif shape == "function default":
        value = lambda f=future: f  # noqa: E731
    elif shape == "exception attribute":
        value = RuntimeError("declined")
        value.job = future  # type: ignore[attr-defined]
    else:
        value = defaultdict(lambda: future)
    outcome = Saga([Step("a", lambda s: Holder(value), lambda s: None)]).run({})
    assert outcome.leaked == ("a",), outcome
    future.result()


@pytest.mark.parametrize("role", ["action", "undo"])
def test_a_primed_generator_ran_to_a_yield_and_is_in_doubt(role):
    """attack110 F3, F4: a generator begun (primed) was said "its body never ran": the
    charge before its first yield stood unreported, a refund so returned was made three
    times under a retry policy."""
    made: list[str] = []

    def primed(what: str) -> Any:
        def body() -> Any:
            made.append(what)
            yield

        gen = body()
        next(gen)
        return gen

    if role == "action":
        steps = [Step("charge", lambda s: primed("charge"), lambda s: None),
                 Step("ship", lambda s: 1 / 0)]  # fmt: skip
        outcome = Saga(steps).run({})
        assert outcome.leaked == ("charge",) and made == ["charge"], outcome
    else:
        steps = [Step("charge", lambda s: None, lambda s: primed("refund")),
                 Step("ship", lambda s: 1 / 0)]  # fmt: skip
        outcome = Saga(steps, policy=__import__("rollback_lessons").UndoPolicy(
            RetryPolicy(max_attempts=3, initial_delay=0.01))).run({})  # fmt: skip
        assert made == ["refund"], made
        [dead] = outcome.dead_letters
        assert "never ran" not in str(dead.error), dead


def test_a_serving_asyncio_server_is_no_begun_work():
    """attack110 F1: a result holding a server serving forever was taken as begun work."""

    async def main() -> Any:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        serving = asyncio.create_task(server.serve_forever())
        await asyncio.sleep(0)
        try:
            steps = [Step("listen", lambda s: Holder(server), lambda s: None)]
            return await Saga(steps).arun({})
        finally:
            serving.cancel()
            server.close()
            await server.wait_closed()

    outcome = asyncio.run(main())
    assert outcome.status is Status.COMMITTED, outcome


def test_numpy_numbers_in_a_result_are_leaves_and_work_beside_them_is_found():
    """attack111 F1: every class attribute of every object was read: a list of 100,000
    numpy numbers took 5 s a step (the event loop stalled as long in AsyncRollback). Numpy
    numbers are known to hold nothing; a layout is read once per type. Work beside them is
    still found."""
    numpy = pytest.importorskip("numpy")
    from rollback_lessons import _wrapped

    numbers = list(numpy.random.rand(1000))
    assert not _wrapped.holds_work(Holder(numbers))
    assert type(numbers[0]) in _wrapped.LEAVES
    pool = ThreadPoolExecutor(1)
    future = pool.submit(time.sleep, 0.2)
    assert _wrapped.holds_work(Holder([*numbers, _Receipt(future)]))
    future.result()
