"""An attempt that may have had its effect is remembered for its step (issue 25; attack12's
B1 and B2): whatever a later attempt says (a clean refusal), and whatever ends the wait to
retry (the attempts run out, a cancel, a Ctrl-C), the effect is undone (its undo logged
before it) or reported leaked, never a silent ``rolled_back`` / ``cancelled``.

The worlds are generated: for every attempt at which an effect lands (a failure after it),
every later outcome (a clean refusal, another failure after the effect, a success), and every
end of the wait to retry, on ``saga.run``, ``saga.arun`` and the graph machine (a list run
in ``reverse_start``). The expected story comes from the world's own record (which attempts
ran, and did one change the state), not from the engine."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from conftest import examples, same_outcome
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollback_lessons import (
    InjectedTimeout,
    RetryPolicy,
    Rollback,
    Saga,
    Status,
    Step,
    VirtualClock,
)

EFFECT, CLEAN, OK = "after its effect", "clean refusal", "ok"
ENDS = ("out of attempts", "ok", "cancel", "ctrl_c")


class WaitClock(VirtualClock):
    """A virtual clock whose wait to retry after attempt ``at`` (told by that attempt's
    ``step_retry`` event, ``on_event``) hears a Ctrl-C, or a cancel (``cancelled``: the token
    the run asks). A Ctrl-C is a KeyboardInterrupt in ``saga.run``'s wait; under
    ``asyncio.run`` it is what asyncio makes of a first Ctrl-C, a cancellation of the main
    task (``main``)."""

    main: asyncio.Task | None = None

    def __init__(self, at: int = 0, ctrl_c: bool = False) -> None:
        super().__init__()
        self.at, self.ctrl_c, self.armed, self.cancelled = at, ctrl_c, False, False

    def on_event(self, event) -> None:
        if event.kind == "step_retry" and event.details["attempt"] == self.at:
            if not self.ctrl_c:
                self.cancelled = True
            elif self.main is not None:
                self.main.cancel()
            else:
                self.armed = True

    def sleep(self, seconds: float) -> None:
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt
        super().sleep(seconds)


def scripted(name: str, outcomes: list[str]):
    """The step's action, attempt by attempt: a clean refusal changes nothing; a failure
    after its effect changes the state, then raises the error that says so."""
    attempts = iter(outcomes)

    def action(state: dict) -> None:
        what = next(attempts)
        if what == CLEAN:
            raise ValueError(f"{name}: declined")
        state[name] = state.get(name, 0) + 1
        if what == EFFECT:
            raise InjectedTimeout(name, "fail_after_effect", f"{name}: timed out after charging")

    return action


def undo_of(name: str):
    return lambda state: state.pop(name, None)


@dataclass(frozen=True)
class World:
    before: int  # steps before the retried one (each done, its undo logged after it)
    register: str  # the retried step's undo: "before", "after", or "none" (it has none)
    failures: tuple[str, ...]  # its failing attempts, in order
    attempts: int  # its retry policy's max_attempts
    end: str  # what follows the last failure (ENDS)
    delay: float = 1.0  # before each retry (a virtual clock's, in process)

    def saga(self) -> Saga:
        steps = [
            Step(f"b{i}", scripted(f"b{i}", [OK]), undo_of(f"b{i}")) for i in range(self.before)
        ]
        outcomes = [*self.failures, *([OK] if self.end == "ok" else [])]
        undo = None if self.register == "none" else undo_of("s")
        register = "after" if self.register == "none" else self.register
        retry = RetryPolicy(max_attempts=self.attempts, initial_delay=self.delay)
        steps.append(Step("s", scripted("s", outcomes), undo, register=register, retry=retry))
        steps.append(Step("z", scripted("z", [OK]), undo_of("z")))
        return Saga(steps, name="w")

    def clock(self) -> WaitClock:
        if self.end in ("cancel", "ctrl_c"):  # the wait after the last failing attempt
            return WaitClock(len(self.failures), ctrl_c=self.end == "ctrl_c")
        return WaitClock()

    @property
    def effect(self) -> bool:
        """Did an attempt that failed change the world? (the world's record, not the run's)"""
        return EFFECT in self.failures


@st.composite
def worlds(draw) -> World:
    attempts = draw(st.integers(2, 4))
    failures = tuple(
        draw(st.lists(st.sampled_from([EFFECT, CLEAN]), min_size=1, max_size=attempts))
    )
    end = "out of attempts" if len(failures) == attempts else draw(st.sampled_from(ENDS[1:]))
    register = draw(st.sampled_from(["before", "after", "none"]))
    return World(draw(st.integers(0, 2)), register, failures, attempts, end)


def run(world: World, engine: str):
    """The world's saga on ``engine``: (the outcome or None, the KeyboardInterrupt or None,
    the state after). ``arun`` is always driven as a graph (its own driver)."""
    state: dict = {}
    clock = world.clock()
    options = dict(clock=clock, cancel=lambda: clock.cancelled, on_event=clock.on_event)

    async def main():
        clock.main = asyncio.current_task()
        return await world.saga().arun(state, **options)

    try:
        if engine == "arun":
            outcome = asyncio.run(main())
        else:
            order = "reverse_start" if engine == "graph" else "reverse"
            outcome = world.saga().run(state, undo_order=order, **options)
    except KeyboardInterrupt as exc:
        return None, exc, state
    except asyncio.CancelledError as exc:  # re-raised once the rollback ran, with its outcome
        return exc.outcome, None, state
    return outcome, None, state


def check(world: World, engine: str, outcome, interrupt, state: dict) -> None:
    """What the world's record says must have happened, whatever ran it."""
    if world.end == "ok":
        assert outcome.status is Status.COMMITTED and "s" in state
        return
    assert not any(f"b{i}" in state for i in range(world.before)), state  # each undone
    assert "z" not in state
    leaks = world.effect and world.register != "before"
    assert ("s" in state) is leaks, (state, outcome)
    if interrupt is not None:  # re-raised once the rollback ran: its notes tell what stands
        assert world.end == "ctrl_c"
        named = any(
            "s" in note.split(": ")[-1].split(", ") for note in getattr(interrupt, "__notes__", [])
        )
        assert named is leaks, interrupt.__notes__
        return
    assert outcome.leaked == (("s",) if leaks else ())
    if leaks:
        assert outcome.status is Status.ROLLBACK_INCOMPLETE
    else:
        cancelled = world.end == "cancel" or (world.end == "ctrl_c" and engine == "arun")
        clean = Status.CANCELLED if cancelled else Status.ROLLED_BACK
        assert outcome.status is clean
        assert ("s" in outcome.compensated) is (world.register == "before")
    failed = [e for e in outcome.events if e.kind == "step_failed" and e.step == "s"]
    assert bool(failed[0].details.get("after_effect")) is world.effect


