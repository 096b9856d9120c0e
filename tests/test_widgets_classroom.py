"""What a new user at 1366x768 found in the panels (issue 24, third round): one word for
an irreversible step and no colour the legend does not name, a run count that starts at
1 when the panel is shown, an event log that never cuts a detail, a panel that keeps its
height, lesson 10's panel opening on the interleaving its text talks about, and lesson
11's grid outlining the cell whose run it shows."""

import html
import json
import re
from pathlib import Path

import pytest
from matplotlib.colors import to_hex

from rollback_lessons.lab.drawing import INK, KIND_WORDS, kind_word
from rollback_lessons.lab.grid import OPENED, ExplorerGrid
from rollback_lessons.lab.interleave import IsolationLab
from rollback_lessons.lab.panel_controls import cue_fits
from rollback_lessons.lab.panel_html import CSS, LOG_ROWS, details, words
from rollback_lessons.lab.timeline import Timeline
from rollback_lessons.lab.widgets import RollbackLab
from rollback_lessons.worlds.demo import xyz_saga, xyz_state
from rollback_lessons.worlds.examples import (
    booking_restored,
    booking_saga,
    booking_state,
)
from rollback_lessons.worlds.isolation import SCENARIOS

ROOT = Path(__file__).resolve().parent.parent
# every kind a step can have, and a saga with each
TRIP = ("verify_card", "reserve_room", "charge_card", "send_email", "award_points")


def texts(widget) -> list[str]:
    """Every HTML text in a widget tree (the panel's headings, legends, view)."""
    found = (
        [str(widget.value)] if hasattr(widget, "value") and isinstance(widget.value, str) else []
    )
    for child in getattr(widget, "children", ()):
        found += texts(child)
    return found


@pytest.fixture
def trip_lab():
    return RollbackLab(booking_saga(TRIP), state=booking_state)


# -- 1. one word for an irreversible step; no colour the legend does not name ---------------


def test_the_lanes_and_the_controls_call_a_steps_kind_by_the_same_word(trip_lab):
    saga = trip_lab.saga
    kinds = {s.name: str(s.kind) for s in saga.steps}
    assert set(kinds.values()) >= set(KIND_WORDS)  # a pivot and a retried step
    timeline = trip_lab.timeline
    ticks = timeline.ax.get_yticklabels()
    lanes = {s: t.get_text() for s, t in zip(timeline.steps, ticks, strict=True)}
    controls = html.unescape("".join(texts(trip_lab.widget)))
    for step, kind in kinds.items():
        word = kind_word(kind)
        if word:
            assert f"({word})" in lanes[step]
            assert re.search(rf">{step}</div><div class='rl-kind'>\({word}\)<", controls)
        assert f"({kind})" not in controls and f"({kind})" not in lanes[step]


def test_every_lane_label_is_in_ink_not_a_colour_the_legend_gives_another_meaning(trip_lab):
    for tick in trip_lab.timeline.ax.get_yticklabels():
        # the label's word says its kind: a colour would be a second meaning to explain
        assert to_hex(tick.get_color()) in (to_hex(INK), "#000000"), tick.get_text()
    bold = [t.get_text() for t in trip_lab.timeline.ax.get_yticklabels()
            if t.get_fontweight() == "bold"]  # fmt: skip
    assert bold == [t for t in bold if "(irreversible)" in t or "(retried)" in t] and bold


def test_a_static_picture_says_the_same_word_as_the_panel():
    steps = [s.name for s in booking_saga(TRIP).steps]
    timeline = Timeline(steps, kinds={"send_email": "pivot", "award_points": "retriable"})
    labels = [t.get_text() for t in timeline.ax.get_yticklabels()]
    assert "send_email (irreversible)" in labels and "award_points (retried)" in labels


# -- 2. the run count: from 1 per display, one per run the learner caused -------------------


def shown_cue(lab) -> str:
    return html.unescape(lab.view.value.split("class='rl-cue'>")[1].split("</div>")[0])


