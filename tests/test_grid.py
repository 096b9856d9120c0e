"""The explorer's grid: readable for the lessons' sagas and an eight-step one (no colliding
or cut text), honest about violations, and each cell opens its own run in the panel."""

import html
import logging
import re

import matplotlib
import pytest
from conftest import a_part, lesson_worlds, text_problems
from matplotlib.lines import Line2D
from test_explore import FLAWED

from rollback_lessons.explore import check, explore
from rollback_lessons.faults import Fault
from rollback_lessons.lab.grid import ExplorerGrid, cells, draw_grid
from rollback_lessons.lab.timeline import Timeline
from rollback_lessons.lab.widgets import RollbackLab
from rollback_lessons.worlds import examples

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def quiet():
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


def words(html: str) -> str:
    import re

    return re.sub(r"<[^>]+>", " ", html.split(">", 1)[1])


def marks(fig):
    return [line for ax in fig.axes for line in ax.get_lines() if line.get_marker() == "X"]


def picture_of(grid: ExplorerGrid) -> str:
    """The clicked run's picture in the grid's view ("" when none is shown)."""
    return grid.shown.value if "<img" in grid.shown.value else ""


def now_of(grid: ExplorerGrid) -> str:
    """The frame's event and the result as of it, beside the picture."""
    found = re.search(r"<div class='eg-now'>(.*)</div><div class='eg-side'>", grid.shown.value)
    return found.group(1) if found else ""


def side_of(grid: ExplorerGrid) -> str:
    """The run's faults and what it broke, under them (or what the view says instead)."""
    return grid.shown.value.split("<div class='eg-side'>")[-1]


@pytest.mark.parametrize("name", [*sorted(lesson_worlds()), "eight steps"])
def test_the_grid_is_drawn_without_colliding_or_cut_text(name):
    if name == "eight steps":
        saga, state = examples.chain_saga(8), examples.chain_state
    else:
        make_saga, state = lesson_worlds()[name]
        saga = make_saga()
    options = {"restored": examples.booking_restored} if name == "booking" else {}
    exploration = explore(saga, state, **options)
    fig = draw_grid(exploration)
    assert text_problems(fig) == []
    assert marks(fig) == []  # correct sagas: nothing crossed out


def test_every_violation_is_crossed_out_and_the_legend_says_so():
    saga, state, options = FLAWED["not restored"]
    exploration = explore(saga, state, **options)
    fig = draw_grid(exploration)
    broken = [run for run in cells(exploration, "continue").values() if run.violations]
    assert len(marks(fig)) == len(broken) > 0
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "breaks an invariant" in labels
    handles = [h for h in fig.legends[0].legend_handles if isinstance(h, Line2D)]
    assert [h.get_marker() for h in handles] == ["X"]


def test_clicking_a_cell_opens_its_run_in_the_panel():
    saga, state, options = FLAWED["past the pivot"]
    exploration = explore(saga, state, **options)
    grid = ExplorerGrid(exploration, state)
    key = grid.find((("charge_card", "fail"),))
    grid.buttons[key].click()
    assert grid.opened is not None and grid.opened.faults == (("charge_card", "fail"),)
    assert grid.lab.outcome.status == grid.opened.status
    assert grid.lab.outcome.compensated == grid.opened.outcome.compensated
    assert grid.lab.inject == {"charge_card": ["fail"]}
    assert "past the pivot" in grid.note
    assert "data:image/png;base64," in grid.note  # the run's picture, under the grid
    assert f"row {key[0] + 1}, column {key[1] + 1}:" in grid.note  # numbered as the headings
    assert grid.buttons[key].description == "✗"
    pair = grid.find((("reserve_room", "undo_fails"), ("charge_card", "fail")))
    grid.open(*pair)
    assert grid.lab.inject == {"reserve_room": ["undo_fails"], "charge_card": ["fail"]}
    with pytest.raises(KeyError):
        grid.find((("nope", "fail"),))


