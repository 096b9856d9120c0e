"""A Ctrl-C as the losing half of an ``arun`` branch's retry wait unwinds its cancel
(attack273 F3): ``_branches._wait`` races a sleep and the run's wake-up, each in a task of
its own, and cancels the loser; a KeyboardInterrupt raised as that cancel unwinds (after
``Event.wait``'s ``self._waiters.remove(fut)`` returns, where CPython checks for a signal)
was carried out as ``Escaped`` into a task nobody read: the saga committed, ``arun``
returned, the Ctrl-C swallowed. The losers' ends are awaited now, and it is raised."""

from __future__ import annotations

import asyncio
import asyncio.locks
import dis
import sys

from rollback_lessons import Parallel, RetryPolicy, Saga, Status, Step, VirtualClock

WAIT = asyncio.locks.Event.wait.__code__
with open(WAIT.co_filename, encoding="utf-8") as source:
    LINE = next(
        n
        for n, text in enumerate(source, 1)
        if "self._waiters.remove(fut)" in text and n > WAIT.co_firstlineno
    )


def test_a_ctrl_c_as_a_retry_waits_loser_unwinds_is_raised_never_swallowed():
    calls: list[str] = []
    undone: list[str] = []

    def act(name: str, fails: int = 0):  # type: ignore[no-untyped-def]
        def call(state):  # type: ignore[no-untyped-def]
            calls.append(name)
            if calls.count(name) <= fails:
                raise ConnectionError(f"{name} refused")

        return call

    fired: list[str] = []
    before: dict[int, str] = {}

    def tracer(frame, event, arg):  # type: ignore[no-untyped-def]
        if frame.f_code is not WAIT:
            return tracer if event == "call" else None
        frame.f_trace_opcodes = True
        if event == "opcode":
            task = asyncio.current_task()
            cancelling = task is not None and task.cancelling()
            after_the_remove = frame.f_lineno == LINE and before.get(id(frame)) == "CALL"
            if not fired and after_the_remove and cancelling:  # (the loser's cancel, unwinding)
                fired.append("fired")
                sys.settrace(None)
                raise KeyboardInterrupt
            before[id(frame)] = dis.opname[WAIT.co_code[frame.f_lasti]]
        return tracer

    d = Step("d", act("d", fails=1), lambda s: undone.append("d"), retry=RetryPolicy(3))
    parallel = Parallel(Step("b", act("b"), lambda s: undone.append("b")), d)
    saga = Saga([Step("a", act("a"), lambda s: undone.append("a")), parallel], clock=VirtualClock())

    async def main():  # type: ignore[no-untyped-def]
        sys.settrace(tracer)
        try:
            return await saga.arun({})
        finally:
            sys.settrace(None)

    try:
        out = asyncio.run(main())
    except KeyboardInterrupt as cut:
        outcome = getattr(cut, "outcome", None)
        assert outcome is not None and outcome.status is not Status.COMMITTED, outcome
        assert sorted(undone) == sorted(outcome.compensated) == ["a", "b"], (calls, outcome)
    else:
        raise AssertionError(f"the Ctrl-C was swallowed: {out.status}, fired {fired}")
    assert fired  # (the instant was reached)
