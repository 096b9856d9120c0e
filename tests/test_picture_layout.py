"""Every lesson world's picture (static, and the panel's), under every single fault and
every undo fault (with each undo policy; in make test a part of them, see runs()): no two
texts collide, no text or value is cut, no text is under 12 px, the run's path crosses no
note, and every marker and colour in the lanes is one the legend explains."""

import matplotlib
import numpy as np
import pytest
from conftest import SOAK, a_part
from matplotlib.colors import to_hex
from matplotlib.lines import Line2D

from rollback_lessons import VirtualClock
from rollback_lessons.faults import UNDO_FAULTS, fault_space
from rollback_lessons.lab import viz
from rollback_lessons.lab.quality import (
    MIN_TEXT_PX,
    RING_GAP_PX,
    crossings,
    crowded_marks,
    hidden_marks,
    min_text_px,
    notes_off_lane,
    ring_crossings,
    rings,
    text_problems,
)
from rollback_lessons.lab.timeline import FAINT
from rollback_lessons.lab.widgets import RollbackLab
from rollback_lessons.worlds import demo, examples, services

matplotlib.use("Agg")

WORLDS = {
    "xyz": (demo.xyz_saga, demo.xyz_state),
    "folder": (examples.folder_saga, examples.folder_state),
    "account": (examples.account_saga, examples.account_state),
    "user": (examples.user_saga, examples.user_state),
    "order": (examples.order_saga, examples.order_state),
    "booking": (
        lambda: examples.booking_saga([*examples.SAFE_BOOKING_ORDER, "award_points"]),
        examples.booking_state,
    ),
    # lesson 11's: the email last, so a halt's note sits on the bottom lane
    "booking, email last": (examples.booking_saga, examples.booking_state),
    "booking unsafe": (
        lambda: examples.booking_saga(
            ["verify_card", "reserve_room", "send_email", "charge_card"], allow_unsafe_order=True
        ),
        examples.booking_state,
    ),
    "services": (services.booking_saga, lambda: services.new_world("127.0.0.1", 9)),
    "services email first": (
        lambda: services.booking_saga(email_first=True),
        lambda: services.new_world("127.0.0.1", 9),
    ),
}


POLICIES = ("continue", "retry", "halt")


def runs(saga, turn: int = 0):
    """Each single action fault; each undo fault (the last step failing) under each policy.
    make test draws each undo fault under one policy, in turn (``turn`` shifts it: the
    picture and the panel take different ones), and of those runs a third, a different third
    each run (conftest's a_part; a picture took 0.3-1 CPU s to draw and check: 106 CPU s for
    the file); make soak (SOAK=1) draws every fault under every policy in both."""
    last = saga.names[-1]
    n = turn
    for step, fault in fault_space((s.name, s.undo is not None) for s in saga.steps):
        if fault not in UNDO_FAULTS:
            yield f"{step} {fault}", {step: fault}, "continue"
        elif step != last:
            for policy in POLICIES if SOAK else (POLICIES[n % len(POLICIES)],):
                yield f"{step} {fault} ({policy})", {step: fault, last: "fail"}, policy
            n += 1


def problems(timeline, name: str) -> list[str]:
    # the "this event" ring crosses no text shown (newuser17: lessons 04 and 11, over
    # "effect happened"): make test asks it of a third of the frames of each run, a different
    # third each run (conftest's a_part; every frame was 0.06 CPU s, a third of the file's
    # CPU), make soak of every frame; the last frame has no ring, checked whole below
    found = [
        f"event {i + 1}: {p}"
        for i in a_part(list(range(timeline.frame_count - 1)), 3, name=f"ring frames {name}")
        for p in ring_crossings(timeline.show(i))
    ]
    fig = timeline.show(timeline.frame_count - 1)
    found += text_problems(fig)  # draws the figure, once for both checks
    found += crossings(fig, drawn=True) + [f"cut value: {v}" for v in timeline.cut]
    found += hidden_marks(fig) + crowded_marks(fig) + notes_off_lane(fig)
    if (smallest := min_text_px(fig)) < MIN_TEXT_PX:
        found.append(f"text of {smallest:.1f} px")
    return found


