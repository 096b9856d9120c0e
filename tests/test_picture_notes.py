"""A note stays on its own step's lane, or a line leads from it to its marker (newuser20
#5): lesson 02, write_file "fail after effect" + "undo fails once" under retry, the "dead
letter" of make_folder's black square was drawn on write_file's lane, beside write_file's
"still done" (place_notes moves a crowded note half way to the next lane, or further).
Checked on the figure (``quality.notes_off_lane``, in every picture's report) over every
lesson world's crowded runs: one step's effect failing with its undo failing too, an
earlier undo failing, each policy (a sixteenth in make test, a different one each run;
all in make soak)."""

from __future__ import annotations

import itertools

import pytest
from conftest import a_part
from test_picture_layout import WORLDS, panel_timeline

from rollback_lessons import VirtualClock
from rollback_lessons.lab import viz
from rollback_lessons.lab.quality import notes_off_lane, report
from rollback_lessons.lab.widgets import RollbackLab
from rollback_lessons.worlds import examples

POLICIES = ("continue", "retry", "halt")


def crowded(saga) -> list[tuple[str, dict, str]]:
    """A step failing after its effect with its own undo failing (always, once), alone or
    with an earlier step's undo failing too, under each policy."""
    undoable = [s.name for s in saga.steps if s.undo is not None]
    out = []
    for step, own, policy in itertools.product(
        undoable, ("undo_fails", "undo_fails_once"), POLICIES
    ):
        for earlier in [None, *undoable[: undoable.index(step)]]:
            inject = {step: ["fail_after_effect", own]}
            if earlier:
                inject[earlier] = ["undo_fails"]
            out.append((f"{inject} ({policy})", inject, policy))
    return out


def test_newuser20s_dead_letter_is_led_to_make_folders_square():
    lab = RollbackLab(examples.folder_saga(), state=examples.folder_state)
    lab.set_policy("retry")
    lab.set_fault("write_file", "fail_after_effect")
    lab.set_fault("write_file", "undo_fails_once")
    fig = lab.timeline.show(lab.frame_count - 1)
    assert report(fig)["problems"] == []
    leaders = [
        line for line in lab.timeline.ax.get_lines() if str(line.get_gid()).startswith("leader:")
    ]
    assert [line.get_gid() for line in leaders if line.get_visible()] == ["leader:13:0"]


@pytest.mark.parametrize("world", sorted(WORLDS))
def test_no_note_sits_off_its_lane_without_a_leader_in_any_crowded_run(world):
    make_saga, make_state = WORLDS[world]
    saga = make_saga()
    panel = panel_timeline(saga, make_state)
    bad = []
    for label, inject, policy in a_part(crowded(saga), 16, name=f"notes on their lanes {world}"):
        outcome = saga.run(
            make_state(), inject=inject, policy=policy, clock=VirtualClock(), trace_state=True
        )
        for timeline in (panel, viz.timeline_for(outcome)):
            if timeline is panel:
                panel.load(outcome)
            fig = timeline.show(timeline.frame_count - 1)
            # (only the notes' lanes here: these runs crowd a lane with two faults, and 8 of
            # them collide or cross on main already; s47's report lists them)
            found = notes_off_lane(fig)
            bad += [f"{label}: {p}" for p in found]
    assert bad == []
