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


def _run(line: int, kind: type[BaseException]) -> tuple[list[str], Any]:
    world: list[str] = []

    def fail(state: Any) -> None:
        raise RuntimeError("r down")

    steps = [Step("a", lambda s: world.append("a"), lambda s: world.append("undo a")),
             Step("p", lambda s: world.append("p"), kind="pivot"),
             Step("r", fail, kind="retriable", retry=RetryPolicy(max_attempts=2))]  # fmt: skip
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

    async def main() -> Any:
        sys.settrace(tracer)
        try:
            return await Saga(steps, clock=VirtualClock()).arun({})
        finally:
            sys.settrace(None)

    try:
        return world, asyncio.run(main())
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
