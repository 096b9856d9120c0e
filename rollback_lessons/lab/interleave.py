"""Lesson 10's picture and panel: two actors interleaved on shared records.

``draw_trace(trace)`` puts each actor in a lane, one column per turn (numbered from 1),
what it did in its lane, and the shared records' values after every turn in a table
underneath; an anomaly is named in the title, and a legend explains every mark.
``IsolationLab`` lets a learner pick the countermeasure and the interleaving (a slider
over all of them), and step through its turns; each change is one widget message.
"""

from __future__ import annotations

import functools
import html
import textwrap
import threading
from collections.abc import Iterable
from typing import Any

import ipywidgets as w
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..worlds.isolation import SCENARIOS, Scenario, Trace, interleavings
from . import ahead, guard, reuse
from .drawing import DPI, FAIL, FONT, FORWARD, INK, SMALL, UNDO
from .panel_html import CSS, lost_banner, png_img
from .player import one_at_a_time, one_message_each
from .png import encode_png, figure_png
from .quality import min_text_px

WIDTH = 11.5  # inches at 80 dpi: 920 px, shown 1:1 in a notebook and in the panel
LANE_COLOURS = (FORWARD, UNDO)
LEFT = 0.17  # the labels' margin, as a share of the width


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def _chars(width: float, columns: int) -> int:
    """Characters of SMALL text that fit in one turn's column."""
    column_px = width * DPI * (1 - LEFT - 0.01) / columns
    return max(10, int(column_px / (SMALL * DPI / 72 * 0.55)) - 1)


def _said(turn: Any) -> str:
    return str(turn.did.split(": ", 1)[1])


NBSP = "\u00a0"


def _lines(text: str, chars: int) -> list[str]:
    """``text`` wrapped to ``chars``, a short "(...)" at its end kept on one line (lesson
    10: "fails: Ann's card is declined (undos / ran)" broke before its last word, newuser15)."""
    head, paren, tail = text.rpartition(" (")
    if paren and tail.endswith(")") and len(tail) + 1 <= chars:
        text = f"{head} ({tail.replace(' ', NBSP)}"  # (textwrap breaks at ASCII spaces only)
    return [line.replace(NBSP, " ") for line in textwrap.wrap(text, chars)]


def text_lines(traces: Iterable[Trace], width: float = WIDTH) -> int:
    """The most lines a turn's words take in any of ``traces`` (a panel keeps one height)."""
    most = 1
    for trace in traces:
        chars = _chars(width, max(len(trace.turns), 1))
        for turn in trace.turns:
            most = max(most, len(_lines(_said(turn), chars)))
            for value in turn.records.values():
                most = max(most, len(textwrap.wrap(_value(value), chars)))
    return most


