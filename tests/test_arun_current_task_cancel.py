"""Inside ``saga.arun``, a step or an ``on_event`` observer runs in a task of the engine's
own, so ``asyncio.current_task().cancel()`` there cancels that task, not arun's. It was taken
for asyncio.run's end (attack123 F2): the run went on and committed, or undid nothing, and
the caller got the package's private ``LoopEnded``. It is the run's cancel, as the README
says of "a cancel of arun's task asked ... by an observer, by the step itself": at every
event, the same world, outcome and events as a cancel of arun's own task."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from rollback_lessons import AsyncRollback, Parallel, Saga, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry

WORLD: list[list[str]] = [[]]  # (the current run's: a registered undo appends to it)
UNDO = Registry().add("undo_it", lambda step: WORLD[-1].append(f"undo {step}"))


def _saga(world: list[str], fail: bool, parallel: bool, on_event, journal: bool) -> Saga:
    def act(name: str):
        def do(state: dict) -> str:
            if fail and name == "c":
                raise RuntimeError("c fails")
            world.append(f"do {name}")
            return name

        return do

    def undo(name: str):
        return UNDO.bind(step=name) if journal else lambda state: world.append(f"undo {name}")

    a, b, c = (Step(n, act(n), undo(n)) for n in "abc")
    return Saga([a, Parallel(b, c)] if parallel else [a, b, c], on_event=on_event)


def _run(at: int, own: bool, fail: bool, parallel: bool, journal: Path | None, both=False) -> tuple:
    """Cancel at the ``at``-th event, the observer's own task (``own``) or arun's (``both``:
    then arun's too, or arun's twice): what the world, the caller and the events say."""
    world: list[str] = []
    WORLD.append(world)
    events: list[str] = []
    home: list[asyncio.Task] = []

    def heard(event) -> None:
        events.append(f"{event.kind}:{event.step}")
        if len(events) == at:
            (asyncio.current_task() if own else home[0]).cancel()  # type: ignore[union-attr]
            if both:
                home[0].cancel()

    saga = _saga(world, fail, parallel, heard, journal is not None)
    kw = {"journal": Journal(journal), "run_id": f"r{at}{own}"} if journal else {}

    async def main() -> tuple:
        task = asyncio.ensure_future(saga.arun({}, **kw))
        home.append(task)
        try:
            outcome = await task
            return ("returned", outcome.status, outcome.leaked, outcome.pending)
        except asyncio.CancelledError as exc:
            outcome = exc.outcome  # type: ignore[attr-defined]
            return ("cancelled", outcome.status, outcome.leaked, outcome.pending)

    said = asyncio.run(main())
    return said, world, events


@pytest.mark.parametrize("parallel", [False, True], ids=["list", "parallel"])
@pytest.mark.parametrize("fail", [False, True], ids=["commits", "fails"])
def test_a_cancel_of_the_task_an_observer_runs_in_is_arun_s(fail: bool, parallel: bool) -> None:
    _, _, events = _run(0, False, fail, parallel, None)
    for at in range(1, len(events) + 1):
        assert _run(at, True, fail, parallel, None) == _run(at, False, fail, parallel, None), at


@pytest.mark.parametrize("parallel", [False, True], ids=["list", "parallel"])
@pytest.mark.parametrize("fail", [False, True], ids=["commits", "fails"])
def test_its_own_task_and_arun_s_cancelled_are_arun_s_cancelled_twice(fail, parallel) -> None:
    """attack125 F1, F2: arun's task asked too, the engine's task's cancel was taken for
    asyncio.run's end (a private LoopEnded: nothing undone, or no outcome)."""
    _, _, events = _run(0, False, fail, parallel, None)
    for at in range(1, len(events) + 1):
        own = _run(at, True, fail, parallel, None, both=True)
        assert own == _run(at, False, fail, parallel, None, both=True), at


def test_with_a_journal_too(tmp_path: Path) -> None:
    _, _, events = _run(0, False, True, False, None)
    for at in range(1, len(events) + 1):
        own = _run(at, True, True, False, tmp_path / f"own{at}.db")
        assert own == _run(at, False, True, False, tmp_path / f"home{at}.db"), at


