"""An error whose ``repr`` raises a SystemExit (README: "heard as that interrupt"): the step
is told cut short (its effect leaked), the rollback runs, the interrupt is raised after it,
with a retry policy and in a graph as in a plain list, in process and on Temporal and DBOS;
and the runner runs the next saga (issue 25, harden50).

Before: in process, a step with a retry policy, or in a graph, said ``rolled_back`` with b's
effect neither undone nor reported (the repr was asked once the machine had moved on: the
step no longer running, the Ctrl-C not heard as cutting it short); a SystemExit whose own
repr raises left its Temporal activity without an end (its record raised making it): that
saga never returned."""

from __future__ import annotations

import asyncio

import pytest

from rollback_lessons import RetryPolicy, Saga, Step

pytestmark = pytest.mark.usefixtures("no_run_left_behind")


ARMED: list[bool] = []
"""Set while a saga runs: out of it the errors' reprs answer (pytest's report asks them)."""


class ReprExits(Exception):
    """An error whose repr raises SystemExit."""

    def __repr__(self) -> str:
        if ARMED:
            raise SystemExit(7)
        return "ReprExits(disarmed)"


class ExitReprExits(SystemExit):
    """A SystemExit whose repr (and str) raise another."""

    def __repr__(self) -> str:
        if ARMED:
            raise SystemExit(9)
        return "ExitReprExits(disarmed)"

    __str__ = __repr__


ERRORS = {"repr_exits": lambda: ReprExits("x"), "exit_repr_exits": lambda: ExitReprExits(2)}
MODES = {
    "list": ({}, False),
    "retry": ({}, True),
    "graph": ({"undo_order": "reverse_start"}, False),
}


def _saga(world: list[str], error: str, where: str, retry: bool, name: str, seen: list) -> Saga:
    """a, b, c; ``where`` = "step": b's action raises the error (after its effect); "undo": c
    fails and b's undo raises it."""

    def act(step):
        def action(state):
            world.append(f"do {step}")
            if step == "b" and where == "step":
                raise ERRORS[error]()
            if step == "c" and where == "undo":
                raise ValueError("c")

        return action

    def undo(step):
        def undo_(state):
            if step == "b" and where == "undo":
                raise ERRORS[error]()
            world.append(f"undo {step}")

        return undo_

    policy = RetryPolicy(max_attempts=3, initial_delay=0.01, retry_on=(Exception,))
    steps = [Step(s, act(s), undo(s), retry=policy if retry and s == "b" else None) for s in "abc"]
    return Saga(steps, name=name, on_event=lambda e: seen.append((e.kind, e.step, e.details)))


def _story(run, error: str, where: str, mode: str, name: str):
    """(the world, the type raised, its notes, the events) of ``run(saga, **options)``."""
    options, retry = MODES[mode]
    world: list[str] = []
    seen: list = []
    ARMED.append(True)
    try:
        run(_saga(world, error, where, retry, name, seen), **options)
    except BaseException as exc:  # (what it raised is the story)
        return world, type(exc), getattr(exc, "__notes__", None), seen
    finally:
        ARMED.clear()
    raise AssertionError("the run returned: an interrupt is raised once the rollback is over")


def _in_process(error, where, mode):
    return _story(lambda saga, **o: saga.run({}, **o), error, where, mode, "local")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("error", ERRORS)
def test_a_step_cut_short_by_a_repr_leaks_its_effect_in_every_form(error, mode):
    """The same story with a retry policy and in a graph as in a plain list: b cut short,
    its effect leaked (no undo logged for it), a undone, the interrupt raised after it."""
    world, raised, notes, seen = _in_process(error, "step", mode)
    assert world == ["do a", "do b", "undo a"]
    assert raised is (SystemExit if error == "repr_exits" else ExitReprExits)  # (heard first)
    assert notes == ["rollback: not undone (no undo logged for it): b"]
    failed = [d for kind, step, d in seen if (kind, step) == ("step_failed", "b")]
    assert failed == [{"error": "SystemExit(7)" if error == "repr_exits" else "SystemExit(9)",
                       "after_effect": True}]  # fmt: skip
    assert seen[-1][2]["status"] == "rollback_incomplete"