def test_the_grid_has_numbered_headings_and_its_legend_beside_it():
    saga, state, options = FLAWED["not restored"]
    exploration = explore(saga, state, **options)
    grid = ExplorerGrid(exploration, state)
    html = "".join(
        getattr(w, "value", "") for w in grid.panel.children[2].children[0].children[0].children
    )
    n = len(grid.faults)
    for i in range(n):
        assert f"<div class='eg-col'>{i + 1}</div>" in html
        assert f"{i + 1:>2}  {grid.faults[i][0]}" in html
    legend = grid.panel.children[2].children[0].children[1].value
    assert "breaks an invariant" in legend and "rolled back" in legend
    fig = draw_grid(exploration)
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks == [str(i + 1) for i in range(n)]


def test_a_click_shows_what_broke_without_a_dict_dump():
    saga, state, options = FLAWED["not restored"]
    grid = ExplorerGrid(explore(saga, state, **options), state)
    broken = next(key for key, run in grid.grid.items() if run.violations)
    grid.open(*broken)
    assert "left changed:" in grid.note
    visible = grid.note.split("title=")[0] + "".join(
        part.split(">", 1)[1] for part in grid.note.split("title=")[1:]
    )
    assert "{'" not in visible.replace("&#x27;", "'").split("left changed:")[0]
    # what broke is said in words, in ink: red is the grid legend's "leaked" (issue 24)
    assert "<b>breaks:</b>" in side_of(grid) and "color" not in side_of(grid)


def test_a_grid_given_nothing_says_which_cells_to_run_first():
    from rollback_lessons.lab.guard import RunTheCellsAbove

    with pytest.raises(RunTheCellsAbove):
        ExplorerGrid()


def _lesson_11_grid():
    """Lesson 11's grid: the booking whose refund never looks at what was charged."""

    def refund_anyway(state):
        state["refunds"]["booking-1"] = 120

    saga = examples.booking_saga(refund=refund_anyway)
    state = examples.booking_state
    return ExplorerGrid(explore(saga, state, restored=examples.booking_restored), state)


def test_the_clicked_run_plays_beside_its_picture_and_the_picture_follows():
    grid = _lesson_11_grid()
    import base64

    # one widget for the picture and the words beside it (one message a click), and over
    # its right column's top the controls: the texts under them change length, they never
    # move (newuser7)
    assert list(grid.view.children) == [grid.shown, grid.player]
    assert grid.player.layout.grid_area == "1 / 2 / 2 / 3"
    controls = grid.player.children[0].children
    assert list(controls) == [grid.lab.play_button, grid.lab.back, grid.lab.forward]
    assert list(grid.player.children[1:]) == [grid.lab.slider]
    key = next(k for k, run in grid.grid.items() if run.violations)
    grid.open(*key)
    last = grid.lab.frame_count - 1
    assert grid.lab.frame == last  # opened on the whole run

    def shown(index):
        return base64.b64encode(grid.lab.timeline.render(index)).decode() in picture_of(grid)

    assert shown(last)
    grid.lab.show_frame(0)  # back to the start in the panel: the picture here follows
    assert shown(0) and not shown(last)
    grid.lab.forward.click()
    assert shown(1)
    total = grid.lab.frame_count
    for index in range(total):  # the event shown and the result as of it, as the panel says
        grid.lab.show_frame(index)
        panel = grid.lab.view.value
        caption = panel.split("class='rl-caption'>")[1].split("</div>")[0]
        assert caption.startswith(f"event {index + 1} of {total}: ")
        assert f"class='rl-caption'>{caption}</div>" in now_of(grid)
        result = panel.split("class='rl-result'>")[1].removesuffix("</div></div></div>")
        result = re.sub("<tr><th>breaks</th>.*?</tr>", "", result)  # (the side says it whole)
        assert now_of(grid).split("class='rl-result'>")[1] == f"{result}</div>"
        ended = str(grid.opened.status) in words(now_of(grid).split("rl-result")[1]).split()[:1]
        assert ended == (index == total - 1), (index, now_of(grid))
    grid.lab.show_frame(1)
    assert "eg-open" in grid.buttons[key]._dom_classes