def test_the_run_count_starts_at_1_on_display_and_counts_each_run_the_learner_caused():
    lab = RollbackLab(xyz_saga(), state=xyz_state())
    runs = []
    real = lab.saga.run
    lab.saga.run = lambda *a, **k: runs.append(1) or real(*a, **k)  # type: ignore[method-assign]
    lab.set_fault("step2", "fail")  # a lesson cell, before the panel is shown
    lab.set_fault("step1", "undo_fails")
    lab._repr_mimebundle_()  # shown
    assert lab.runs == 0 and "run" not in shown_cue(lab).split(":")[0]
    status = lab.outcome.status
    assert shown_cue(lab) == f"as opened → {status}: step2 fail, step1 undo fails"  # (as struck)
    runs.clear()
    for n, change in enumerate(
        [
            lambda: lab.set_fault("step3", "fail"),
            lambda: lab.set_policy("halt"),
            lambda: lab.set_order("forward"),
            lambda: lab.set_register("after"),
            lambda: lab.actions["step1"].set_state({"index": 1}),  # as the browser sends it
            lambda: lab.stop(0),
            lambda: lab.reset(),
        ],
        start=1,
    ):
        change()
        assert len(runs) == n == lab.runs  # one run per change
        assert shown_cue(lab).startswith(f"↻ run {n} → {lab.outcome.status}")
    lab._repr_mimebundle_()  # shown again: counted from 1 again
    lab.set_fault("step2", "fail")
    assert shown_cue(lab).startswith("↻ run 1 → ")


def test_a_panel_opened_without_a_fault_says_so_too():
    """newuser7: lesson 12's panel (no fault chosen) showed an empty band where lessons
    02-06 say what the panel opens on."""
    lab = RollbackLab(xyz_saga(), state=xyz_state())
    assert "rl-cue'></div>" in lab.view.value  # not shown yet: no cue
    lab._repr_mimebundle_()
    assert shown_cue(lab) == f"as opened → {lab.outcome.status}: no faults"
    assert lab.runs == 0


def test_the_cue_says_which_chosen_faults_never_struck():
    """newuser19: "make_folder fail after effect, write_file fail after effect" stood over a
    run where write_file never ran. The cue names the faults that struck, then those that
    never did (a step never started, an undo never run), from the run's own events."""
    lab = RollbackLab(xyz_saga(), state=xyz_state())
    lab._repr_mimebundle_()
    lab.set_fault("step2", "fail")
    lab.set_fault("step3", "fail")  # step3 never runs: step2 failed first
    started = {e.step for e in lab.outcome.events if e.kind == "step_start"}
    assert "step3" not in started
    assert shown_cue(lab).endswith(": step2 fail; never struck: step3 fail")
    lab.set_fault("step1", "undo_fails")  # step1 ran and is undone: its undo fault strikes
    assert shown_cue(lab).endswith(": step2 fail, step1 undo fails; never struck: step3 fail")
    lab.set_fault("step2", "ok")
    lab.set_fault("step3", "ok")  # committed: step1's undo never runs
    assert str(lab.outcome.status) == "committed"
    assert shown_cue(lab).endswith(": none struck; never struck: step1 undo fails")
    lab.set_fault("step1", "undo_ok")
    assert shown_cue(lab).endswith(": no faults")


def test_the_cue_names_every_option_the_learner_set():
    lab = RollbackLab(xyz_saga(), state=xyz_state())
    lab._repr_mimebundle_()
    lab.set_policy("retry")
    assert "policy retry" in shown_cue(lab)
    lab.set_register("before")
    assert "policy retry; log all before" in shown_cue(lab)
    lab.set_order("forward")
    assert "order forward" in shown_cue(lab) and "policy retry" in shown_cue(lab)


def test_a_grid_shown_counts_its_panels_runs_from_1():
    grid = ExplorerGrid(booking_explored(), booking_state)
    grid.open(*grid.find((("charge_card", "fail"),)))
    grid._repr_mimebundle_()
    grid.open(*grid.find((("reserve_room", "fail"),)))
    assert shown_cue(grid.lab) == f"↻ run 1 → {grid.lab.outcome.status}: reserve_room fail"


