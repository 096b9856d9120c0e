"""What a new user at 1366x768 found left in the panels (issue 24, fourth round): a panel
whose kernel restarted must take no input and show no broken-link icons; a change while
Play runs stops it (a tick already on its way never shows the new run at a frame nobody
chose); the result box says the result as of the frame shown; it has no colour without a
legend entry; and every way a run ends has its mark in the picture and in the legend."""

import re

import ipywidgets as w
import pytest
from matplotlib.colors import to_hex
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from rollback_lessons import Status, VirtualClock
from rollback_lessons.explore import single_faults
from rollback_lessons.lab import viz
from rollback_lessons.lab.drawing import ENDING_MARKS, legend_entries
from rollback_lessons.lab.grid import ExplorerGrid
from rollback_lessons.lab.interleave import IsolationLab
from rollback_lessons.lab.panel_html import CSS, PHASES, result_at, result_html
from rollback_lessons.lab.widgets import RollbackLab
from rollback_lessons.worlds import examples, travel
from rollback_lessons.worlds.demo import xyz_saga, xyz_state


def result(lab: RollbackLab) -> str:
    return lab.view.value.split("class='rl-result'>")[1]


def words(fragment: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", fragment).split()) + " "


# -- 1. a panel that lost its kernel: the message in place of its body -------------------------


def inputs_outside(widget, body: bool = False) -> list[str]:
    """Every control a learner could click or type into that is not inside a panel's body
    (the part the lost-kernel CSS hides)."""
    body = body or "rl-dim" in widget._dom_classes
    found = []
    shown_only = isinstance(widget, w.HTML | w.Label | w.HTMLMath)  # text: nothing to take
    if isinstance(widget, w.ValueWidget | w.Button) and not shown_only and not body:
        found.append(f"{type(widget).__name__} {getattr(widget, 'description', '')}")
    for child in getattr(widget, "children", ()):
        found += inputs_outside(child, body)
    return found


def panels():
    from rollback_lessons.explore import explore

    yield "RollbackLab", RollbackLab(xyz_saga(), state=xyz_state()).widget
    yield "IsolationLab", IsolationLab("dirty read").widget
    exploration = explore(
        examples.booking_saga(), examples.booking_state, restored=examples.booking_restored
    )
    yield "ExplorerGrid", ExplorerGrid(exploration, examples.booking_state).widget


def test_a_dead_panel_shows_the_message_in_place_of_every_control():
    # once ipywidgets marks the panel disconnected (a kernel restart), its body is not drawn:
    # nothing to click, nothing to focus, and no broken-link icon squeezing a control
    assert ".rl-panel.jupyter-widgets-disconnected .rl-dim {display: none}" in CSS
    assert ".rl-panel .jupyter-widgets-disconnected::before {content: none; display: none}" in CSS
    for name, widget in panels():
        assert inputs_outside(widget) == [], name  # every control is inside a body
        banners = [c for c in widget.children if "rl-lost" in str(getattr(c, "value", ""))]
        outer = "rl-panel" in widget._dom_classes or "rl-panels" in widget._dom_classes
        assert outer, f"{name}: its outermost box would keep a broken-link icon"
        assert banners or name == "ExplorerGrid", name  # (the grid: one per panel inside)


# -- 2. a change while Play runs stops it -------------------------------------------------------


@pytest.fixture
def lab():
    return RollbackLab(xyz_saga(), state=xyz_state())


def playing(lab: RollbackLab, ticks: int = 3) -> None:
    """Press Play and let the browser's Play tick ``ticks`` times (as its messages do)."""
    lab.toggle_play()
    start = lab.frame  # (the first event, or the one the learner chose)
    assert lab.play.playing and lab.play.value == start + 1
    for _ in range(ticks):
        lab.play.value = lab.play.value + 1  # the browser's Play counts; the kernel draws
    assert lab.frame == start + ticks and lab.slider.value == start + ticks + 1


CHANGES = {
    "an action fault": lambda lab: lab.set_fault("step2", "fail"),
    "an undo fault": lambda lab: lab.set_fault("step1", "undo_fails"),
    "the policy": lambda lab: lab.set_policy("halt"),
    "when undos are logged": lambda lab: lab.set_register("before"),
    "the undo order": lambda lab: lab.set_order("forward"),
    "Stop": lambda lab: lab.stop_button.click(),
    "reset": lambda lab: lab.reset(),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_change_while_playing_stops_play_and_a_late_tick_shows_nothing(lab, change):
    lab.set_fault("step3", "fail")
    playing(lab)
    assert lab.frame == 3  # (a change: Play walks the run from its first event)
    CHANGES[change](lab)
    assert not lab.play.playing and lab.play_button.description == "Play"
    shown, view, slider = lab.frame, lab.view.value, lab.slider.value
    outcome = lab.outcome
    for late in (lab.play.value + 1, lab.play.value + 2, 1):  # ticks sent before the stop
        lab.play.value = late
    assert (lab.frame, lab.view.value, lab.slider.value) == (shown, view, slider)
    assert lab.outcome is outcome
    lab.toggle_play()  # Play again: the new run, from its first event
    assert lab.play.playing and lab.frame == 0
    lab.play.value = 2
    assert lab.frame == 1 and lab.outcome is outcome


def test_back_next_or_the_slider_while_playing_pause_play_there(lab):
    lab.show_frame(0)
    for take in (lambda: lab.forward.click(), lambda: lab.back.click()):
        playing(lab, ticks=2)
        take()
        assert not lab.play.playing
        shown = lab.frame
        lab.play.value = lab.play.value + 1  # a tick on its way
        assert lab.frame == shown
    playing(lab, ticks=1)
    lab.slider.value = 2  # the learner drags it
    assert not lab.play.playing and lab.frame == 1


def test_play_to_the_end_shows_every_frame_of_the_selected_run(lab):
    lab.set_fault("step3", "fail")
    lab.toggle_play()
    seen = [lab.frame]
    while lab.play.value < lab.play.max:
        lab.play.value += 1
        seen.append(lab.frame)
    assert seen == list(range(lab.frame_count))
    lab.play.playing = False  # the browser's Play stops itself at the end
    assert lab.play_button.description == "Play"


# -- 3. the result box: as of the frame shown ---------------------------------------------------

STATUS_WORDS = tuple(str(s) for s in Status)


def every_ending():
    """Runs that end every way but cancelled (Stop, below): no fault, each single fault, each undo
    fault under each policy with the last step failing, on lesson 04's booking (its email is
    irreversible) and the xyz demo; and the booking halted past its irreversible step."""
    for make, state in ((examples.booking_saga, examples.booking_state), (xyz_saga, xyz_state)):
        saga = make()
        last = saga.names[-1]
        yield saga, state, {}, "continue"  # committed
        for step, fault in single_faults(saga):  # what the panel offers (a gate: no effect)
            if not str(fault).startswith("undo"):
                yield saga, state, {step: [str(fault)]}, "continue"
                continue
            for policy in ("continue", "retry", "halt"):
                yield saga, state, {step: [str(fault)], last: ["fail"]}, policy
    booking = examples.booking_saga()
    past_the_pivot = {"reserve_room": ["undo_fails"], "send_email": ["fail_after_effect"]}
    yield booking, examples.booking_state, past_the_pivot, "continue"


def opened(labs: dict, saga, state, inject, policy) -> RollbackLab:
    """One panel per saga (a panel is slow to make), the run opened in it."""
    if saga.name not in labs:
        labs[saga.name] = RollbackLab(saga, state=state)
    lab = labs[saga.name]
    lab.open_run([(s, f) for s, fs in inject.items() for f in fs], policy)
    return lab


def test_the_result_box_says_the_result_as_of_every_frame():
    seen, labs = set(), {}
    for saga, state, inject, policy in every_ending():
        lab = opened(labs, saga, state, inject, policy)
        outcome = lab.outcome
        seen.add(outcome.status)
        final = result_html(outcome, lab.stopped_at)
        last = lab.frame_count - 1
        for index in range(lab.frame_count):
            lab.show_frame(index)
            box = words(result(lab))
            if index == last:
                assert result(lab).startswith(final), (inject, policy)
                continue
            head = box.split("done so far")[0]
            assert not any(word in head.split() for word in STATUS_WORDS), (inject, index, box)
            so_far = outcome.events[: index + 1]
            done = [e.step for e in so_far if e.kind == "step_done"]
            undone = [e.step for e in so_far if e.kind == "undo_done"]
            assert f"done so far {', '.join(done) or 'none'} " in box, (index, box)
            assert f"undone so far {', '.join(undone) or 'none'} " in box, (index, box)
            phase = [PHASES[e.kind] for e in so_far if e.kind in PHASES]
            assert (phase[-1] if phase else "running…") in head, (index, box)
            assert f"the result shows at event {last + 1}" in box
    assert seen >= {Status.COMMITTED, Status.ROLLED_BACK, Status.ROLLBACK_INCOMPLETE,
                    Status.HALTED}  # fmt: skip


def test_a_stopped_run_says_cancelled_until_its_end_then_its_result():
    trip = RollbackLab(travel.booking(), state=travel.state)
    trip.show_frame(3)
    trip.stop()
    assert trip.outcome.status is Status.CANCELLED
    cancel = next(i for i, e in enumerate(trip.outcome.events) if e.kind == "pipeline_failed")
    for index in range(trip.frame_count - 1):
        trip.show_frame(index)
        head = words(result(trip)).split("done so far")[0]
        assert ("cancelled…" in head) == (cancel <= index < trip.frame_count - 1) or (
            "rolling back…" in head
        )
        assert "cancelled " not in head  # the word with its ellipsis: not the result yet
    trip.show_frame(trip.frame_count - 1)
    assert words(result(trip)).split()[0] == "cancelled"


# -- 4. no colour in the result box that no legend names ----------------------------------------


def test_the_result_box_has_no_colour_coding_for_any_status():
    found = set()
    for saga, state, inject, policy in every_ending():
        outcome = saga.run(state(), inject=inject, policy=policy, clock=VirtualClock())
        found.add(outcome.status)
        for box in (result_html(outcome), result_at(outcome, 0, result_html(outcome))):
            assert "color" not in box and "style" not in box and "class='rl-key'" not in box
    assert len(found) >= 4


# -- 5. every way a run ends: its mark in the picture, named in the legend ----------------------


def marks_shown(timeline) -> set[str]:
    """The legend's names of the marks the last frame shows (and its notes' words)."""
    timeline.show(timeline.frame_count - 1)
    [legend] = timeline.fig.legends
    names = {}
    for text, handle in zip(legend.get_texts(), legend.legend_handles, strict=True):
        label = text.get_text()
        if isinstance(handle, Line2D) and handle.get_marker() not in ("None", "", None):
            names[(str(handle.get_marker()), to_hex(handle.get_markerfacecolor()))] = label
        elif isinstance(handle, Line2D):
            names[(handle.get_linestyle(), to_hex(handle.get_color()))] = label
        elif isinstance(handle, Patch):
            names[("patch", to_hex(handle.get_facecolor(), keep_alpha=False))] = label
    found = set()
    for line in timeline.ax.get_lines():
        if not line.get_visible() or line is timeline._cursor:
            continue
        if line.get_marker() not in ("None", "", None) and len(line.get_xdata()) == 1:
            found.add(names.get((str(line.get_marker()), to_hex(line.get_markerfacecolor()))))
        else:
            found.add(names.get((line.get_linestyle(), to_hex(line.get_color()))))
    for artist in [*timeline.ax.patches, *timeline.ax.artists]:
        if artist.get_visible() and isinstance(artist, Patch):
            colour = to_hex(artist.get_facecolor(), keep_alpha=False)
            found.add(names.get(("patch", colour)))
    found |= {t.get_text().strip() for t in timeline.ax.texts if t.get_visible()}
    return found - {None}


def test_every_status_has_its_mark_in_the_picture_and_in_the_legend():
    assert set(ENDING_MARKS) == set(Status)  # every status has one
    legend = {label for label, _ in legend_entries(table=False, stop=True)}
    for status, names in ENDING_MARKS.items():
        assert names & legend or names <= {"still done"}, status  # (a note: its words say it)
    seen: set[Status] = set()
    labs: dict = {}
    statics: set[Status] = set()
    cases = [(s, st, i, p, None) for s, st, i, p in every_ending()]
    trip = travel.booking()
    cases += [(trip, travel.state, {}, "continue", stop) for stop in (2, 4, 6)]
    for saga, state, inject, policy, stop in cases:
        lab = opened(labs, saga, state, inject, policy)  # the panel's picture
        if stop is not None:
            lab.stop(stop)
        outcome = lab.outcome
        seen.add(outcome.status)
        pictures = [("panel", lab.timeline)]
        if stop is None and outcome.status not in statics:  # a lesson's picture, once each
            statics.add(outcome.status)
            pictures.append(("static", viz.timeline_for(outcome)))
        for where, timeline in pictures:
            shown = marks_shown(timeline)
            said = ENDING_MARKS[outcome.status] & shown
            assert said, (where, outcome.status, inject, policy, stop, sorted(shown))
    assert seen == set(Status)


def test_the_this_event_circle_is_on_a_steps_event_only_and_never_left_from_another_frame():
    """newuser7 saw the circle on pay's arrow at lesson 03's "event 7: pipeline_failed"
    after a Stop (an event of no step). The rule: a step's event is circled on its lane; an
    event of the whole run (no step) is not; a frame reached by playing is the same picture
    as the frame drawn afresh."""
    from rollback_lessons.worlds.examples import order_saga, order_state

    def panel() -> RollbackLab:
        lab = RollbackLab(order_saga(), state=order_state)
        lab.set_fault("pay", "undo_fails_once")
        lab.set_fault("label", "fail")
        lab.set_policy("retry")
        lab.show_frame(3)
        lab.stop()  # as lesson 03's learner did: Stop after event 4
        return lab

    played, fresh = panel(), panel()
    for index in range(played.frame_count):
        played.show_frame(index)
        event = played.outcome.events[index]
        played.timeline.show(index)  # (a cached frame is not set up again: set it up)
        xs, ys = played.timeline._cursor.get_data()
        assert (len(xs) == 1) == (event.step is not None), (index, event.kind, event.step)
        if event.step is not None:
            assert ys[0] == played.timeline.lane[event.step]
    for index in range(fresh.frame_count - 1, -1, -1):  # backwards, each afresh
        assert fresh.timeline.render(index) == played.timeline.render(index), index


def test_the_rollback_shade_leaves_a_parallel_branchs_band_its_own_colour():
    """newuser7: where the rollback's shade lay over a branch's lavender band, a grey-blue
    appeared that no legend names. A band keeps its colour; the rollback shades the rest."""
    import io

    from matplotlib.colors import to_rgb
    from PIL import Image

    from rollback_lessons.lab.drawing import BRANCH, SHADE, UNDO

    trip = RollbackLab(travel.booking(), state=travel.state)
    trip.show_frame(4)
    trip.stop()
    last = trip.frame_count - 1
    picture = Image.open(io.BytesIO(trip.timeline.render(last))).convert("RGB")
    start = next(e.seq for e in trip.outcome.events if e.kind == "rollback_start")
    ax = trip.timeline.ax

    def colour(x: float, y: float) -> tuple[int, ...]:
        px, py = ax.transData.transform((x, y))
        return picture.getpixel((int(px), picture.height - int(py)))

    def rgb(colour: str, alpha: float = 1.0) -> tuple[int, ...]:
        return tuple(round(255 * (alpha * c + 1 - alpha)) for c in to_rgb(colour))

    lane = trip.timeline.lane
    inside = (start + last + 1) / 2 + 0.5  # in the rollback, between the glyphs
    for step in ("flight",):  # a branch's lane, nothing drawn on it there
        assert max(abs(a - b) for a, b in zip(colour(inside, lane[step] + 0.3), rgb(BRANCH),
                                                strict=True)) <= 2  # fmt: skip
    plain = colour(inside, lane["charge"] + 0.3)  # no branch: the legend's rollback shade
    assert max(abs(a - b) for a, b in zip(plain, rgb(UNDO, SHADE), strict=True)) <= 2
    before = colour(start - 1.5, lane["flight"] + 0.3)  # the band before the rollback too
    assert max(abs(a - b) for a, b in zip(before, rgb(BRANCH), strict=True)) <= 2


def test_a_run_shown_before_is_not_drawn_again_and_shows_the_same_frames(monkeypatch):
    """A fault clicked on, off and on again: the third run is the first one again, so its
    frames are the ones kept (no artist made, nothing drawn), the same bytes as a panel
    that draws every run afresh; a run with another ending (a Stop) is drawn."""
    lab = RollbackLab(xyz_saga(), state=xyz_state())
    lab.set_fault("step2", "fail")
    frames = [lab.timeline.render(i) for i in range(lab.frame_count)]
    lab.set_fault("step2", "ok")
    built = []
    real = lab.timeline._build_run
    monkeypatch.setattr(lab.timeline, "_build_run", lambda *a: built.append(a) or real(*a))
    lab.set_fault("step2", "fail")
    assert built == [] and [lab.timeline.render(i) for i in range(lab.frame_count)] == frames
    fresh = RollbackLab(xyz_saga(), state=xyz_state())
    fresh.timeline.frames.runs = 0
    fresh.set_fault("step2", "fail")
    assert [fresh.timeline.render(i) for i in range(fresh.frame_count)] == frames
    lab.show_frame(0)
    lab.stop()  # cancelled after event 1: another picture, drawn
    assert len(built) == 1 and lab.picture not in frames