def test_a_change_in_the_panel_under_the_grid_lets_go_of_the_grids_player():
    """newuser8: after a fault was changed in the panel under the grid, the grid's Play,
    back, next and slider moved the panel's new run while its picture, caption and result
    stayed the cell's. The grid now says the panel runs other faults, shows no player
    until a cell is clicked again, and outlines no cell."""
    grid = _lesson_11_grid()
    key = next(k for k, run in grid.grid.items() if run.violations)
    grid.open(*key)
    assert grid.player.layout.display is None and picture_of(grid)
    first = grid.lab.saga.names[0]
    grid.lab.set_fault(first, "fail" if grid.lab.actions[first].value == "ok" else "ok")
    assert grid.player.layout.display == "none"  # nothing beside the grid moves another run
    assert picture_of(grid) == now_of(grid) == "" and grid.opened is None
    said = words(side_of(grid))
    assert f"row {key[0] + 1}, column {key[1] + 1}" in said and "click a cell" in said
    assert not [b for b in grid.buttons.values() if "eg-open" in b._dom_classes]
    grid.lab.show_frame(0)  # the panel's own player still works; the grid stays let go
    assert picture_of(grid) == ""
    grid.open(*key)  # a click on the cell: its run, its player, its outline again
    assert grid.player.layout.display is None and f"data-cell='{key[0]}-{key[1]}'" in (
        picture_of(grid)
    )
    assert "eg-open" in grid.buttons[key]._dom_classes


@pytest.mark.parametrize(("control", "value"), [("order", "forward"), ("register", "before")])
def test_any_change_of_the_panels_run_lets_go_and_a_click_opens_the_cells_run(control, value):
    """Not only faults and policy: the undo order or the register changed in the panel
    under the grid made another run, shown beside the cell's words (row 3, column 3 said
    rollback_incomplete beside a rolled_back picture). And a cell clicked after such a
    change opened the cell's faults with the changed order: not the cell's run either."""
    grid = _lesson_11_grid()
    for key, run in grid.grid.items():
        grid.open(*key)
        assert grid.lab.outcome.status == run.status, key  # the cell's run, as it says
        getattr(grid.lab, control).value = value
        assert "other faults" not in side_of(grid)  # (newuser20: only an option changed)
        if grid.opened is not None:  # still the cell's: the change made the same run
            assert grid.lab.outcome.events == run.outcome.events, (key, control)
        else:
            assert grid.player.layout.display == "none" and picture_of(grid) == ""
        grid.open(*key)  # with the changed control: the cell's run again
        assert grid.lab.outcome.events == run.outcome.events, (key, control)
        assert grid.opened is run and grid.player.layout.display is None


def test_the_view_keeps_its_height_whatever_cell_is_clicked():
    grid = _lesson_11_grid()
    height = grid.view.layout.height
    assert height and height.endswith("px")
    for key in grid.grid:
        grid.open(*key)
        assert grid.view.layout.height == height
    # the fixed row holds the picture (drawn 1:1); what ran and its controls are beside it,
    # with room for the longest run's words (newuser11: up to 53 px were cut at 306 px)
    png = grid.lab.timeline.render(0)
    import struct

    drawn = struct.unpack(">I", png[20:24])[0]
    assert drawn <= int(height[:-2]) <= drawn + 40, (drawn, height)


def test_a_halted_cell_is_coloured_as_the_legend_says():
    from rollback_lessons.lab.grid import COLOURS, verdict

    grid = _lesson_11_grid()
    runs = [run for run in grid.grid.values()]
    halted = [run for run in runs if str(run.status) == "halted"]
    assert halted, "lesson 11's grid has halted runs"
    for key, run in grid.grid.items():
        colour = grid.buttons[key].style.button_color
        said = next(v for v, c in COLOURS.items() if c == colour)
        assert ("halted" in said) == (str(run.status) == "halted"), (run.describe(), said)
        assert verdict(run) == said
    # "a person" appears under one colour only: the halt's
    assert [v for v in COLOURS if "person" in v] == ["halted: for a person"]


