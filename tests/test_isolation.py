"""Sagas are not isolated: each anomaly happens in some interleaving of the two actors
without its countermeasure, and in none with it, over every interleaving (enumerated)."""

from itertools import combinations

import pytest

from rollback_lessons.worlds.isolation import SCENARIOS, interleavings, run

ANOMALIES = {
    "dirty read": ["dirty read, semantic lock", "dirty read, pessimistic view"],
    "lost update": ["lost update, commutative undo", "lost update, reread value"],
    "fuzzy read": ["fuzzy read, semantic lock"],
}


def schedules(a: str, a_turns: int, b: str, b_turns: int) -> set[str]:
    """Every way to interleave two fixed sequences of turns."""
    total = a_turns + b_turns
    return {
        "".join(a if i in spots else b for i in range(total))
        for spots in combinations(range(total), a_turns)
    }


@pytest.mark.parametrize("key", sorted(ANOMALIES))
def test_the_anomaly_happens_only_where_the_other_actor_comes_between(key):
    traces = interleavings(SCENARIOS[key])
    first, second = (name[0] for name in SCENARIOS[key].actors)
    alone = run(SCENARIOS[key])  # each actor's turns when nobody interleaves
    turns = {n: alone.schedule.count(n) for n in (first, second)}
    # without waiting, every interleaving of the actors' turns, once (an actor whose first
    # step is refused, like Ann when Bob took the last room, has fewer turns left)
    every = schedules(first, turns[first], second, turns[second])
    assert {t.schedule for t in traces} == {run(SCENARIOS[key], s).schedule for s in every}
    assert len(traces) == len({t.schedule for t in traces})
    bad = [t for t in traces if t.anomaly]
    assert bad, f"{key}: no interleaving shows the anomaly"
    assert len(bad) < len(traces), f"{key}: some interleavings must be fine"
    for trace in bad:  # the other actor came between the saga's step and its undo
        between = trace.schedule[trace.schedule.index(first) + 1 : trace.schedule.rindex(first)]
        assert second in between, trace.schedule


@pytest.mark.parametrize(("key", "fix"), [(k, f) for k, fs in ANOMALIES.items() for f in fs])
def test_the_countermeasure_prevents_the_anomaly_in_every_interleaving(key, fix):
    traces = interleavings(SCENARIOS[fix])
    assert len(traces) >= 2
    assert [t.schedule for t in traces if t.anomaly] == []


def test_a_semantic_lock_makes_bob_wait_and_then_book_the_room():
    trace = run(SCENARIOS["dirty read, semantic lock"], "ABAB")
    assert [t.did for t in trace.turns] == [
        "Ann: hold the last room",
        "Bob: a hold is pending, wait",
        "Ann: fails: Ann's card is declined (undos ran)",
        "Bob: told 'booked'",
    ]
    assert trace.world["holds"] == ["bob"] and trace.anomaly is None


def test_reread_value_leaves_a_changed_balance_to_a_person_instead_of_erasing_a_deposit():
    trace = run(SCENARIOS["lost update, reread value"], "SDS")
    assert trace.world["balance"] == 180  # the bonus stays until a person decides
    assert trace.world["for a person"] == ["balance is 180, not the 150 written"]
    assert trace.turns[-1].did.endswith("(an undo failed)")
    quiet = run(SCENARIOS["lost update, reread value"], "SSD")
    assert quiet.world == {"balance": 130}  # nobody came between: the undo restored


def test_the_restoring_undo_erases_the_deposit_exactly_when_it_lands_in_between():
    results = {t.schedule: t.world["balance"] for t in interleavings(SCENARIOS["lost update"])}
    assert results == {"DSS": 130, "SDS": 100, "SSD": 130}
    commuting = {
        t.schedule: t.world["balance"]
        for t in interleavings(SCENARIOS["lost update, commutative undo"])
    }
    assert commuting == {"DSS": 130, "SDS": 130, "SSD": 130}
