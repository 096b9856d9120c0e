"""Observers and steps that do odd things, told the same in ``saga.run`` and ``saga.arun``
(attack124): an observer's GeneratorExit fails the run there (arun ran on and committed,
"came once the saga had committed"); an async or generator observer is refused, one that
returns a coroutine said on stderr (it heard no event, said nowhere); a step's
StopIteration out of ``await rb.do`` is Python's RuntimeError, the step's own its cause."""

from __future__ import annotations

import asyncio

import pytest

from rollback_lessons import AsyncRollback, Rollback, Saga, Step


def _saga(world: list[str], fail: bool) -> Saga:
    def act(name: str):
        def do(state: dict) -> None:
            if fail and name == "c":
                raise ValueError("c fails")
            world.append(f"do {name}")

        return do

    return Saga([Step(n, act(n), lambda s, n=n: world.append(f"undo {n}")) for n in "abc"])


def _one(mode: str, at: int, fail: bool) -> tuple:
    world: list[str] = []
    seen: list[str] = []

    def heard(event) -> None:
        seen.append(f"{event.kind}:{event.step}")
        if len(seen) == at:
            raise GeneratorExit()

    saga = _saga(world, fail)
    try:
        if mode == "run":
            outcome = saga.run({}, on_event=heard)
        else:
            outcome = asyncio.run(saga.arun({}, on_event=heard))
        return ("returned", outcome.status, world)
    except GeneratorExit as exc:
        committed = any("committed" in note for note in getattr(exc, "__notes__", ()))
        return ("raised", committed, world)


@pytest.mark.parametrize("fail", [False, True], ids=["commits", "fails"])
def test_an_observer_s_generator_exit_fails_arun_where_it_fails_run(fail: bool) -> None:
    for at in range(1, 17):  # (every event, and past the last)
        assert _one("arun", at, fail) == _one("run", at, fail), at


@pytest.mark.parametrize("kind", ["async", "generator", "async generator"])
@pytest.mark.parametrize("where", ["Saga", "run", "arun", "Rollback", "AsyncRollback"])
def test_an_observer_whose_call_never_runs_its_body_is_refused(kind: str, where: str) -> None:
    async def coroutine_observer(event) -> None:
        pass

    def generator_observer(event):
        yield event

    async def async_generator_observer(event):
        yield event

    observer = {
        "async": coroutine_observer,
        "generator": generator_observer,
        "async generator": async_generator_observer,
    }[kind]
    world: list[str] = []
    with pytest.raises(TypeError, match=r"on_event is an? .*function: .*body would never run"):
        if where == "Saga":
            Saga([Step("a", lambda s: None)], on_event=observer)
        elif where == "run":
            _saga(world, False).run({}, on_event=observer)
        elif where == "arun":
            asyncio.run(_saga(world, False).arun({}, on_event=observer))
        elif where == "Rollback":
            Rollback(on_event=observer)
        else:
            AsyncRollback(on_event=observer)
    assert world == []


def test_an_observer_that_returns_a_coroutine_is_said_on_stderr(capfd) -> None:
    heard: list[str] = []

    async def later(event) -> None:
        heard.append(event.kind)

    outcome = Saga([Step("a", lambda s: None, lambda s: None)], on_event=lambda e: later(e)).run({})
    assert outcome.status == "committed" and heard == []
    err = capfd.readouterr().err.splitlines()
    assert err == [
        f"rollback_lessons: on_event callback for {kind} returned a coroutine that nothing "
        "runs: its body never ran"
        for kind in ("step_start", "step_done", "undo_registered", "committed")
    ]


def test_a_step_s_stop_iteration_out_of_await_do_is_pythons_runtime_error() -> None:
    world: list[str] = []

    def exhausted() -> None:
        next(iter([]))

    async def main() -> BaseException:
        try:
            async with AsyncRollback() as rb:
                await rb.do("a", lambda: world.append("a"), lambda: world.append("-a"))
                await rb.do("b", exhausted, None)
        except BaseException as exc:
            return exc
        raise AssertionError("the block raised nothing")

    raised = asyncio.run(main())
    assert type(raised) is RuntimeError and type(raised.__cause__) is StopIteration
    assert world == ["a", "-a"]
