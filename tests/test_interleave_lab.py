"""Lesson 10's picture and panel: every scenario, every interleaving, every turn drawn
without colliding or cut text; the panel's controls change what it shows."""

import matplotlib
import pytest
from conftest import SOAK, text_problems

from rollback_lessons.lab.interleave import IsolationLab, draw_trace, trace_png
from rollback_lessons.lab.png import read_report
from rollback_lessons.lab.quality import MIN_TEXT_PX
from rollback_lessons.worlds.isolation import SCENARIOS, interleavings

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
