"""Nothing in a panel's view scrolls, at any frame of any run (issue 24, s43): lesson 11's
panel under the grid hid 15 px of a halt's reason in its log and of its result, in a row
under the picture 128 px high while 30 px of the screen went unused under it (the row is
now ``view_px`` of the panel's option rows). The browser test checks the frames the
lessons' clicks show; here every frame of every one-fault run of lessons 02-06's and 12's
panels (every policy, every branch first), and of lesson 11's grid cells, is laid out in
Chromium with the panel's own CSS at its width in JupyterLab (930 px) and measured."""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterator

import pytest
from conftest import SOAK, a_part
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from test_browser import CHROMIUM_ARGS, _chromium
from test_widgets_steady import worlds

from rollback_lessons.explore import explore, single_faults
from rollback_lessons.faults import UNDO_FAULTS
from rollback_lessons.lab.drawing import DPI
from rollback_lessons.lab.grid import ExplorerGrid
from rollback_lessons.lab.panel_controls import view_px
from rollback_lessons.lab.panel_html import CSS, PANEL_WIDTH, result_at, view_html
from rollback_lessons.lab.png import size
from rollback_lessons.lab.widgets import RollbackLab
from rollback_lessons.worlds import travel
from rollback_lessons.worlds.examples import booking_restored, booking_saga, booking_state

pytestmark = pytest.mark.browser

# JupyterLab's font for the panel's text (--jp-ui-font-family): the page lays it out as
# the lesson does (lesson 11's halts: the same 15 px here as in JupyterLab, s43)
PAGE = (
    "<style>body {font-family: system-ui, -apple-system, blinkmacsystemfont, 'Segoe UI',"
    " helvetica, arial, sans-serif; margin: 0} .rl-panel {width: 930px}</style>"
)
# what scrolls, down or sideways (s44, newuser18: lesson 06's "['row-1:reverted']" widened
# the state's table 19 px past the side column, which cut its "]"): the panel itself too
SCROLLS = """() => [...document.querySelectorAll('.rl-panel')].map(p =>
    [p, ...p.querySelectorAll('.rl-side, .rl-state, .rl-log, .rl-box')].flatMap(e => [
      [e.className, e.scrollHeight - e.clientHeight],
      [e.className + ' sideways', e.scrollWidth - e.clientWidth]].filter(([, px]) => px > 1)))"""