def markers(timeline) -> set[tuple[str, str]]:
    """(marker, face colour) of every single-point glyph in the lanes."""
    timeline.show(timeline.frame_count - 1)
    found = set()
    for line in timeline.ax.get_lines():
        xs = line.get_xdata()
        if line.get_visible() and len(xs) == 1 and line.get_marker() not in ("None", "", None):
            if line is timeline._cursor:
                continue
            found.add((str(line.get_marker()), str(line.get_markerfacecolor()).lower()))
    return found


def legend_markers(timeline) -> set[tuple[str, str]]:
    [legend] = timeline.fig.legends
    return {
        (str(h.get_marker()), str(h.get_markerfacecolor()).lower())
        for h in legend.legend_handles
        if isinstance(h, Line2D)
    }


def colours(timeline) -> set[str]:
    """Every colour a mark in the picture is drawn in (lines, markers, shaded areas)."""
    timeline.show(timeline.frame_count - 1)
    found = set()
    axes = [timeline.ax] + ([timeline.tax] if timeline.table else [])
    for ax in axes:
        for line in ax.get_lines():
            if line.get_visible() and line is not timeline._cursor:
                found.add(to_hex(line.get_color()))
                if line.get_marker() not in ("None", "", None):
                    found.add(to_hex(line.get_markerfacecolor()))
        for patch in ax.patches:
            if patch.get_visible():
                found.add(to_hex(patch.get_facecolor(), keep_alpha=False))
    return found - {to_hex(FAINT), "#ffffff"}  # the lanes' own grey lines, white faces


def legend_colours(timeline) -> set[str]:
    [legend] = timeline.fig.legends
    found = set()
    for h in legend.legend_handles:
        if isinstance(h, Line2D):
            found |= {to_hex(h.get_color()), to_hex(h.get_markerfacecolor())}
        else:
            found.add(to_hex(h.get_facecolor(), keep_alpha=False))
    return found


def panel_timeline(saga, state):
    """The panel's picture: lanes only, at the panel's width (RollbackLab's own Timeline)."""
    return RollbackLab(saga, state=state).timeline


@pytest.mark.parametrize("mode", ["picture", "panel"])
@pytest.mark.parametrize("world", sorted(WORLDS))
def test_no_text_collides_or_is_cut_and_every_mark_is_in_the_legend(world, mode):
    make_saga, make_state = WORLDS[world]
    saga = make_saga()
    panel = panel_timeline(saga, make_state) if mode == "panel" else None
    bad = []
    turn = int(mode == "panel")
    for label, inject, policy in a_part(list(runs(saga, turn)), 3, name=f"{world} {mode}"):
        outcome = saga.run(
            make_state(), inject=inject, policy=policy, clock=VirtualClock(), trace_state=True
        )
        if panel is not None:
            panel.load(outcome)
            timeline = panel
        else:
            timeline = viz.timeline_for(outcome)
        bad += [f"{label}: {p}" for p in problems(timeline, f"{world} {mode} {label}")]
        unexplained = markers(timeline) - legend_markers(timeline)
        bad += [f"{label}: marker {m} is not in the legend" for m in sorted(unexplained)]
        unnamed = colours(timeline) - legend_colours(timeline)
        bad += [f"{label}: colour {c} is not in the legend" for c in sorted(unnamed)]
    assert bad == []


