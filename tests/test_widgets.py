"""The panel, driven from Python the way a learner drives it in the browser."""

import io
import itertools
import re

import pytest
from PIL import Image

from rollback_lessons import (
    InvalidPipelineError,
    Saga,
    Status,
    Step,
    UnknownFaultError,
    UnknownStepError,
)
from rollback_lessons.lab.panel_controls import STOP_TIP
from rollback_lessons.lab.widgets import LOG_ROWS, RollbackLab
from rollback_lessons.worlds.demo import xyz_saga, xyz_state


@pytest.fixture
def lab():
    return RollbackLab(xyz_saga(), state=xyz_state())


def png_size(data):
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image.size


def part(lab, css: str) -> str:
    """One part of the panel's view (picture, cue, state, result, log)."""
    return lab.view.value.split(f"class='{css}'")[1]


def now_row(lab) -> str:
    """The highlighted row of the event log (it must be in the shown window)."""
    return part(lab, "rl-log").split("class=now>")[1].split("</tr>")[0]


def log_rows(lab) -> list[str]:
    return part(lab, "rl-log").split("<tbody>")[1].split("</tbody>")[0].split("<tr")[1:]


def test_a_new_panel_shows_a_commit_on_its_most_telling_frame(lab):
    assert lab.outcome.status is Status.COMMITTED
    assert lab.frame_count == len(lab.outcome.events)
    assert lab.frame == lab.frame_count - 1  # the whole run, not an empty chart
    assert part(lab, "rl-cue").startswith("></div>")  # nothing re-ran yet
    assert "committed" in part(lab, "rl-result")
    assert "dead letters</th><td>none" in part(lab, "rl-result")


def test_numbering_starts_at_1_everywhere_a_learner_reads_it(lab):
    lab.set_fault("step2", "fail")
    failed = next(i for i, e in enumerate(lab.outcome.events) if e.kind == "pipeline_failed")
    total = len(lab.outcome.events)
    assert (lab.slider.min, lab.slider.max, lab.slider.value) == (1, total, failed + 1)
    assert f"event {failed + 1} of {total}: pipeline_failed step2" in lab.view.value
    assert f"<td>{failed + 1}</td>" in now_row(lab)  # the log's number, as the slider's
    assert lab.outcome.events[failed].seq == failed + 1


def test_back_and_next_are_disabled_at_the_ends(lab):
    lab.show_frame(0)
    assert lab.back.disabled and not lab.forward.disabled
    lab.show_frame(lab.frame_count - 1)
    assert lab.forward.disabled and not lab.back.disabled
    lab.back.click()
    assert not lab.back.disabled and not lab.forward.disabled


def test_each_change_is_one_message_for_picture_state_result_and_log(lab):
    """What the learner watches changes in one widget message: the view."""
    sent: list[tuple[str, tuple]] = []
    widgets = {
        id(x): name
        for name, x in [("view", lab.view), ("slider", lab.slider), ("play", lab.play),
                        ("back", lab.back), ("next", lab.forward),
                        *((f"action {k}", v) for k, v in lab.actions.items())]
    }  # fmt: skip
    originals = {}
    for widget in (lab.view, lab.slider, lab.play, lab.back, lab.forward, *lab.actions.values()):
        originals[id(widget)] = widget.send_state

        def spy(key=None, widget=widget):
            sent.append((widgets[id(widget)], tuple(key) if isinstance(key, list) else (key,)))

        widget.send_state = spy
    lab.actions["step2"].value = "fail"  # as a click does (its own echo aside)
    sent = [s for s in sent if s != ("action step2", ("index",))]
    views = [s for s in sent if s[0] == "view"]
    assert len(views) == 1, sent
    assert sent[0][0] == "view", sent  # the view goes first: it is what is watched
    sent.clear()
    lab.forward.click()
    assert [s[0] for s in sent].count("view") == 1


def test_a_panel_that_lost_its_kernel_says_so():
    from rollback_lessons.lab.widgets import CSS, LOST

    lab = RollbackLab(xyz_saga(), state=xyz_state())
    banners = [c for c in lab.widget.children if isinstance(c, type(lab.view))]
    assert any(LOST in b.value for b in banners)
    # shown by CSS alone once ipywidgets marks the panel disconnected (a kernel restart)
    assert ".rl-panel.jupyter-widgets-disconnected .rl-lost {display: block}" in CSS
    assert "rl-panel" in lab.widget._dom_classes