@pytest.mark.parametrize("engine", ["run", "arun", "graph"])
@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds())
def test_an_attempt_that_may_have_had_its_effect_is_never_forgotten(engine, world):
    check(world, engine, *run(world, engine))


# -- the attacker's cases, as they were found ----------------------------------------------


def refused_after_a_timeout(register: str) -> Saga:
    """attack12 B1: attempt 1 charges, then times out; attempt 2 is declined cleanly."""
    return World(0, register, (EFFECT, CLEAN), 2, "out of attempts", delay=0.01).saga()


@pytest.mark.parametrize("register", ["before", "after"])
def test_a_clean_refusal_after_an_attempt_that_charged_does_not_hide_the_charge(register):
    for outcome_of in (lambda s, st: s.run(st), lambda s, st: asyncio.run(s.arun(st))):
        state: dict = {}
        outcome = outcome_of(refused_after_a_timeout(register), state)
        if register == "after":
            assert outcome.status is Status.ROLLBACK_INCOMPLETE and outcome.leaked == ("s",)
            assert state == {"s": 1}
        else:
            assert outcome.status is Status.ROLLED_BACK and outcome.compensated == ("s",)
            assert state == {}


@pytest.mark.parametrize("end", [ValueError, KeyboardInterrupt])
def test_a_with_block_step_remembers_its_attempts_too(end):
    """Refused cleanly at attempt 2, or a Ctrl-C in the wait after attempt 1."""
    state: dict = {}
    action = scripted("s", [EFFECT, CLEAN])
    clock = WaitClock(1, ctrl_c=True) if end is KeyboardInterrupt else WaitClock()
    with pytest.raises(end), Rollback(clock=clock, on_event=clock.on_event) as rb:
        rb.do("s", lambda: action(state), lambda: state.pop("s", None),
              retry=RetryPolicy(max_attempts=2, initial_delay=1.0))  # fmt: skip
    assert rb.outcome.status is Status.ROLLBACK_INCOMPLETE and rb.outcome.leaked == ("s",)
    assert state == {"s": 1}