def test_the_checks_see_a_collision_a_cut_text_and_a_missing_legend_colour():
    outcome = demo.xyz_saga().run(demo.xyz_state(), inject={"step3": "fail"}, trace_state=True)
    timeline = viz.timeline_for(outcome)
    timeline.show(timeline.frame_count - 1)
    timeline.fig.text(*timeline.title.get_position(), "on top of the title")
    timeline.fig.text(0.99, 0.5, "far too long to fit on the right edge of the figure")
    found = text_problems(timeline.fig)
    assert any(p.startswith("overlap") for p in found)
    assert any(p.startswith("cut") for p in found)
    timeline.ax.plot([1], [1], "o", color="#123456")
    assert "#123456" in colours(timeline) - legend_colours(timeline)


def test_the_panel_picture_has_no_title_and_the_static_one_says_the_event():
    outcome = demo.xyz_saga().run(demo.xyz_state(), inject={"step3": "fail"}, trace_state=True)
    fig = viz.draw(outcome)
    assert fig.texts[0].get_text() == "event 15 of 15: rollback_done: rolled_back"
    panel = panel_timeline(demo.xyz_saga(), demo.xyz_state)
    panel.load(outcome)
    assert not panel.show(3).texts[0].get_visible()


def graph_runs(saga, make_state):
    """A saga with parallel groups: each single fault, each undo order, each branch of its
    first group finishing first (and the branches one after another, as ``saga.run``)."""
    from rollback_lessons.lab.graphs import branch_groups

    firsts = [None, *(branch for branch in branch_groups(saga)[0])]
    orders = ("reverse", "reverse_start", "by_dependency")
    for n, (step, fault) in enumerate(
        fault_space((s.name, s.undo is not None) for s in saga.steps)
    ):
        inject = {step: fault} if fault not in UNDO_FAULTS else {step: fault, "charge": "fail"}
        first = firsts[n % len(firsts)]
        order = orders[n % len(orders)]
        outcome = saga.run(
            make_state(), inject=inject, undo_order=order, clock=VirtualClock(),
            trace_state=True, completion=first,
        )  # fmt: skip
        yield f"{step} {fault} ({order}, {first} first)", outcome


@pytest.mark.parametrize("mode", ["picture", "panel"])
def test_a_graphs_branches_are_bands_of_lanes_and_every_mark_is_in_the_legend(mode):
    """The travel booking as lesson 12's panel shows it: its group's branches drawn as bands
    of lanes side by side, under every single fault, undo order and branch finishing first:
    nothing collides or is cut, and the bands' colour is in the legend (once). (The declared
    booking, its car and room in one branch, still crowds a note onto the run's path under
    a timeout after the car's effect: not yet drawn in a lesson.) make test draws a third of
    the runs, a different third each run (conftest's a_part); make soak all."""
    from rollback_lessons.lab.drawing import BRANCH
    from rollback_lessons.lab.graphs import branch_groups
    from rollback_lessons.worlds import travel

    saga = travel.booking()
    groups = branch_groups(saga)
    panel = panel_timeline(saga, travel.state) if mode == "panel" else None
    bad = []
    runs = a_part(list(graph_runs(saga, travel.state)), 3, name=f"travel {mode}")
    for label, outcome in runs:
        if panel is not None:
            panel.load(outcome)
            timeline = panel
        else:
            timeline = viz.timeline_for(outcome, groups=groups)
        bad += [f"{label}: {p}" for p in problems(timeline, f"travel {mode} {label}")]
        unnamed = colours(timeline) - legend_colours(timeline)
        bad += [f"{label}: colour {c} is not in the legend" for c in sorted(unnamed)]
        bands = [p for p in timeline.ax.patches if to_hex(p.get_facecolor()) == BRANCH.lower()]
        assert len(bands) == sum(len(g) for g in groups)  # one a branch
    assert bad == []
    [legend] = timeline.fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert len(labels) == len(set(labels)) and "a parallel branch" in labels


