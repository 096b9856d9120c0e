"""attack22's engine findings (issue 25: H1, M2, L1, M1), each a test that failed on the code
before its fix."""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import threading
import warnings
from unittest import mock

import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st
from test_block_ended import _CtrlCWhileWaiting

from rollback_lessons import (
    AsyncRollback,
    RetryPolicy,
    Rollback,
    Saga,
    Status,
    Step,
    StepStillRunning,
)
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry, compensation
from rollback_lessons.errors import RemoteError
from rollback_lessons.policies import matches
from rollback_lessons.runners.stepfunctions.asl import known_subclasses
from rollback_lessons.runners.wire import ErrorRecord, RetrySpec
from rollback_lessons.verdicts import timed_out

# -- H1: two steps of one with-block at once ----------------------------------------------


def _booking(world: list[str], journal: bool):
    """A registry with one compensation that records what it undoes (journal) or None."""
    registry = Registry()

    @compensation("h1_cancel", registry)
    def cancel(k: str, idempotency_key: str | None = None) -> None:
        world.append(f"undo {k}")

    if journal:
        return registry, lambda k: cancel.bind(k=k)
    return registry, lambda k: lambda: world.append(f"undo {k}")


@pytest.mark.parametrize("journal", [False, True], ids=["memory", "journal"])
def test_gathered_steps_refused_and_the_running_one_awaited_then_undone(journal, tmp_path):
    """``asyncio.gather(rb.do(car), rb.do(flight))``: flight was refused with a raw
    MachineError, the block rolled back at once without car, car's effect landed after an
    outcome (and a journal) saying rolled_back. Now flight is refused before its action,
    one typed line, and the block waits for car, then undoes it with the rest."""
    world: list[str] = []
    registry, undo = _booking(world, journal)
    j = Journal(tmp_path / "j.db") if journal else None

    def act(k: str, turns: int):
        async def action() -> str:
            world.append(f"start {k}")
            for _ in range(turns):  # (a few turns of the loop: car still runs meanwhile)
                await asyncio.sleep(0)
            world.append(f"do {k}")
            return k

        return action

    rb = AsyncRollback(journal=j, run_id="r1" if j else None)

    async def main() -> None:
        async with rb:
            await rb.do("room", act("room", 0), undo("room"))
            await asyncio.gather(rb.do("car", act("car", 5), undo("car")),
                                 rb.do("flight", act("flight", 0), undo("flight")))  # fmt: skip

    with pytest.raises(StepStillRunning, match="one step at a time") as raised:
        asyncio.run(main())
    assert "'flight' began while step 'car' still runs" in str(raised.value)
    assert world == ["start room", "do room", "start car", "do car", "undo car", "undo room"]
    outcome = rb.outcome
    assert outcome.status is Status.ROLLED_BACK and outcome.compensated == ("car", "room")
    if j is not None:
        assert [(s.id, s.status) for s in j.sagas()] == [("r1", "rolled_back")]
        assert {(u.step, u.state) for u in j.undos("r1")} == {("room", "done"), ("car", "done")}
        assert not recover(j, registry).recovered
        j.close()


def test_a_step_left_running_by_the_block_is_awaited_before_the_commit():
    """A step started as a task the block never awaited: the block committed while it ran
    (its effect after a commit that did not count it). Now the block ends once it returns."""
    world: list[str] = []

    async def car() -> None:
        for _ in range(3):
            await asyncio.sleep(0)
        world.append("do car")

    rb = AsyncRollback()

    async def main() -> None:
        async with rb:
            asyncio.get_running_loop().create_task(rb.do("car", car, lambda: None))
            await asyncio.sleep(0)  # (car begins)
        world.append("block ended")

    asyncio.run(main())
    assert world == ["do car", "block ended"]
    assert rb.outcome.status is Status.COMMITTED and rb.outcome.completed == ("car",)