def test_the_opened_cells_outline_is_inside_the_grid_box():
    import re

    grid = _lesson_11_grid()
    board = grid.panel.children[2].children[0].children[0]
    style = grid.panel.children[1].value
    rule = re.search(r"eg-open \{outline: (\d+)px[^;]*; outline-offset: (\d+)px", style)
    assert rule, style
    reach = int(rule[1]) + int(rule[2])
    assert board.layout.padding and int(board.layout.padding.split("px")[0]) >= reach


def test_faults_are_named_in_the_dropdowns_words_everywhere_a_learner_reads_them():
    """newuser7: the run line and the cell's heading said "undo_fails_once", the dropdowns
    and the grid's rows other words. One spelling: the dropdowns'."""
    import re

    grid = _lesson_11_grid()
    lab = grid.lab
    words = {value: label for control in [*lab.actions.values(), *lab.undos.values()]
             for label, value in control.options if value not in ("ok", "undo_ok")}  # fmt: skip
    assert set(words) == {"fail", "fail_after_effect", "undo_fails", "undo_fails_once"}
    rows = grid.panel.children[2].children[0].children[0].children
    heads = "".join(getattr(w, "value", "") for w in rows)
    for key, run in grid.grid.items():
        grid.open(*key)
        for step, fault in run.faults:
            said = f"{step} {words[str(fault)]}"
            assert said in side_of(grid), (said, side_of(grid))
            assert words[str(fault)] in lab._cue[1].split(step, 1)[1], (said, lab._cue[1])
            assert f"{step} · {words[str(fault)]}" in heads
        for text in (side_of(grid), lab._cue[1], grid.buttons[key].tooltip):  # no engine spelling
            assert not re.search(r"fail_after_effect|undo_fails", text), text


def test_the_opened_run_says_how_it_ends_and_what_it_breaks_only_at_its_last_event():
    """newuser9: while the opened run played, "breaks: ..." and "left changed" stood under
    "running…": beside the picture, only what is true at the frame shown."""
    grid = _lesson_11_grid()
    key = next(k for k, run in grid.grid.items() if run.violations)
    run = grid.open(*key)
    assert "<b>breaks:</b>" in side_of(grid) and "left changed" in side_of(grid)
    assert f"→ {run.status}" in side_of(grid)
    for frame in range(grid.lab.frame_count - 1):  # as Play, back and the slider show them
        grid.lab.show_frame(frame)
        side = side_of(grid)
        assert "breaks:" not in side and "left changed" not in side and "→" not in side, side
        assert f"row {key[0] + 1}, column {key[1] + 1}" in side
        assert "running…" in now_of(grid) or "…</b>" in now_of(grid)
    grid.lab.show_frame(grid.lab.frame_count - 1)
    assert "<b>breaks:</b>" in side_of(grid)


def test_a_click_sends_the_views_picture_and_words_once_and_the_panels_view_once(
    monkeypatch, sent_states
):
    """Issue 24: one combined update per change. A click drew the clicked run's picture,
    then the view again (its telling frame, then its last): two messages, and a picture
    measured in the browser between them was detached. Now the grid's view (picture, event,
    result, what broke) is one message, and the panel's view under the grid one too."""
    grid = _lesson_11_grid()
    sent = sent_states
    drawn: list[int] = []
    update = Timeline._update
    monkeypatch.setattr(Timeline, "_update", lambda tl, i: (drawn.append(i), update(tl, i)))
    opened = 0
    for key, run in grid.grid.items():
        sent.clear()
        drawn.clear()
        grid.open(*key)
        shown = [k for widget, k in sent if widget is grid.shown]
        panel = [k for widget, k in sent if widget is grid.lab.view]
        assert len(shown) == 1 and len(panel) == 1, (key, shown, panel)
        # the picture the learner watches goes first, the rest of the click after it (the
        # panel's view, its controls, the outline: they went first, 30 KB before it)
        assert sent[0][0] is grid.shown, (key, [type(widget).__name__ for widget, _ in sent])
        assert drawn in ([], [grid.lab.frame_count - 1]), (key, drawn)  # its last frame only
        opened += grid.lab.telling_frame(run.outcome, False) != grid.lab.frame_count - 1
    assert opened  # (runs whose telling frame is not their last: drawn twice before)