@pytest.mark.parametrize("mode", ["picture", "panel"])
def test_no_band_edge_crosses_a_note_under_any_fault_of_lesson_12s_world(mode):
    """newuser8: the "a parallel branch" band's edge ran through "effect happened" above the
    car's cross (and "still done", "dead letter" elsewhere). Every fault of the travel
    booking, each undo order and branch first (graph_runs: a third of those with a note in
    make test, a different third each run, conftest's a_part; all in make soak): no band's
    edge crosses a text; the notes go beside their marks, on their lanes, inside their
    bands."""
    from rollback_lessons.lab.graphs import branch_groups
    from rollback_lessons.worlds import travel

    saga = travel.booking()
    groups = branch_groups(saga)
    panel = panel_timeline(saga, travel.state) if mode == "panel" else None
    bad = []
    noted = [
        (label, outcome)
        for label, outcome in graph_runs(saga, travel.state)
        if outcome.leaked  # no note to cross otherwise (and a third of the cost)
        or any(
            e.kind in ("undo_failed", "halted") or e.details.get("after_effect")
            for e in outcome.events
        )
    ]
    for label, outcome in a_part(noted, 3, name=f"lesson 12's band edges {mode}"):
        if panel is not None:
            panel.load(outcome)
            timeline = panel
        else:
            timeline = viz.timeline_for(outcome, groups=groups)
        fig = timeline.show(timeline.frame_count - 1)
        bad += [f"{label}: {p}" for p in crossings(fig) + text_problems(fig)]
    assert bad == []