def blank(height: int) -> bytes:
    """A picture as large as the panel's (only its size sets the view's rows)."""
    figure = Figure(figsize=(PANEL_WIDTH, height / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def frames(lab: RollbackLab, png: bytes) -> Iterator[tuple[int, str]]:
    for i in range(lab.frame_count):
        yield i, frame(lab, png, i)


def frame(lab: RollbackLab, png: bytes, i: int) -> str:
    """The panel's view at event ``i`` of its open run (its picture ``png``)."""
    assert lab.outcome is not None
    result = result_at(lab.outcome, i, lab._shown_result)
    return view_html(
        lab.outcome, i, png, lab._cue[0], result, lab.state_keys, view_px(lab),
        cue_title=lab._cue[1],
    )  # fmt: skip


def picture(lab: RollbackLab) -> bytes:
    return blank(size(lab.timeline.render(0))[1])


def lesson_views(world: str) -> Iterator[tuple[str, str]]:
    make_saga, make_state = {**worlds(), "travel (12)": (travel.booking, travel.state)}[world]
    lab = RollbackLab(make_saga(), state=make_state)
    png, last = picture(lab), lab.saga.names[-1]
    branches = [v for _, v in lab.first.options] if lab.first is not None else [None]
    branches = branches if SOAK else branches[:1]  # (make test: the branches in order)
    for step, fault in single_faults(lab.saga):
        faults = [(step, fault.value)]
        if fault.value in UNDO_FAULTS and step != last:
            faults.append((last, "fail"))  # so that the undo runs
        for policy in ("continue", "retry", "halt"):
            for first in branches:
                lab._quiet = True  # (set together: one run, opened below)
                lab.policy.value = policy
                if lab.first is not None:
                    lab.first.value = first
                lab._quiet = False
                lab.open_run(faults)
                for i, view in frames(lab, png):
                    yield f"{world} {faults} {policy} {first or ''} event {i + 1}", view


def two_fault_views(world: str, runs: list[list[tuple[str, str]]] | None = None):
    """Every frame of runs with two faults (the panel as a lesson opens it, and one more
    fault set: newuser18 stepped through lesson 06's after such a change)."""
    make_saga, make_state = {**worlds(), "travel (12)": (travel.booking, travel.state)}[world]
    lab = RollbackLab(make_saga(), state=make_state)
    png = picture(lab)
    if runs is None:
        space = [(step, fault.value) for step, fault in single_faults(lab.saga)]
        pairs = [[a, b] for a, b in itertools.combinations(space, 2) if a[0] != b[0]]
        runs = a_part(pairs, 12, name=f"panel rows: two faults, {world}")
    for faults in runs:
        lab.open_run(faults)
        for i, view in frames(lab, png):
            yield f"{world} {faults} event {i + 1}", view


def grid_views() -> Iterator[tuple[str, str]]:
    """Lesson 11's grid (its flawed saga): each cell's run, as the panel under it opens it."""

    def refund_anyway(state):
        state["refunds"]["booking-1"] = 120

    exploration = explore(booking_saga(refund=refund_anyway), booking_state,
                          restored=booking_restored)  # fmt: skip
    grid = ExplorerGrid(exploration, booking_state)
    png = picture(grid.lab)
    for row, col in a_part(sorted(grid.grid), 3, name="panel rows: lesson 11's cells"):
        grid.open(row, col)
        for i, view in frames(grid.lab, png):
            yield f"11 cell {row}-{col} event {i + 1}", view
    # the learner's own runs under the grid, under the policies the cells do not show:
    # judged by the grid's check, their result says what they break too (a breaks row)
    cells = a_part(sorted(grid.grid), 6, name="panel rows: lesson 11's own runs")
    for (row, col), policy in itertools.product(cells, ("retry", "halt")):
        faults = [(step, str(fault)) for step, fault in grid.grid[(row, col)].faults]
        grid.lab.open_run(faults, policy)
        for i, view in frames(grid.lab, png):
            yield f"11 own run {faults} {policy} event {i + 1}", view


def scrolling(views: list[tuple[str, str]]) -> list:
    from playwright.sync_api import sync_playwright

    shown = (re.sub(r"src='data:[^']*'", "src=''", v) for _, v in views)  # (the size stays)
    page_html = CSS + PAGE + "".join(f"<div class='rl-panel'>{v}</div>" for v in shown)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            page = chromium.new_page(viewport={"width": 1366, "height": 768})
            page.set_content(page_html, timeout=180_000)  # (thousands of views)
            found = page.evaluate(SCROLLS)
        finally:
            chromium.close()
    return [(where, hidden) for (where, _), hidden in zip(views, found, strict=True) if hidden]


WORLDS = ["xyz", "folder", "account", "order", "booking", "booking (04, unsafe order)",
          "services (06)", "travel (12)"]  # fmt: skip


def test_no_part_of_any_view_scrolls() -> None:
    """make test: a half of the lessons' worlds (12's with its branches in order) and a
    third of the grid's cells, a different part each run (conftest's a_part; a halt's
    long reason in every part: 04's world or the booking's); make soak: all of them."""
    views = [v for world in a_part(WORLDS, 2, name="panel rows") for v in lesson_views(world)]
    views += grid_views()
    hidden = scrolling(views)
    assert hidden == [], f"{len(hidden)} of {len(views)} views scroll: {hidden[:5]}"


def test_no_part_of_a_view_of_two_fault_runs_scrolls() -> None:
    """Lesson 06's panel as it opens (charge_card fails after its effect) with create_event
    failing after its effect too: at events 9 and 10 the state's "['row-1:reverted']" was
    cut at the side column's edge (newuser18); and a twelfth of every world's two-fault
    runs, a different twelfth each run (make soak: all of them)."""
    opened = [("charge_card", "fail_after_effect"), ("create_event", "fail_after_effect")]
    views = list(two_fault_views("services (06)", [opened]))
    views += [v for world in WORLDS for v in two_fault_views(world)]
    hidden = scrolling(views)
    assert hidden == [], f"{len(hidden)} of {len(views)} views scroll: {hidden[:5]}"


def stop_cases(world: str) -> Iterator[tuple[str, list[tuple[str, str]], str, int]]:
    """(world, faults, policy, event) of every Stop of every single-fault run."""
    make_saga, make_state = {**worlds(), "travel (12)": (travel.booking, travel.state)}[world]
    lab = RollbackLab(make_saga(), state=make_state)
    last = lab.saga.names[-1]
    runs: list[list[tuple[str, str]]] = [[]]
    for step, fault in single_faults(lab.saga):
        extra = [(last, "fail")] if fault.value in UNDO_FAULTS and step != last else []
        runs.append([(step, fault.value), *extra])
    for faults, policy in itertools.product(runs, ("continue", "halt")):
        yield from ((world, faults, policy, at) for at in range(events_of(lab, faults, policy)))


def events_of(lab: RollbackLab, faults: list[tuple[str, str]], policy: str) -> int:
    """The events of the run ``lab.open_run(faults, policy)`` shows, counted from the run
    alone: its drawing (the run's artists, a frame) was most of this test's cost, for the
    eleven twelfths of the Stops make test does not look at."""
    lab._quiet = True  # (the controls set as open_run sets them, no run shown)
    try:
        for control, value in lab._faults_set(faults, policy).items():
            control.value = value
    finally:
        lab._quiet = False
    return len(lab._run_saga().events)


def test_no_result_of_a_stop_scrolls() -> None:
    """A Stop's result: a head naming the Stop that came too late beside a failure's error
    took three lines and hid the rows under it in the fixed box (54 of 762 Stops of lesson
    04's and 12's worlds). make test: a twelfth of every world's Stops; make soak: all."""
    cases = [c for world in WORLDS for c in stop_cases(world)]
    views, labs = [], {}
    for world, faults, policy, at in a_part(cases, 12, name="stop results"):
        if world not in labs:  # (one panel per world, each Stop on a run opened anew)
            make_saga, make_state = {**worlds(), "travel (12)": (travel.booking, travel.state)}[
                world
            ]
            lab = RollbackLab(make_saga(), state=make_state)
            labs[world] = lab, picture(lab)  # (a panel's figure has one size for every run)
        lab, png = labs[world]
        lab.runs = 0  # (as a fresh panel's: the cue says "run 2")
        lab.open_run(faults, policy)
        lab.stop(at)
        view = frame(lab, png, lab.frame_count - 1)
        views.append((f"{world} {faults} {policy} Stop after event {at + 1}", view))
    hidden = scrolling(views)
    assert hidden == [], f"{len(hidden)} of {len(views)} views scroll: {hidden[:5]}"