def test_a_grid_on_screen_draws_every_cells_picture_ahead_the_same_as_on_demand(monkeypatch):
    """Issue 24's speed: a cell's click found nothing drawn (193-400 ms to the picture
    painted, at load 3). Shown, the grid draws each cell's run at its last event while the
    learner reads it, then the panel's runs one change away; a click then draws nothing,
    and shows the picture drawn on demand."""
    import asyncio

    plain = _lesson_11_grid()
    plain.lab.timeline.frames.runs = 0  # (every picture drawn on demand)
    keys = a_part(sorted(plain.grid), 6, name="grid ahead")
    on_demand = {key: (plain.open(*key), plain.shown.value)[1] for key in keys}
    grid = _lesson_11_grid()  # (the same grid made again: the first one's widgets close)

    async def shown() -> None:
        grid._repr_mimebundle_()
        for _ in range(3000):
            await asyncio.sleep(0.01)
            if all(_drawn_ahead(grid, run) for run in grid.grid.values()):
                break
        else:
            raise AssertionError("the cells' pictures were not drawn ahead")

    asyncio.run(shown())
    built: list[object] = []
    build = Timeline._build_run
    monkeypatch.setattr(Timeline, "_build_run", lambda tl, *a: (built.append(tl), build(tl, *a)))
    for key in keys:
        grid.open(*key)
        assert grid.lab.timeline not in built, f"{key}: drawn on the click, not ahead"
        assert grid.shown.value == on_demand[key], key


def _drawn_ahead(grid: ExplorerGrid, run) -> bool:
    from rollback_lessons.lab.timeline_run import run_key

    faults = [(s, str(f)) for s, f in run.faults]
    outcome = grid.lab._run_saga(grid.lab.explored_settings(faults, run.policy, run.completion))
    return len(outcome.events) - 1 in grid.lab.timeline.frames.peek(run_key(outcome, None))


def test_in_a_kernel_a_click_sends_the_panels_own_view_after_the_picture_here(sent_states):
    """newuser15: a grid click p95 80-108 ms, max 160 (load < 0.9). A click sent the
    picture here (35 KB) and, in the same breath, the panel's own view under the grid
    (37 KB: the same picture again) and its controls, below the screen, which the browser
    parsed and laid out before it painted the picture here. In a kernel (a running loop)
    the panel's own widgets now follow ``PANEL_LATER_S`` later, each in one message; the
    grid's player (slider, Play) goes at once."""
    import asyncio

    from rollback_lessons.lab import grid as grid_module

    later_s = getattr(grid_module, "PANEL_LATER_S", 0.3)  # (lab/grid.py)
    grid = _lesson_11_grid()
    lab = grid.lab
    controls = [*lab.actions.values(), *lab.undos.values(), lab.policy, lab.register, lab.order]
    own = {id(widget) for widget in (*controls, lab.view, lab.stop_button)}
    keys = [k for k, run in grid.grid.items() if run.faults][:3]

    async def clicks() -> None:
        for key in keys:
            sent_states.clear()
            grid.open(*key)
            now = [widget for widget, _ in sent_states]
            assert now[0] is grid.shown, key
            assert not [widget for widget in now if id(widget) in own], key
            await asyncio.sleep(later_s * 2)
            later = [widget for widget, _ in sent_states[len(now) :]]
            assert later.count(grid.lab.view) == 1, key
            assert sorted(set(map(id, later))) == sorted(map(id, later)), key  # one each

    asyncio.run(clicks())
    assert grid.lab.view.value.count("<img") == 1  # the panel's view is the clicked run's
    assert grid.lab.outcome is not None


