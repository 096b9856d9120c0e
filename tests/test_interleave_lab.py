"""Lesson 10's picture and panel: every scenario, every interleaving, every turn drawn
without colliding or cut text; the panel's controls change what it shows."""

import dataclasses

import matplotlib
import pytest
from conftest import SOAK, text_problems

from rollback_lessons.lab.interleave import IsolationLab, draw_trace, headline, trace_png
from rollback_lessons.lab.png import read_report
from rollback_lessons.lab.quality import MIN_TEXT_PX
from rollback_lessons.worlds.isolation import SCENARIOS, interleavings, run

matplotlib.use("Agg")


@pytest.mark.parametrize("key", sorted(SCENARIOS))
def test_every_interleaving_is_drawn_without_colliding_or_cut_text(key):
    """Every turn of the first interleaving, and the last two of every other (the fullest
    pictures); make soak (SOAK=1) every turn of every interleaving."""
    scenario = SCENARIOS[key]
    bad = []
    for i, trace in enumerate(interleavings(scenario)):
        last = len(trace.turns)
        for upto in range(last + 1) if SOAK or i == 0 else (last - 1, last):
            fig = draw_trace(scenario, trace, upto)
            bad += [f"{trace.schedule} turn {upto}: {p}" for p in text_problems(fig)]
    assert bad == []


def test_the_title_names_the_anomaly_only_once_the_interleaving_is_over():
    scenario = SCENARIOS["dirty read"]
    [bad] = [t for t in interleavings(scenario) if t.anomaly]
    titles = [draw_trace(scenario, bad, upto).texts[-1].get_text() for upto in (1, None)]
    assert titles[0] == f"Turn 1 of {len(bad.turns)}"
    assert titles[1].startswith("Anomaly: Bob was told 'sold out'")


@pytest.mark.parametrize("key", sorted(SCENARIOS))
def test_every_picture_is_readable_and_explains_its_marks(key):
    scenario = SCENARIOS[key]
    trace = interleavings(scenario)[0]
    report = read_report(trace_png(scenario, trace))
    assert report["problems"] == [] and report["min_text_px"] >= MIN_TEXT_PX
    labels = [t.get_text() for t in draw_trace(scenario, trace).legends[0].get_texts()]
    assert "a step failed: its undos ran" in labels
    assert all(f"{actor} did this" in labels for actor in scenario.actors)


def test_the_panel_switches_countermeasure_and_interleaving_and_steps_through_turns():
    lab = IsolationLab("dirty read")
    assert lab.countermeasure.options == (
        ("none", "dirty read"),
        ("semantic lock", "dirty read, semantic lock"),
        ("pessimistic view", "dirty read, pessimistic view"),
    )
    whole = lab.view.value
    assert lab.turn.value == lab.turn.max == len(lab.trace.turns)  # opens on the whole run
    assert lab.next.disabled and not lab.back.disabled  # the end: no next
    lab.back.click()
    assert lab.turn.value == lab.turn.max - 1 and lab.view.value != whole
    lab.next.click()
    assert lab.view.value == whole
    bad = lab.choose("none", 2)  # numbered from 1, as the slider and the summary say
    assert lab.interleaving.min == 1 and lab.turn.min == 1
    assert bad.anomaly and "Interleaving 2 of 3" in lab.summary and "in 1 of 3" in lab.summary
    fixed = lab.choose("semantic lock", 2)
    assert fixed.anomaly is None and "happens in 0 of" in lab.summary
    while not lab.back.disabled:
        lab.back.click()
    assert lab.turn.value == 1 and "Turn 1 of" in lab.view.value
    with pytest.raises(KeyError):
        lab.choose("prayer")
    with pytest.raises(KeyError):
        IsolationLab("phantom read")


ROOMS = [key for key in SCENARIOS if key.startswith("dirty read")]


@pytest.mark.parametrize("key", ROOMS)
def test_no_interleaving_ever_holds_more_rooms_than_there_are(key):
    """One room: after every turn of every interleaving, with or without a countermeasure,
    the rooms held and the rooms free add up to one, never below 0 free."""
    for trace in interleavings(SCENARIOS[key]):
        for turn in trace.turns:
            free, holds = turn.records["rooms free"], turn.records["holds"]
            assert free >= 0 and free + len(holds) == 1, (trace.schedule, turn.did)


@pytest.mark.parametrize("key", ROOMS)
def test_a_booking_after_bob_took_the_last_room_is_refused(key):
    """Bob first (BAA): he books the room; Ann's hold finds none free and is refused,
    lock or no lock (a semantic lock must never let a second hold through); charged
    first (pessimistic view), her declined card ends her booking before it holds anything."""
    trace = run(SCENARIOS[key], "BAA")
    assert trace.turns[0].did == "Bob: told 'booked'"
    why = "Ann's card is declined" if "pessimistic" in key else "no room is free"
    assert trace.turns[1].did == f"Ann: fails: {why} (nothing to undo)"
    assert trace.world["rooms free"] == 0 and trace.world["holds"] == ["bob"]
    assert trace.anomaly is None


