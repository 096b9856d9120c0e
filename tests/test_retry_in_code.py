"""A RetryPolicy subclass with its own ``next_delay`` decides in Python, as an UndoPolicy's
own ``decide`` does: an engine that carries a policy as data obeyed its fields instead and
retried three times where ``saga.run`` did not retry, and ``recover`` would too (attack100
F13). It is refused, by name, before anything runs; where a policy in code runs (in process,
Temporal and DBOS hosting the undo policy), it is obeyed."""

from __future__ import annotations

from typing import Any

import pytest

from rollback_lessons import Parallel, RetryPolicy, Saga, Step, UndoPolicy
from rollback_lessons.durable.journal import Journal
from rollback_lessons.errors import InvalidPipelineError
from rollback_lessons.policies import UnsupportedPolicy, code_of


class Once(RetryPolicy):
    """Its fields say three attempts; its own rule says none."""

    def next_delay(self, attempt: int, error: BaseException) -> float | None:
        return None


def _saga(world: list[str], where: str) -> Saga:
    def flaky(state: Any) -> None:
        world.append("do b")
        raise ConnectionError("flaky")

    retry = Once(max_attempts=3, initial_delay=0.01) if where == "step" else None
    return Saga([Step("a", lambda s: world.append("do a"), lambda s: world.append("undo a")),
                 Step("b", flaky, lambda s: None, retry=retry)])  # fmt: skip


def test_in_process_its_own_rule_is_obeyed():
    world: list[str] = []
    outcome = _saga(world, "step").run({})
    assert outcome.status == "rolled_back" and world == ["do a", "do b", "undo a"]


@pytest.mark.parametrize("where", ["step", "undo"])
def test_engines_that_carry_it_as_data_refuse_it_before_anything_runs(where, sfn_runner,
                                                                      bpmn_runner):  # fmt: skip
    policy = UndoPolicy(Once(max_attempts=3)) if where == "undo" else None
    for runner, form in ((sfn_runner, {}), (bpmn_runner, {"cancel": lambda: False})):
        world: list[str] = []
        with pytest.raises(UnsupportedPolicy, match="Once's own next_delay") as refused:
            runner.run(_saga(world, where), {}, policy=policy, **form)
        assert world == []
        if where == "undo":  # (BPMN writes a process model: attack100 F14)
            model = "process model" if runner is bpmn_runner else "state machine"
            assert f"its {model} is written" in str(refused.value)


def test_a_journal_refuses_such_an_undo_policy(tmp_path):
    from rollback_lessons.durable.kept import UnjournaledPolicy

    world: list[str] = []
    saga = Saga([Step("a", lambda s: world.append("do a"))])  # (no undo: nothing to register)
    with Journal(tmp_path / "j.db") as journal, pytest.raises(UnjournaledPolicy, match="Once"):
        saga.run({}, journal=journal, policy=UndoPolicy(Once(max_attempts=3)))
    assert world == []


class Never(RetryPolicy):
    """Its own ``retries``: never (attack102 F2: only ``next_delay`` was checked)."""

    def retries(self, error: BaseException) -> bool:
        return False


class Slow(RetryPolicy):
    def delay(self, attempt: int) -> float:
        return 0.02


@pytest.mark.parametrize("kind", [Never, Slow])
def test_a_retry_policy_of_its_own_retries_or_delay_is_refused_as_data_too(kind, tmp_path):
    from rollback_lessons.durable.kept import UnjournaledPolicy
    from rollback_lessons.runners.bpmn import to_bpmn
    from rollback_lessons.runners.stepfunctions import to_asl

    policy = UndoPolicy(kind(max_attempts=3))
    saga = Saga([Step("a", lambda s: None)])
    for export in (to_asl, to_bpmn):
        with pytest.raises(UnsupportedPolicy, match=f"{kind.__name__}'s own"):
            export(saga, policy=policy)
    with Journal(tmp_path / "j.db") as journal, pytest.raises(UnjournaledPolicy):
        saga.run({}, journal=journal, policy=policy)