def draw_trace(
    scenario: Scenario,
    trace: Trace,
    upto: int | None = None,
    width: float = WIDTH,
    lines: int | None = None,
    title: bool = True,
) -> Figure:
    """The interleaving up to turn ``upto`` (all of it by default). ``lines``: room for this
    many lines of words per turn (a panel passes the most any interleaving needs);
    ``title=False`` leaves the title to the panel. Each turn's artists have the gid
    ``turn-<i>``, so a panel can show turn by turn without drawing again."""
    shown = trace.turns if upto is None else trace.turns[:upto]
    actors = list(scenario.actors)
    columns = max(len(trace.turns), 1)
    chars = _chars(width, columns)
    lines = max(lines or 1, text_lines([trace], width))
    words = 0.22 * lines  # the space a turn's words take under its dot (data units)
    rule = 0.0  # the line between the lanes and the records
    low = rule + words + 0.42  # the lower lane: its words hang between it and the rule
    lanes = (low + words + 0.75, low)
    row = 0.26 * max(1, min(lines, 2)) + 0.12
    rows = len(scenario.shown)
    bottom = rule - 0.35 - rows * row
    top = lanes[0] + 0.5
    units = top - bottom
    inch = 0.75  # inches per data unit
    legend_h = 0.45
    title_h = 0.45 if title else 0.1
    height = title_h + inch * units + legend_h
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((LEFT, legend_h / height, 1 - LEFT - 0.01, inch * units / height))
    ax.set_xlim(-0.5, columns - 0.5)
    ax.set_ylim(bottom, top)
    ax.axis("off")

    def left(y: float, text: str, **style: Any) -> None:  # a label in the left margin
        fig.text(
            0.012, ax.transData.transform((0, y))[1] / fig.bbox.height, text, va="center", **style
        )

    for x in range(columns):  # the turns, numbered from 1
        ax.text(x, top - 0.2, f"turn {x + 1}", ha="center", va="center", fontsize=SMALL + 1,
                color="#555555")  # fmt: skip
    for y, actor, colour in zip(lanes, actors, LANE_COLOURS, strict=False):
        ax.plot([-0.5, columns - 0.5], [y, y], color=colour, lw=1, alpha=0.35)
        left(y, actor, fontsize=FONT + 1, color=colour, weight="bold")
    for x, turn in enumerate(shown):
        lane = actors.index(turn.actor)
        failed = "fails" in turn.did
        colour = FAIL if failed else LANE_COLOURS[lane]
        gid = f"turn-{x}"
        ax.plot(x, lanes[lane], "X" if failed else "o", color=colour, ms=13 if failed else 11,
                gid=gid)  # fmt: skip
        label = "\n".join(_lines(_said(turn), chars))
        ax.text(x, lanes[lane] - 0.22, label, ha="center", va="top", fontsize=SMALL, color=INK,
                linespacing=1.05, gid=gid)  # fmt: skip
    ax.plot([-0.5, columns - 0.5], [rule, rule], color=INK, lw=0.8)
    left(rule + 0.16, "records after each turn", fontsize=SMALL + 1, color=INK, weight="bold")
    for r, key in enumerate(scenario.shown):
        y = rule - 0.35 - (r + 0.5) * row + 0.15
        left(y, key, fontsize=SMALL + 1, color=INK)
        for x, turn in enumerate(shown):
            value = "\n".join(textwrap.wrap(_value(turn.records[key]), chars))
            ax.text(x, y, value, ha="center", va="center", fontsize=SMALL + 1, color=INK,
                    linespacing=1.05, gid=f"turn-{x}")  # fmt: skip
    if title:
        heading, tint = headline(trace, upto)
        fig.text(0.012, 1 - 0.22 / height, heading, fontsize=FONT + 1, color=tint,
                 va="center", weight="bold")  # fmt: skip
    handles = [
        Line2D([], [], ls="", marker="o", color=LANE_COLOURS[0], ms=10),
        Line2D([], [], ls="", marker="o", color=LANE_COLOURS[1], ms=10),
        Line2D([], [], ls="", marker="X", color=FAIL, ms=12),
    ]
    labels = [f"{actors[0]} did this", f"{actors[1]} did this", "a step failed: its undos ran"]
    fig.legend(handles=handles, labels=labels, loc="lower left", ncol=3, frameon=False,
               fontsize=SMALL + 1, bbox_to_anchor=(LEFT - 0.01, 0.0))  # fmt: skip
    return fig


def headline(trace: Trace, upto: int | None = None) -> tuple[str, str]:
    """The picture's title and its colour: the anomaly once the interleaving is over."""
    done = upto is None or upto >= len(trace.turns)
    if done and trace.anomaly:
        return f"Anomaly: {trace.anomaly}", FAIL
    if done:
        return "No anomaly in this interleaving", UNDO
    return f"Turn {upto} of {len(trace.turns)}", INK


def trace_png(scenario: Scenario, trace: Trace, upto: int | None = None) -> bytes:
    """The picture as PNG bytes, with its report inside (smallest text, anything cut)."""
    return figure_png(draw_trace(scenario, trace, upto))