def _step_cancels(awaits: bool) -> tuple:
    world: list[str] = []

    def b(state: dict):
        world.append("do b")
        asyncio.current_task().cancel()  # type: ignore[union-attr]
        if not awaits:
            return "b"

        async def rest() -> str:
            await asyncio.sleep(0)  # (cut here: its own await)
            return "b"

        return rest()

    steps = [Step(n, (lambda s, n=n: world.append(f"do {n}")) if n != "b" else b,
                  lambda s, n=n: world.append(f"undo {n}")) for n in "abc"]  # fmt: skip

    async def main():
        with pytest.raises(asyncio.CancelledError) as raised:
            await Saga(steps).arun({})
        return raised.value.outcome  # type: ignore[attr-defined]

    return asyncio.run(main()), world


def test_a_step_that_cancels_its_task_as_it_returns_cancels_the_run() -> None:
    outcome, world = _step_cancels(awaits=False)
    assert outcome.status == "cancelled"
    assert world == ["do a", "do b", "undo b", "undo a"]  # (c never runs)


def test_a_step_cut_by_a_cancel_of_its_task_is_in_doubt_and_the_run_is_cancelled() -> None:
    """attack132 F2: taken for the step's failure, its effect stood, named nowhere."""
    outcome, world = _step_cancels(awaits=True)
    assert outcome.status == "rollback_incomplete" and outcome.leaked == ("b",)
    assert world == ["do a", "do b", "undo a"]  # (its undo not logged: it may have happened)


def _raised_by(saga: Saga) -> BaseException:
    """What ``saga.arun`` raised, a SIGALRM's handler cancelling the task it lands in (the
    steps and undos raise the signal themselves, in their own code)."""
    import signal

    previous = signal.signal(signal.SIGALRM, lambda *_: asyncio.current_task().cancel())

    async def main() -> BaseException:
        try:
            await saga.arun({})
        except BaseException as exc:
            return exc
        raise AssertionError("arun raised nothing")

    try:
        return asyncio.run(main())
    finally:
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("cut", ["pivot", "compensable"])
def test_a_signal_handler_s_cancel_cutting_a_step_after_its_effect_is_a_cut(cut) -> None:
    """attack132 F1: a real signal's handler calling ``current_task().cancel()`` as the pivot
    awaited, after its effect: a failure of the pivot, the step before it undone across it,
    the pivot named nowhere. Cut short, in doubt: halted, nothing undone across it."""
    import signal

    world: list[str] = []

    def act(name: str, cuts: bool):
        async def work(state: dict) -> str:
            await asyncio.sleep(0)
            world.append(f"do {name}")
            if cuts:
                signal.raise_signal(signal.SIGALRM)  # (its handler runs here, in this task)
            await asyncio.sleep(0)  # (the await the cancel cuts)
            return name

        return lambda state: work(state)

    steps = [
        Step("a", act("a", cut == "compensable"), lambda s: world.append("undo a")),
        Step("p", act("p", cut == "pivot"), None, kind="pivot"),
    ]

    raised = _raised_by(Saga(steps))
    outcome = raised.outcome  # type: ignore[attr-defined]
    assert type(raised) is asyncio.CancelledError
    if cut == "pivot":
        assert world == ["do a", "do p"]  # (nothing undone across the pivot)
        assert outcome.status == "halted" and outcome.leaked == ("p",)
        assert outcome.pending == ("a",)
    else:
        assert world == ["do a"] and outcome.leaked == ("a",)


@pytest.mark.parametrize("inside", ["timeout", "taskgroup"])
def test_a_cancel_a_step_keeps_to_itself_is_not_the_run_s(inside: str) -> None:
    """``asyncio.timeout`` and a ``TaskGroup`` cancel the step's task and take it back (3.11's
    TaskGroup leaves its count up): the run commits, as it did."""
    world: list[str] = []

    async def work() -> str:
        if inside == "timeout":
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.01):
                    await asyncio.sleep(5)
        else:

            async def boom() -> None:
                raise ValueError("a child fails")

            with pytest.raises(ExceptionGroup):
                async with asyncio.TaskGroup() as group:
                    group.create_task(boom())
                    group.create_task(asyncio.sleep(5))
        world.append("do b")
        return "b"

    steps = [Step(n, (lambda s, n=n: world.append(f"do {n}")) if n != "b" else (lambda s: work()),
                  lambda s, n=n: world.append(f"undo {n}")) for n in "abc"]  # fmt: skip
    outcome = asyncio.run(Saga(steps, on_event=lambda event: None).arun({}))
    assert outcome.status == "committed"
    assert world == ["do a", "do b", "do c"]


