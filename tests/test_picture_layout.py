"""Every lesson world's picture, under every single fault and every undo fault (with each
undo policy): no two texts collide, no text is cut, no state key is cut without "…", and
every marker in the lanes is one the legend explains."""

import matplotlib
import pytest
from conftest import text_problems
from matplotlib.lines import Line2D

from rollback_lessons import VirtualClock
from rollback_lessons.faults import UNDO_FAULTS, fault_space
from rollback_lessons.lab import viz
from rollback_lessons.lab.widgets import PANEL_WIDTH
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


def runs(saga, state):
    """Each single action fault; each undo fault (the last step failing) under each policy."""
    last = saga.names[-1]
    for step, fault in fault_space((s.name, s.undo is not None) for s in saga.steps):
        if fault not in UNDO_FAULTS:
            yield f"{step} {fault}", {step: fault}, "continue"
        elif step != last:
            for policy in ("continue", "retry", "halt"):
                yield f"{step} {fault} ({policy})", {step: fault, last: "fail"}, policy


def problems(timeline) -> list[str]:
    found = text_problems(timeline.show(timeline.frame_count - 1))
    shown = {t.get_text() for t in timeline.tax.texts}
    for key in timeline.state_keys:
        if str(key) not in shown and not any(
            t.endswith("…") and str(key).startswith(t[:-1]) for t in shown
        ):
            found.append(f"state key {key!r} cut without an ellipsis")
    return found


def markers(timeline) -> set[tuple[str, str]]:
    """(marker, face colour) of every single-point glyph in the lanes."""
    fig = timeline.show(timeline.frame_count - 1)
    found = set()
    for line in timeline.ax.get_lines():
        xs = line.get_xdata()
        if line.get_visible() and len(xs) == 1 and line.get_marker() not in ("None", "", None):
            if line is timeline._cursor:
                continue
            found.add((str(line.get_marker()), str(line.get_markerfacecolor()).lower()))
    del fig
    return found


def legend_markers(timeline) -> set[tuple[str, str]]:
    [legend] = timeline.fig.legends
    return {
        (str(h.get_marker()), str(h.get_markerfacecolor()).lower())
        for h in legend.legend_handles
        if isinstance(h, Line2D)
    }


@pytest.mark.parametrize("width", [12.5, PANEL_WIDTH], ids=["picture", "panel"])
@pytest.mark.parametrize("world", sorted(WORLDS))
def test_no_text_collides_or_is_cut_and_every_marker_is_in_the_legend(world, width):
    make_saga, make_state = WORLDS[world]
    saga = make_saga()
    bad = []
    for label, inject, policy in runs(saga, make_state):
        outcome = saga.run(
            make_state(), inject=inject, policy=policy, clock=VirtualClock(), trace_state=True
        )
        timeline = viz.timeline_for(outcome, width=width)
        bad += [f"{label}: {p}" for p in problems(timeline)]
        unexplained = markers(timeline) - legend_markers(timeline)
        bad += [f"{label}: marker {m} is not in the legend" for m in sorted(unexplained)]
    assert bad == []


def test_the_check_finds_a_collision():
    outcome = demo.xyz_saga().run(demo.xyz_state(), inject={"step3": "fail"})
    timeline = viz.timeline_for(outcome)
    clash = timeline.fig.text(*timeline.title.get_position(), "on top of the title")
    assert any("overlap" in p for p in problems(timeline))
    clash.remove()
    timeline.fig.text(0.99, 0.5, "far too long to fit on the right edge of the figure")
    assert any(p.startswith("cut") for p in problems(timeline))