def test_a_panel_given_nothing_says_which_cells_to_run_first():
    from rollback_lessons.lab.guard import RunTheCellsAbove

    with pytest.raises(RunTheCellsAbove, match="Run the cells above this one first"):
        RollbackLab()


def test_set_fault_reruns_and_everything_follows_the_new_run(lab):
    outcome = lab.set_fault("step2", "fail")
    assert outcome is lab.outcome
    assert outcome.status is Status.ROLLED_BACK
    assert outcome.compensated == ("step1",)
    assert outcome.state_after == {"x": 0, "y": 0, "z": 0}
    failed = next(i for i, e in enumerate(outcome.events) if e.kind == "pipeline_failed")
    assert lab.frame == failed  # the change shows at once: the run where it fails
    assert "pipeline_failed" in now_row(lab)
    cue = part(lab, "rl-cue")
    assert "run 1 → rolled_back: step2 fail" in cue  # the first change
    assert lab.play.max == lab.slider.max == len(outcome.events)
    assert len(log_rows(lab)) == LOG_ROWS  # a window, always (what is not shown: in its heading)
    assert "failed…" in part(lab, "rl-result")  # the result as of the failure: not yet its end
    lab.show_frame(lab.frame_count - 1)
    assert "rolled_back" in part(lab, "rl-result")


def test_stepping_through_frames_changes_the_image_and_the_highlighted_event(lab):
    lab.set_fault("step3", "fail")
    lab.show_frame(0)
    seen = [lab.picture]
    for i in range(1, lab.frame_count):
        lab.forward.click()
        assert lab.frame == i
        seen.append(lab.picture)
        assert f"<td>{i + 1}</td>" in now_row(lab)  # the log follows the frame
        assert len(log_rows(lab)) == LOG_ROWS  # the same height while it plays
    assert len({png_size(p) for p in seen}) == 1
    assert all(a != b for a, b in itertools.pairwise(seen))
    lab.forward.click()  # past the end stays on the last frame
    assert lab.frame == lab.frame_count - 1
    lab.back.click()
    assert lab.frame == lab.frame_count - 2
    assert lab.show_frame(0) == seen[0]


def test_clicking_a_control_like_the_browser_does_reruns(lab):
    lab.actions["step3"].value = "fail_after_effect"
    assert lab.outcome.leaked == ("step3",)
    lab.register.value = "before"
    assert lab.outcome.status is Status.ROLLED_BACK
    assert lab.outcome.compensated == ("step3", "step2", "step1")


def test_policies_from_the_panel(lab):
    lab.set_fault("step3", "fail")
    lab.set_fault("step1", "undo_fails")
    assert lab.outcome.status is Status.ROLLBACK_INCOMPLETE
    lab.show_frame(lab.frame_count - 1)
    assert "step1 (1 attempt)" in part(lab, "rl-result")
    assert lab.set_policy("halt").status is Status.HALTED
    assert lab.set_policy("retry").dead_letters[0].attempts == 3
    lab.set_fault("step1", "undo_fails_once")
    assert lab.outcome.status is Status.ROLLED_BACK
    assert lab.inject == {"step1": ["undo_fails_once"], "step3": ["fail"]}


def test_state_tables_show_before_and_now_with_changes_highlighted(lab):
    lab.set_fault("step3", "fail_after_effect")
    lab.show_frame(lab.frame_count - 1)
    state = part(lab, "rl-state")
    short = "<td class='rl-short'>"  # (a short value: never broken)
    assert f"<tr class='changed'><td>z</td>{short}0</td>{short}3</td></tr>" in state
    assert f"<tr><td>x</td>{short}0</td>{short}0</td></tr>" in state
    assert "changed since before" in lab.view.value  # the yellow is in the legend


def test_state_values_break_only_where_the_column_cannot_hold_a_word():
    """'anywhere' lets a table size a column below its longest word ('booking-/1' beside a
    roomy 'now' column); 'break-word' breaks a value only when a word cannot fit at all."""
    from rollback_lessons.lab.panel_html import CSS

    rules = re.findall(r"\.rl-state td[^{]*\{\{?([^}]*)\}", CSS)
    assert rules, CSS
    for rule in rules:
        assert "anywhere" not in rule and "break-all" not in rule, rule
    assert any("overflow-wrap: break-word" in rule for rule in rules)


