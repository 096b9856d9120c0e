"""The state machine and the BPMN diagrams of every lesson world: no two texts collide,
nothing is cut, every state or task is drawn with its name, and the legend names only the
kinds of line and glyph the picture holds."""

import json

import matplotlib
import pytest
from conftest import lesson_worlds, text_problems
from matplotlib.figure import Figure
from matplotlib.text import Text

from rollback_lessons.lab.engines import draw_asl, draw_bpmn
from rollback_lessons.runners.bpmn import to_bpmn, to_bpmn_explicit
from rollback_lessons.runners.stepfunctions import to_asl
from rollback_lessons.worlds import services

matplotlib.use("Agg")

SAGAS = {name: make for name, (make, _) in lesson_worlds().items()}
SAGAS["services"] = services.booking_saga


def texts(fig: Figure) -> str:
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
@pytest.mark.parametrize("world", sorted(SAGAS))
def test_the_bpmn_picture_fits(world, form):
    xml = form(SAGAS[world]())
    fig = draw_bpmn(xml)
    assert text_problems(fig) == []
    shown = texts(fig).replace("\n", " ")
    for step in SAGAS[world]().names:
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
