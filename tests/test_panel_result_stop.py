"""The result names a Stop that did not take (the panel leftovers of newuser23): it said
"committed" and nothing of the Stop, which only the cue line above told. Now the result's
head says the Stop came too late (and why, as the cue does) or was declined past the pivot;
a Stop that took is told as before ("cancelled ...")."""

from __future__ import annotations

import html
import re

from rollback_lessons import Status
from rollback_lessons.lab.widgets import RollbackLab
from rollback_lessons.worlds import examples, travel


def head(lab: RollbackLab) -> str:
    """The result's head at the run's last event (before it, the panel shows no result)."""
    part = lab.view_html(lab.frame_count - 1).split("class='rl-result'>")[1]
    return html.unescape(re.sub(r"<[^>]+>", "", part.split("</div>")[0]))


def at(lab: RollbackLab, kind: str, step: str | None) -> int:
    return next(i for i, e in enumerate(lab.outcome.events) if (e.kind, e.step) == (kind, step))


def test_a_stop_after_the_run_ended_is_named_too_late_in_the_result():
    lab = RollbackLab(travel.booking(), state=travel.state)
    end = at(lab, "committed", None)
    assert lab.stop(end).status is Status.COMMITTED
    assert head(lab) == f"committed; Stop after event {end + 1}: too late"


def test_a_stop_past_the_pivot_is_named_declined_in_the_result():
    saga = examples.booking_saga([*examples.SAFE_BOOKING_ORDER, "award_points"])
    lab = RollbackLab(saga, state=examples.booking_state)
    pivot = at(lab, "step_start", "send_email")
    assert lab.stop(pivot).status is Status.COMMITTED
    assert head(lab) == "committed"  # (the engine's note says it was declined, and why)
    result = lab.view_html(lab.frame_count - 1).split("class='rl-result'>")[1]
    assert "a cancel heard once the irreversible step had started: declined" in result


def test_a_stop_that_took_says_cancelled_and_nothing_of_too_late():
    lab = RollbackLab(travel.booking(), state=travel.state)
    assert lab.stop(at(lab, "step_done", "room")).status is Status.CANCELLED
    assert head(lab).startswith("cancelled: the saga was cancelled (Stop)")
    assert "too late" not in head(lab) and "declined" not in head(lab)


def test_a_stop_after_a_branch_failed_is_too_late_not_a_cancel():
    """newuser25 #2: room first, the car failing, a Stop after event 7 (the car had failed
    at event 6): the Stop was heard as the first branch returned, before the car failed,
    and the run said "cancelled" of what the car's failure did anyway."""
    for fault, status in (("fail", Status.ROLLED_BACK),
                          ("fail_after_effect", Status.ROLLBACK_INCOMPLETE)):  # fmt: skip
        lab = RollbackLab(travel.booking(), state=travel.state)
        lab.set_first("room")
        plain = lab.set_fault("car", fault)
        failed = at(lab, "step_failed", "car")
        for stop in range(failed, at(lab, "pipeline_failed", "car")):
            lab = RollbackLab(travel.booking(), state=travel.state)
            lab.set_first("room")
            lab.set_fault("car", fault)
            outcome = lab.stop(stop)
            assert outcome.status is status == plain.status
            assert [(e.kind, e.step) for e in outcome.events] == [
                (e.kind, e.step) for e in plain.events
            ]
            assert not outcome.cancelled and "stopped by" not in str(outcome)
            assert f"Stop after event {stop + 1}: too late" in head(lab)


def test_a_halted_rollback_names_the_step_with_no_undo_kept():
    """newuser25: under halt, a failed undo and a Stop after the charge: the printout said
    "pending room, car" and nothing of the 600 still charged (lesson 12's booking with the
    charge's refund left out: the lesson's own charge is refunded, learn80 F1)."""
    from test_outcome_kept import no_refund

    lab = RollbackLab(no_refund(), state=travel.state)
    lab.set_policy("halt")
    lab.set_fault("room", "undo_fails")
    outcome = lab.stop(at(lab, "step_done", "charge"))
    assert outcome.status is Status.HALTED and outcome.kept == ("charge",)
    assert outcome.state_after["charged"] == 600
    assert "kept          charge" in str(outcome)


def test_a_cancel_whose_rollback_failed_is_said_stopped_by_never_the_block_failed():
    lab = RollbackLab(travel.booking(), state=travel.state)
    lab.set_first("room")
    lab.set_order("reverse_start")
    outcome = lab.stop(0)
    assert outcome.status is Status.ROLLBACK_INCOMPLETE and outcome.cancelled
    said = str(outcome).splitlines()[0]
    assert said.startswith("rollback_incomplete: stopped by Cancelled(") and "block" not in said