# -- 3. the event log: every detail whole -------------------------------------------------


def test_the_log_shows_every_events_details_whole_in_rows_of_two_lines(trip_lab):
    """Each row but the current one two lines at most, its details breaking at spaces and
    underscores (``words``), the whole row in its title; the current row whole, however long
    (newuser12: lesson 04's halt reason was cut on it). The browser test checks that only
    a row other than the current one is cut, and says so in its title."""
    rules = [line for line in CSS.splitlines() if ".rl-log" in line or ".rl-details" in line]
    assert rules and not [r for r in rules if "ellipsis" in r]
    assert not [r for r in rules if "nowrap" in r and ".rl-what" not in r]  # details wrap
    assert re.search(r"\.rl-log \.rl-line \{\{?[^}]*line-clamp: 2", CSS)
    assert re.search(r"\.rl-log tr\.now \.rl-line \{\{?[^}]*line-clamp: none", CSS)
    trip_lab.set_fault("charge_card", "fail_after_effect")
    trip_lab.set_fault("reserve_room", "undo_fails")
    events = trip_lab.outcome.events
    seen = set()
    for i in range(len(events)):
        trip_lab.show_frame(i)
        log = trip_lab.view.value.split("class='rl-log'>")[1].split("</table>")[0]
        spans = re.findall(r"<span class='rl-details'>(.*?)</span>", log)
        assert len(spans) == LOG_ROWS  # the same rows in every frame: the same height
        for text in spans:
            seen.add(html.unescape(text.replace("<wbr>", "")))
        titles = re.findall(r"<div class='rl-line' title='(.*?)'>", log)
        assert len(titles) == LOG_ROWS
        for title, text in zip(titles, spans, strict=True):  # the whole row, details last
            assert html.unescape(title).endswith(html.unescape(text.replace("<wbr>", "")))
    assert seen == {details(e) for e in events}  # every detail, whole, somewhere
    assert max(len(s) for s in seen) > 60  # long ones too


def test_the_results_head_is_whole_and_a_long_one_does_not_grow_the_panel():
    """newuser12: the head was clamped at two lines, a halt's error cut, and the box grew
    the panel 2 px on lesson 04's send_email "fail after effect". The head is whole, in a
    box of a fixed height (issue 24, panel15: no reserve, which was an estimate)."""
    assert not re.search(r"\.rl-head \{\{?[^}]*line-clamp", CSS)
    lab = RollbackLab(booking_saga(), state=booking_state)
    lab._repr_mimebundle_()
    lab.set_fault("send_email", "fail_after_effect")  # the halt: one click away
    lab.show_frame(lab.frame_count - 1)
    shown = lab.view.value.split("<div class='rl-result'>")[1].removesuffix("</div></div></div>")
    head = html.unescape(re.sub(r"<[^>]*>", "", shown.split("<table>")[0]))
    outcome = lab.outcome
    assert head == f"{outcome.status}: send_email failed with {outcome.error!r}"
    assert "rl-reserve" not in lab.view.value
    assert re.search(r"\.rl-box \{\{?[^}]*overflow: hidden auto", CSS)  # never taller


def test_log_rows_break_at_spaces_and_underscores_never_inside_a_word():
    """A new user saw a long step name wrap mid-word in the event log: a line may break
    after an underscore (as at a space), and the log's CSS breaks no word anywhere else
    (but a word longer than the whole line, which would otherwise be cut)."""
    assert words("reserve_room <b>") == "reserve_<wbr>room &lt;b&gt;"
    log = CSS.split(".rl-log td {")[1].split("}")[0]
    assert "overflow-wrap: break-word" in log
    assert "anywhere" not in CSS and "break-all" not in CSS
    lab = RollbackLab(booking_saga(), state=booking_state)
    lab.show_frame(0)  # the first step starts: its name, breakable after its underscore
    row = lab.view.value.split("<tr class=now>")[1].split("</tr>")[0]
    assert re.search(r"rl-where'>[a-z]+_<wbr>[a-z]+", row), row
    # the details break at spaces only: a name in them stays whole (newuser17: "'send_ /
    # email'", "dead_ / letters=0")
    lab.set_fault("send_email", "fail_after_effect")
    lab.set_policy("halt")
    rows = lab.view.value.split("rl-details'>")[1:]
    assert any("step &#x27;send_email&#x27;" in r for r in rows), rows
    assert not any("<wbr>" in r.split("</span>")[0] for r in rows), rows