def test_the_text_check_finds_a_collision_and_a_cut_text_without_painting():
    """text_problems measures texts on a figure laid out but never painted: it still finds
    two texts on one another and one past the figure's edge (and nothing on a clean one)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 2))
    FigureCanvasAgg(fig)  # as the lessons' pictures are drawn
    ax = fig.add_subplot()
    ax.text(0.2, 0.5, "charge_card undone")
    ax.text(0.25, 0.5, "refund sent")
    ax.text(1.3, 0.5, "past the edge")
    found = text_problems(fig)
    assert "overlap: 'charge_card undone' / 'refund sent'" in found
    assert "cut: 'past the edge'" in found
    clean = Figure(figsize=(4, 2))
    FigureCanvasAgg(clean)
    clean.add_subplot().text(0.1, 0.5, "alone")
    assert [p for p in text_problems(clean) if "alone" in p] == []


def test_the_crossing_check_sees_the_runs_end_line_through_a_text():
    """The dashed "run ends" line is a line no text may sit on, as a band's edge is."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from rollback_lessons.lab.quality import RUN_END

    fig = Figure(figsize=(4, 2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_xlim(0, 10)
    ax.text(4, 0.5, "rollback ←")
    ax.axvline(5, ls="--", gid=RUN_END)
    assert "the run's end line crosses 'rollback ←'" in crossings(fig)
    ax.lines[0].set_xdata([9, 9])
    assert crossings(fig) == []


def test_no_text_sits_on_the_runs_end_line_in_any_run_of_lesson_11s_grid():
    """newuser9: in lesson 11's grid player (row 1, column 4) the run's end line ran through
    "rollback ←" (and in others through "dead letter"): in every run of the exploration
    (the grid's cells, the panel's picture they open; a third of them in make test, a
    different third each run, conftest's a_part; all in make soak), the line crosses no text
    and no text collides. (The static pictures are drawn by the same Timeline.)"""
    from rollback_lessons.explore import explore

    def refund_anyway(state):  # lesson 11's flawed refund
        state["refunds"]["booking-1"] = 120

    saga = examples.booking_saga(refund=refund_anyway)
    found = explore(saga, examples.booking_state, restored=examples.booking_restored)
    timeline = panel_timeline(saga, examples.booking_state)
    bad = []
    for run in a_part(found.runs, 3, name="lesson 11's grid runs' end line"):
        timeline.load(run.outcome)
        fig = timeline.show(timeline.frame_count - 1)
        bad += [f"{run.faults}: {p}" for p in crossings(fig) + text_problems(fig)]
    assert bad == []


@pytest.mark.parametrize("mode", ["picture", "panel"])
def test_the_this_event_ring_leaves_the_failed_cross_whole(mode):
    """newuser9: the ring that marks the event shown covered part of the failed cross
    beside it (lessons 04, 06): every pixel of the cross is there with the ring as without."""
    import numpy as np
    from matplotlib.colors import to_rgb

    from rollback_lessons.lab.timeline import FAIL

    saga, state = WORLDS["booking"]
    lab = RollbackLab(saga(), state=state)
    lab.set_fault("charge_card", "fail")  # shown at its failure: the ring beside the cross
    timeline = lab.timeline
    [cross] = [g.artist for g in timeline._glyphs if getattr(g.artist, "get_marker", str)() == "X"]
    red = np.array(to_rgb(FAIL)) * 255

    def cross_pixels() -> int:
        if mode == "panel":
            timeline._cache.clear()
            timeline.render(lab.frame)
        else:
            timeline.show(lab.frame).canvas.draw()
        pixels = np.asarray(timeline.canvas.buffer_rgba())[:, :, :3].astype(float)
        box = cross.get_window_extent(timeline.canvas.get_renderer())
        height = pixels.shape[0]
        part = pixels[int(height - box.y1) : int(height - box.y0), int(box.x0) : int(box.x1)]
        return int((np.abs(part - red).max(axis=2) < 8).sum())

    with_ring = cross_pixels()
    timeline._cursor.set_visible(False)
    alone = cross_pixels()
    assert alone > 50 and with_ring >= alone - 2, (with_ring, alone)


def test_every_stored_picture_is_painted_not_only_measured():
    """The checks lay a figure out without painting it (draw_without_rendering): a picture
    made after them must still be painted (s37: lessons 02-06 re-executed stored blank
    white pictures). Each kind of stored picture has ink on it."""
    import io

    import numpy as np
    from matplotlib.figure import Figure
    from PIL import Image

    from rollback_lessons.lab.engines import to_png
    from rollback_lessons.worlds.choreography import both_ways

    outcome = demo.xyz_saga().run(demo.xyz_state(), inject={"step3": "fail"}, trace_state=True)
    fig = Figure(figsize=(3, 2))
    fig.text(0.1, 0.5, "a label", fontsize=14)
    for picture in (viz.png(outcome), to_png(fig), both_ways()):
        pixels = np.asarray(Image.open(io.BytesIO(picture)).convert("L"))
        assert (pixels < 100).sum() > 200, "a blank picture"


@pytest.mark.parametrize("mode", ["picture", "panel"])
def test_an_undo_logged_before_its_step_stays_in_sight_over_the_steps_arrow(mode):
    """Lesson 06 as its panel opens (charge_card fails after its effect, its refund logged
    before it ran): the "undo logged" circle lay under the step's arrow, and the report
    said nothing (newuser14). Every step logged before it runs, in lesson 06's world and
    the demo's: each circle drawn over its step's bar, and the report checks it."""
    from rollback_lessons.worlds.demo import xyz_saga, xyz_state

    cases = [
        (services.booking_saga(), lambda: services.new_world("127.0.0.1", 9),
         {"charge_card": "fail_after_effect"}, None),
        (xyz_saga(), xyz_state, {"step2": "fail_after_effect"}, "before"),
        (xyz_saga(), xyz_state, {}, "before"),
    ]  # fmt: skip
    for saga, state, inject, register in cases:
        outcome = saga.run(state(), inject=inject, register=register, clock=VirtualClock())
        logged = [e.seq for e in outcome.events if e.kind == "undo_registered"]
        timeline = panel_timeline(saga, state) if mode == "panel" else viz.timeline_for(outcome)
        timeline.load(outcome)
        fig = timeline.show(timeline.frame_count - 1)
        assert logged and hidden_marks(fig) == [], (inject, register)
        if mode == "panel":  # the panel's frames are blitted: its pixels, not its artists
            shown = timeline.render(timeline.frame_count - 1)
            plain = panel_timeline(saga, state)
            plain.load(outcome)
            assert shown == plain.render(timeline.frame_count - 1)


def test_the_mark_check_sees_a_circle_under_another_events_bar():
    from rollback_lessons.lab.drawing import REGISTER

    timeline = viz.timeline_for(_xyz_outcome())
    fig = timeline.show(timeline.frame_count - 1)
    assert hidden_marks(fig) == []
    # between lanes 0 and 1: another event's bar (x 2.5), an "undo logged" circle drawn over
    timeline.ax.plot([0.5, 2.5], [0.5, 0.5], lw=7, color="black")
    timeline.ax.plot([1.5], [0.5], "o", mfc="white", mec=REGISTER)
    assert hidden_marks(fig) == []
    timeline.ax.plot([1.0, 1.9], [0.5, 0.5], lw=7, color="black")  # then a bar over it
    assert hidden_marks(fig) == ["hidden mark: 'undo logged' at event 1.5, under a later event's"]


def _xyz_outcome():
    from rollback_lessons.worlds.demo import xyz_saga, xyz_state

    return xyz_saga().run(xyz_state(), clock=VirtualClock())


def test_lesson_06s_opening_frame_has_no_mark_over_another_and_its_bar_in_the_legend():
    """newuser15: lesson 06 opens on charge_card's fail after its effect, event 10: the
    step's bar (its head under the cross), the "undo logged" circle, the failed cross and
    the "this event" ring sat within ~45 px, the cross over the circle's right edge and half
    the ring; the bar had no legend entry. No mark overlaps another event's now (the ring
    too, at the opening frame), at any frame of the run (marks), and the legend names the
    bar with its cross."""
    lab = RollbackLab(services.booking_saga(), state=lambda: services.new_world("127.0.0.1", 9),
                      draw_ahead=False)  # fmt: skip
    lab.set_fault("charge_card", "fail_after_effect")  # as the lesson opens it
    timeline = lab.timeline
    assert crowded_marks(timeline.show(lab.frame)) == []
    for frame in range(lab.frame_count):
        assert crowded_marks(timeline.show(frame), rings=False) == [], frame
    [legend] = timeline.fig.legends
    pairs = zip(legend.legend_handles, legend.get_texts(), strict=True)
    bars = [
        text.get_text() for handle, text in pairs
        if isinstance(handle, Line2D) and handle.get_linewidth() >= 5 and handle.get_marker() == "X"
    ]  # fmt: skip
    assert bars == ["failed after effect"]


def test_lesson_06s_ring_keeps_clear_of_effect_happened():
    """newuser18: lesson 06 as it opens, append_row set to fail after its effect: the panel
    shows event 3 (pipeline_failed) with the "this event" ring on the tops of "effect
    happened" (its dark pixels next to the orange ones), because the layout and the check
    both measured against the text's box shrunk by 1 px. The ring keeps ``RING_GAP_PX``
    clear of each text's whole box (quality.ring_keep_out) at every frame of the run."""
    lab = RollbackLab(services.booking_saga(), state=lambda: services.new_world("127.0.0.1", 9),
                      draw_ahead=False)  # fmt: skip
    lab.set_fault("charge_card", "fail_after_effect")  # as the lesson opens it
    lab.set_fault("append_row", "fail_after_effect")
    assert lab.frame == 2  # (event 3 of 5)
    fig = lab.timeline.show(lab.frame)
    renderer = fig.canvas.get_renderer()
    [ring] = rings(lab.timeline.ax)
    [note] = [t for t in lab.timeline.ax.texts if t.get_visible() and "effect" in t.get_text()]
    box = note.get_window_extent(renderer)
    gap = min(
        np.hypot(max(box.x0 - x, 0, x - box.x1), max(box.y0 - y, 0, y - box.y1)) for x, y in ring
    )
    assert gap >= RING_GAP_PX, gap
    for frame in range(lab.frame_count):
        assert ring_crossings(lab.timeline.show(frame)) == [], frame
