"""The state machine and the BPMN diagrams of every lesson world: no two texts collide,
nothing is cut, every state or task is drawn with its name, and the legend names only the
kinds of line and glyph the picture holds."""

import dataclasses
import json

import matplotlib
import pytest
from conftest import lesson_worlds, text_problems
from matplotlib.figure import Figure
from matplotlib.text import Text

from rollback_lessons.lab.engines import draw_asl, draw_bpmn, wrap_name
from rollback_lessons.lab.quality import crossings
from rollback_lessons.runners.bpmn import to_bpmn, to_bpmn_explicit
from rollback_lessons.runners.stepfunctions import to_asl
from rollback_lessons.saga import Saga
from rollback_lessons.worlds import services

matplotlib.use("Agg")

SAGAS = {name: make for name, (make, _) in lesson_worlds().items()}
SAGAS["services"] = services.booking_saga  # lesson 09's saga


def _lengthened(suffix: str):
    """Lesson 09's saga with every step's name made longer (one word, as names are)."""
    steps = services.booking_saga().steps
    return lambda: Saga([dataclasses.replace(s, name=s.name + suffix) for s in steps],
                        name="booking")  # fmt: skip


LONG = {"services, names of 22": _lengthened("_for_guests"),
        "services, names of 37": _lengthened("_for_the_conference_guests")}  # fmt: skip


def texts(fig: Figure) -> str:
    if fig.stale:  # (text_problems has just drawn it: not again)
        fig.canvas.draw()
    return "\n".join(t.get_text() for t in fig.findobj(Text) if t.get_visible())


@pytest.mark.parametrize("policy", ["continue", "retry", "halt"])
@pytest.mark.parametrize("world", sorted(SAGAS))
def test_the_state_machine_picture_fits(world, policy):
    asl = to_asl(SAGAS[world](), policy=policy)
    fig = draw_asl(asl)
    assert text_problems(fig) == []
    shown = texts(fig).replace("\n", " ")
    for name in asl["States"]:
        assert name in shown, name
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    catches = any("Catch" in s for s in asl["States"].values())
    choices = any(s["Type"] == "Choice" for s in asl["States"].values())
    assert ("Catch: a failure goes here" in labels) == catches
    assert ("Choice: a person's answer" in labels) == choices
    retried = [n for n, s in asl["States"].items() if "Retry" in s]
    assert shown.count("Retry ×") == len(retried)


@pytest.mark.parametrize("form", [to_bpmn, to_bpmn_explicit], ids=["compensation", "explicit"])
@pytest.mark.parametrize("world", sorted(SAGAS) + sorted(LONG))
def test_the_bpmn_picture_fits(world, form):
    make = {**SAGAS, **LONG}[world]
    xml = form(make())
    fig = draw_bpmn(xml)
    assert text_problems(fig) == []
    # no flow through a task's name, a question or an end's name (drawn by text_problems)
    assert crossings(fig, drawn=True) == []
    shown = texts(fig).replace("_\n", "_").replace("\n", " ")
    for step in make().names:
        assert f"Do {step}" in shown
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert ("compensation event" in labels) == ("compensateEventDefinition" in xml)
    assert ("compensation handler" in labels) == ("bpmn:association" in xml)
    assert ("gateway: one way on" in labels) == ("exclusiveGateway" in xml)


def test_the_check_sees_a_collision_in_an_engine_picture():
    fig = draw_asl(to_asl(SAGAS["xyz"]()))
    [box] = [t for t in fig.findobj(Text) if t.get_text() == "Do step1"]
    fig.axes[0].text(*box.get_position(), "on top of a state")
    assert any("overlap" in p for p in text_problems(fig))
    json.dumps(to_asl(SAGAS["xyz"]()))  # the picture never changed the machine


@pytest.mark.parametrize(
    "name",
    [
        "charge_card",
        "charge_card_for_the_conference_guests",
        "a_name_withoutbreaksforfartoolongtofit",
        "two words",
    ],
)
@pytest.mark.parametrize("chars", [6, 9, 14])
def test_a_name_wraps_after_its_underscores_and_loses_nothing(name, chars):
    lines = wrap_name(name, chars)
    assert all(0 < len(line) <= chars for line in lines)
    assert "".join(lines).replace(" ", "") == name.replace(" ", "")


def test_a_name_breaks_after_underscores_filling_each_line():
    assert wrap_name("charge_card_for_the_conference_guests", 14) == [
        "charge_card_", "for_the_", "conference_", "guests"
    ]  # fmt: skip
    assert wrap_name("Do charge_card", 14) == ["Do charge_card"]


def test_the_check_sees_an_arrow_over_a_gateways_question():
    fig = draw_bpmn(to_bpmn_explicit(SAGAS["folder"]()))
    [label] = [t for t in fig.findobj(Text) if t.get_text() == "publish logged?"]
    fig.canvas.draw()
    box = label.get_window_extent()
    x, y = fig.axes[0].transData.inverted().transform(((box.x0 + box.x1) / 2, box.y0))
    fig.axes[0].plot([x, x], [y - 60, y + 60], gid="connector")  # a flow as the old one ran
    assert "an arrow crosses 'publish logged?'" in crossings(fig)