def test_the_cue_and_the_caption_are_clamped_to_two_lines_and_whole_in_their_title():
    """issue 24 (panel15): a 4-5 line cue made the side column taller than the picture
    (04: 605 <-> 620 px). The cue and the caption are two lines at most; the whole of
    each is its title (the cue's faults are also the coloured dropdowns, its result the
    result box)."""
    lab = RollbackLab(booking_saga(), state=booking_state)
    lab._repr_mimebundle_()
    for step in ("reserve_room", "charge_card"):
        lab.set_fault(step, "undo_fails_once")
    lab.set_fault("send_email", "fail_after_effect")
    lab.set_policy("halt")
    cue = re.search(r"<div title='([^']*)' class='rl-cue'>(.*?)</div>", lab.view.value)
    assert cue and len(cue.group(1)) > 80  # long: more than two lines beside the picture
    whole, shown = html.unescape(cue.group(1)), html.unescape(re.sub(r"<[^>]*>", "", cue.group(2)))
    assert whole.endswith(
        "never struck: reserve_room undo fails once, charge_card undo fails once; policy halt"
    )
    assert shown.endswith("never struck: 2 faults") and cue_fits(shown)  # (s47: never cut)
    caption = re.search(r"<div title='([^']*)' class='rl-caption'>(.*?)</div>", lab.view.value)
    assert caption and caption.group(1) == caption.group(2)
    for part in (".rl-side .rl-cue {", ".rl-side .rl-caption {"):
        assert "-webkit-line-clamp: 2" in CSS.split(part)[1].split("}")[0], part


# -- 4. a change keeps the panel's height (the browser test measures it) ------------------


def test_the_cue_and_the_caption_keep_two_lines_whatever_they_say():
    assert re.search(r"\.rl-cue \{\{?[^}]*min-height: 2\.6em", CSS)
    assert re.search(r"\.rl-side \.rl-caption \{\{?[^}]*min-height: 2\.6em", CSS)
    assert re.search(r"\.rl-log td \{\{?[^}]*height: 2\.6em", CSS)


# -- 5. lesson 10's panel opens on the interleaving its text talks about ------------------


def test_the_isolation_panel_opens_on_an_interleaving_where_the_anomaly_happens():
    for key in (k for k in SCENARIOS if "," not in k):
        lab = IsolationLab(key)
        assert lab.trace.anomaly, key
        first = next(n for n, t in enumerate(lab.traces, 1) if t.anomaly)
        assert lab.interleaving.value == first
        assert lab.turn.value == len(lab.trace.turns)  # the whole of it: the anomaly shows
        assert "Anomaly: " in lab.view.value
    assert IsolationLab("dirty read", interleaving=1).trace.anomaly is None
    with pytest.raises(IndexError):
        IsolationLab("dirty read", interleaving=9)


def test_lesson_10s_text_names_the_interleaving_its_panel_opens_on():
    cells = json.loads((ROOT / "notebooks" / "10_sagas_are_not_isolated.ipynb").read_text())
    cells = cells["cells"]
    [at] = [i for i, c in enumerate(cells) if "IsolationLab(" in "".join(c["source"])
            and c["cell_type"] == "code" and "lab = " in "".join(c["source"])]  # fmt: skip
    source = "".join(cells[at]["source"])
    args = re.search(r"lab = IsolationLab\((.*)\)", source).group(1)  # type: ignore[union-attr]
    lab = eval(f"IsolationLab({args})")  # the lesson cell's own arguments
    text = "".join(cells[at - 1]["source"])
    assert f"`{lab.trace.schedule}`" in text and "goes wrong" in text
    assert lab.trace.schedule in lab.summary