@pytest.mark.parametrize(
    "how", ["recorded", "watched", "journal"], ids=["recorded", "watched", "journal"]
)
def test_a_step_from_another_thread_is_refused_and_the_running_one_awaited(how, tmp_path):
    """``Rollback.do`` from two threads: the second was refused with a raw MachineError (or,
    on the recorded path, could run unseen), and the block rolled back without waiting for
    the first, whose effect landed after ``rolled_back``. Now: refused, one typed line,
    before its action; the block waits for the running step and undoes it."""
    world: list[str] = []
    _, undo = _booking(world, how == "journal")
    j = Journal(tmp_path / "j.db") if how == "journal" else None
    started, go = threading.Event(), threading.Event()

    def car() -> str:
        world.append("start car")
        started.set()
        go.wait(30)
        world.append("do car")
        return "car"

    rb = Rollback(
        journal=j, run_id="r1" if j else None,
        on_event=(lambda e: None) if how == "watched" else None,
    )  # fmt: skip
    worker = threading.Thread(target=lambda: rb.do("car", car, undo("car")))
    refused: list[BaseException] = []
    with pytest.raises(LookupError):
        with rb:
            rb.do("room", lambda: world.append("do room"), undo("room"))
            worker.start()
            assert started.wait(30)
            try:
                rb.do("flight", lambda: world.append("do flight"), undo("flight"))
            except StepStillRunning as exc:
                refused.append(exc)
            threading.Timer(0.05, go.set).start()  # (car returns, now or while the block waits)
            raise LookupError("charge refused")
    worker.join(30)
    assert len(refused) == 1 and "one step at a time" in str(refused[0])
    assert world == ["do room", "start car", "do car", "undo car", "undo room"]
    assert rb.outcome.status is Status.ROLLED_BACK and rb.outcome.compensated == ("car", "room")
    if j is not None:
        assert {(u.step, u.state) for u in j.undos("r1")} == {("room", "done"), ("car", "done")}
        j.close()


# -- M2: a bound undo's arguments are copied when bound ------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=3)
    ),
    max_leaves=8,
)


def _mutate(value: object) -> None:
    """Change every list and dict inside ``value`` in place (a step filling what it bound)."""
    if isinstance(value, list):
        for item in value:
            _mutate(item)
        value.append("added later")
    elif isinstance(value, dict):
        for item in value.values():
            _mutate(item)
        value["added later"] = 1


@settings(max_examples=examples(30), deadline=None)
@given(args=st.dictionaries(st.sampled_from(["ids", "rows", "key"]), _json, max_size=3))
def test_a_bound_undo_runs_with_its_arguments_as_bound_as_recover_would(args):
    """The undo ran in process with the caller's list as it was at rollback time, while the
    journal wrote it as bound (register="before") and recover called it so: rows filled
    after ``bind`` were deleted in every test and left after every crash. Now the arguments
    are the copy JSON gives back at ``bind``: what runs in process is what recover reads."""
    registry, seen = Registry(), []

    @compensation("m2_delete", registry)
    def delete(**kw: object) -> None:
        seen.append(kw)

    as_bound = json.loads(json.dumps(args))
    bound = delete.bind(**args)
    _mutate(args)
    bound()
    assert seen == [as_bound] and json.loads(bound.to_json())["args"] == as_bound


def test_rows_recorded_after_bind_are_not_seen_in_process_either(tmp_path):
    """attack22's M2 case: ``rb.do("rows", add_rows, delete_rows.bind(ids=created),
    register="before")`` with ``add_rows`` filling ``created``: in process the undo deleted
    [1, 2, 3], recover (from the journal) nothing. Now both delete what was bound, [], so
    the mistake shows in the first test (bind after the step, or register after it)."""
    registry, deleted = Registry(), []

    @compensation("m2_delete_rows", registry)
    def delete_rows(ids: list[int], idempotency_key: str | None = None) -> None:
        deleted.append(list(ids))

    created: list[int] = []
    j = Journal(tmp_path / "j.db")
    with pytest.raises(RuntimeError), Rollback(journal=j, run_id="r1") as rb:
        rb.do(
            "rows",
            lambda: created.extend([1, 2, 3]),
            delete_rows.bind(ids=created),
            register="before",
        )
        raise RuntimeError("the next step failed")
    assert deleted == [[]] and [u.args for u in j.undos("r1")] == [{"ids": []}]
    j.close()