def _shapes() -> dict[str, Any]:
    """Policies that decide in code the class alone does not show (attack103 F3)."""
    from collections.abc import Callable
    from dataclasses import dataclass, field

    @dataclass(frozen=True)
    class FieldFn(RetryPolicy):  # a field holding a function, named as the method
        next_delay: Callable[..., Any] = field(default_factory=lambda: lambda a, e: None)

    class GetAttr(RetryPolicy):
        def __getattribute__(self, name: str) -> Any:
            if name == "next_delay":
                return lambda attempt, error: None
            return super().__getattribute__(name)

    class ByProperty(RetryPolicy):
        @property
        def next_delay(self) -> Any:  # type: ignore[override]
            return lambda attempt, error: None

    class Meta(type):
        def __subclasscheck__(cls, sub: type) -> bool:
            return True

    class Any_(Exception, metaclass=Meta):
        pass

    set_on = RetryPolicy(max_attempts=3)
    object.__setattr__(set_on, "next_delay", lambda attempt, error: None)

    @dataclass(frozen=True)
    class FiveTries(UndoPolicy):  # an UndoPolicy's property of its own
        @property
        def max_attempts(self) -> int:  # type: ignore[override]
            return 5

    import functools

    class Never:
        def __call__(self, attempt: int, error: BaseException) -> None:
            return None

    class PartialNext(RetryPolicy):  # (callables of no ``__get__``: attack104 F4)
        next_delay = functools.partial(lambda attempt, error, table=(): None, table=(1, 5))

    class ObjectNext(RetryPolicy):
        next_delay = Never()

    class BuiltinRetries(RetryPolicy):
        retries = callable  # type: ignore[assignment]

    class PartialDecide(UndoPolicy):
        decide = functools.partial(lambda attempt, error: "halt")  # type: ignore[assignment]

    @dataclass(frozen=True, slots=True)
    class SlotFn(RetryPolicy):  # a slot holding a function
        next_delay: Callable[..., Any] = field(default=lambda a, e: None)

    return {
        "PartialNext": UndoPolicy(PartialNext(max_attempts=3)),
        "ObjectNext": UndoPolicy(ObjectNext(max_attempts=3)),
        "BuiltinRetries": UndoPolicy(BuiltinRetries(max_attempts=3)),
        "PartialDecide": PartialDecide(RetryPolicy(max_attempts=3)),
        "SlotFn": UndoPolicy(SlotFn(max_attempts=3)),
        "FieldFn": UndoPolicy(FieldFn(max_attempts=3)),
        "GetAttr": UndoPolicy(GetAttr(max_attempts=3)),
        "ByProperty": UndoPolicy(ByProperty(max_attempts=3)),
        "set on it": UndoPolicy(set_on),
        "metaclass": UndoPolicy(RetryPolicy(max_attempts=3, no_retry_on=(Any_,))),
        "FiveTries": FiveTries(),
    }


@pytest.mark.parametrize("shape", list(_shapes()))
def test_code_the_class_alone_does_not_show_is_refused_as_data(shape, tmp_path):
    from rollback_lessons.durable.kept import UnjournaledPolicy
    from rollback_lessons.policies import code_of
    from rollback_lessons.runners.bpmn import to_bpmn
    from rollback_lessons.runners.stepfunctions import to_asl

    policy = _shapes()[shape]
    assert code_of(policy) is not None
    saga = Saga([Step("a", lambda s: None)])
    for export in (to_asl, to_bpmn):
        with pytest.raises(UnsupportedPolicy, match="decides in Python"):
            export(saga, policy=policy)
    with Journal(tmp_path / "j.db") as journal, pytest.raises(UnjournaledPolicy):
        saga.run({}, journal=journal, policy=policy)
    if code_of(policy.retry) is not None:  # (a step's retry too: refused by every engine)
        step = Saga([Step("a", lambda s: None, retry=policy.retry)])
        with pytest.raises(UnsupportedPolicy, match="decides in Python"):
            to_asl(step)


def test_policies_of_data_are_still_data():
    """Data in any shape the library gives: the named policies, a subclass of defaults."""
    from dataclasses import dataclass

    from rollback_lessons import Continue, Halt, Retry
    from rollback_lessons.policies import code_of

    @dataclass(frozen=True)
    class Patient(RetryPolicy):
        max_attempts: int = 6

    @dataclass(frozen=True, slots=True)
    class PatientSlots(RetryPolicy):  # (its fields in slots: data, attack104 F7)
        max_attempts: int = 5

    @dataclass(frozen=True, slots=True)
    class HaltSlots(UndoPolicy):
        then: str = "halt"  # type: ignore[assignment]

    for policy in (UndoPolicy(PatientSlots()), HaltSlots(RetryPolicy()), HaltSlots()):
        assert code_of(policy) is None, policy
    for policy in (Continue(), Halt(), Retry(), UndoPolicy(Patient()), UndoPolicy(RetryPolicy(
            retry_on=(ConnectionError,), no_retry_on=(ValueError,))), None):  # fmt: skip
        assert code_of(policy) is None, policy


class _Odd(float):
    """A number whose arithmetic is its own: ``delay`` would compute NaN (no wait, as a
    refusal) in process, where an engine carries 0.01."""

    def __mul__(self, other: object) -> float:
        return float("nan")