def test_forward_order_from_the_panel_breaks_dependent_steps():
    def rm_dir(s):
        if s["files"]:
            raise OSError("directory not empty")
        s["dirs"].clear()

    saga = Saga(
        [
            Step("mkdir", lambda s: s["dirs"].append("d"), rm_dir),
            Step("write", lambda s: s["files"].append("d/f"), lambda s: s["files"].clear()),
            Step("publish", lambda s: None),
        ]
    )
    lab = RollbackLab(saga, state=lambda: {"dirs": [], "files": []})
    lab.set_fault("publish", "fail")
    assert lab.outcome.status is Status.ROLLED_BACK
    lab.set_order("forward")
    assert lab.outcome.dead_letters[0].step == "mkdir"
    assert lab.outcome.state_after == {"dirs": ["d"], "files": []}


def test_bad_input_is_refused_and_the_last_good_run_stays(lab):
    good = lab.set_fault("step2", "fail")
    image = lab.view.value
    with pytest.raises(UnknownStepError, match="the steps are: step1, step2, step3"):
        lab.set_fault("step9", "fail")
    with pytest.raises(UnknownFaultError, match="choose from: ok, undo_ok, fail"):
        lab.set_fault("step1", "explode")
    with pytest.raises(InvalidPipelineError, match="unknown policy 'sometimes'"):
        lab.set_policy("sometimes")
    assert lab.outcome is good
    assert lab.view.value == image
    assert lab.actions["step1"].value == "ok"


def test_a_pivot_has_no_undo_control():
    saga = Saga(
        [
            Step("charge", lambda s: None, lambda s: None),
            Step("email", lambda s: None, kind="pivot"),
        ]
    )
    lab = RollbackLab(saga, state={})
    assert lab.undos["email"].disabled and not lab.undos["charge"].disabled
    with pytest.raises(InvalidPipelineError, match="has no undo"):
        lab.set_fault("email", "undo_fails")


def test_reset_and_each_run_starts_from_a_fresh_state(lab):
    lab.set_fault("step2", "fail_after_effect")
    assert lab.outcome.state_after == {"x": 0, "y": 2, "z": 0}
    outcome = lab.reset()
    assert outcome.status is Status.COMMITTED
    assert outcome.state_before == {"x": 0, "y": 0, "z": 0}


def test_the_panel_displays_as_a_widget(lab):
    bundle = lab._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_the_state_table_uses_the_states_own_snapshot_and_shows_values_whole():
    from rollback_lessons.worlds.services import booking_saga, new_world

    lab = RollbackLab(booking_saga(), state=lambda: new_world("127.0.0.1", 9))
    lab.set_fault("create_event", "fail")
    lab.show_frame(lab.frame_count - 1)
    assert lab.state_keys == ["sheet rows", "calendar", "charged", "refunded", "emails sent"]
    state = part(lab, "rl-state")
    # whole: the lesson's point; a line may break after its colon only (where the column
    # cannot hold it: newuser18), never after its hyphen (newuser7 saw "['row-" / "1:reverted']")
    assert "['row-\u20601:<wbr>reverted']" in state.replace("&#x27;", "'")
    assert "row-1" not in state and "-\u2060" in state


def test_every_button_and_choice_says_what_it_does(lab):
    for button in (lab.play_button, lab.back, lab.forward):
        assert button.description and button.tooltip
    for control in [*lab.actions.values(), *lab.undos.values()]:
        assert all(label in control.tooltip for label, _ in control.options)
    for control in (lab.policy, lab.register, lab.order):
        assert control.description and control.tooltip


def test_play_starts_from_the_frame_shown_and_from_the_start_at_the_end(lab):
    lab.set_fault("step3", "fail")
    lab.show_frame(lab.frame_count - 1)
    lab.play_button.click()
    assert lab.play.playing and lab.frame == 0 and lab.play_button.description == "Pause"
    lab.play_button.click()
    assert not lab.play.playing and lab.play_button.description == "Play"
    lab.show_frame(3)
    lab.play_button.click()
    assert lab.play.value == 4  # the slider's number: frame 3 is the 4th event


def test_play_after_a_change_walks_the_run_from_its_first_event(lab):
    """A change shows the new run's failure; Play then walks down the lanes from event 1
    (a new user saw only the last two events of a run play: it went on from the failure)."""
    lab.set_fault("step3", "fail")
    assert 0 < lab.frame < lab.frame_count - 1  # the failure, mid-run
    lab.play_button.click()
    assert lab.play.playing and lab.frame == 0 and lab.play.value == 1


def test_a_chosen_fault_stands_out_and_goes_back_to_plain(lab):
    lab.set_fault("step2", "fail")
    assert "rl-chosen" in lab.actions["step2"]._dom_classes
    lab.set_fault("step2", "ok")
    assert "rl-chosen" not in lab.actions["step2"]._dom_classes