# -- L1: bad arguments refused before the journal's row ------------------------------------


async def _async_no() -> bool:
    return False


def _generator_no():
    yield False


class _AsyncIsSet:
    async def is_set(self) -> bool:
        return False


class _GeneratorCall:  # (attack230 F2: refused as a bound generator method is)
    def __call__(self, *args):
        yield False


class _PartialGeneratorCall:  # (attack234 F4: a partialmethod, seen bound only)
    def _answer(self, *args):
        yield False

    __call__ = functools.partialmethod(_answer)


@pytest.mark.parametrize("driver", ["run", "arun"])
@pytest.mark.parametrize(
    "bad",
    [{"cancel": 123}, {"cancel": "yes"}, {"completion": 5}, {"completion": iter("ab")},
     {"cancel": _async_no}, {"cancel": _generator_no}, {"cancel": _AsyncIsSet()},
     {"cancel": _GeneratorCall()}, {"on_event": _GeneratorCall()},
     {"cancel": _PartialGeneratorCall()}, {"on_event": _PartialGeneratorCall()},
     {"cancel": staticmethod(_async_no)}, {"on_event": staticmethod(_async_no)}],
    ids=["cancel=123", "cancel=str", "completion=5", "completion=iter", "cancel=async",
         "cancel=generator", "cancel=async-is_set", "cancel=generator-call",
         "on_event=generator-call", "cancel=partialmethod", "on_event=partialmethod",
         "cancel=staticmethod-async", "on_event=staticmethod-async"],
)  # fmt: skip
def test_bad_arguments_are_refused_before_the_journal_takes_the_run_id(driver, bad, tmp_path):
    """``cancel=123`` was refused only after the saga's row was written (running, owned by
    this live process: the run id taken, the corrected call refused "ids must be unique");
    ``completion=5`` raised a raw "'int' object is not iterable". Now each is one typed
    line before anything is written, and the corrected call runs. A cancel function that is
    async (or a generator function) answered a coroutine, read as True: every run was
    cancelled before its first step, a "never awaited" warning the only sign (attack210 F1)."""
    if driver == "arun" and "completion" in bad:
        pytest.skip("arun takes no completion")
    registry, calls = Registry(), []

    @compensation("l1_undo", registry)
    def undo(k: str, idempotency_key: str | None = None) -> None:
        calls.append(f"undo {k}")

    saga = Saga([Step(n, lambda s, n=n: calls.append(f"do {n}"), undo.bind(k=n)) for n in "ab"])
    j = Journal(tmp_path / "j.db")

    def go(**kw: object) -> object:
        if driver == "run":
            return saga.run({}, journal=j, run_id="r1", **kw)
        return asyncio.run(saga.arun({}, journal=j, run_id="r1", **kw))

    refused = (
        r"^(cancel must be an Event|(cancel|on_event) is an? \w+ function"
        r"|completion must be a list)"
    )
    with pytest.raises(TypeError, match=refused):
        go(**bad)
    assert j.sagas() == [] and calls == []
    assert go().status is Status.COMMITTED and calls == ["do a", "do b"]
    j.close()


def _wrapped(fn):
    @functools.wraps(fn)
    def plain():
        return fn()

    return plain