def test_a_cancel_asked_as_the_outcome_is_built_is_raised_with_it() -> None:
    """attack116 F3: a cancel of arun's task asked once the run was over, as its outcome was
    built (here by the state's snapshot; a signal handler's ``task.cancel()`` lands there
    too), ended the task cancelled, the committed outcome dropped: a bare CancelledError."""

    class State(dict):
        taken = 0

        def snapshot(self) -> dict:
            State.taken += 1
            if State.taken == 2:  # (the state after the run)
                asyncio.current_task().cancel()  # type: ignore[union-attr]
            return dict(self)

    async def main() -> BaseException:
        steps = [Step(n, lambda s: None, lambda s: None) for n in "ab"]
        with pytest.raises(asyncio.CancelledError) as raised:
            await asyncio.ensure_future(Saga(steps).arun(State(x=1)))
        return raised.value

    raised = asyncio.run(main())
    assert raised.outcome.status == "committed"  # type: ignore[attr-defined]
    assert raised.__notes__ == [
        "rollback: the cancel was heard once the saga had committed: nothing to undo"
    ]


def _cancel_as(function: str, main) -> object:
    """Run ``main()`` with its task cancelled as ``function`` of the package is called (where
    a signal handler calling ``task.cancel()`` runs: a function's entry)."""
    import sys

    fired: list[bool] = []

    def tracer(frame, event, arg):
        code = frame.f_code
        ours = "rollback_lessons" in code.co_filename
        if event == "call" and not fired and code.co_name == function and ours:
            fired.append(True)
            asyncio.current_task().cancel()  # type: ignore[union-attr]
        return None

    async def traced():
        sys.settrace(tracer)
        try:
            return await main()
        finally:
            sys.settrace(None)

    said = asyncio.run(traced())
    assert fired
    return said


def test_a_failed_async_block_cancelled_as_it_finishes_raises_the_cancel() -> None:
    """attack116 F4: a cancel asked of an AsyncRollback's task as its rollback finished was
    swallowed, the body's error raised, the task's ``cancel()`` answered True for nothing."""

    class Boom(Exception):
        pass

    world: list[str] = []

    async def main() -> BaseException:
        try:
            async with AsyncRollback() as rb:
                await rb.do("a", lambda: world.append("a"), lambda: world.append("-a"))
                raise Boom("body")
        except BaseException as exc:
            return exc
        raise AssertionError("the block raised nothing")

    raised = _cancel_as("finish", main)
    assert type(raised) is asyncio.CancelledError and world == ["a", "-a"]


def test_arun_cancelled_as_it_finishes_raises_the_cancel_with_its_outcome() -> None:
    async def main() -> BaseException:
        steps = [Step(n, lambda s: None, lambda s: None) for n in "ab"]
        try:
            await Saga(steps).arun({})
        except BaseException as exc:
            return exc
        raise AssertionError("arun raised nothing")

    raised = _cancel_as("finish", main)
    assert type(raised) is asyncio.CancelledError
    assert raised.outcome.status == "committed"  # type: ignore[attr-defined]


def _signal_like(function: str, event: str, nth: int, own: bool, retry: bool = False) -> tuple:
    """A parallel saga (a, (b, [c, d]), e; d fails) whose task running the package's
    ``function`` is cancelled at its ``nth`` ``event`` (as a signal handler calling
    ``asyncio.current_task().cancel()`` there would), or arun's task then (not ``own``)."""
    import sys

    from rollback_lessons import RetryPolicy, VirtualClock

    world: list[str] = []
    home: list[asyncio.Task] = []
    seen = [0]

    def tracer(frame, what, arg):
        code = frame.f_code
        if code.co_name == function and "rollback_lessons" in code.co_filename:
            return local(frame, what, arg)  # (its "call" is told here)
        return None

    def local(frame, what, arg):
        if what == event:
            seen[0] += 1
            if seen[0] == nth:
                (asyncio.current_task() if own else home[0]).cancel()  # type: ignore[union-attr]
        return local

    def act(name: str):
        def do(state: dict) -> None:
            if name == "d":
                raise RuntimeError("d fails")
            world.append(f"do {name}")

        return do

    step = {n: Step(n, act(n), lambda s, n=n: world.append(f"undo {n}")) for n in "abce"}
    step["d"] = Step("d", act("d"), retry=RetryPolicy(max_attempts=2) if retry else None)
    saga = Saga([step["a"], Parallel(step["b"], [step["c"], step["d"]]), step["e"]])

    async def main() -> tuple:
        task = asyncio.ensure_future(saga.arun({}, clock=VirtualClock(), on_event=lambda e: None))
        home.append(task)
        sys.settrace(tracer)
        try:
            outcome = await task
            return ("returned", outcome.status)
        except asyncio.CancelledError as exc:
            return ("cancelled", getattr(getattr(exc, "outcome", None), "status", "NO OUTCOME"))
        finally:
            sys.settrace(None)

    return asyncio.run(main()), world, seen[0]


