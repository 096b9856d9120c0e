"""The pictures: one valid frame per event, consecutive frames differ, files that open."""

import dataclasses
import io
import itertools

import pytest
from PIL import Image

from rollback_lessons import Saga, Step
from rollback_lessons.lab import viz
from rollback_lessons.lab.png import read_report
from rollback_lessons.lab.quality import MIN_TEXT_PX, SCREEN_WIDTH_PX
from rollback_lessons.worlds.demo import xyz_saga, xyz_state


@pytest.fixture(scope="module")
def rollback():
    return xyz_saga().run(
        xyz_state(),
        inject={"step3": "fail", "step1": "undo_fails_once"},
        policy="retry",
        trace_state=True,
    )


def test_one_png_per_event_all_the_same_size_and_each_different(rollback):
    pngs = viz.frames(rollback)
    assert len(pngs) == len(rollback.events)
    sizes = set()
    for data in pngs:
        image = Image.open(io.BytesIO(data))
        assert image.format == "PNG"
        sizes.add(image.size)
    assert len(sizes) == 1
    width, height = sizes.pop()
    # shown 1:1 in a notebook at 1366x768 with the file browser open (its output area is
    # 934 px wide), so its text keeps the size it was drawn at
    assert 800 <= width <= SCREEN_WIDTH_PX and height >= 200
    for a, b in itertools.pairwise(pngs):
        assert a != b


def test_the_state_column_replays_the_run(rollback):
    timeline = viz.timeline_for(rollback)
    kinds = [(e.kind, e.step) for e in rollback.events]
    after_step2 = kinds.index(("step_done", "step2"))
    assert timeline.state_cells(after_step2) == [
        ("x", "0", "1", True),
        ("y", "0", "2", True),
        ("z", "0", "0", False),
    ]
    assert timeline.state_cells(len(kinds) - 1) == [
        ("x", "0", "0", False),
        ("y", "0", "0", False),
        ("z", "0", "0", False),
    ]


def test_loading_a_new_run_reuses_the_figure_and_replaces_its_artists(rollback):
    timeline = viz.timeline_for(rollback)
    fig, count = timeline.fig, len(timeline.ax.get_children())
    commit = xyz_saga().run(xyz_state(), trace_state=True)
    timeline.load(commit)
    timeline.load(rollback)
    assert timeline.fig is fig
    assert len(timeline.ax.get_children()) == count


def test_draw_shows_every_step_and_the_result(rollback):
    fig = viz.draw(rollback)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["step1\nset x = 1", "step2\nset y = 2", "step3\nset z = 3"]
    assert fig.texts[0].get_text().endswith("rollback_done: rolled_back")


def test_gif_has_a_frame_per_event_and_loops(rollback, tmp_path):
    path = viz.save_gif(rollback, tmp_path / "run.gif")
    with Image.open(path) as gif:
        assert gif.format == "GIF"
        assert gif.n_frames == len(rollback.events)
        assert gif.info.get("loop") == 0


def test_animation_for_static_html(rollback):
    html = viz.animate(rollback).to_jshtml()
    assert html.count("data:image/png;base64") == len(rollback.events)


def test_frame_out_of_range_is_a_clear_error(rollback):
    with pytest.raises(IndexError, match=r"out of range 0\.\.16"):
        viz.timeline_for(rollback).render(99)


def test_without_a_trace_the_state_jumps_from_before_to_after():
    outcome = xyz_saga().run(xyz_state(), inject={"step2": "fail_after_effect"})
    timeline = viz.timeline_for(outcome)
    assert [c[2] for c in timeline.state_cells(0)] == ["0", "0", "0"]
    assert [c[2] for c in timeline.state_cells(len(outcome.events) - 1)] == ["0", "2", "0"]


def test_a_static_picture_reports_its_smallest_text_and_nothing_wrong(rollback):
    report = read_report(viz.png(rollback))
    assert report is not None
    assert report["min_text_px"] >= MIN_TEXT_PX
    assert report["problems"] == []
    assert report["width_px"] <= SCREEN_WIDTH_PX


def test_a_value_too_long_for_its_cell_is_wrapped_whole_never_cut():
    from rollback_lessons.worlds.services import booking_saga, new_world

    outcome = booking_saga().run(
        new_world("127.0.0.1", 9), inject={"create_event": "fail"}, trace_state=True
    )
    timeline = viz.timeline_for(outcome)
    last = timeline.state_cells(timeline.frame_count - 1)
    rows = {key: now for key, _, now, _ in last}
    assert rows["sheet rows"].replace("\n", "") == "['row-1:reverted']"  # the lesson's point
    assert timeline.cut == []
    assert not any("…" in now for _, _, now, _ in last)


def test_a_cell_too_small_for_its_value_is_reported_as_cut():
    from rollback_lessons.lab.timeline import Timeline

    outcome = xyz_saga().run(xyz_state(), trace_state=True)
    timeline = Timeline(outcome.steps, state_keys=["x", "y", "z"], value_chars=6)
    long = {**dict(outcome.state_before), "x": "a value far longer than six characters " * 3}
    timeline.load(dataclasses.replace(outcome, state_before=long))
    assert timeline.cut and timeline.cut[0].startswith("x: ")


def test_the_log_picture_lists_every_event_and_marks_the_last():
    from rollback_lessons.worlds.examples import order_saga, order_state

    outcome = order_saga().run(
        order_state(), inject={"label": "fail", "pay": "undo_fails_once"}, policy="retry",
        trace_state=True,
    )  # fmt: skip
    fig = viz.draw(outcome, log=True)
    texts = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]
    lines = [t for t in texts if t[:3].strip().isdigit() and len(t.split()) >= 3]
    assert len(lines) == len(outcome.events)
    assert any("then=retry" in line for line in lines)
    report = read_report(viz.png(outcome, log=True))
    assert report["problems"] == [] and report["min_text_px"] >= MIN_TEXT_PX


def test_branch_groups_read_the_sagas_definition_nested_groups_too():
    from rollback_lessons import Parallel
    from rollback_lessons.lab.graphs import branch_groups

    def step(name):
        return Step(name, lambda s: None, lambda s: None)

    saga = Saga([
        step("a"), Parallel([step("b"), Parallel(step("c"), step("d"))], step("e")), step("f"),
    ])  # fmt: skip
    assert branch_groups(saga) == ((("b", "c", "d"), ("e",)), (("c",), ("d",)))
    assert branch_groups(xyz_saga()) == ()


def test_a_list_sagas_picture_has_no_branch_bands_and_a_graphs_has_one_per_branch():
    from rollback_lessons.lab.graphs import branch_groups
    from rollback_lessons.worlds import travel

    plain = viz.timeline_for(xyz_saga().run(xyz_state(), trace_state=True))
    [legend] = plain.fig.legends
    assert "a parallel branch" not in [t.get_text() for t in legend.get_texts()]
    saga = travel.booking(declared=True)
    outcome = saga.run(travel.state(), completion=travel.TIMING, trace_state=True)
    drawn = viz.timeline_for(outcome, groups=branch_groups(saga))
    from matplotlib.colors import to_hex

    from rollback_lessons.lab.drawing import BRANCH

    bands = [p for p in drawn.ax.patches if to_hex(p.get_facecolor()) == BRANCH.lower()]
    assert len(bands) == 2  # the branch [room, car] and the branch [flight]
    assert viz.png(outcome, groups=branch_groups(saga))  # the static picture too