@pytest.mark.parametrize("driver", ["run", "arun"])
@pytest.mark.parametrize(
    "disguised",
    [lambda: _wrapped(_async_no), lambda: lambda: _async_no(), lambda: lambda: _generator_no()],
    ids=["wraps-async", "lambda-async", "lambda-generator"],
)
def test_a_cancel_answering_a_coroutine_fails_the_run_never_cancels_it(driver, disguised):
    """attack230 F1: an async check behind a plain function or a lambda passed the up-front
    check, and its coroutine was read as True: every run cancelled before its first step,
    the coroutine never closed. Its answer is refused as it comes: the run fails with a
    TypeError, as with any error of its cancel function, before any step."""
    calls: list[str] = []
    saga = Saga([Step(n, lambda s, n=n: calls.append(n), lambda s: None) for n in "ab"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (no "coroutine ... was never awaited")
        if driver == "run":
            outcome = saga.run({}, cancel=disguised())
        else:
            outcome = asyncio.run(saga.arun({}, cancel=disguised()))
        gc.collect()
    assert outcome.status is Status.ROLLED_BACK and calls == [], (outcome, calls)
    assert isinstance(outcome.error, TypeError)
    assert "returned a" in str(outcome.error) and "not True or False" in str(outcome.error)


# -- M1: errors matched by their class, the same on every engine ---------------------------


def _library(module: str, name: str, *bases: type) -> type:
    """A class as a library defines it: its own module, maybe a built-in's name."""
    return type(name, bases or (Exception,), {"__module__": module, "__qualname__": name})


_CLASSES = [
    ConnectionError, ConnectionResetError, TimeoutError, OSError, ValueError, Exception,
    _library("requests.exceptions", "ConnectionError", OSError),  # (requests': an OSError)
    _library("redis.exceptions", "ConnectionError"),
    _library("redis.exceptions", "TimeoutError"),
    _library("mylib", "Reset", ConnectionResetError),
    _library("otherlib", "Reset"),
]  # fmt: skip


@settings(max_examples=examples(80), deadline=None)
@given(
    raised=st.sampled_from(_CLASSES),
    types=st.lists(st.sampled_from(_CLASSES), min_size=1, max_size=3).map(tuple),
)
def test_an_error_from_another_engine_matches_a_policy_as_isinstance_does(raised, types):
    """Step Functions, DBOS, Temporal and BPMN carry an error as data (``ErrorRecord``) and
    matched a policy's types by bare class name: a library's own ``ConnectionError`` was
    retried there under ``retry_on=(ConnectionError,)`` and not in process, and a pivot's
    library ``TimeoutError`` halted there and rolled back in process. Now names are
    qualified (bare only for Python's own), so matching by name is ``isinstance``, also
    through a policy carried as data (``RetrySpec``) and Step Functions' ``ErrorEquals``."""
    error = raised("boom")
    remote = ErrorRecord.of(error, "a").to_exception()
    assert matches(remote, types) is isinstance(error, types)
    carried = RetrySpec.of(RetryPolicy(retry_on=types)).policy().retry_on
    assert matches(remote, carried) is isinstance(error, types)
    assert timed_out(remote) is timed_out(error)
    written = known_subclasses(RetrySpec.of(RetryPolicy(retry_on=types)).retry_on)
    assert (ErrorRecord.of(error, "a").name in written) is isinstance(error, types)


def test_names_written_before_they_were_qualified_read_as_before():
    """A journal, a workflow history or a policy kept before names were qualified has every
    name bare: such a lineage with a name that is not Python's own still matches by
    ``__name__``; a kept bare name that is not Python's own (a stand-in) matches a class of
    that name, qualified or not; Python's own are the same either way."""
    requests_error = _library("requests.exceptions", "ConnectionError", OSError)
    old = RemoteError("ConnectionError", "x", ("ConnectionError", "RequestException", "OSError",
                                               "Exception", "BaseException"))  # fmt: skip
    assert matches(old, (requests_error,)) and matches(old, (OSError,))
    kept = RetrySpec(3, 0.1, 2.0, 10.0, retry_on=["MyError"]).policy().retry_on
    for lineage in (("MyError", "Exception"), ("app.errors.MyError", "Exception")):
        assert matches(RemoteError("MyError", "x", lineage), kept)
    assert not matches(RemoteError("Other", "x", ("app.Other", "Exception")), kept)
    builtin = RemoteError("ConnectionError", "x", ("ConnectionError", "OSError", "Exception"))
    assert matches(builtin, (ConnectionError,)) and not matches(builtin, (requests_error,))


@pytest.mark.parametrize("register", ["after", "before"])
def test_a_ctrl_c_while_the_block_waits_for_a_step_reports_it_leaked(register):
    """A Ctrl-C while the block waits for a step another thread runs: the block stops
    waiting, undoes what it can and says the step still ran (leaked, never rolled_back: its
    effect may land after any undo); the Ctrl-C is re-raised; the step's own ``do``, when it
    ends, says the block ended first (one typed line, not the machine's error)."""
    world: list[str] = []
    started, go = threading.Event(), threading.Event()
    ended: list[BaseException] = []

    def car() -> str:
        started.set()
        go.wait(30)
        world.append("do car")
        return "car"

    def work() -> None:
        try:
            rb.do("car", car, lambda: world.append("undo car"), register=register)
        except BaseException as exc:
            ended.append(exc)

    rb = Rollback()
    rb._Waiter = _CtrlCWhileWaiting  # type: ignore[assignment,misc]
    worker = threading.Thread(target=work)
    with pytest.raises(KeyboardInterrupt) as raised:
        with rb:
            rb.do("room", lambda: world.append("do room"), lambda: world.append("undo room"))
            worker.start()
            assert started.wait(30)
            raise LookupError("charge refused")
    go.set()
    worker.join(30)
    outcome = rb.outcome
    assert outcome.status is Status.ROLLBACK_INCOMPLETE and outcome.leaked == ("car",)
    assert "undo room" in world and world[-1] == "do car"
    assert any("'car' still ran" in n for n in raised.value.__notes__)
    assert len(ended) == 1 and isinstance(ended[0], StepStillRunning)
    assert "ended after its block did" in str(ended[0])


@pytest.mark.parametrize("made", [_GeneratorCall, _PartialGeneratorCall])
def test_an_action_or_undo_whose_call_is_a_generator_is_refused_before_anything(made):
    """attack234 F5: a generator function was refused as a step's action or undo before
    anything ran; an object whose __call__ is one ran the steps before it, then failed."""
    calls: list[str] = []
    first = Step("first", lambda s: calls.append("first"), lambda s: calls.append("undo"))
    with pytest.raises(TypeError, match="action of step 'x' is a generator function"):
        Saga([first, Step("x", made())]).run({})
    with pytest.raises(TypeError, match="undo of step 'x' is a generator function"):
        Saga([first, Step("x", lambda s: None, made())]).run({})
    with pytest.raises(TypeError, match="undo of step 'x' is a generator function"):
        with Rollback() as rb:
            rb.do("x", lambda: calls.append("x"), made())
    assert calls == []


async def _async_step(state=None) -> None:
    return None


def _generator_step(state=None):
    yield None


@pytest.mark.parametrize(
    "made",
    [lambda: staticmethod(_async_step), lambda: staticmethod(_generator_step),
     lambda: mock.create_autospec(_async_step)],
    ids=["staticmethod-async", "staticmethod-generator", "autospec-async"],
)  # fmt: skip
def test_a_wrapped_async_or_generator_function_is_refused_when_the_step_is_made(made):
    """attack238: a staticmethod of an async or generator function (inspect sees through
    neither it nor a partial around it, as Saga binds the state) and create_autospec of an
    async function (a plain function that returns AsyncMock's coroutine) were taken as a
    Step's action, undo or on_event: the step rolled back as it ran, the observer heard
    nothing. Each is refused before anything runs, as the bare function is."""
    calls: list[str] = []
    with pytest.raises(TypeError, match=r"action of step 'x' is an? (async|generator) function"):
        Step("x", made())
    with pytest.raises(TypeError, match=r"undo of step 'x' is an? (async|generator) function"):
        Step("x", lambda s: None, made())
    with pytest.raises(TypeError, match=r"^on_event is an? (async|generator) function"):
        Saga([Step("a", lambda s: calls.append("a"))], on_event=made()).run({})
    with pytest.raises(TypeError, match=r"undo of step 'x' is an? (async|generator) function"):
        with Rollback() as rb:
            rb.do("x", lambda: calls.append("x"), made())
    assert calls == []
    with Rollback() as rb:  # (a sync function's autospec is a plain function, taken)
        rb.do("x", lambda: calls.append("x"), mock.create_autospec(lambda: None))
    assert calls == ["x"]