# -- 6. lesson 11's grid outlines the cell whose run it shows -------------------------------


def booking_explored():
    from rollback_lessons.explore import explore

    return explore(booking_saga(), booking_state, restored=booking_restored)


def test_the_grid_outlines_the_clicked_cell_and_only_it_and_its_legend_says_so():
    grid = ExplorerGrid(booking_explored(), booking_state)
    first = grid.find((("charge_card", "fail"),))
    second = grid.find((("reserve_room", "fail"),))
    grid.buttons[first].click()
    assert [k for k, b in grid.buttons.items() if "eg-open" in b._dom_classes] == [first]
    assert f"data-cell='{first[0]}-{first[1]}'" in grid.note
    grid.buttons[second].click()
    assert [k for k, b in grid.buttons.items() if "eg-open" in b._dom_classes] == [second]
    shown = "".join(texts(grid.panel))
    assert OPENED in html.unescape(shown) and "eg-key-open" in shown
    assert shown.count("class='eg-col'") == shown.count("class='eg-row'") == len(grid.faults)


# -- 7. the event heading: how the run ended, said once, in the two lines it has ------------

CAPTION_CHARS = 34  # the side column at 1366x768 (about 350 px) holds this many at 15 px bold


@pytest.mark.parametrize("policy", ["continue", "halt"])
def test_every_event_heading_says_the_status_once_and_fits_two_lines(trip_lab, policy):
    import textwrap

    from rollback_lessons.lab.drawing import frame_caption

    offered = {step: [v for _, v in trip_lab.actions[step].options] for step in TRIP}
    combos = [[(step, f)] for step in TRIP for f in ("fail", "fail_after_effect")
              if f in offered[step]]  # fmt: skip
    combos.append([("reserve_room", "undo_fails"), ("charge_card", "fail")])
    seen_last = set()
    for faults in [[], *combos]:
        trip_lab.reset()
        trip_lab.set_policy(policy)
        for step, fault in faults:
            trip_lab.set_fault(step, fault)
        outcome = trip_lab.outcome
        total = len(outcome.events)
        for i, event in enumerate(outcome.events):
            said = frame_caption(event, i, total, outcome.status)
            assert len(textwrap.wrap(said, CAPTION_CHARS)) <= 2, said
            assert "→" not in said
        last = frame_caption(outcome.events[-1], total - 1, total, outcome.status)
        assert last.replace(":", " ").split().count(str(outcome.status)) == 1, last
        seen_last.add(last.split(": ", 1)[1])
        trip_lab.show_frame(total - 1)
        assert html.escape(last) in trip_lab.view.value
    assert len(seen_last) >= 4  # committed, rolled back, incomplete, halted: each its own way


COLOURS = ("pink", "red", "orange", "yellow", "green", "blue", "purple", "grey")


def test_lesson_04_describes_the_email_label_as_the_panel_draws_it():
    """The text beside lesson 04's panel says how the email's lane label looks: in the
    words of the picture (its kind's word, bold) and in no colour it is not drawn in."""
    cells = json.loads((ROOT / "notebooks" / "04_irreversible_steps.ipynb").read_text())["cells"]
    [at] = [i for i, c in enumerate(cells) if "RollbackLab(unsafe" in "".join(c["source"])]
    said = re.search(r"email step \(([^)]*)\)", "".join(cells[at - 1]["source"]))
    assert said, "the text says how the email step is shown"
    words = set(re.findall(r"[a-z]+", said.group(1)))
    lab = RollbackLab(booking_saga(TRIP), state=booking_state)
    [label] = [t for t in lab.timeline.ax.get_yticklabels() if "send_email" in t.get_text()]
    word = KIND_WORDS["pivot"]
    assert word in words and f"({word})" in label.get_text()
    assert ("bold" in words) == (label.get_fontweight() == "bold")
    assert to_hex(label.get_color()) in (to_hex(INK), "#000000")
    assert not words & set(COLOURS), said.group(1)  # drawn in ink: no colour to name


# -- 8. a step with no undo says so, and why ---------------------------------------------


