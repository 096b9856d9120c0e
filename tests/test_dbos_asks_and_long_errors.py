"""attack308 F1, F2 on DBOS. F1: ``at_once=True`` asked a cancel function twice before the
first step and twice as each step returned, so a token true from its k-th question cut the
run earlier than ``saga.arun`` or ``saga.run(completion=...)`` would (nothing done at k=2).
F2: an error whose text is over 32,768 characters reached ``decide``, ``retry_on``, the dead
letters and ``Outcome.error`` as a stand-in, even in the process that raised it: a
``decide`` halted where ``saga.run`` rolled back, and a same-named class was retried (a
step's action called three times)."""

from __future__ import annotations

import asyncio

import pytest

from rollback_lessons import Parallel, RetryPolicy, Saga, Step, UndoPolicy
from rollback_lessons.runners.dbos.bounded import TEXT_LIMIT


def _saga(log: list[str]) -> Saga:
    def step(n: str) -> Step:
        return Step(n, lambda s: log.append(f"do {n}"), lambda s: log.append(f"undo {n}"))

    return Saga([step("a"), Parallel(step("b"), step("c")), step("d")])


def _counting(log: list[str], k: int):
    asked = [0]

    def cancel() -> bool:
        asked[0] += 1
        log.append(f"ask{asked[0]}")
        return asked[0] >= k

    return cancel


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6])
def test_at_once_asks_a_cancel_where_saga_run_and_arun_ask_it(dbos_runner, k) -> None:
    """Its branches end in the order they really end: the same as ``saga.run`` with that
    order played (``completion``), and as often asked as ``arun`` asks it."""

    def run(how: str, order: list[str] | None = None) -> tuple[object, ...]:
        log: list[str] = []
        saga, cancel = _saga(log), _counting(log, k)
        if how == "arun":
            out = asyncio.run(saga.arun({}, cancel=cancel))
        elif how == "completion":
            out = saga.run({}, cancel=cancel, completion=order)
        else:
            out = dbos_runner.run(saga, {}, cancel=cancel, at_once=True)
        asks = sum(1 for line in log if line.startswith("ask"))
        return out.status, out.completed, out.compensated, asks, sorted(log)

    at_once = run("at_once")
    played = run("completion", [*at_once[1], *(s for s in "abcd" if s not in at_once[1])])
    assert at_once == played, (at_once, played)
    assert at_once[3] == run("arun")[3]  # (asked as often as ``arun`` asks it)


class _Card(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message, code)
        self.code = code


class _OnlyCode7(UndoPolicy):
    """Retry an undo only for a card error of code 7: a rule the policy's fields cannot say."""

    def decide(self, attempt, error):  # type: ignore[no-untyped-def]
        if isinstance(error, _Card) and error.code == 7:
            return super().decide(attempt, error)
        return None


@pytest.mark.parametrize("length", [10, 2 * TEXT_LIMIT])
def test_a_long_errors_decide_sees_the_very_exception(dbos_runner, length) -> None:
    def saga() -> Saga:
        tries = [0]

        def undo_a(state) -> None:  # type: ignore[no-untyped-def]
            tries[0] += 1
            if tries[0] == 1:
                raise _Card("declined " + "." * length, 7)

        def b(state) -> None:  # type: ignore[no-untyped-def]
            raise ValueError("b")

        policy = _OnlyCode7(RetryPolicy(max_attempts=3, initial_delay=0.01))
        return Saga([Step("a", lambda s: None, undo_a), Step("b", b)], policy=policy)

    local, there = saga().run({}), dbos_runner.run(saga(), {})
    assert str(local.status) == str(there.status) == "rolled_back"
    assert there.compensated == local.compensated == ("a",)


def _same_name_classes() -> tuple[type[Exception], type[Exception]]:
    def made() -> type[Exception]:
        class Throttled(Exception):
            pass

        return Throttled

    return made(), made()


@pytest.mark.parametrize("length", [10, 2 * TEXT_LIMIT])
def test_a_long_error_of_a_class_the_retry_does_not_name_is_not_retried(dbos_runner, length):
    named, raised = _same_name_classes()
    error = raised("throttled " + "." * length, 42)

    def saga(world: list[str]) -> Saga:
        def call(state) -> None:  # type: ignore[no-untyped-def]
            world.append("call")
            raise error

        again = RetryPolicy(max_attempts=3, initial_delay=0.01, retry_on=(named,))
        return Saga([Step("a", lambda s: None, lambda s: world.append("undo a")),
                     Step("b", call, lambda s: None, retry=again)])  # fmt: skip

    here: list[str] = []
    there: list[str] = []
    local, out = saga(here).run({}), dbos_runner.run(saga(there), {})
    assert here == there == ["call", "undo a"]
    assert str(local.status) == str(out.status) == "rolled_back"
    assert out.error is error  # (its class, args and attributes: the very one)
    told = [e.details["error"] for e in out.events if "error" in e.details]
    assert all(len(t) <= max(TEXT_LIMIT, length + 100) for t in told)
    assert all(len(t) == TEXT_LIMIT for t in told) or length < TEXT_LIMIT
