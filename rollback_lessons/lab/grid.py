"""The explorer's grid: every pair of faults of a saga at a glance (lesson 11).

Rows are the first fault, columns the second (numbered as the rows; the diagonal: that
fault alone); each cell is coloured by how the run ended, and a cross marks a run that
breaks an invariant. ``draw_grid`` gives the picture; ``ExplorerGrid`` the same as buttons,
with its legend beside it: a click shows that run's picture under the grid at once, with
Play/back/next and the event slider beside it (the ``RollbackLab`` panel further down opens
the same run; those are its controls, and the picture follows its frame), so the grid, the
picture and its controls fit one screen together.
"""

from __future__ import annotations

import html
import textwrap
from typing import Any

import ipywidgets as w
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from ..explore import Exploration, Explored, Faults, single_faults
from ..faults import LABELS, Fault
from ..outcome import Status
from . import ahead, guard, held, reuse
from .drawing import DPI, FAIL, FONT, FORWARD, INK, PIVOT, RETRY, SMALL, UNDO
from .panel_controls import faults_said, run_widgets
from .panel_html import CSS, PANEL_WIDTH, key, lost_banner, now_html, png_img
from .player import one_at_a_time, one_message_each
from .widgets import RollbackLab

COLOURS = {
    "committed": FORWARD,
    "rolled back": UNDO,
    "reported: a dead letter": RETRY,
    "leaked: an effect no undo covers": FAIL,
    "halted: for a person": PIVOT,
}
CROSS = "✗"
BLANK = "blank: no run of its own (shown across the diagonal, or the two cannot happen together)"
OPENED = "outlined: the run shown under the grid"
OUTLINE_PX = 4  # the opened cell's outline (3 px) and its offset (1 px), outside the cell
# the clicked run's row: its picture, and beside it the controls, the frame's event and
# what the run broke, whole (newuser11: 306 px cut up to 53 px; the grid's panel: 640 of 647 px)
VIEW_PX = 332
PICTURE_PX = int(PANEL_WIDTH * DPI)  # the panel's picture, 1:1
GAP_PX = 12
PLAYER_PX = 64  # Play/back/next over the slider, beside the picture: the text under them
# a click's messages for the panel under the grid (below the screen): sent this long after
# the picture here, which they held up (two 36 KB views in one click, newuser15: p95 108 ms)
PANEL_LATER_S = 0.3
START = "Click a cell to see its run here."
START_HTML = f"<div class='eg-note eg-start'>{START}</div>"


def said(run: Explored) -> str:
    """A run's faults in the dropdowns' words, and its policy (``Explored.describe``'s form)."""
    faults = faults_said((step, [str(fault)]) for step, fault in run.faults) or "no fault"
    return f"{faults} (policy {run.policy})"


def verdict(run: Explored) -> str:
    """How a run ended, as the grid colours it: a halt is handed to a person (whatever it
    left), otherwise a leak stands apart (the weak spot), and a dead letter is reported."""
    if run.status == Status.HALTED:
        return "halted: for a person"
    if run.outcome.leaked:
        return "leaked: an effect no undo covers"
    return {
        Status.COMMITTED: "committed",
        Status.ROLLED_BACK: "rolled back",
    }.get(run.status, "reported: a dead letter")


def axes_of(exploration: Exploration) -> list[tuple[str, Fault]]:
    """The single faults, in the saga's order: the grid's rows and columns."""
    return single_faults(exploration.saga)


def cells(exploration: Exploration, policy: str) -> dict[tuple[int, int], Explored]:
    """(row, column) -> its run: a pair above the diagonal, one fault alone on it."""
    index = {fault: n for n, fault in enumerate(axes_of(exploration))}
    found: dict[tuple[int, int], Explored] = {}
    for run in exploration.runs:
        if run.policy != policy or not run.faults or len(run.faults) > 2:
            continue
        spots = sorted(index[f] for f in run.faults)
        found[(spots[0], spots[-1])] = run
    return found


def grid_title(exploration: Exploration, policy: str) -> str:
    """The grid's count, as the explorer counts (``summary``: every run, the one without a
    fault too), so that "61 runs" never stands unexplained beside "62 runs"."""
    runs = [run for run in exploration.runs if run.policy == policy and len(run.faults) <= 2]
    grid = cells(exploration, policy)
    without = sum(1 for run in runs if not run.faults)
    broken = sum(1 for run in runs if run.violations)
    return (
        f"{exploration.saga.name}, policy {policy}: {len(runs)} runs ({len(grid)} with faults, "
        f"the cells; {without} without), {broken} break an invariant"
    )