def crl() -> Saga:
    """attack12 B2: a step failing after its effect, retried; a cancel comes in its wait."""
    return Saga(
        [Step("s0", lambda s: s.__setitem__("s0", 1), lambda s: s.pop("s0", None),
              retry=RetryPolicy(max_attempts=3, initial_delay=0.01)),
         Step("s1", lambda s: s.__setitem__("s1", 1), lambda s: s.pop("s1", None))],
        name="crl",
    )  # fmt: skip


def test_a_cancel_in_the_wait_after_an_effect_reports_the_effect():
    faults = {"s0": "fail_after_effect"}
    for outcome_of in (
        lambda st: crl().run(st, inject=faults, cancel=lambda: "s0" in st),
        lambda st: asyncio.run(crl().arun(st, inject=faults, cancel=lambda: "s0" in st)),
    ):
        state: dict = {}
        outcome = outcome_of(state)
        assert outcome.status is Status.ROLLBACK_INCOMPLETE and outcome.leaked == ("s0",)
        assert state == {"s0": 1}


@pytest.fixture(scope="module")
def step_functions():
    from rollback_lessons.runners.stepfunctions import StepFunctionsRunner

    with StepFunctionsRunner.start() as runner:
        yield runner


@pytest.mark.parametrize("register", ["before", "after"])
def test_step_functions_and_dbos_tell_the_earlier_attempts_effect_as_in_process(
    register, step_functions, dbos_runner
):
    """Every engine drives the machine, so every engine remembers (Temporal too: checked by
    attack12's script, its tests are its runner's)."""
    local = refused_after_a_timeout(register).run({}, clock=VirtualClock())
    assert bool(local.leaked) is (register == "after")
    same_outcome(local, step_functions.run(refused_after_a_timeout(register), {}))
    same_outcome(local, dbos_runner.run(refused_after_a_timeout(register), {}))


def test_every_in_process_engine_reports_an_effect_before_a_cancel_in_the_wait(
    step_functions, dbos_runner
):
    from rollback_lessons.runners.bpmn import BpmnRunner

    faults = {"s0": "fail_after_effect"}
    for engine in (step_functions, dbos_runner, BpmnRunner.start()):
        state: dict = {}
        outcome = engine.run(crl(), state, inject=faults, cancel=lambda st=state: "s0" in st)
        assert outcome.status is Status.ROLLBACK_INCOMPLETE and outcome.leaked == ("s0",)
        assert state == {"s0": 1}


def branch_and_sibling(register: str, slow: bool = False) -> Saga:
    """A graph: ``s`` charges on attempt 1 (then times out), is declined on attempt 2, and
    waits to retry; its sibling ``x`` is declined meanwhile (``slow``: an ``async`` action
    that lets the event loop run s's first two attempts first)."""
    from rollback_lessons import Parallel

    def refuse(state):
        raise ValueError("x: declined")

    async def later(state):
        for _ in range(50):
            await asyncio.sleep(0)
        refuse(state)

    def refuse_later(state):
        return later(state)

    retry = RetryPolicy(max_attempts=3, initial_delay=1.0)
    s = Step("s", scripted("s", [EFFECT, CLEAN, CLEAN]), undo_of("s"), register=register,
             retry=retry)  # fmt: skip
    return Saga([Parallel(s, Step("x", refuse_later if slow else refuse, undo_of("x")))])


@pytest.mark.parametrize("register", ["before", "after"])
@pytest.mark.parametrize("engine", ["run", "arun"])
def test_a_branch_waiting_to_retry_when_a_sibling_fails_keeps_its_earlier_effect(register, engine):
    """``x`` failing for good stops the graph: ``s`` is not tried again and fails for good
    with its last error; its earlier attempt's effect is still undone or reported."""
    state: dict = {}
    saga = branch_and_sibling(register, slow=engine == "arun")
    if engine == "run":  # s's attempts end first, then x's
        outcome = saga.run(state, clock=VirtualClock(), completion=["s", "x"])
    else:
        outcome = asyncio.run(saga.arun(state, clock=VirtualClock()))
    assert ("s" in state) is (register == "after")
    assert outcome.leaked == (("s",) if register == "after" else ())
    assert outcome.status is (
        Status.ROLLBACK_INCOMPLETE if register == "after" else Status.ROLLED_BACK
    )