LAYERS: dict[Any, Any] = {}  # (countermeasure, interleaving, lines) -> ``layers``
KEPT = 12  # interleavings kept drawn (about 2.5 MB each): a scenario's with its countermeasures
# (the most a panel shows: 11, fuzzy read's; lesson 10's dirty read: 8)


def layers(scenario: Scenario, trace: Trace, lines: int) -> tuple[Any, Any, Any, dict[str, Any]]:
    """The interleaving's picture whole and without its turns (RGBA arrays), each turn's
    pixel boxes, and its report: one figure drawn once without the turns' artists (gid
    ``turn-<i>``), then the turns drawn onto it."""
    fig = draw_trace(scenario, trace, None, lines=lines, title=False)
    turns: dict[str, list[Any]] = {}
    [ax] = fig.axes
    for artist in [*ax.lines, *ax.texts]:  # (not findobj: it makes the hidden axes' ticks)
        gid = artist.get_gid()
        if gid and gid.startswith("turn-"):
            turns.setdefault(gid, []).append(artist)
    for artist in (a for found in turns.values() for a in found):
        artist.set_visible(False)
    canvas = fig.canvas
    canvas.draw()  # type: ignore[attr-defined]
    empty = np.asarray(canvas.buffer_rgba()).copy()  # type: ignore[attr-defined]
    renderer = canvas.get_renderer()  # type: ignore[attr-defined]
    height = int(fig.bbox.height)
    boxes: list[list[tuple[int, int, int, int]]] = []
    for i in range(len(trace.turns)):
        turn = []
        for artist in turns.get(f"turn-{i}", []):
            artist.set_visible(True)
            artist.axes.draw_artist(artist)
            b = artist.get_window_extent(renderer).padded(3)
            turn.append((max(int(b.x0), 0), max(height - int(b.y1), 0),
                         int(b.x1) + 1, height - int(b.y0) + 1))  # fmt: skip
        boxes.append(turn)
    whole = np.asarray(canvas.buffer_rgba()).copy()  # type: ignore[attr-defined]
    return whole, empty, boxes, {"min_text_px": round(min_text_px(fig), 2)}


def _keep(key: Any, drawn: Any) -> None:
    LAYERS[key] = drawn
    while len(LAYERS) > KEPT:  # the oldest first
        LAYERS.pop(next(iter(LAYERS)))