def _label(fault: tuple[str, Fault]) -> str:
    return f"{fault[0]} · {LABELS[fault[1]]}"


def row_heading(n: int, fault: tuple[str, Fault]) -> str:
    """A row's heading: its number (the column of the same fault has it too) and the fault."""
    return f"{n + 1:>2}  {_label(fault)}"


def draw_grid(exploration: Exploration, policy: str = "continue", width: float = 11.0) -> Figure:
    """The grid as a picture: rows and columns numbered alike, the legend beside it."""
    faults = axes_of(exploration)
    n = len(faults)
    grid = cells(exploration, policy)
    font = SMALL + 1  # 13.3 px
    char = font * 0.56 / 72  # inches per character (about)
    labels = max(len(row_heading(i, f)) for i, f in enumerate(faults)) * char + 0.2
    beside = n <= 16  # a big grid needs the width: its legend goes under it
    legend_w = 2.9 if beside else 0.0
    side = min(width - labels - legend_w - 0.3, 0.4 * n)  # cells of at most 0.4 in
    top, bottom = 0.95, 0.15 if beside else 1.6
    height = top + side + bottom
    fig = Figure(figsize=(width, max(height, 3.2)), dpi=DPI)
    height = fig.get_figheight()
    FigureCanvasAgg(fig)
    ax = fig.add_axes((labels / width, (height - top - side) / height, side / width, side / height))
    ax.set_xlim(0, n)
    ax.set_ylim(n, 0)
    ax.set_xticks([i + 0.5 for i in range(n)], [str(i + 1) for i in range(n)], fontsize=font)
    ax.set_yticks(
        [i + 0.5 for i in range(n)],
        [row_heading(i, f).strip() for i, f in enumerate(faults)],
        fontsize=font,
    )
    ax.xaxis.tick_top()
    ax.tick_params(length=0, pad=3)
    ax.yaxis.set_tick_params(pad=(labels - 0.1) * 72)  # left-aligned at the figure's edge
    for tick in ax.get_yticklabels():
        tick.set_horizontalalignment("left")
    ax.set_xlabel("second fault (numbered as the rows) →", fontsize=font, labelpad=6)
    ax.xaxis.set_label_position("top")
    for spine in ax.spines.values():
        spine.set_visible(False)
    broken = 0
    for (row, col), run in grid.items():
        ax.add_patch(
            Rectangle((col + 0.06, row + 0.06), 0.88, 0.88, color=COLOURS[verdict(run)], lw=0)
        )
        if run.violations:
            broken += 1
            ax.plot(col + 0.5, row + 0.5, "X", color="black", ms=min(16, 150 / n), mew=0)
    used = sorted({verdict(run) for run in grid.values()}, key=list(COLOURS).index)
    handles: list[Any] = [Patch(color=COLOURS[v], label="\n".join(textwrap.wrap(v, 24)))
                          for v in used]  # fmt: skip
    if broken:
        handles.append(
            Line2D([], [], marker="X", color="black", ls="", ms=12, label="breaks an invariant")
        )
    handles.append(Patch(facecolor="white", edgecolor="#999999",
                         label="\n".join(textwrap.wrap(BLANK, 24))))  # fmt: skip
    if beside:
        fig.legend(handles=handles, loc="upper left", frameon=False, fontsize=font,
                   bbox_to_anchor=((labels + side + 0.2) / width, 1 - top / height),
                   labelspacing=0.7)  # fmt: skip
    else:
        fig.legend(handles=handles, loc="lower left", frameon=False, fontsize=font, ncol=3,
                   bbox_to_anchor=(0.0, 0.0))  # fmt: skip
    fig.text(
        0.01, 1 - 0.22 / height, grid_title(exploration, policy),
        fontsize=FONT + 1, weight="bold", va="center", color=FAIL if broken else INK,
    )  # fmt: skip
    fig.text(0.01, 1 - (top - 0.05) / height, "first fault ↓", fontsize=font, va="bottom")
    return fig