CASES = [(e, w, m) for e in ERRORS for w in ("step", "undo") for m in MODES]


def _on_temporal(on):
    def run(saga, **options):
        async def scenario(runner):
            try:  # (caught here: a SystemExit at a task's top stops its event loop, asyncio's)
                async with asyncio.timeout(60):  # (before: an activity that never ended)
                    return await runner.run(saga, {}, **options)
            except BaseException as exc:
                return exc

        told = on(scenario)
        if isinstance(told, BaseException):
            raise told
        return told

    return run


@pytest.mark.parametrize(("error", "where", "mode"), CASES)
def test_temporal_tells_a_repr_interrupt_as_saga_run_and_runs_the_next_saga(
    on_temporal, error, where, mode
):
    name = f"t-{error}-{where}-{mode}".replace("_", "-")
    story = _story(_on_temporal(on_temporal), error, where, mode, name)
    assert story == _in_process(error, where, mode)
    world: list[str] = []
    plain = _saga(world, error, "none", False, f"{name}-next", [])
    assert on_temporal(lambda runner: runner.run(plain, {})).status == "committed"
    assert world == ["do a", "do b", "do c"]


@pytest.mark.parametrize(("error", "where", "mode"), CASES)
def test_dbos_tells_a_repr_interrupt_as_saga_run(dbos_runner, error, where, mode):
    """DBOS makes its record by the same rule (``hosted.interrupted``)."""
    run = lambda saga, **o: dbos_runner.run(saga, {}, **o)  # noqa: E731
    name = f"d-{error}-{where}-{mode}".replace("_", "-")
    assert _story(run, error, where, mode, name) == _in_process(error, where, mode)


@pytest.fixture(scope="module")
def sf_runner():
    from rollback_lessons.runners.stepfunctions import StepFunctionsRunner

    with StepFunctionsRunner.start() as runner:
        yield runner


def _on_engine(run):
    """``run(saga, **options)``, its Step Functions note told as ``saga.run``'s: a run it
    stops (an undo's interrupt) says so first, then ``saga.run``'s words."""

    def on(saga, **options):
        try:
            return run(saga, **options)
        except BaseException as exc:
            said = getattr(exc, "__notes__", [])
            if said and said[0].startswith("Step Functions: the execution "):
                assert " stop" in said[0].split(";")[0], said
                joined = len(said) == 1  # (what is in effect, else saga.run's notes after it)
                exc.__notes__ = ["rollback: " + said[0].split("; ", 1)[1]] if joined else said[1:]
            raise

    return on


@pytest.mark.parametrize(("error", "where", "mode"), CASES)
@pytest.mark.parametrize("engine", ["sf", "bpmn"])
def test_step_functions_and_bpmn_tell_a_repr_interrupt_as_saga_run(
    sf_runner, engine, error, where, mode
):
    """harden50: untested there; an undo's told as the execution stopped, "done, not
    undone" of the undo cut short, and no event heard by the list form's observers."""
    from rollback_lessons.runners.bpmn import run_explicit

    if engine == "sf":
        run = lambda saga, **o: sf_runner.run(saga, {}, timeout=60, **o)  # noqa: E731
    elif mode == "retry":  # (a list's form runs each task once: the graph form retries)
        run = lambda saga, **o: run_explicit(saga, {}, undo_order="reverse_start")  # noqa: E731
    else:
        run = lambda saga, **o: run_explicit(saga, {}, **o)  # noqa: E731
    expected = _in_process(error, where, mode)
    if engine == "bpmn" and mode == "retry":  # (as the graph form ran it)
        local = lambda saga, **o: saga.run({}, undo_order="reverse_start")  # noqa: E731
        expected = _story(local, error, where, mode, "local")
    name = f"e-{error}-{where}-{mode}".replace("_", "-")
    assert _story(_on_engine(run), error, where, mode, name) == expected
