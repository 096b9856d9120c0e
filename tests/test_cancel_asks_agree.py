"""A cancel token is asked at the same points by ``saga.run``, ``saga.arun`` and
``saga.run(completion=...)`` playing arun's timing (attack47 F4): before the first step, as
each step returns, after each wait to retry; arun asked twice before the first step and
``completion=`` again after each step's end, so a token answering True (or raising) at its
k-th call only gave three different Outcomes for one list."""

import asyncio

from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st
from test_parallel_properties import World, build, graphs

from rollback_lessons import Saga, Step
from rollback_lessons.clock import VirtualClock


class Token:
    """Logs the world at each call; at its k-th call answers True or raises (once)."""

    def __init__(self, k, how, world):
        self.k, self.how, self.world, self.calls = k, how, world, []

    def __call__(self):
        self.calls.append(tuple(self.world))
        if len(self.calls) != self.k:
            return self.how == "from" and len(self.calls) > self.k
        if self.how == "raise":
            raise RuntimeError("the cancel store is down")
        return True


class Logged(World):
    """The world's steps, each also logging its name (in a list the token reads)."""

    def __init__(self, faults, log):
        super().__init__(faults)
        self.log = log

    def step(self, name, undo=True, register="after"):
        made = super().step(name, undo, register)

        def act(state, action=made.action):
            action(state)
            self.log.append(name)

        return Step(name, act, made.undo, register=made.register)


def three(definition, shape, faults, k, how, order=None):
    """The same saga run three ways with a fresh token each: what each says and asked (and
    the order arun started its steps in, which is the order its sync steps end in)."""
    out = {}
    for engine in ("run", "arun", "completion"):
        world: list[str] = []
        token = Token(k, how, world)
        saga = build(Logged(faults, world), definition, shape)
        if engine == "run":
            o = saga.run({}, cancel=token, clock=VirtualClock())
        elif engine == "arun":
            o = asyncio.run(saga.arun({}, cancel=token, clock=VirtualClock()))
        else:  # arun's timing: its branches end in the order they start
            o = saga.run({}, cancel=token, completion=order, clock=VirtualClock())
        out[engine] = (o.status, o.completed, o.compensated, o.state_after, token.calls)
        if engine == "arun":
            order = [e.step for e in o.events if e.kind == "step_start"]
    return out


@st.composite
def cases(draw):
    definition, shape = draw(graphs())
    names = list(shape)
    faults = draw(st.dictionaries(st.sampled_from(names), st.just("fail"), max_size=1))
    return definition, shape, faults, draw(st.sampled_from(["once", "raise", "from"]))


@settings(max_examples=examples(30), deadline=None)  # make soak: 300
@given(cases())
def test_a_token_true_or_raising_at_its_kth_call_gives_one_outcome_on_each_engine(case):
    definition, shape, faults, how = case
    asks = len(three(definition, shape, faults, 0, how)["arun"][-1])
    for k in range(1, asks + 2):
        out = three(definition, shape, faults, k, how)
        assert out["completion"] == out["arun"], (k, out)
        if all(isinstance(item, str) for item in definition):  # (run starts a group's
            assert out["run"] == out["arun"], (k, out)  # branches one after the other)


def logging_step(name, world):
    return Step(name, lambda s: world.append(name), lambda s: None)


def test_a_list_is_asked_once_before_the_first_step_and_once_as_each_returns():
    """attack47's cancel_count: a plain list of three steps, nothing failing."""
    for engine in ("run", "arun", "completion"):
        world: list[str] = []
        token = Token(0, "once", world)

        saga = Saga([logging_step(n, world) for n in "abc"])
        if engine == "run":
            saga.run({}, cancel=token)
        elif engine == "arun":
            asyncio.run(saga.arun({}, cancel=token))
        else:
            saga.run({}, cancel=token, completion=list(saga.names))
        assert token.calls == [(), ("a",), ("a", "b"), ("a", "b", "c")], engine