def _changed(run: Explored) -> str:
    """What the run left different from before it, key by key, on one line (short, not a
    dict dump: the side's text fits beside the picture, newuser11)."""
    before, after = run.outcome.state_before or {}, run.outcome.state_after or {}
    changes = [
        f"{html.escape(str(k))} {html.escape(repr(before.get(k, '-')))} "
        f"→ {html.escape(repr(after.get(k, '-')))}"
        for k in [*before, *(k for k in after if k not in before)]
        if before.get(k, "-") != after.get(k, "-")
    ]
    if not changes:
        return "<div>the state is as it was before</div>"
    return f"<div><b>left changed:</b> {'; '.join(changes)}</div>"


def side_html(run: Explored, row: int, col: int, final: bool) -> str:
    """The opened cell's run beside its picture: its faults, and (``final``: at its last
    event) how it ended, what it breaks and what it left changed; before that, only what is
    true at the frame shown (newuser9: "breaks" stood under "running…")."""
    # its faults (the grid's title says the policy): the side's text whole beside the
    # picture, none of it cut (newuser11: up to 53 px were)
    faults = faults_said((step, [str(fault)]) for step, fault in run.faults) or "no fault"
    head = f"<b>row {row + 1}, column {col + 1}: {html.escape(faults)}</b>"
    if not final:
        last = len(run.outcome.events)
        return (
            f"<div class='eg-note'>{head} <span class='rl-more'>(how it ends and what it "
            f"breaks show at event {last})</span></div>"
        )
    broken = "".join(
        f"<div title='{html.escape(v)}'><b>breaks:</b> "
        f"{html.escape(v.split(' from ')[0].split(', but the state is')[0])}</div>"
        for v in run.violations
    )  # in ink: red is the legend's "leaked", the cross says "breaks"
    return (
        f"<div class='eg-note'>{head} → {html.escape(str(run.status))}</div>{broken}{_changed(run)}"
    )