def test_an_oversell_is_an_anomaly_even_when_the_count_comes_back():
    """A hold that does not check the count (the bug lesson 10's panel once showed): Bob
    books, Ann holds anyway (-1 free), her card is declined and the count is 0 again at
    the end; the oversell after turn 2 is still named."""

    def careless_ann():
        def actor(world):
            world["rooms free"] -= 1
            world["holds"].append("ann")
            yield "Ann: hold the last room"
            world["rooms free"] += 1
            world["holds"].remove("ann")
            yield "Ann: card declined, room released"

        return actor

    scenario = dataclasses.replace(
        SCENARIOS["dirty read, semantic lock"],
        actors={"Ann": careless_ann, "Bob": SCENARIOS["dirty read"].actors["Bob"]},
    )
    trace = run(scenario, "BAA")
    assert trace.world["rooms free"] == 0  # the end looks fine
    assert trace.anomaly == "turn 2: the room is oversold (-1 free, held by bob and ann)"
    assert headline(trace)[0].startswith("Anomaly: turn 2: the room is oversold")


def test_an_interleaving_drawn_in_layers_is_the_picture_drawn_whole_and_empty():
    """The panel draws an interleaving once, without its turns, then its turns onto it: the
    same pixels as the picture drawn whole, and as drawn with no turn."""
    import numpy as np

    from rollback_lessons.lab.interleave import layers, text_lines

    scenario = SCENARIOS["fuzzy read"]
    for trace in interleavings(scenario)[:2]:
        lines = text_lines([trace])
        whole, empty, boxes, _ = layers(scenario, trace, lines)
        for upto, layer in ((None, whole), (0, empty)):
            fig = draw_trace(scenario, trace, upto, lines=lines, title=False)
            fig.canvas.draw()
            assert (np.asarray(fig.canvas.buffer_rgba()) == layer).all(), (trace.schedule, upto)
        assert len(boxes) == len(trace.turns) and all(boxes)


def test_a_move_of_the_interleaving_slider_draws_nothing_and_its_text_says_its_value(
    monkeypatch,
):
    """Lesson 10's text lagged its slider (about 1 s at load 10): each move drew its
    interleaving, one move after another. Every interleaving of the countermeasure shown is
    drawn when it is chosen, so a move draws nothing, and the text under the slider is its
    interleaving's at once: the view a panel opened on that interleaving shows."""
    import rollback_lessons.lab.interleave as interleave

    lab = IsolationLab("dirty read")
    lab.choose("semantic lock", 1)
    drawn = []
    real = interleave.draw_trace
    monkeypatch.setattr(interleave, "draw_trace", lambda *a, **k: drawn.append(a) or real(*a, **k))
    n = lab.interleaving.max
    for number in (2, n, 1, n, 2):
        lab.interleaving.value = number  # what the slider does
        assert f"Interleaving {number} of {n}" in lab.view.value
        assert lab.turn.value == lab.turn.max == len(lab.trace.turns)
    assert drawn == []
    fresh = IsolationLab("dirty read")
    fresh.choose("semantic lock", 2)
    assert fresh.view.value == lab.view.value


def test_the_panel_draws_its_other_interleavings_while_the_learner_looks(monkeypatch):
    """Issue 24's speed: a change of countermeasure drew its picture, then every other
    interleaving of it at once (178 ms p95 to the picture painted at load 3, the next
    click waiting for them). In a kernel a change draws at most its own picture; the
    rest, every countermeasure's interleavings, are drawn while the learner looks, so the
    next change of countermeasure or interleaving draws nothing."""
    import asyncio

    import rollback_lessons.lab.interleave as interleave

    monkeypatch.setattr(interleave, "LAYERS", {})
    drawn: list[object] = []
    real = interleave.draw_trace
    monkeypatch.setattr(interleave, "draw_trace", lambda *a, **k: drawn.append(a) or real(*a, **k))

    async def walk() -> None:
        lab = IsolationLab("dirty read")
        assert len(drawn) == 1  # the one shown; the others later
        wanted = sum(len(interleavings(SCENARIOS[k])) for k in lab._traces)
        for _ in range(3000):
            await asyncio.sleep(0.01)
            if len(interleave.LAYERS) == wanted:
                break
        assert len(interleave.LAYERS) == wanted == len(drawn)
        for key, _ in lab.countermeasure.options[1:] + lab.countermeasure.options[:1]:
            for number in range(1, len(lab._traces[lab.countermeasure.value]) + 1):
                lab.interleaving.value = number
            lab.choose(key)
        assert len(drawn) == wanted  # every change found its picture drawn

    asyncio.run(walk())


def test_a_change_of_countermeasure_sends_its_view_first_and_each_slider_once(sent_states):
    """Issue 24: one update per change, the picture first. A change of countermeasure sent
    the interleaving's max, the turn's max, then its value (two messages), then the view."""
    lab = IsolationLab("dirty read")
    sent = sent_states
    for index in [*range(1, len(lab.countermeasure.options)), 0]:
        sent.clear()
        lab.countermeasure.set_state({"index": index})  # as the browser's message does
        assert lab.countermeasure.index == index
        assert sent[0][0] is lab.view, [type(widget).__name__ for widget, _ in sent]
        turn = [list(keys) for widget, keys in sent if widget is lab.turn]
        assert len(turn) <= 1 and all(keys.index("max") < keys.index("value") for keys in turn)