def test_a_cancel_asked_of_a_branch_as_it_returns_its_answer_is_arun_s() -> None:
    """attack126 F1: asked after the last look (a signal handler's), the branch's (or the
    run's own task's) answer was dropped with it: LoopEnded, nothing undone."""
    *_, passes = _signal_like("answered", "return", 0, True)
    assert passes >= 5
    for nth in range(1, passes + 1):
        said, world, _ = _signal_like("answered", "return", nth, True)
        assert said[0] == "cancelled" and said[1] != "NO OUTCOME", (nth, said)
        assert sorted(world) == sorted(["do a", "do b", "do c", "undo c", "undo b", "undo a"])


def test_a_cancel_asked_of_a_retry_wait_s_task_is_arun_s() -> None:
    """attack126 F3: the wait's own task cancelled ended the wait; the step was tried again
    and the cancel was dropped (rolled_back, returned)."""
    own = _signal_like("asleep", "call", 1, True, retry=True)
    assert own[0] == ("cancelled", "cancelled")
    assert own[:2] == _signal_like("asleep", "call", 1, False, retry=True)[:2]


@pytest.mark.parametrize("timeout", [None, 5.0], ids=["no timeout", "a timeout"])
def test_a_signal_handler_s_cancel_cutting_an_undo_leaves_it_pending(timeout) -> None:
    """attack132 (the rollback's side): taken for the undo's failure, it was a dead letter
    and the next undo ran, the cut one perhaps done; as by a Ctrl-C with no journal: what
    is left is pending, the CancelledError raised with the outcome."""
    import signal

    world: list[str] = []

    def undo_b(state: dict):
        async def work() -> None:
            await asyncio.sleep(0)
            world.append("undo b")
            signal.raise_signal(signal.SIGALRM)
            await asyncio.sleep(0)

        return work()

    def boom(state: dict) -> None:
        raise RuntimeError("c fails")

    steps = [
        Step("a", lambda s: world.append("do a"), lambda s: world.append("undo a")),
        Step("b", lambda s: world.append("do b"), undo_b, undo_timeout=timeout),  # (133 F1:
        # with a timeout, in a task of its own: its dead letter, the next undo run)
        Step("c", boom),
    ]

    raised = _raised_by(Saga(steps))
    assert type(raised) is asyncio.CancelledError
    outcome = raised.outcome  # type: ignore[attr-defined]
    assert outcome.status == "halted" and outcome.pending == ("b", "a")
    assert world == ["do a", "do b", "undo b"]  # (a's undo never run after the cut one)


@pytest.mark.parametrize("timeout", [None, 5.0], ids=["no timeout", "a timeout"])
def test_an_async_block_s_undo_cut_by_a_cancel_of_its_task_leaves_the_rest_pending(timeout):
    """attack133 F2: in an AsyncRollback's rollback (a task of the engine's own), a signal
    handler's ``current_task().cancel()`` cutting an undo was taken for asyncio.run's end:
    the private LoopEnded raised, "asyncio.run ended the loop". It is the block's cancel: the
    undo cut short, the rest pending, the block's CancelledError raised once that is done."""
    import signal

    world: list[str] = []
    previous = signal.signal(signal.SIGALRM, lambda *_: asyncio.current_task().cancel())

    def act(name: str):
        async def do() -> str:
            await asyncio.sleep(0)
            world.append(f"do {name}")
            return name

        return do

    def undo(name: str):
        async def work() -> None:
            await asyncio.sleep(0)
            world.append(f"undo {name}")
            if name == "b":
                signal.raise_signal(signal.SIGALRM)
            await asyncio.sleep(0)

        return work

    blocks: list[AsyncRollback] = []

    async def main() -> None:
        async with AsyncRollback() as rb:
            blocks.append(rb)
            await rb.do("a", act("a"), undo("a"), undo_timeout=timeout)
            await rb.do("b", act("b"), undo("b"), undo_timeout=timeout)
            raise RuntimeError("the block fails")

    try:
        with pytest.raises(asyncio.CancelledError):
            asyncio.run(main())
    finally:
        signal.signal(signal.SIGALRM, previous)
    outcome = blocks[0].outcome
    assert outcome.status == "halted" and outcome.pending == ("b", "a")
    assert world == ["do a", "do b", "undo b"]