def test_a_step_without_an_undo_says_no_undo_and_why(trip_lab):
    from rollback_lessons.worlds import travel

    why = {
        "verify_card": "a gate",
        "send_email": "irreversible",
        "award_points": "retried forward",
    }
    for step in trip_lab.saga.steps:
        control = trip_lab.undos[step.name]
        labels = [label for label, _ in control.options]
        if step.undo is None:
            assert control.disabled and labels == ["no undo"], step.name
            assert control.tooltip.startswith("no undo: ") and why[step.name] in control.tooltip
        else:
            assert not control.disabled and labels[0] == "undo ok", step.name
            assert "no undo" not in control.tooltip
    assert set(why) == {s.name for s in trip_lab.saga.steps if s.undo is None}
    from test_outcome_kept import no_refund  # (lesson 12's charge is refunded: learn80 F1)

    trip = RollbackLab(no_refund(), state=travel.state)
    last = trip.saga.steps[-1]
    assert last.undo is None and "the last step" in trip.undos[last.name].tooltip


def test_each_step_is_offered_the_faults_the_explorer_tries_for_it(trip_lab):
    """newuser8 (lesson 04): a gate offered "fail after effect", and the run then told of an
    effect a gate never has. The panel offers each step the faults of the explorer's space
    (``explore.single_faults``, one rule for both): a gate fails, or works."""
    from rollback_lessons.errors import InvalidPipelineError
    from rollback_lessons.explore import single_faults
    from rollback_lessons.faults import ACTION_FAULTS

    space = single_faults(trip_lab.saga)
    for step in trip_lab.saga.steps:
        offered = {v for _, v in trip_lab.actions[step.name].options} - {"ok"}
        explored = {f.value for s, f in space if s == step.name and f in ACTION_FAULTS}
        assert offered == explored, step.name
    gate = trip_lab.actions["verify_card"]
    assert [v for _, v in gate.options] == ["ok", "fail"]
    assert "fails before its effect" in gate.tooltip and "effect happens" not in gate.tooltip
    with pytest.raises(InvalidPipelineError, match="gate"):
        trip_lab.set_fault("verify_card", "fail_after_effect")
    assert trip_lab.set_fault("reserve_room", "fail_after_effect").status is not None


def test_each_undo_order_is_named_as_the_event_log_says_it():
    """newuser8: lesson 12's dropdown said "reverse completion" / "reverse start" while the
    log's rollback_start said ``order=reverse`` / ``order=reverse_start``: a learner could not
    tell them for the same thing. Each choice starts with the word the log shows."""
    from rollback_lessons.lab.widgets import RollbackLab
    from rollback_lessons.worlds import examples, travel

    for lab in (
        RollbackLab(travel.booking(), state=travel.state),
        RollbackLab(examples.folder_saga(), state=examples.folder_state),
    ):
        lab.set_fault(lab.saga.names[-1], "fail")
        for label, value in lab.order.options:
            lab.order.value = value
            [start] = [e for e in lab.outcome.events if e.kind == "rollback_start"]
            assert label.split()[0] == f"{start.details['order']}", (label, start.details)


def test_the_panels_title_names_its_saga_as_a_saga_not_as_a_step():
    """newuser8: "Break 'folder' and watch it undo": a learner looked for a step called
    `folder` among make_folder, write_file, publish. The title says what the name is."""
    import html
    import re

    import ipywidgets as w
    from conftest import lesson_worlds

    from rollback_lessons.lab import reuse
    from rollback_lessons.lab.widgets import RollbackLab

    for make_saga, make_state in lesson_worlds().values():
        saga = make_saga()
        lab = RollbackLab(saga, state=make_state)
        [title] = [
            html.unescape(m)
            for v in reuse.widgets_of(lab.widget)
            if isinstance(v, w.HTML)
            for m in re.findall(r"class='rl-title'>([^<]*)<", v.value)
        ]
        assert f"the {saga.name} saga" in title, title
        quoted = re.findall(r"'([^']+)'", title.split("Break", 1)[1])
        assert set(quoted) <= set(saga.names), quoted  # a quoted word is a step, if any
