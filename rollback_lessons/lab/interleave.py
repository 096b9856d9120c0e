"""Lesson 10's picture and panel: two actors interleaved on shared records.

``draw_trace(trace)`` puts each actor in a lane, one column per turn, what it did in its
lane, and the shared records' values after every turn in a table underneath; an anomaly is
named in the title. ``IsolationLab`` lets a learner pick the countermeasure and the
interleaving (a slider over all of them), and step through its turns.
"""

from __future__ import annotations

import textwrap
from typing import Any

import ipywidgets as w
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..worlds.isolation import SCENARIOS, Scenario, Trace, interleavings
from .png import encode_png
from .timeline import FAIL, FONT, FORWARD, INK, UNDO

WIDTH = 8.5  # inches at 80 dpi: the panel's picture, as lesson 01-06's
LANE_COLOURS = (FORWARD, UNDO)


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


LANES = (3.2, 1.7)  # the two actors' lanes; each turn's words hang below its dot
RULE = 0.35  # the line between the lanes and the records
ROW = 0.6  # one record's row


def draw_trace(
    scenario: Scenario, trace: Trace, upto: int | None = None, width: float = WIDTH
) -> Figure:
    """The interleaving up to turn ``upto`` (all of it by default)."""
    shown = trace.turns if upto is None else trace.turns[:upto]
    actors = list(scenario.actors)
    columns = max(len(trace.turns), 1)
    rows = len(scenario.shown)
    bottom = RULE - 0.3 - rows * ROW
    units = 3.75 - bottom
    fig = Figure(figsize=(width, 0.55 + 0.72 * units), dpi=80)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.18, 0.0, 0.81, 0.72 * units / (0.55 + 0.72 * units)))
    ax.set_xlim(-0.5, columns - 0.5)
    ax.set_ylim(bottom, 3.75)
    ax.axis("off")
    chars = max(10, int(width * 0.81 / columns * 80 / (FONT - 3) * 1.55))

    def left(y: float, text: str, **style: Any) -> None:  # a label in the left margin
        fig.text(
            0.01, ax.transData.transform((0, y))[1] / fig.bbox.height, text, va="center", **style
        )

    for y, actor, colour in zip(LANES, actors, LANE_COLOURS, strict=False):
        ax.plot([-0.5, columns - 0.5], [y, y], color=colour, lw=1, alpha=0.35)
        left(y, actor, fontsize=FONT, color=colour, weight="bold")
    for x, turn in enumerate(shown):
        lane = actors.index(turn.actor)
        failed = "fails" in turn.did
        colour = FAIL if failed else LANE_COLOURS[lane]
        ax.plot(x, LANES[lane], "X" if failed else "o", color=colour, ms=11)
        label = "\n".join(textwrap.wrap(turn.did.split(": ", 1)[1], chars))
        ax.text(
            x,
            LANES[lane] - 0.2,
            label,
            ha="center",
            va="top",
            fontsize=FONT - 3,
            color=INK,
            linespacing=1.0,
        )
    ax.plot([-0.5, columns - 0.5], [RULE, RULE], color=INK, lw=0.8)
    for r, key in enumerate(scenario.shown):
        y = RULE - 0.3 - (r + 0.5) * ROW + 0.3
        left(y, key, fontsize=FONT - 3, color=INK)
        for x, turn in enumerate(shown):
            value = "\n".join(textwrap.wrap(_value(turn.records[key]), chars))
            ax.text(x, y, value, ha="center", va="center", fontsize=FONT - 3, color=INK)
    done = upto is None or upto >= len(trace.turns)
    if done and trace.anomaly:
        title, colour = f"Anomaly: {trace.anomaly}", FAIL
    elif done:
        title, colour = "No anomaly in this interleaving", UNDO
    else:
        title, colour = f"Turn {upto} of {len(trace.turns)}", INK
    fig.suptitle(
        "\n".join(textwrap.wrap(title, int(width * 80 / FONT * 1.6))),
        x=0.01,
        ha="left",
        fontsize=FONT,
        color=colour,
    )
    return fig