def test_the_panel_under_the_grid_says_the_opened_run_breaks_what_the_grid_crosses():
    """newuser15: lesson 11's grid.open of charge_card's fail (the phantom undo) left the
    panel saying a plain "rolled_back", while the grid crossed the cell out. The panel's
    result says "breaks" with the names of the explorer's own violations of the run, only
    at its last event, only for a crossed cell, and only until the learner runs another."""
    grid = _lesson_11_grid()
    lab = grid.lab

    def result() -> str:
        return lab.view.value.split("rl-result'>")[1]

    run = grid.open(*grid.find((("charge_card", "fail"),)))
    assert run.violations and str(run.status) == "rolled_back"
    for violation in run.violations:
        assert html.escape(violation.split(":")[0]) in result().split("<th>breaks</th>")[1]
    lab.show_frame(0)
    assert "breaks" not in result()  # not before the run has ended
    lab.show_frame(lab.frame_count - 1)
    assert "<th>breaks</th>" in result()
    clean = next(key for key, run in grid.grid.items() if not run.violations)
    grid.open(*clean)
    assert "breaks" not in result()


def test_the_panel_under_the_grid_judges_the_learners_own_runs_as_the_grid_does():
    """newuser19: under lesson 11's grid, the learner's own run (reserve_room's undo failing
    once, charge_card failing) refunded 120 for a charge never made and the panel said a
    plain "rolled_back, undone: charge_card", while the grid's cell for the same faults is
    crossed: "phantom undo". The panel now judges every run the learner makes by the
    explorer's own check of the grid above it (the same words as ``check``), and judges
    nothing where there is no grid, or for a run a Stop cut short."""
    grid = _lesson_11_grid()
    lab = grid.lab

    def breaks() -> str:
        result = lab.view.value.split("rl-result'>")[1]
        return result.split("<th>breaks</th>")[1] if "<th>breaks</th>" in result else ""

    lab.set_fault("charge_card", "fail")
    lab.set_fault("reserve_room", "undo_fails_once")
    lab.show_frame(lab.frame_count - 1)
    faults = (("reserve_room", Fault.UNDO_FAILS_ONCE), ("charge_card", Fault.FAIL))
    expected = check(
        grid.exploration.saga, examples.booking_state, faults, "continue",
        examples.booking_restored,
    ).violations  # fmt: skip
    assert [v.split(":")[0] for v in expected] == ["phantom undo"]
    assert "phantom undo" in breaks()
    lab.show_frame(0)
    assert breaks() == ""  # said at the run's last event, as for a cell
    lab.set_policy("halt")  # another run, judged again: halt undoes the refund too
    lab.show_frame(lab.frame_count - 1)
    assert "phantom undo" in breaks()
    lab.set_fault("charge_card", "ok")  # nothing fails: committed, nothing broken
    lab.set_fault("reserve_room", "undo_ok")
    assert lab.outcome is not None and str(lab.outcome.status) == "committed"
    assert breaks() == ""
    lab.set_fault("charge_card", "fail")
    lab.show_frame(lab.frame_count - 1)
    assert "phantom undo" in breaks()
    lab.stop(at=0)  # cut short by a Stop: the explorer never stops a run, so no verdict
    lab.show_frame(lab.frame_count - 1)
    assert breaks() == ""

    alone = RollbackLab(grid.exploration.saga, examples.booking_state)  # no grid: no judge
    alone.set_fault("charge_card", "fail")
    alone.show_frame(alone.frame_count - 1)
    assert "<th>breaks</th>" not in alone.view.value
    clean = ExplorerGrid(
        explore(examples.booking_saga(), examples.booking_state), examples.booking_state
    )  # the right refund: the same faults break nothing
    clean.lab.set_fault("charge_card", "fail")
    clean.lab.show_frame(clean.lab.frame_count - 1)
    assert "<th>breaks</th>" not in clean.lab.view.value
