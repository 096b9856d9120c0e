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


@given(st.data())
@settings(max_examples=60, deadline=None)
def test_by_dependency_is_the_newest_defined_of_those_free(data):
    """The counted order is the rule's: each undo next is the newest defined of those whose
    dependants' undos have all run (read directly, as the rule says, on random graphs)."""
    from rollback_lessons.graph_shape import undo_order

    n = data.draw(st.integers(1, 12))
    names = [f"s{i}" for i in range(n)]
    after = {s: tuple(sorted(data.draw(st.sets(st.sampled_from(names[:i]))) if i else ()))
             for i, s in enumerate(names)}  # fmt: skip
    below = dependants(after)
    steps = data.draw(st.lists(st.sampled_from(names), unique=True))
    left, want = set(steps), []
    while left:
        free = [s for s in left if not (below[s] & left)]
        want.append(max(free, key=names.index))
        left.remove(want[-1])
    got = undo_order("by_dependency", steps, started=names, ended=names, definition=names,
                     below=below)  # fmt: skip
    assert got == want