def trace_png(scenario: Scenario, trace: Trace, upto: int | None = None) -> bytes:
    fig = draw_trace(scenario, trace, upto)
    fig.canvas.draw()
    return encode_png(fig.canvas.buffer_rgba())  # type: ignore[attr-defined]


class IsolationLab:
    """Pick a countermeasure (or none) and an interleaving; step through its turns."""

    def __init__(self, anomaly: str) -> None:
        choices = [key for key in SCENARIOS if key == anomaly or key.startswith(anomaly + ",")]
        if anomaly not in SCENARIOS:
            raise KeyError(f"no scenario {anomaly!r}; choose from: {', '.join(SCENARIOS)}")
        self.anomaly = anomaly
        self._traces = {key: interleavings(SCENARIOS[key]) for key in choices}
        self.countermeasure = w.Dropdown(
            options=[("none", anomaly)] + [(k.split(", ", 1)[1], k) for k in choices[1:]],
            value=anomaly,
            description="countermeasure",
            style={"description_width": "initial"},
        )
        self.interleaving = w.IntSlider(
            0,
            0,
            len(self._traces[anomaly]) - 1,
            description="interleaving",
            continuous_update=False,
        )
        self.turn = w.IntSlider(0, 0, 1, description="turn", continuous_update=False)
        self.back = w.Button(description="◀ back", layout=w.Layout(width="90px"))
        self.next = w.Button(description="next ▶", layout=w.Layout(width="90px"))
        self.image = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.summary = w.HTML()
        for control, css in (
            (self.countermeasure, "il-countermeasure"),
            (self.interleaving, "il-interleaving"),
            (self.turn, "il-turn"),
            (self.back, "il-back"),
            (self.next, "il-next"),
            (self.image, "il-image"),
            (self.summary, "il-summary"),
        ):
            control.add_class(css)
        self.countermeasure.observe(self._on_choice, "value")
        self.interleaving.observe(self._on_choice, "value")
        self.turn.observe(lambda change: self._show(), "value")
        self.back.on_click(lambda _: self._step(-1))
        self.next.on_click(lambda _: self._step(1))
        self.widget = w.VBox(
            [
                w.HBox([self.countermeasure, self.interleaving]),
                w.HBox([self.back, self.turn, self.next]),
                self.image,
                self.summary,
            ]
        )
        self.widget.add_class("isolation-lab")
        self._on_choice(None)

    @property
    def scenario(self) -> Scenario:
        return SCENARIOS[self.countermeasure.value]

    @property
    def trace(self) -> Trace:
        traces = self._traces[self.countermeasure.value]
        return traces[min(self.interleaving.value, len(traces) - 1)]

    def choose(self, countermeasure: str = "none", interleaving: int = 0) -> Trace:
        """From code, what the dropdown and the slider do."""
        key = self.anomaly if countermeasure == "none" else f"{self.anomaly}, {countermeasure}"
        if key not in self._traces:
            raise KeyError(f"{countermeasure!r} is not a countermeasure shown for {self.anomaly}")
        self.countermeasure.value = key
        self.interleaving.value = interleaving
        return self.trace

    def _on_choice(self, change: Any) -> None:
        traces = self._traces[self.countermeasure.value]
        self.interleaving.max = len(traces) - 1
        self.turn.max = len(self.trace.turns)
        if self.turn.value == self.turn.max:
            self._show()
        self.turn.value = self.turn.max  # the whole interleaving first

    def _step(self, by: int) -> None:
        self.turn.value = max(0, min(self.turn.max, self.turn.value + by))

    def _show(self) -> None:
        trace = self.trace
        self.image.value = trace_png(self.scenario, trace, self.turn.value)
        bad = sum(1 for t in self._traces[self.countermeasure.value] if t.anomaly)
        total = len(self._traces[self.countermeasure.value])
        self.summary.value = (
            f"<b>{self.scenario.title}</b>. Interleaving {self.interleaving.value + 1} of "
            f"{total} (<code>{trace.schedule}</code>); the anomaly happens in {bad} of {total}."
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