class _Hidden(tuple):  # type: ignore[type-arg]
    """A tuple whose items ``issubclass`` reads differ from what iterating it yields."""

    def __iter__(self) -> Any:
        return iter((KeyError,))


class _Halt(str):
    def __eq__(self, other: object) -> bool:
        return other == "halt"

    __hash__ = str.__hash__


def test_a_fields_own_subclass_is_read_as_the_value_an_engine_carries():
    """attack105 F5, F6: a float subclass in a field (NaN waits in process, 3 attempts in
    recover and on Step Functions) and a tuple subclass in ``retry_on`` (3 attempts in
    process, 1 there) were carried as data and obeyed differently. They are read as plain
    values once, as the policy is made: every engine reads the same."""
    retry = RetryPolicy(max_attempts=3, initial_delay=_Odd(0.01), retry_on=_Hidden((OSError,)))
    assert type(retry.initial_delay) is float and retry.delay(1) == 0.01
    assert type(retry.retry_on) is tuple and retry.retry_on == (KeyError,)
    assert retry.retries(KeyError("x")) and not retry.retries(ConnectionError("x"))
    policy = UndoPolicy(retry, then=_Halt("dead_letter"))
    assert type(policy.then) is str and policy.then == "halt"
    assert code_of(policy) is None  # (data: carried, and obeyed, the same everywhere)


@pytest.mark.parametrize("shape", ["float", "tuple"])
def test_a_fields_own_subclass_tries_as_often_in_process_as_on_bpmn(shape, bpmn_runner):
    if shape == "float":
        retry = RetryPolicy(max_attempts=3, initial_delay=_Odd(0.01))
    else:
        retry = RetryPolicy(max_attempts=3, initial_delay=0.01, retry_on=_Hidden((OSError,)))
    tries: list[str] = []

    def undo(state: Any) -> None:
        tries.append("refund")
        raise KeyError("bank down")

    saga = Saga([Step("a", lambda s: None, lambda s: None), Step("charge", lambda s: None, undo),
                 Step("ship", lambda s: 1 / 0), Parallel(Step("p", lambda s: None))],
                name="same", allow_unsafe_order=True)  # fmt: skip
    saga.run({}, policy=UndoPolicy(retry))
    here, tries[:] = len(tries), []
    bpmn_runner.run(saga, {}, policy=UndoPolicy(retry))
    assert here == len(tries) == 3, (here, tries)


class _Attempts(int):
    pass


class _Lies(float):
    """Holds one number, converts to another: the number it holds is the one read."""

    def __float__(self) -> float:
        return 5.0


class _Lax(float):
    """An undo timeout whose own arithmetic puts the deadline a minute away."""

    def __radd__(self, other: object) -> float:
        return float(other) + 60.0  # type: ignore[arg-type]

    def __add__(self, other: object) -> float:
        return float(other) + 60.0  # type: ignore[arg-type]


def test_numbers_of_other_types_are_read_as_the_plain_value_they_hold():
    """attack106 F10: an int's subclass (and numpy's int64) as ``max_attempts`` was refused
    with "must be an int >= 1, got 3"; a float's subclass whose ``__float__`` says another
    number was read as that number, not the one it holds."""
    numpy = pytest.importorskip("numpy")
    assert type(RetryPolicy(max_attempts=_Attempts(3)).max_attempts) is int
    assert RetryPolicy(max_attempts=numpy.int64(2)).max_attempts == 2
    assert RetryPolicy(initial_delay=_Lies(0.01)).initial_delay == 0.01
    with pytest.raises(InvalidPipelineError, match=r"got 2\.5$"):
        RetryPolicy(max_attempts=2.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("driver", ["saga.run", "arun"])
def test_an_undo_timeout_of_a_subclass_is_kept_as_recover_keeps_it(driver):
    """attack106 F8: ``Step(undo_timeout=Lax(0.2))``: saga.run and arun let a 0.5 s undo
    finish (its own arithmetic moved the deadline), recover timed it out at 0.2 s."""
    import asyncio
    import time

    step = Step("charge", lambda s: None, lambda s: time.sleep(0.5), undo_timeout=_Lax(0.2))
    assert type(step.undo_timeout) is float and step.undo_timeout == 0.2
    saga = Saga([step, Step("ship", lambda s: 1 / 0)])
    outcome = saga.run({}) if driver == "saga.run" else asyncio.run(saga.arun({}))
    [dead] = outcome.dead_letters
    assert dead.step == "charge" and "timeout of 0.2 s" in str(dead.error), dead
