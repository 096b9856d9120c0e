"""The explorer's "not restored" check in a rollback that was not clean (attack47 F2): it
compared the world only for ``rolled_back`` runs, so an undo that silently does nothing
only when another undo failed (the outcome saying it compensated) was never found."""

import pytest

from rollback_lessons import Saga, Step
from rollback_lessons.explore import assert_every_failure_handled, check, explore
from rollback_lessons.worlds.examples import (
    booking_restored,
    booking_saga,
    booking_state,
    chain_saga,
    chain_state,
    graph_saga,
)

POLICIES = ("continue", "retry", "halt")


def add(key):
    def action(state):
        state[key] = True

    return action


def remove(key):
    def undo(state):
        state.pop(key, None)

    return undo


def room_undo_skips_while_the_card_is_charged(state):
    if "card" not in state:  # the planted bug: only releases the room once refunded
        state.pop("room", None)


def planted():
    return Saga(
        [
            Step("room", add("room"), room_undo_skips_while_the_card_is_charged),
            Step("card", add("card"), remove("card")),
            Step("mail", add("mail"), remove("mail")),
        ]
    )


def test_an_undo_that_does_nothing_only_when_another_undo_failed_is_found():
    with pytest.raises(AssertionError, match="not restored: room compensated"):
        assert_every_failure_handled(planted(), {}, policies=POLICIES)


def test_the_run_attack47_named_is_judged_not_restored():
    exploration = explore(planted(), {}, policies=("continue",))
    [run] = [
        r for r in exploration.runs if dict(r.faults) == {"card": "undo_fails", "mail": "fail"}
    ]
    assert run.outcome.compensated == ("room",)
    assert [d.step for d in run.outcome.dead_letters] == ["card"]
    assert run.violations == (
        "not restored: room compensated, yet the world is not as it was outside the effects "
        "left standing (changed: room)",
    )


def test_the_same_saga_with_a_right_undo_breaks_nothing():
    steps = [Step(n, add(n), remove(n)) for n in ("room", "card", "mail")]
    exploration = explore(Saga(steps), {}, policies=POLICIES)
    assert exploration.failures == []


@pytest.mark.parametrize(
    "saga, state, restored",
    [
        (booking_saga(), booking_state, booking_restored),  # a refund is a record of its own
        (chain_saga(6), chain_state, None),  # every step changes the one list
        (graph_saga(5, 2), chain_state, None),
    ],
    ids=["booking", "chain", "graph"],
)
def test_right_sagas_break_nothing_where_effects_stand(saga, state, restored):
    options = {"restored": restored} if restored else {}
    exploration = explore(saga, state, policies=POLICIES, orders=True, **options)
    assert exploration.failures == []
    assert any(r.outcome.compensated and r.outcome.dead_letters for r in exploration.runs)


def test_an_undo_that_writes_over_an_effect_left_standing_is_found():
    """attack159 F1: a's undo zeroes both keys (right only when b's undo ran first); when b's
    undo fails, b's effect is a dead letter, standing, yet a's undo wiped it: passed before
    (the standing keys were put back before comparing). Found now, where the key is b's own;
    a key a compensated step's action changed too (a shared total) is the world's arithmetic,
    which ``restored=`` knows, not the explorer."""

    def bump(key):
        return lambda s: s.__setitem__(key, s[key] + 1)

    def drop(key):
        return lambda s: s.__setitem__(key, s[key] - 1)

    saga = Saga(
        [Step("a", bump("a"), lambda s: s.update(a=0, b=0)), Step("b", bump("b"), drop("b")),
         Step("c", bump("c"), drop("c"))], name="wipes",
    )  # fmt: skip
    run = check(saga, lambda: {"a": 0, "b": 0, "c": 0}, (("b", "undo_fails"), ("c", "fail")))
    assert [d.step for d in run.outcome.dead_letters] == ["b"]
    assert run.violations == (
        "not restored: a compensated, yet an effect left standing was written over (changed: b)",
    )
    right = Saga([*saga.steps[:0], Step("a", bump("a"), drop("a")), *saga.steps[1:]], name="ok")
    assert explore(right, lambda: {"a": 0, "b": 0, "c": 0}, max_faults=2).failures == []


def test_a_step_with_no_undo_that_changes_nothing_has_no_effect_to_report():
    """attack159 F2: a lookup with no undo (not marked a gate) was told "the effect of n was
    neither undone nor reported" though the run rolled back cleanly. One that writes is still
    found unreported."""

    def add(s):
        s["a"] += 1

    def sub(s):
        s["a"] -= 1

    def look(s):
        s.get("a")

    def write(s):
        s["log"] = "n ran"

    for n, found in ((look, ()), (write, ("unreported: the effect of n was neither undone nor "
                                         "reported",))):  # fmt: skip
        saga = Saga([Step("a", add, sub), Step("n", n), Step("b", add, sub)], name="r4")
        run = check(saga, lambda: {"a": 0}, (("b", "fail"),))
        assert run.outcome.status.value == "rolled_back"
        assert run.violations[: len(found)] == found, run.violations