def test_a_step_with_no_undo_is_never_called_a_gate_and_the_last_one_says_a_stop_keeps_it():
    from rollback_lessons import Saga, Step

    def nothing(state: dict) -> None:
        pass

    saga = Saga([Step("a", nothing, nothing), Step("note", nothing),
                 Step("check", nothing, kind="gate"), Step("z", nothing)])  # fmt: skip
    lab = RollbackLab(saga, state=dict)
    assert "gate" not in lab.undos["note"].tooltip and "kept" in lab.undos["note"].tooltip
    assert "a gate" in lab.undos["check"].tooltip
    assert "a Stop while it runs" in lab.undos["z"].tooltip and "kept" in lab.undos["z"].tooltip


def test_a_step_that_failed_as_the_stop_came_is_said_so_in_the_result():
    lab = RollbackLab(travel.booking(), state=travel.state)
    lab.set_fault("charge", "fail")
    lab.stop(at(lab, "step_start", "charge"))
    assert head(lab).endswith("; Stop after event 10: too late")
    cue = lab.view.value.split("class='rl-cue'")[1].split("</div>")[0]
    assert "too late: charge was running" in html.unescape(cue)  # (why: the cue line says it)


def test_a_stop_after_an_event_the_run_does_not_have_is_refused_before_anything_runs():
    """newuser25: stop(-1) and stop(100) were clamped to the first and last events, unsaid."""
    import pytest

    lab = RollbackLab(travel.booking(), state=travel.state)
    shown = lab.outcome
    for at in (-1, lab.frame_count, 100):
        with pytest.raises(ValueError, match=rf"no event {at}: the run shown has events 0 to"):
            lab.stop(at)
        assert lab.outcome is shown and lab.stopped_at is None  # nothing ran
    assert lab.stop(lab.frame_count - 1).status is Status.COMMITTED  # the last one: too late


def test_a_stop_that_did_not_take_leaves_stop_for_an_earlier_event():
    """newuser26 #1: the panel opens at the last event, so a first Stop there came too late,
    and the button was then disabled ("this run was already stopped"), though the run
    shown was the run without it: no Stop could be placed anywhere else."""
    lab = RollbackLab(travel.booking(), state=travel.state)
    assert lab.stop(at(lab, "committed", None)).status is Status.COMMITTED
    assert not lab.stop_button.disabled and "already stopped" not in lab.stop_button.tooltip
    assert lab.stop(at(lab, "step_done", "room")).status is Status.CANCELLED  # it takes
    assert lab.stop_button.disabled and "already stopped" in lab.stop_button.tooltip
    saga = examples.booking_saga([*examples.SAFE_BOOKING_ORDER, "award_points"])
    lab = RollbackLab(saga, state=examples.booking_state)  # declined past the pivot: the same
    assert lab.stop(at(lab, "step_start", "send_email")).status is Status.COMMITTED
    assert not lab.stop_button.disabled


def test_the_tooltips_promise_only_what_happens():
    """newuser26 #2, #4, #8 and #6: "retried forward until it succeeds" of a step whose tries
    run out (the saga halts); "fails once, then works" of an undo that works again only under
    retry; Stop's "what was done is undone" beside a step with no undo kept; the declined
    note's "the run goes on forward" above a run that then failed and was undone."""
    from rollback_lessons.lab.panel_controls import STOP_TIP, UNDO_TIPS
    from rollback_lessons.schedule import PAST_PIVOT

    saga = examples.booking_saga([*examples.SAFE_BOOKING_ORDER, "award_points"])
    lab = RollbackLab(saga, state=examples.booking_state)
    tip = lab.undos["award_points"].tooltip
    assert "halts" in tip and "until it succeeds" not in tip
    assert "under retry" in UNDO_TIPS[2] and "then works" not in UNDO_TIPS[2]
    assert "what has an undo is undone" in STOP_TIP  # (newuser27: too late, and which step
    assert "too late once the run has failed or ended" in STOP_TIP  # declines: lesson 12
    assert "a step marked irreversible" in STOP_TIP  # has none)
    assert "goes on forward" not in PAST_PIVOT and PAST_PIVOT.startswith(
        "a cancel heard once the irreversible step had started: declined"
    )


def test_the_printed_outcome_names_a_stop_beside_a_branchs_failure():
    """newuser26 #5: the panel said "cancelled (Stop) ...; car failed too", and
    ``print(lab.outcome)`` only "cancelled: car failed with ...", the Stop left out."""
    for fault, status in (("fail", Status.CANCELLED),
                          ("fail_after_effect", Status.ROLLBACK_INCOMPLETE)):  # fmt: skip
        lab = RollbackLab(travel.booking(), state=travel.state)
        lab.set_first("room")
        lab.set_fault("car", fault)
        outcome = lab.stop(2)
        assert outcome.status is status and outcome.failed_step == "car"
        assert (
            str(outcome)
            .splitlines()[0]
            .startswith(f"{status}: stopped by its caller; car failed too, with Injected")
        )
