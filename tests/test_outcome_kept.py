"""A rollback leaves a step with no undo done by design, and says so (newuser24 #1): a Stop
heard while lesson 12's charge ran undid the trip and said ``cancelled``, the card still
charged, and nothing named the charge. ``Outcome.kept`` names such steps, from the
outcome's own fields (every engine's record has them), checked against the world itself on
generated sagas: what the world still holds after a rollback is exactly ``kept``. (Lesson
12's charge is now refunded, learn80 F1: the panel's ``kept`` is shown on its booking with
the refund left out, as a learner may write it.)"""

from __future__ import annotations

import re
import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from rollback_lessons import Saga, Status, Step
from rollback_lessons.lab.panel_html import result_html
from rollback_lessons.lab.widgets import RollbackLab
from rollback_lessons.worlds import travel

SHAPES = st.lists(st.sampled_from(["undo", "bare", "gate"]), min_size=1, max_size=6)


def saga_of(shapes: list[str], cancel: threading.Event, stop_in: int | None) -> Saga:
    def act(i: int, shape: str):
        def action(state: dict) -> None:
            if shape != "gate":
                state[f"s{i}"] = "done"
            if i == stop_in:
                cancel.set()  # heard as this step returns: the run stops here

        return action

    def undo(i: int):
        return lambda state: state.pop(f"s{i}")

    return Saga(
        [
            Step(
                f"s{i}",
                act(i, shape),
                undo(i) if shape == "undo" else None,
                kind="gate" if shape == "gate" else "compensable",
            )
            for i, shape in enumerate(shapes)
        ],
        name="kept",
    )


@settings(max_examples=150, deadline=None)
@given(SHAPES, st.data())
def test_what_a_rollback_leaves_in_the_world_is_exactly_kept(shapes, data):
    n = len(shapes)
    how = data.draw(st.sampled_from(["fail", "cancel", "none"]))
    at = data.draw(st.integers(0, n - 1))
    cancel, state = threading.Event(), {}
    saga = saga_of(shapes, cancel, at if how == "cancel" else None)
    inject = {f"s{at}": "fail"} if how == "fail" else {}
    outcome = saga.run(state, inject=inject, cancel=cancel)
    standing = sorted(state)
    if outcome.status is Status.COMMITTED:
        assert outcome.kept == ()
        return
    assert outcome.status in (Status.ROLLED_BACK, Status.CANCELLED)
    assert sorted(outcome.kept) == standing  # the world holds these, and only these
    assert all(shapes[int(s[1:])] == "bare" for s in outcome.kept)
    said = str(outcome)
    if outcome.kept:
        assert f"kept          {', '.join(outcome.kept)}  (no undo: its effect stands)" in said
    else:
        assert "kept" not in said


def no_refund() -> Saga:
    """Lesson 12's booking with the charge's refund left out."""
    group = travel.booking().definition[0]
    return Saga([group, Step("charge", travel.charge, label="charge the card")], name="travel")


def test_a_stop_while_the_charge_runs_names_the_charge_kept_in_the_panel():
    lab = RollbackLab(no_refund(), state=travel.state)
    at = next(i for i, e in enumerate(lab.outcome.events)
              if (e.kind, e.step) == ("step_start", "charge"))  # fmt: skip
    outcome = lab.stop(at)
    assert outcome.status is Status.CANCELLED and outcome.kept == ("charge",)
    assert outcome.state_after["charged"] == 600  # the card stays charged: said, not hidden
    text = re.sub(r"<[^>]+>", " ", result_html(outcome, at + 1))
    assert "kept" in text and "charge (no undo: its effect stands)" in text
    assert "kept (no undo)" in outcome._repr_html_()
    lab = RollbackLab(no_refund(), state=travel.state)
    outcome = lab.stop(at - 1)  # before the charge started: nothing kept, the world as it was
    assert outcome.kept == () and outcome.state_after == travel.state()
