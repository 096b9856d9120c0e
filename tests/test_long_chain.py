"""A graph saga with a long chain of steps (one group, then a thousand steps): its
dependants were read recursing once per step of the chain, so a run undone by dependency
raised a bare RecursionError after every step ran, none undone, and ``Saga()`` built in a
deep caller raised one too (attack103 F7). Read without recursion now."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rollback_lessons import Parallel, Saga, Step
from rollback_lessons.graph_shape import dependants


def _chain(length: int, world: list[str]) -> list[Any]:
    def step(name: str) -> Step:
        return Step(name, lambda s: world.append(f"do {name}"),
                    lambda s: world.append(f"undo {name}"))  # fmt: skip

    return [Parallel(step("a"), step("b")), *[step(f"s{i}") for i in range(length)]]


def test_a_long_chain_is_undone_in_full_by_dependency():
    world: list[str] = []
    saga = Saga(_chain(1100, world))
    outcome = saga.run({}, inject={"s1099": "fail"}, undo_order="by_dependency")
    assert outcome.status == "rolled_back", outcome
    done = [w[3:] for w in world if w.startswith("do ")]
    undone = [w[5:] for w in world if w.startswith("undo ")]
    assert sorted(undone) == sorted(done) and len(undone) == 1101


def test_a_long_chain_built_deep_in_a_callers_stack():
    def deep(n: int) -> Saga:
        return deep(n - 1) if n else Saga(_chain(400, []))

    assert len(deep(600).steps) == 402


def test_dependants_of_a_chain_and_of_a_cycle():
    after = {"a": (), "b": ("a",), "c": ("b",), "d": ("a",)}
    assert dependants(after) == {"a": frozenset("bcd"), "b": frozenset("c"),
                                 "c": frozenset(), "d": frozenset()}  # fmt: skip
    cycle = {"x": ("y",), "y": ("x",), "z": ("y",)}  # (no saga has one: still an answer)
    assert dependants(cycle) == {"x": frozenset("xyz"), "y": frozenset("xyz"),
                                 "z": frozenset()}  # fmt: skip


@st.composite
def _graphs(draw: Any) -> tuple[list[str], dict[str, tuple[str, ...]]]:
    """A random graph of up to 12 steps, each after some of those defined before it."""
    names = [f"s{i}" for i in range(draw(st.integers(1, 12)))]
    after = {s: tuple(sorted(draw(st.sets(st.sampled_from(names[:i]))) if i else ()))
             for i, s in enumerate(names)}  # fmt: skip
    return names, after


@given(st.data())
@settings(max_examples=60, deadline=None)
def test_by_dependency_is_the_newest_defined_of_those_free(data):
    """The counted order is the rule's: each undo next is the newest defined of those whose
    dependants' undos have all run (read directly, as the rule says, on random graphs)."""
    from rollback_lessons.graph_shape import undo_order

    names, after = data.draw(_graphs())
    below = dependants(after)
    steps = data.draw(st.lists(st.sampled_from(names), unique=True))
    left, want = set(steps), []
    while left:
        free = [s for s in left if not (below[s] & left)]
        want.append(max(free, key=names.index))
        left.remove(want[-1])
    got = undo_order("by_dependency", steps, started=names, ended=names, definition=names,
                     after=after)  # fmt: skip
    assert got == want


@given(st.data())
@settings(max_examples=80, deadline=None)
def test_each_irreversible_steps_unsafe_neighbours_are_read_as_the_rule_says(data):
    """``not_above`` and ``reached`` (one pass, bitsets freed as read: attack104 F6) answer
    what every step's dependants answered: the steps of ``among`` neither a dependency of
    the step nor itself, and its dependants and dependencies (random graphs)."""
    from rollback_lessons.graph_shape import not_above, reached

    names, after = data.draw(_graphs())
    below = dependants(after)
    asked = data.draw(st.lists(st.sampled_from(names), unique=True))
    among = data.draw(st.lists(st.sampled_from(names), unique=True))
    want = {a: [s for s in names if s in among and s != a and a not in below[s]] for a in asked}
    assert not_above(after, asked, among) == {a: m for a, m in want.items() if m}
    for a in names:
        assert reached(after, a) == set(below[a])
        assert reached(after, a, up=True) == {s for s in names if a in below[s]}


def test_a_long_chain_with_a_pivot_is_checked_in_linear_room():
    """attack104 F6: ``Saga()`` of a group then 6,000 steps took 2.3 GB (every step's
    dependants as sets); 20,000 here, a pivot and retriable steps among them, and the
    unsafe order still found."""
    steps: list[Any] = [Parallel(Step("a", lambda s: None, lambda s: None),
                                 Step("b", lambda s: None, lambda s: None))]  # fmt: skip
    steps += [Step(f"s{i}", lambda s: None, lambda s: None) for i in range(20_000)]
    steps += [Step("email", lambda s: None, kind="pivot")]
    steps += [Step(f"r{i}", lambda s: None, kind="retriable") for i in range(2_000)]
    saga = Saga(steps)
    assert saga.check_order().ok and len(saga.steps) == 22_003
    late = Step("late", lambda s: None, lambda s: None)
    unsafe = Saga([*steps[:20_002], late], name="late", allow_unsafe_order=True)
    [problem] = unsafe.check_order().problems
    assert problem.startswith("'email' is irreversible but runs before 'late'"), problem[:80]
    assert "done of a, b, s0, s1," in problem and "s19999 but 'email' stays done" in problem
