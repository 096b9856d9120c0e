"""The panel, driven from Python the way a learner drives it in the browser."""

import io
import itertools

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
from rollback_lessons.lab.widgets import RollbackLab
from rollback_lessons.worlds.demo import xyz_saga, xyz_state


@pytest.fixture
def lab():
    return RollbackLab(xyz_saga(), state=xyz_state())


def png_size(data):
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image.size


def now_row(lab) -> str:
    """The highlighted row of the event log (it must be in the shown window)."""
    return lab.log.value.split('class="now"')[1].split("</tr>")[0]


def test_a_new_panel_shows_a_commit_on_its_most_telling_frame(lab):
    assert lab.outcome.status is Status.COMMITTED
    assert lab.frame_count == len(lab.outcome.events)
    assert lab.frame == lab.frame_count - 1  # the whole run, not an empty chart
    assert lab.cue.value == ""
    assert "committed" in lab.result.value
    assert "dead letters:</b> none" in lab.dead.value


def test_set_fault_reruns_and_everything_follows_the_new_run(lab):
    outcome = lab.set_fault("step2", "fail")
    assert outcome is lab.outcome
    assert outcome.status is Status.ROLLED_BACK
    assert outcome.compensated == ("step1",)
    assert outcome.state_after == {"x": 0, "y": 0, "z": 0}
    failed = next(i for i, e in enumerate(outcome.events) if e.kind == "pipeline_failed")
    assert lab.frame == failed  # the change shows at once: the run where it fails
    assert "pipeline_failed" in now_row(lab)
    assert "step2 fail → rolled_back" in lab.cue.value and "run 2" in lab.cue.value
    assert lab.play.max == lab.slider.max == len(outcome.events) - 1
    assert lab.log.value.split("<tbody>")[1].count("<tr") <= 11  # a window, not the whole log
    assert "rolled_back" in lab.result.value


def test_stepping_through_frames_changes_the_image_and_the_highlighted_event(lab):
    lab.set_fault("step3", "fail")
    lab.show_frame(0)
    seen = [lab.image.value]
    for i in range(1, lab.frame_count):
        lab.forward.click()
        assert lab.frame == i
        seen.append(lab.image.value)
        assert f">{i + 1}</td>" in now_row(lab)  # the log follows the frame
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
    assert "step1: InjectedFault" in lab.dead.value
    assert lab.set_policy("halt").status is Status.HALTED
    assert lab.set_policy("retry").dead_letters[0].attempts == 3
    lab.set_fault("step1", "undo_fails_once")
    assert lab.outcome.status is Status.ROLLED_BACK
    assert lab.inject == {"step1": ["undo_fails_once"], "step3": ["fail"]}


def test_state_tables_show_before_and_after_with_changes_highlighted(lab):
    lab.set_fault("step3", "fail_after_effect")
    html = lab.state_html()
    assert '<tr style="background:#F0E442"><td>z</td><td>0</td><td>3</td></tr>' in html
    assert "<tr><td>x</td><td>0</td><td>0</td></tr>" in html


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
    image = lab.image.value
    with pytest.raises(UnknownStepError, match="the steps are: step1, step2, step3"):
        lab.set_fault("step9", "fail")
    with pytest.raises(UnknownFaultError, match="choose from: ok, undo_ok, fail"):
        lab.set_fault("step1", "explode")
    with pytest.raises(InvalidPipelineError, match="unknown policy 'sometimes'"):
        lab.set_policy("sometimes")
    assert lab.outcome is good
    assert lab.image.value == image
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


def test_the_state_table_uses_the_states_own_snapshot():
    from rollback_lessons.worlds.services import booking_saga, new_world

    lab = RollbackLab(booking_saga(), state=lambda: new_world("127.0.0.1", 9))
    lab.set_fault("create_event", "fail")
    keys = [key for key, *_ in lab.timeline.state_cells(lab.frame_count - 1)]
    assert keys == ["sheet rows", "calendar", "charged", "refunded", "emails sent"]
    shown = lab.timeline.state_cells(lab.frame_count - 1)[0][2]
    full = repr(lab.outcome.state_after["sheet rows"])  # ['row-1:reverted']
    assert shown.endswith("…") and full.startswith(shown[:-1])  # abbreviated, never cut
    assert len(shown) <= lab.timeline.budget[2]  # it fits its column


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
    assert lab.play.value == 3


def test_a_chosen_fault_stands_out_and_goes_back_to_plain(lab):
    lab.set_fault("step2", "fail")
    assert "rl-chosen" in lab.actions["step2"]._dom_classes
    lab.set_fault("step2", "ok")
    assert "rl-chosen" not in lab.actions["step2"]._dom_classes