class ExplorerGrid:
    """The grid as buttons: hover for the run, click to see it (under the grid, on the same
    screen) and to open it in the panel further down."""

    def __init__(
        self, exploration: Exploration | None = None, state: Any = None, policy: str = "continue"
    ) -> None:
        if exploration is None:
            raise guard.RunTheCellsAbove(
                "ExplorerGrid needs an exploration: ExplorerGrid(explore(saga, state), state)"
            )
        self.exploration, self.policy = exploration, policy
        self.faults = axes_of(exploration)
        self.grid = cells(exploration, policy)
        self.lab = RollbackLab(exploration.saga, state, policy=policy)
        self.lab.exploration = exploration  # the learner's own runs judged as the cells are
        frames = self.lab.timeline.frames  # every cell's picture kept, and the panel's own
        frames.runs += len(self.grid) if frames.runs > 0 else 0
        self._lock = self.lab._lock  # a cell's click and the panel's own: one at a time
        self.opened: Explored | None = None
        self.cell = (0, 0)
        # the clicked run: its picture (following the panel's frame), and beside it the
        # panel's own Play/back/next and slider, then the frame's event and result and what
        # broke: grid, picture and controls on one screen, the view's height fixed whatever
        # the run says (tall enough for the longest run's text: the browser test clicks every
        # cell). Picture and words are ONE widget: a click sends them in one message (it
        # drew the picture, then the view again: one measured between them was detached);
        # the controls sit over its right column's top, which it leaves empty for them.
        self.shown = w.HTML(START_HTML, layout=w.Layout(grid_area="1 / 1 / 3 / 3"))
        self.shown.add_class("eg-shown")
        controls = w.HBox(
            [self.lab.play_button, self.lab.back, self.lab.forward],
            layout=w.Layout(flex="none"),
        )
        controls.add_class("eg-controls")
        # the panel's player, here while the panel shows the clicked cell's run
        self.player = w.VBox(
            [controls, self.lab.slider],
            layout=w.Layout(grid_area="1 / 2 / 2 / 3", height=f"{PLAYER_PX}px", display="none"),
        )
        self.view = w.GridBox(
            [self.shown, self.player],
            layout=w.Layout(
                grid_template_columns=f"{PICTURE_PX + GAP_PX}px minmax(0, 1fr)",
                grid_template_rows=f"{PLAYER_PX}px minmax(0, 1fr)",
                height=f"{VIEW_PX}px", overflow="hidden", grid_gap="0px",
            ),
        )  # fmt: skip
        self.view.add_class("eg-view")
        self._opening = False  # True while a click sets the panel up: the view follows once
        self._later = held.HeldBack(self._lock)  # the panel's own messages, held back
        n = len(self.faults)
        size = "22px" if n <= 16 else "18px"
        items: list[Any] = [w.HTML("<b>first fault ↓</b>", layout=w.Layout(width="auto"))]
        for col in range(n):
            items.append(
                w.HTML(f"<div class='eg-col'>{col + 1}</div>", layout=w.Layout(width=size))
            )
        self.buttons: dict[tuple[int, int], w.Button] = {}
        for row in range(n):
            items.append(
                w.HTML(
                    f"<span class='eg-row'>{html.escape(row_heading(row, self.faults[row]))}"
                    "</span>",
                    layout=w.Layout(width="auto"),
                )
            )
            for col in range(n):
                run = self.grid.get((row, col))
                if run is None:
                    items.append(w.Box(layout=w.Layout(width=size, height=size)))
                    continue
                button = w.Button(
                    description=CROSS if run.violations else "",
                    tooltip=f"{said(run)}: {run.status}"
                    + (f" - {run.violations[0].split(' from ')[0]}" if run.violations else ""),
                    layout=w.Layout(width=size, height=size, padding="0", margin="1px"),
                )
                button.style.button_color = COLOURS[verdict(run)]
                button.add_class("eg-cell").add_class(f"eg-{row}-{col}")
                button.on_click(lambda _, key=(row, col): self.open(*key))
                self.buttons[(row, col)] = button
                items.append(button)
        board = w.GridBox(
            items,
            layout=w.Layout(
                grid_template_columns=f"max-content repeat({n}, {size})",
                grid_gap="0px",
                align_items="center",
                flex="none",
                padding=f"{OUTLINE_PX}px",  # the outlined cell whole, in the last column too
            ),
        )
        used = sorted({verdict(run) for run in self.grid.values()}, key=list(COLOURS).index)
        entries = [f"<div>{key(COLOURS[v])}{html.escape(v)}</div>" for v in used]
        if any(run.violations for run in self.grid.values()):
            entries.append(f"<div><span class='eg-x'>{CROSS}</span> breaks an invariant</div>")
        entries.append(f"<div>{key('white')}{html.escape(BLANK)}</div>")
        entries.append(f"<div><span class='eg-key-open'></span>{html.escape(OPENED)}</div>")
        title = grid_title(exploration, policy)
        legend = self.legend = w.HTML(
            f"{CSS}<div class='rl-title'>{html.escape(title)}</div>"
            "<div class='eg-how'>Columns: the second fault, numbered as the rows. "
            "Click a cell: its run appears under the grid, to play there.</div>"
            f"<div class='eg-legend'>{''.join(entries)}</div>",
            layout=w.Layout(flex="1 1 auto", margin="0 0 0 16px"),
        )
        style = w.HTML(
            "<style>.explorer-grid .eg-row {font-family: monospace; font-size: 13px;"
            " white-space: pre; padding-right: 6px}"
            " .explorer-grid .eg-col {text-align: center; font-size: 13px; font-weight: bold}"
            " .explorer-grid .eg-cell {font-size: 17px; font-weight: bold; color: black;"
            " line-height: 1}"
            " .explorer-grid .eg-x {font-size: 18px; font-weight: bold}"
            " .explorer-grid .eg-legend div {margin: 3px 0}"
            f" .explorer-grid .eg-cell.eg-open {{outline: {OUTLINE_PX - 1}px solid {INK};"
            " outline-offset: 1px;"
            " z-index: 1}"
            " .explorer-grid .eg-key-open {display: inline-block; width: 10px; height: 10px;"
            f" margin: 0 5px 0 8px; outline: 3px solid {INK}; vertical-align: -1px}}"
            " .explorer-grid .eg-how {margin: 4px 0 8px}"
            " .explorer-grid .eg-view {margin-top: 6px}"
            f" .explorer-grid .eg-slot {{height: {PLAYER_PX}px}}"
            " .explorer-grid .eg-text {flex: 1 1 auto; min-width: 0}"
            f" .explorer-grid .eg-start {{width: {PICTURE_PX}px}}"
            " .explorer-grid .eg-controls {gap: 4px}"
            " .explorer-grid .eg-event {font-weight: normal; color: #333}"
            " .explorer-grid .eg-view table td {padding: 0 6px}</style>",
            layout=w.Layout(display="none"),
        )
        body = w.VBox([w.HBox([board, legend]), self.view])
        body.add_class("rl-dim")
        self.panel = w.VBox([w.HTML(lost_banner()), style, body])
        self.panel.add_class("rl-panel").add_class("explorer-grid")
        self.widget = w.VBox([self.panel, self.lab.widget])
        self.widget.add_class("rl-panels")  # (a lost kernel: no broken-link icon on it either)
        self.lab.view.observe(self._follow, names="value")
        reuse.replace(self, exploration.saga.name)  # made again: the old grid's widgets go

    @one_at_a_time
    def open(self, row: int, col: int) -> Explored:
        """Show the run of cell (row, column) beside its controls: the panel under the grid
        opens it at its last event, and the picture here follows the panel's frame."""
        run = self.grid[(row, col)]
        self.opened = run
        self.cell = (row, col)
        # the picture here first, then the rest of the click: one message per widget, the
        # panel's own under the grid a moment later (``held``: the picture paints first)
        self._later.hold(held.panel_own(self.lab), PANEL_LATER_S)
        with one_message_each(*run_widgets(self.lab), *self.buttons.values(), self.player.layout):
            for button in self.buttons.values():  # the cell shown is outlined, and only it
                if "eg-open" in button._dom_classes:
                    button.remove_class("eg-open")
            self.buttons[(row, col)].add_class("eg-open")
            self.player.layout.display = None  # (shown again, if a change had let it go)
            self._opening = True  # the panel runs it at its end: one frame drawn, one view
            try:
                faults = [(s, str(f)) for s, f in run.faults]
                self.lab.open_explored(
                    faults, run.policy, run.completion, at_end=True, breaks=run.violations
                )
            finally:
                self._opening = False
            self._follow()
        ahead.schedule(self.lab, ahead.cells(self))  # the other cells', while it is looked at
        return run

    @one_at_a_time
    def _follow(self, change: Any = None) -> None:
        """The picture here is the panel's frame, while the panel shows the opened run."""
        run, outcome = self.opened, self.lab.outcome
        if run is None or outcome is None or self._opening:
            return
        wanted: dict[str, list[str]] = {}
        for step, fault in run.faults:
            wanted.setdefault(step, []).append(str(fault))
        if (
            self.lab.inject != wanted
            or self.lab.policy.value != run.policy
            or not self.lab.explored_as(run.completion)
        ):  # the panel now runs another run than the cell's
            self._let_go()
            return
        row, col = self.cell
        lab = self.lab
        png = png_img(lab.timeline.render(lab.frame), said(run))
        now = now_html(outcome, lab.frame, lab._result)
        side = side_html(run, row, col, lab.frame >= lab.frame_count - 1)
        value = (
            f"<div class='rl-row' data-cell='{row}-{col}'>{png}<div class='eg-text'>"
            f"<div class='eg-slot'></div><div class='eg-now'>{now}</div>"
            f"<div class='eg-side'>{side}</div></div></div>"
        )
        if value != self.shown.value:
            self.shown.value = value  # picture, event, result and run: one message

    def _let_go(self) -> None:
        """The learner changed the panel's faults, policy, undo order, register or branch
        first: its run is no longer the cell's. The grid says so and lets go of the panel's
        player (its Play, back, next and slider would move a run the picture here does not
        show: newuser8) until a cell is clicked again."""
        row, col = self.cell
        self.opened = None
        self.buttons[(row, col)].remove_class("eg-open")
        self.player.layout.display = "none"
        self.shown.value = (
            f"<div class='eg-note eg-start'>The panel under the grid no longer runs the run of "
            f"row {row + 1}, column {col + 1} (a fault or an option changed there): click a "
            "cell to see its run here.</div>"
        )

    @property
    def note(self) -> str:
        """What the view says: the clicked run's picture, its frame's event and result as
        of it, then the run's heading and what broke."""
        return self.shown.value

    def find(self, faults: Faults) -> tuple[int, int]:
        """The cell of a combination of one or two faults."""
        for key_, run in self.grid.items():
            if run.faults == tuple(faults):
                return key_
        raise KeyError(f"no cell for {faults!r} under policy {self.policy!r}")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        reuse.shown(self)
        self.lab.displayed()
        ahead.schedule(self.lab, ahead.cells(self))  # the cells' pictures, while it is read
        return self.widget._repr_mimebundle_(**kwargs)