# -- a saga with parallel groups, and the Stop button (issue 27) ----------------------------


@pytest.fixture
def trip():
    from rollback_lessons.worlds import travel

    return RollbackLab(travel.booking(), state=travel.state)


def test_which_branch_finishes_first_is_a_control_and_the_engine_plays_it(trip):
    from rollback_lessons.worlds import travel

    assert [v for _, v in trip.first.options] == ["", "car", "room", "flight"]
    assert {v for _, v in trip.order.options} == {
        "reverse", "reverse_start", "by_dependency", "forward",
    }  # fmt: skip
    one_by_one = trip.outcome
    assert one_by_one.state_after["cars"][travel.CAR] == "airport"  # the car booked first
    outcome = trip.set_first("room")
    assert trip.completion == ("room",)
    # the engine's own run with that timing: the room done first, the car sent there
    assert outcome.state_after["cars"][travel.CAR] == travel.ROOM
    assert outcome.events == travel.booking().run(travel.state(), completion=("room",)).events
    kinds = [(e.kind, e.step) for e in outcome.events[:3]]
    assert kinds == [("step_start", "car"), ("step_start", "room"), ("step_start", "flight")]
    trip.set_first(None)
    assert trip.completion is None and trip.outcome.events == one_by_one.events
    with pytest.raises(InvalidPipelineError, match="no branch holds"):
        trip.set_first("charge")


def test_the_trips_undos_are_drawn_in_their_real_order_on_branch_lanes(trip):
    trip.set_first("room")
    outcome = trip.set_fault("charge", "fail")
    undone = [e.step for e in outcome.events if e.kind == "undo_done"]
    assert undone == list(outcome.compensated) == ["flight", "car", "room"]
    assert trip.timeline.groups == ((("car",), ("room",), ("flight",)),)
    trip.set_order("reverse_start")  # the room undone before the car: the hotel refuses
    assert "room" in {d.step for d in trip.outcome.dead_letters}


def test_a_list_saga_has_no_branch_control(lab):
    assert lab.first is None and lab.completion is None
    assert [v for _, v in lab.order.options] == ["reverse", "forward"]
    with pytest.raises(InvalidPipelineError, match="no parallel group"):
        lab.set_first("step1")


def test_stop_cancels_mid_run_and_the_compensations_run_anyway(trip):
    trip.set_first("room")
    room_done = next(
        i for i, e in enumerate(trip.outcome.events) if (e.kind, e.step) == ("step_done", "room")
    )
    trip.show_frame(room_done)
    trip.stop_button.click()  # the event shown: the room booked, car and flight running
    outcome = trip.outcome
    assert outcome.status is Status.CANCELLED and trip.stopped_at == room_done + 1
    # the running bookings finished, nothing more started, and everything was undone
    assert set(outcome.compensated) == {"room", "car", "flight"}
    assert "charge" not in outcome.completed
    assert outcome.state_after == outcome.state_before
    assert "Stop after event" in part(trip, "rl-cue") and "cancelled" in part(trip, "rl-cue")
    assert "cancelled…" in part(trip, "rl-result")  # where the cancel landed: not yet the end
    trip.show_frame(trip.frame_count - 1)
    result = re.sub(r"<[^>]+>", "", part(trip, "rl-result"))
    assert f"cancelled: the saga was cancelled (Stop) after event {room_done + 1}" in result
    assert "failed with" not in result and "the block" not in result
    trip.set_fault("flight", "fail")  # any other change: a run without the Stop
    assert trip.stopped_at is None and trip.outcome.status is Status.ROLLED_BACK


def test_the_event_a_stop_ends_the_run_with_reads_as_a_cancel(trip):
    """newuser11: Stop at event 5 showed "event 7 of 13: pipeline_failed" (the engine's
    event for a cancel, its error Cancelled(...)): the caption says it was a cancel."""
    trip.set_first("room")
    trip.stop(4)
    failed = next(i for i, e in enumerate(trip.outcome.events) if e.kind == "pipeline_failed")
    trip.show_frame(failed)
    assert "pipeline_failed" in part(trip, "rl-caption")  # the engine's name, kept
    assert "(a cancel, not a failure)" in part(trip, "rl-caption")
    trip.set_fault("flight", "fail")  # a real failure: no such words
    failed = next(i for i, e in enumerate(trip.outcome.events) if e.kind == "pipeline_failed")
    trip.show_frame(failed)
    assert "cancel" not in part(trip, "rl-caption").split("</div>")[0]  # (the rest: hidden)