class IsolationLab:
    """Pick a countermeasure (or none) and an interleaving; step through its turns.

    It opens on ``interleaving`` (numbered from 1); by default on the first one where the
    anomaly happens, the one a lesson talks about (a panel opening on an interleaving
    where nothing goes wrong shows nothing)."""

    def __init__(self, anomaly: str | None = None, interleaving: int | None = None) -> None:
        if anomaly is None:
            raise guard.RunTheCellsAbove(
                "IsolationLab needs an anomaly: IsolationLab('dirty read')"
            )
        self._lock = threading.RLock()  # one click at a time, whichever thread handles it
        self._ahead = 0  # changes so far: a drawing ahead stops at the next (``ahead``)
        if anomaly not in SCENARIOS:
            raise KeyError(f"no scenario {anomaly!r}; choose from: {', '.join(SCENARIOS)}")
        choices = [key for key in SCENARIOS if key == anomaly or key.startswith(anomaly + ",")]
        self.anomaly = anomaly
        self._traces = {key: interleavings(SCENARIOS[key]) for key in choices}
        self._lines = text_lines([t for ts in self._traces.values() for t in ts])
        self._report: dict[str, Any] = {}
        self._quiet = False
        self.countermeasure = w.Dropdown(
            options=[("none", anomaly)] + [(k.split(", ", 1)[1], k) for k in choices[1:]],
            value=anomaly,
            description="countermeasure",
            tooltip="what the saga (or the others) do against the anomaly",
            style={"description_width": "initial"},
            layout=w.Layout(width="320px"),
        )
        traces = self._traces[anomaly]
        if interleaving is None:
            interleaving = next((n for n, t in enumerate(traces, 1) if t.anomaly), 1)
        if not 1 <= interleaving <= len(traces):
            raise IndexError(f"interleaving {interleaving} of {len(traces)} (numbered from 1)")
        self.interleaving = w.IntSlider(
            interleaving, 1, len(traces),
            description="interleaving", tooltip="which order of turns (numbered from 1)",
            continuous_update=False, style={"description_width": "initial"},
            layout=w.Layout(width="340px"),
        )  # fmt: skip
        self.turn = w.IntSlider(
            1, 1, 1, description="turn", tooltip="how far into the interleaving",
            continuous_update=False, style={"description_width": "initial"},
            layout=w.Layout(width="340px"),
        )  # fmt: skip
        self.back = w.Button(description="back", icon="step-backward",
                             tooltip="the turn before", layout=w.Layout(width="90px"))  # fmt: skip
        self.next = w.Button(description="next", icon="step-forward",
                             tooltip="the next turn", layout=w.Layout(width="90px"))  # fmt: skip
        self.view = w.HTML()  # the picture and the summary: one message per change
        for control, css in (
            (self.countermeasure, "il-countermeasure"),
            (self.interleaving, "il-interleaving"),
            (self.turn, "il-turn"),
            (self.back, "il-back"),
            (self.next, "il-next"),
            (self.view, "il-view"),
        ):
            control.add_class(css)
        self.countermeasure.observe(self._on_choice, "value")
        self.interleaving.observe(self._on_choice, "value")
        self.turn.observe(self._on_turn, "value")
        self.back.on_click(lambda _: self._step(-1))
        self.next.on_click(lambda _: self._step(1))
        head = w.HTML(f"{CSS}<span class='rl-title'>Interleave the two, turn by turn</span>")
        body = w.VBox(
            [
                head,
                w.HBox([self.countermeasure, self.interleaving]),
                w.HBox([self.back, self.turn, self.next]),
                self.view,
            ]
        )
        body.add_class("rl-dim")
        self.widget = w.VBox([w.HTML(lost_banner()), body])
        self.widget.add_class("rl-panel").add_class("isolation-lab")
        reuse.replace(self)  # made again: the old panel's widgets go
        self._on_choice(None)

    @property
    def scenario(self) -> Scenario:
        return SCENARIOS[self.countermeasure.value]

    @property
    def traces(self) -> list[Trace]:
        return self._traces[self.countermeasure.value]

    @property
    def trace(self) -> Trace:
        return self.traces[min(self.interleaving.value, len(self.traces)) - 1]

    @one_at_a_time
    def choose(self, countermeasure: str = "none", interleaving: int = 1) -> Trace:
        """From code, what the dropdown and the slider do (interleavings count from 1)."""
        key = self.anomaly if countermeasure == "none" else f"{self.anomaly}, {countermeasure}"
        if key not in self._traces:
            raise KeyError(f"{countermeasure!r} is not a countermeasure shown for {self.anomaly}")
        if not 1 <= interleaving <= len(self._traces[key]):
            raise IndexError(f"interleaving {interleaving} of {len(self._traces[key])}")
        self._quiet = True
        try:
            self.countermeasure.value = key
            self.interleaving.max = len(self._traces[key])
            self.interleaving.value = interleaving
        finally:
            self._quiet = False
        self._on_choice(None)
        return self.trace

    @one_at_a_time
    def _on_choice(self, change: Any) -> None:
        if self._quiet:
            return
        # the view first (picture and summary: one message), then the sliders and buttons,
        # one message each, the bounds before the value (they were four, before the view)
        with one_message_each(self.interleaving, self.turn, self.back, self.next):
            self.interleaving.max = len(self.traces)
            self._quiet = True
            try:  # the whole interleaving first
                self.turn.max = len(self.trace.turns)
                self.turn.value = self.turn.max
            finally:
                self._quiet = False
            self._show()
        self._warm()

    def _warm(self) -> None:
        """Every interleaving of the panel drawn after the one shown, while the learner
        looks (``ahead.in_turns``; at once outside a kernel): the countermeasure's, so a
        move of the slider draws nothing and the text under it never lags behind (drawn
        per move, the kernel fell a second behind a learner's arrow keys at load 10), then
        the other countermeasures' at this interleaving, then the rest: a change of
        countermeasure finds its picture drawn (drawn at once, each click waited for all
        of them: 178 ms p95 to the picture painted, at load 3)."""
        self._ahead += 1
        todo = [functools.partial(self._draw, key, number) for key, number in self._order()]
        if not ahead.in_turns(self, todo):
            for draw in todo:
                draw()

    def _order(self) -> list[tuple[str, int]]:
        """(countermeasure, interleaving): this one's, then the others' at this number, then
        the rest (at most ``KEPT``: the first drawn are not pushed out by the last)."""
        shown, number = self.countermeasure.value, self.interleaving.value
        others = [key for key in self._traces if key != shown]
        order = [(shown, n) for n in range(1, len(self._traces[shown]) + 1)]
        order += [(k, number) for k in others if number <= len(self._traces[k])]
        order += [(k, n) for k in others for n in range(1, len(self._traces[k]) + 1)]
        return list(dict.fromkeys(order))[:KEPT]

    def _draw(self, countermeasure: str, number: int) -> bool:
        key = (countermeasure, number, self._lines)
        if key in LAYERS:
            return False
        _keep(key, layers(SCENARIOS[countermeasure], self._traces[countermeasure][number - 1],
                          self._lines))  # fmt: skip
        return True

    @one_at_a_time
    def _on_turn(self, change: Any) -> None:
        if not self._quiet:
            self._show()
            self._warm()  # (drawn ahead already: nothing; else from the next look on)

    @one_at_a_time
    def _step(self, by: int) -> None:
        self.turn.value = max(1, min(self.turn.max, self.turn.value + by))

    def summary_html(self) -> str:
        trace, traces = self.trace, self.traces
        bad = sum(1 for t in traces if t.anomaly)
        return (
            f"<b>{html.escape(self.scenario.title)}</b>. Interleaving "
            f"{self.interleaving.value} of {len(traces)} (<code>{trace.schedule}</code>); "
            f"the anomaly happens in {bad} of {len(traces)}."
        )

    def _layers(self) -> tuple[Any, Any, list[list[tuple[int, int, int, int]]]]:
        """This interleaving drawn whole and drawn empty, and where each turn's marks are
        (pixel boxes): a turn is shown by copying its boxes, with no drawing per click.
        Drawn once per kernel (``LAYERS``): one figure, drawn without its turns, then the
        turns drawn onto it."""
        key = (self.countermeasure.value, self.interleaving.value, self._lines)
        if key not in LAYERS:
            _keep(key, layers(self.scenario, self.trace, self._lines))
        whole, empty, boxes, self._report = LAYERS[key]
        return whole, empty, boxes

    def picture(self) -> bytes:
        """The PNG of the turns so far."""
        whole, empty, boxes = self._layers()
        frame = empty.copy()
        for turn in boxes[: self.turn.value]:
            for x0, y0, x1, y1 in turn:
                frame[y0:y1, x0:x1] = whole[y0:y1, x0:x1]
        return encode_png(frame, self._report)

    def _show(self) -> None:
        words, colour = headline(self.trace, self.turn.value)
        self.view.value = (
            f"<div class='il-summary'>{self.summary_html()}</div>"
            f"<div class='rl-caption' style='color:{colour}'>{html.escape(words)}</div>"
            + png_img(self.picture(), words, "il-image")
        )
        self.back.disabled = self.turn.value <= 1
        self.next.disabled = self.turn.value >= self.turn.max

    @property
    def summary(self) -> str:
        return self.summary_html()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        reuse.shown(self)
        return self.widget._repr_mimebundle_(**kwargs)
