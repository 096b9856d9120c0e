"""The explorer's grid: every pair of faults of a saga at a glance (lesson 11).

Rows are the first fault, columns the second (the diagonal: that fault alone); each cell is
coloured by how the run ended, and a cross marks a run that breaks an invariant.
``draw_grid`` gives the picture; ``ExplorerGrid`` the same as buttons, each opening its run
in a ``RollbackLab`` panel underneath.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from ..explore import Exploration, Explored, Faults, single_faults
from ..faults import Fault
from ..outcome import Status
from .timeline import FAIL, FONT, FORWARD, INK, PIVOT, RETRY, UNDO
from .widgets import RollbackLab

COLOURS = {
    "committed": FORWARD,
    "rolled back": UNDO,
    "reported: a dead letter or a person": RETRY,
    "leaked: an effect no undo covers": FAIL,
    "halted: for a person": PIVOT,
}
FAULT_WORDS = {
    Fault.FAIL: "fails",
    Fault.FAIL_AFTER_EFFECT: "fails after effect",
    Fault.UNDO_FAILS: "undo fails",
    Fault.UNDO_FAILS_ONCE: "undo fails once",
}


def verdict(run: Explored) -> str:
    """How a run ended, as the grid colours it (a leak apart: it is the weak spot)."""
    if run.outcome.leaked:
        return "leaked: an effect no undo covers"
    return {
        Status.COMMITTED: "committed",
        Status.ROLLED_BACK: "rolled back",
        Status.HALTED: "halted: for a person",
    }.get(run.status, "reported: a dead letter or a person")


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


def _label(fault: tuple[str, Fault]) -> str:
    return f"{fault[0]} · {FAULT_WORDS[fault[1]]}"


def draw_grid(exploration: Exploration, policy: str = "continue", width: float = 9.0) -> Figure:
    faults = axes_of(exploration)
    n = len(faults)
    grid = cells(exploration, policy)
    font = FONT - 3 if n <= 16 else FONT - 5
    label_room = 0.3 + 0.075 * font * max(len(_label(f)) for f in faults) / 10
    side = width - label_room - 0.2
    fig = Figure(figsize=(width, side + label_room + 1.2), dpi=80)
    FigureCanvasAgg(fig)
    total_h = side + label_room + 1.2
    ax = fig.add_axes((label_room / width, 1.05 / total_h, side / width, side / total_h))
    ax.set_xlim(0, n)
    ax.set_ylim(n, 0)
    ax.set_xticks(
        [i + 0.5 for i in range(n)], [_label(f) for f in faults], rotation=90, fontsize=font
    )
    ax.set_yticks([i + 0.5 for i in range(n)], [_label(f) for f in faults], fontsize=font)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    broken = 0
    for (row, col), run in grid.items():
        ax.add_patch(
            Rectangle((col + 0.06, row + 0.06), 0.88, 0.88, color=COLOURS[verdict(run)], lw=0)
        )
        if run.violations:
            broken += 1
            ax.plot(col + 0.5, row + 0.5, "X", color="black", ms=max(5, 120 / n), mew=0)
    used = sorted({verdict(run) for run in grid.values()}, key=list(COLOURS).index)
    handles: list[Any] = [Patch(color=COLOURS[v], label=v) for v in used]
    if broken:
        handles.append(
            Line2D([], [], marker="X", color="black", ls="", ms=10, label="breaks an invariant")
        )
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=min(3, len(handles)),
        frameon=False,
        fontsize=FONT - 3,
    )
    total = len(grid)
    fig.suptitle(
        f"{exploration.saga.name}, policy {policy}: {total} runs with faults, "
        f"{broken} break an invariant",
        x=0.01,
        ha="left",
        fontsize=FONT,
        color=FAIL if broken else INK,
    )
    return fig


class ExplorerGrid:
    """The grid as buttons: hover for the run, click to open it in the panel below."""

    def __init__(self, exploration: Exploration, state: Any, policy: str = "continue") -> None:
        self.exploration, self.policy = exploration, policy
        self.faults = axes_of(exploration)
        self.grid = cells(exploration, policy)
        self.lab = RollbackLab(exploration.saga, state, policy=policy)
        self.opened: Explored | None = None
        self.note = w.HTML()
        self.note.add_class("eg-note")
        n = len(self.faults)
        size = "22px" if n <= 16 else "16px"
        buttons: list[Any] = []
        self.buttons: dict[tuple[int, int], w.Button] = {}
        for row in range(n):
            buttons.append(
                w.HTML(
                    f"<span class='eg-row'>{html.escape(_label(self.faults[row]))}</span>",
                    layout=w.Layout(width="auto"),
                )
            )
            for col in range(n):
                run = self.grid.get((row, col))
                if run is None:
                    buttons.append(w.Box(layout=w.Layout(width=size, height=size)))
                    continue
                button = w.Button(
                    description="✗" if run.violations else "",
                    tooltip=f"{run.describe()}: {run.status}"
                    + (f" - {run.violations[0]}" if run.violations else ""),
                    layout=w.Layout(width=size, height=size, padding="0", margin="1px"),
                )
                button.style.button_color = COLOURS[verdict(run)]
                button.add_class("eg-cell").add_class(f"eg-{row}-{col}")
                button.on_click(lambda _, key=(row, col): self.open(*key))
                self.buttons[(row, col)] = button
                buttons.append(button)
        self.board = w.GridBox(
            buttons,
            layout=w.Layout(
                grid_template_columns=f"max-content repeat({n}, {size})",
                grid_gap="0px",
                align_items="center",
            ),
        )
        self.widget = w.VBox([self.board, self.note, self.lab.widget])
        self.widget.add_class("explorer-grid")
        self.note.value = "Click a cell to open its run in the panel below."

    def open(self, row: int, col: int) -> Explored:
        """Open the run of cell (row, column) in the panel."""
        run = self.grid[(row, col)]
        self.lab.open_run([(s, str(f)) for s, f in run.faults], run.policy)
        self.opened = run
        broken = "; ".join(run.violations)
        self.note.value = (
            f"<b>{html.escape(run.describe())}</b>: {html.escape(str(run.status))}"
            + (f" - <span style='color:{FAIL}'>{html.escape(broken)}</span>" if broken else "")
        )
        return run

    def find(self, faults: Faults) -> tuple[int, int]:
        """The cell of a combination of one or two faults."""
        for key, run in self.grid.items():
            if run.faults == tuple(faults):
                return key
        raise KeyError(f"no cell for {faults!r} under policy {self.policy!r}")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