def test_stop_on_a_stopped_run_never_starts_another_run(trip):
    """newuser7: Play on a stopped run, Stop at its event 5 started a run without the first
    Stop, cancelled after ITS event 5 (a step_done the learner never saw)."""
    trip.set_first("room")
    assert not trip.stop_button.disabled
    trip.stop(2)
    stopped, runs = trip.outcome, trip.runs
    assert trip.stop_button.disabled and "already stopped after event 3" in trip.stop_button.tooltip
    for index in range(trip.frame_count):  # replaying it: Stop anywhere changes nothing
        trip.show_frame(index)
        trip.stop_button.click()
        assert trip.stop() is stopped and trip.outcome is stopped and trip.runs == runs
    trip.set_fault("flight", "fail")  # a new run: Stop is back
    assert not trip.stop_button.disabled and trip.stop_button.tooltip == STOP_TIP
    trip.show_frame(1)
    assert trip.stop().status is Status.CANCELLED and trip.stopped_at == 2


def test_stop_is_marked_in_the_picture_where_the_cancel_landed(trip):
    from rollback_lessons.lab.drawing import STOP_LABEL
    from rollback_lessons.lab.quality import crossings, text_problems

    def stops():
        return [g for g in trip.timeline._glyphs if g.artist.get_gid() == "stop"]

    legend = [t.get_text() for t in trip.timeline.fig.legends[0].get_texts()]
    assert legend.count(STOP_LABEL) == 1  # one entry, in the panel's legend from the start
    assert stops() == []  # no Stop, no mark
    events = trip.outcome.events
    at = 3
    trip.stop(at)
    events = trip.outcome.events
    [mark] = stops()
    x = mark.artist.get_xdata()[0]
    assert events[at].seq < x < events[at + 1].seq  # between the event shown and the next
    assert mark.seq == events[at + 1].seq  # it appears once the run passes it
    fig = trip.timeline.show(trip.frame_count - 1)
    assert text_problems(fig) == [] and crossings(fig, drawn=True) == []
    trip.set_fault("flight", "fail")  # a run without the Stop: no mark
    assert stops() == []


def test_stop_past_the_pivot_is_declined_with_the_engines_note():
    from rollback_lessons.schedule import PAST_PIVOT
    from rollback_lessons.worlds import examples

    saga = examples.booking_saga([*examples.SAFE_BOOKING_ORDER, "award_points"])
    lab = RollbackLab(saga, state=examples.booking_state)
    events = lab.outcome.events
    pivot = next(  # (the irreversible step has started: a Stop now is declined)
        i for i, e in enumerate(events) if (e.kind, e.step) == ("step_start", "send_email")
    )
    charged = next(
        i for i, e in enumerate(events) if (e.kind, e.step) == ("step_done", "charge_card")
    )
    before = next(
        i for i, e in enumerate(events) if (e.kind, e.step) == ("step_done", "reserve_room")
    )
    assert lab.stop(before).status is Status.CANCELLED
    done = [s for s in lab.outcome.completed if saga[s].undo is not None]
    assert "send_email" not in lab.outcome.completed  # the pivot never started
    assert sorted(lab.outcome.compensated) == sorted(done)  # and all that was done, undone
    lab.reset()  # just before it: heard as the charge returned, the email never starts
    assert lab.stop(charged).status is Status.CANCELLED
    assert "send_email" not in {e.step for e in lab.outcome.events if e.kind == "step_start"}
    lab.reset()
    outcome = lab.stop(pivot)
    assert outcome.status is Status.COMMITTED and PAST_PIVOT in outcome.notes
    assert "declined" in part(lab, "rl-cue")
    assert PAST_PIVOT.split(":")[0] in part(lab, "rl-result")  # the engine's own words
    lab.reset()
    late = lab.stop(lab.frame_count - 1)  # the run had ended: nothing to cancel
    assert late.status is Status.COMMITTED and "too late" in part(lab, "rl-cue")


def test_the_cue_names_each_option_that_differs_from_the_engines_default():
    """A new user switched the undo order and read only the faults in the cue."""
    from rollback_lessons.worlds.demo import xyz_saga, xyz_state

    lab = RollbackLab(xyz_saga(), state=xyz_state())
    lab.set_fault("step3", "fail")
    assert "policy" not in lab._cue[1] and "order" not in lab._cue[1]
    lab.set_order("forward")
    lab.set_policy("halt")
    assert lab._cue[1].endswith(": step3 fail; policy halt; order forward")
