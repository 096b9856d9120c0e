"""A ``sys.exit`` (a SIGTERM handler's) or a second Ctrl-C while ``arun`` records its pivot
as done: the pivot ran, so nothing before it is undone; the run halts for a person, the
steps after it left to finish forward, and the exception raised says so (attack116 F1: at
any of 15 lines of ``GraphMachine.step_done`` the step before the pivot was undone after
the email went, with no word, and the journal then hid it). Raised at each line in turn, as
a real signal's handler runs there (a loop's back-edge, a call)."""

from __future__ import annotations

import asyncio
import inspect
import sys
from typing import Any

import pytest

from rollback_lessons import RetryPolicy, Saga, Step, VirtualClock
from rollback_lessons.schedule import GraphMachine

CODE = GraphMachine.step_done.__code__
LINES, FIRST = inspect.getsourcelines(GraphMachine.step_done)
BODY = range(FIRST + 1, FIRST + len(LINES))


def _traced_pivot_run(world: list[str], tracer: Any) -> Any:
    """a, pivot p, then r (retriable, failing twice), run by ``arun`` under ``asyncio.run``
    with ``tracer`` set: its outcome (or what it raised)."""

    def fail(state: Any) -> None:
        raise RuntimeError("r down")

    steps = [Step("a", lambda s: world.append("a"), lambda s: world.append("undo a")),
             Step("p", lambda s: world.append("p"), kind="pivot"),
             Step("r", fail, kind="retriable", retry=RetryPolicy(max_attempts=2))]  # fmt: skip

    async def main() -> Any:
        sys.settrace(tracer)
        try:
            return await Saga(steps, clock=VirtualClock()).arun({})
        finally:
            sys.settrace(None)

    return asyncio.run(main())


def _run(line: int, kind: type[BaseException]) -> tuple[list[str], Any]:
    world: list[str] = []

    fired: list[int] = []

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code is not CODE:
            return None

        def local(frame: Any, event: str, arg: Any) -> Any:
            at = event == "line" and not fired and frame.f_lineno == line
            if at and frame.f_locals.get("step") == "p":
                fired.append(line)
                raise kind()
            return local

        return local

    try:
        return world, _traced_pivot_run(world, tracer)
    except (KeyboardInterrupt, SystemExit) as exc:
        return world, exc


@pytest.mark.parametrize("kind", [SystemExit, KeyboardInterrupt])
def test_an_interrupt_as_arun_records_its_pivot_done_never_undoes_before_it(kind):
    cut = 0
    for line in BODY:
        world, ended = _run(line, kind)
        assert world == ["a", "p"], (line, world)  # (never "undo a" once p ran)
        if isinstance(ended, BaseException):
            cut += 1
            said = " ".join(getattr(ended, "__notes__", []))
            assert "left for a person: a" in said and "forward r" in said, (line, said)
    assert cut >= 10  # (the lines the pivot's record runs through were each cut)


def _branch_cut(k: int, kind: type[BaseException]) -> tuple[list[str], BaseException, int]:
    """The pivot saga under ``asyncio.run``, ``kind`` raised as its k-th branch task starts
    (its coroutine's first instant, where a real signal's handler runs)."""
    from rollback_lessons import _graph_drive

    world: list[str] = []
    starts = [0]

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        code = frame.f_code
        at = event == "call" and code.co_name == "branch"  # (its start, not a resume:
        at = at and frame.f_lineno == code.co_firstlineno  # its first line, not an await's)
        if at and code.co_filename == _graph_drive.__file__:
            starts[0] += 1
            if starts[0] == k:
                sys.settrace(None)
                raise kind()
        return None

    with pytest.raises(kind) as raised:
        _traced_pivot_run(world, tracer)
    return world, raised.value, starts[0]


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_as_an_arun_branch_starts_carries_the_runs_outcome(kind, k):
    """attack116 F5: raised as a branch's task began (a real signal's handler runs at a
    coroutine's first instant), asyncio raised it out of the loop bare, the run's notes only
    in asyncio's log ("unhandled exception during asyncio.run() shutdown")."""
    world, raised, starts = _branch_cut(k, kind)
    assert starts == k, starts  # (each branch's start was cut in turn)
    assert getattr(raised, "outcome", None) is not None, (k, world, raised.__notes__)
    assert raised.__notes__, k
    assert world in (["a", "p"], ["a", "undo a"], []), world  # (never across the pivot)
