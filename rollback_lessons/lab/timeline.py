"""``Timeline``: one reusable figure that draws a run, lane by lane, frame by frame.

A new frame only changes what is visible and blits it onto a cached background, so
stepping through frames stays fast; notes are placed where they collide with no other
text, and the state table abbreviates what does not fit its columns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from ..events import Event
from ..outcome import Outcome, Status
from .png import encode_png

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies; every
# meaning also has its own marker shape, so nothing depends on colour alone.
FORWARD = "#0072B2"  # blue
UNDO = "#009E73"  # bluish green
FAIL = "#D55E00"  # vermillion
RETRY = "#E69F00"  # orange
PIVOT = "#CC79A7"  # reddish purple
REGISTER = "#56B4E9"  # sky blue
HIGHLIGHT = "#F0E442"  # yellow
INK = "#222222"
FAINT = "#BBBBBB"

_NONE = object()
_ON_PATH = frozenset({"step_start", "step_done", "step_failed", "undo", "undo_done", "undo_failed"})
_DEAD = ("s", INK, "dead letter")
RETRY_MARK = "P"  # a filled plus: "tried again", in the lanes and in the legend
_UNDO_FAILED = {
    "retry": (RETRY_MARK, RETRY, "retry"),
    "halt": ("D", PIVOT, "halt: for a person"),
}
FONT = 13  # readable on a projector at the default size
DPI = 80


@dataclass
class _Glyph:
    """An artist that appears at event ``seq`` and stays."""

    seq: int
    artist: Any


def _short(value: Any, width: int = 10, *, as_text: bool = False) -> str:
    """``repr(value)`` (or the text itself), abbreviated with "…" to ``width`` characters."""
    text = str(value) if as_text else repr(value)
    return text if len(text) <= width else text[: max(width - 1, 1)] + "…"


TABLE_FONT = "DejaVu Sans Mono"  # ships with matplotlib: every character is as wide
COLUMNS = (0.0, 0.40, 0.70)  # state, before, now: where each column starts in its axes


def _caption(event: Event) -> str:
    step = f" {event.step}" if event.step else ""
    extra = ""
    if event.kind == "undo_failed":
        extra = f" (then {event.details.get('then')})"
    elif event.kind in ("undo", "undo_done") and event.details.get("attempt", 1) > 1:
        extra = f" (attempt {event.details['attempt']})"
    elif event.kind == "rollback_done":
        extra = f": {event.details.get('status')}"
    return f"{event.kind}{step}{extra}"


class Timeline:
    """One reusable figure for a saga's steps; ``load`` a run, then ``render`` its frames."""

    def __init__(
        self,
        steps: Sequence[str],
        *,
        kinds: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        state_keys: Sequence[str] = (),
        width: float = 12.5,
    ) -> None:
        """``width`` in inches (at 80 dpi): draw at the size it is shown, so the text keeps
        its size on a projector; the panel uses a narrower figure than ``draw``."""
        self.steps = tuple(steps)
        self.kinds = dict(kinds or {})
        self.labels = dict(labels or {})
        self.state_keys = tuple(state_keys)
        self.lane = {name: i for i, name in enumerate(self.steps)}
        n = len(self.steps)
        rows = max(n, len(self.state_keys) + 1)
        self.legend_rows = 1 if width >= 11 else 2
        height = 2.1 + 0.3 * self.legend_rows + 0.55 * rows
        self.fig = Figure(figsize=(width, height), dpi=DPI)
        self.canvas = FigureCanvasAgg(self.fig)
        self._build_static(n, height)
        self._glyphs: list[_Glyph] = []
        self._outcome: Outcome | None = None
        self._cache: dict[int, bytes] = {}

    # -- the parts that never change for these steps ---------------------------------

    def _build_static(self, n: int, height: float) -> None:
        top = 1 - 0.75 / height
        bottom = (0.65 + 0.3 * self.legend_rows) / height
        inches = self.fig.get_figwidth()
        # the table: a fixed share of characters (key 11, before 9, now 9), in inches
        char = FONT * 0.6 / 72  # a monospaced character at FONT points
        table = min(0.34 * inches, 33 * char + 0.1)
        # the lanes' labels: as wide as the widest one needs, measured below
        self.ax = self.fig.add_axes((0.3, bottom, 0.1, top - bottom))
        self.tax = self.fig.add_axes((1 - (table + 0.08) / inches, bottom, table / inches,
                                      top - bottom))  # fmt: skip
        ax, tax = self.ax, self.tax
        ax.set_ylim(n - 0.5, -0.5)
        ax.set_yticks(range(n))
        ax.set_yticklabels([self._lane_label(s) for s in self.steps], fontsize=FONT)

        for name, tick in zip(self.steps, ax.get_yticklabels(), strict=True):
            if self.kinds.get(name) in ("pivot", "retriable"):
                tick.set_color(PIVOT)
                tick.set_fontweight("bold")
        renderer = self.canvas.get_renderer()
        widest = max(
            (t.get_window_extent(renderer).width for t in ax.get_yticklabels()), default=0.0
        )
        left = (widest + 14) / (inches * DPI)
        right = 1 - (table + 0.3) / inches
        ax.set_position((left, bottom, max(right - left, 0.1), top - bottom))
        ax.set_xticks([])
        ax.set_xlabel("time  →", fontsize=FONT, loc="right")
        for i in range(n):
            ax.axhline(i, color=FAINT, lw=1, zorder=0)
        for spine in ("top", "right"):
            ax.spines[spine].set_visible(False)
        tax.set_axis_off()
        tax.set_xlim(0, 1)
        tax.set_ylim(max(len(self.state_keys), n) + 0.5, 0.3)
        self.budget = self._column_budget()
        for x, text in zip(COLUMNS, ("state", "before", "now"), strict=True):
            tax.text(x, 0.5, text, fontsize=FONT, fontweight="bold", va="center")
        for row, key in enumerate(self.state_keys, start=1):
            tax.text(
                COLUMNS[0], row + 0.2, _short(key, self.budget[0], as_text=True),
                fontsize=FONT, va="center", family=TABLE_FONT,
            )  # fmt: skip
        legend = [
            ("step done", ">", FORWARD, FORWARD),
            ("undo logged", "o", "white", REGISTER),
            ("failed", "X", FAIL, FAIL),
            ("retry", RETRY_MARK, RETRY, RETRY),
            ("undone", "<", UNDO, UNDO),
            ("dead letter", "s", INK, INK),
            ("halted", "D", PIVOT, PIVOT),
        ]
        handles = [
            Line2D([], [], ls="", marker=m, mfc=face, mec=edge, mew=2, ms=11, label=label)
            for label, m, face, edge in legend
        ]
        columns = math.ceil(len(handles) / self.legend_rows)
        self.fig.legend(
            handles=handles, loc="lower center", ncol=columns, fontsize=FONT - 1,
            frameon=False, bbox_to_anchor=(0.5, 0.0), columnspacing=1.2,
        )  # fmt: skip
        self.title = self.fig.text(0.02, 1 - 0.35 / height, "", fontsize=FONT + 2, va="center")
        (self._path,) = ax.plot([], [], color=INK, lw=1.2, alpha=0.6, zorder=1)
        (self._cursor,) = ax.plot([], [], "o", ms=26, mfc="none", mec=INK, mew=2.5, zorder=5)
        cell: dict[str, Any] = {"fontsize": FONT, "va": "center", "family": TABLE_FONT}
        self._cells = [
            (
                tax.text(COLUMNS[1], row + 0.2, "", **cell),
                tax.text(COLUMNS[2], row + 0.2, "", zorder=3, **cell),
                tax.add_patch(
                    Rectangle(
                        (COLUMNS[2] - 0.02, row - 0.25),
                        1.02 - COLUMNS[2],
                        0.9,
                        color=HIGHLIGHT,
                        lw=0,
                        zorder=2,
                    )
                ),
            )
            for row in range(1, len(self.state_keys) + 1)
        ]
        for artist in (self.title, self._path, self._cursor, *self._cell_artists()):
            artist.set_animated(True)  # drawn per frame, kept out of the cached background
        self.canvas.draw()
        self._background = self.canvas.copy_from_bbox(self.fig.bbox)

    def _column_budget(self) -> tuple[int, int, int]:
        """How many characters fit in each column of the state table, measured once."""
        renderer = self.canvas.get_renderer()
        probe = self.tax.text(0, 0, "M" * 10, fontsize=FONT, family=TABLE_FONT)
        char = probe.get_window_extent(renderer).width / 10
        probe.remove()
        width = self.tax.get_window_extent(renderer).width
        edges = (*COLUMNS, 1.0)
        return tuple(  # type: ignore[return-value]
            max(int((edges[i + 1] - edges[i]) * width / char) - 1, 3) for i in range(3)
        )

    def _lane_label(self, step: str) -> str:
        label = self.labels.get(step)
        kind = self.kinds.get(step)
        tag = " (irreversible)" if kind == "pivot" else " (retried)" if kind == "retriable" else ""
        return f"{step}{tag}\n{label}" if label else f"{step}{tag}"

    # -- a run -----------------------------------------------------------------------

    def _keep(self, seq: int, artist: Any) -> None:
        self._glyphs.append(_Glyph(seq, artist))

    def _bar(self, seq: int, start: int, y: int, colour: str, head: str) -> None:
        """A step or an undo, from its start to its end; the head points its way."""
        self._keep(
            seq, self.ax.plot([start, seq], [y, y], color=colour, lw=7, solid_capstyle="butt")[0]
        )
        self._keep(seq, self.ax.plot(seq, y, head, color=colour, ms=14)[0])

    def _mark(self, seq: int, y: int, marker: str, colour: str, face: str | None = None) -> None:
        size = 17 if marker in ("X", RETRY_MARK) else 12
        line = self.ax.plot(seq, y, marker, mfc=face or colour, mec=colour if face else "white",
                            mew=2.5 if face else 1, ms=size)[0]  # fmt: skip
        self._keep(seq, line)

    def _note(
        self, seq: int, x: float, y: float, text: str, colour: str, ha: str = "center"
    ) -> None:
        artist = self.ax.text(x, y - 0.3, text, color=colour, fontsize=FONT - 2, ha=ha)
        self._notes.append((artist, x, y, ha))
        self._keep(seq, artist)

    def _place_notes(self, fixed: list[Any]) -> None:
        """Move each note to the first spot near its marker where it overlaps no other text.

        Tried in order: above, below, then beside (left or right) above and below. The
        ``fixed`` texts (the rollback label) are placed first and never move.
        """
        renderer = self.canvas.get_renderer()
        inside = self.ax.get_window_extent(renderer).padded(-2)
        placed = [t.get_window_extent(renderer).padded(2) for t in fixed]
        for artist, x, y, ha in self._notes:
            spots = [(x, y - 0.3, ha), (x, y + 0.45, ha)]
            for shift in (0.35, 1.5, 3.0):  # then beside it, further and further away
                for dy in (-0.3, 0.45):
                    spots += [(x - shift, y + dy, "right"), (x + shift, y + dy, "left")]
            for dy in (-0.62, 0.75):  # last: half way to the next lane
                spots += [(x, y + dy, ha), (x - 0.35, y + dy, "right"), (x + 0.35, y + dy, "left")]
            chosen = None
            for sx, sy, sha in spots:
                artist.set_position((sx, sy))
                artist.set_horizontalalignment(sha)
                box = artist.get_window_extent(renderer).padded(2)
                fits = inside.x0 <= box.x0 and box.x1 <= inside.x1
                if fits and not any(box.overlaps(other) for other in placed):
                    chosen = box
                    break
            if chosen is None:  # nowhere free: keep the first spot (the tests catch it)
                artist.set_position((x, y - 0.3))
                artist.set_horizontalalignment(ha)
                chosen = artist.get_window_extent(renderer).padded(2)
            placed.append(chosen)

    def load(self, outcome: Outcome) -> None:
        """Make the artists for one run; they show up frame by frame."""
        for glyph in self._glyphs:
            glyph.artist.remove()
        self._glyphs, self._cache, self._outcome = [], {}, outcome
        self._notes: list[tuple[Any, float, float, str]] = []
        fixed: list[Any] = []
        events = outcome.events
        self.ax.set_xlim(0, max(len(events), 1) + 1)
        started: dict[str, int] = {}
        # shaded from where the undos start: a halt after the pivot has no rollback to show
        failed_at = next((e.seq for e in events if e.kind == "rollback_start"), None)
        if failed_at is not None:
            span = self.ax.axvspan(failed_at - 0.5, len(events) + 1, color=UNDO, alpha=0.08, lw=0)
            self._keep(failed_at, span)
            label = self.ax.text(
                failed_at, -0.45, " rollback ←", color=UNDO, fontsize=FONT, va="top"
            )
            renderer = self.canvas.get_renderer()
            if label.get_window_extent(renderer).x1 > self.ax.get_window_extent(renderer).x1:
                label.set_horizontalalignment(
                    "right"
                )  # a late rollback: keep its label inside the lanes
                label.set_position((len(events) + 0.9, -0.45))
            self._keep(failed_at, label)
            fixed.append(label)
        path_x: list[float] = []
        path_y: list[float] = []
        self._path_len: list[int] = []
        for e in events:
            k, s = e.kind, e.seq
            y = self.lane.get(e.step) if e.step is not None else None
            if y is not None and k in _ON_PATH:
                path_x.append(s)
                path_y.append(y)
            self._path_len.append(len(path_x))
            if k in ("step_start", "undo"):
                started[e.step] = s  # type: ignore[index]
            elif k == "step_done":
                self._bar(s, started[e.step], y, FORWARD, ">")  # type: ignore[arg-type,index]
            elif k == "undo_done":
                self._bar(s, started[e.step], y, UNDO, "<")  # type: ignore[arg-type,index]
            elif k == "undo_registered":
                self._mark(s, y, "o", REGISTER, face="white")  # type: ignore[arg-type]
            elif k == "step_retry":
                self._mark(s, y, RETRY_MARK, RETRY)  # type: ignore[arg-type]
                self._note(s, s, y, "retry", RETRY)  # type: ignore[arg-type]
            elif k == "step_failed":
                if e.details.get("after_effect"):
                    self._bar(s, started[e.step], y, FORWARD, ">")  # type: ignore[arg-type,index]
                    self._note(s, s, y, "effect happened", FAIL)  # type: ignore[arg-type]
                self._mark(s, y, "X", FAIL)  # type: ignore[arg-type]
            elif k == "undo_failed":
                marker, colour, word = _UNDO_FAILED.get(str(e.details.get("then")), _DEAD)
                self._mark(s, y, marker, colour)  # type: ignore[arg-type]
                self._note(s, s, y, word, colour)  # type: ignore[arg-type]
            elif k in ("committed", "rollback_done", "halted"):
                colour = {"committed": FORWARD, "halted": PIVOT}.get(k, UNDO)
                self._keep(s, self.ax.axvline(s, color=colour, lw=2, ls="--"))
                if k == "halted":
                    self._note(s, s, y, "halted: left for a person ", PIVOT, "right")  # type: ignore[arg-type]
                if k == "rollback_done":
                    for name in outcome.leaked:
                        self._note(s, s - 0.3, self.lane[name], "still done ", FAIL, "right")
        self._path_xy = (path_x, path_y)
        self._place_notes(fixed)
        for glyph in self._glyphs:
            glyph.artist.set_animated(True)
        # This run's background: the static figure plus the state before, in both columns;
        # a frame then only draws the glyphs so far and the values that changed.
        before = outcome.state_before or {}
        self.canvas.restore_region(self._background)
        for (b, a, _), key in zip(self._cells, self.state_keys, strict=True):
            b.set_text(_short(before.get(key, "-"), self.budget[1]))
            a.set_text(_short(before.get(key, "-"), self.budget[2]))
            self.tax.draw_artist(b)
            self.tax.draw_artist(a)
        self._run_background = self.canvas.copy_from_bbox(self.fig.bbox)
        self._layer, self._layer_seq = self._run_background, 0

    @property
    def frame_count(self) -> int:
        return len(self._outcome.events) if self._outcome is not None else 0

    def _update(self, index: int) -> None:
        """Set every artist to how it looks after event ``index``."""
        outcome = self._outcome
        assert outcome is not None
        if not 0 <= index < len(outcome.events):
            raise IndexError(f"frame {index} is out of range 0..{len(outcome.events) - 1}")
        event = outcome.events[index]
        seq = event.seq
        for glyph in self._glyphs:
            glyph.artist.set_visible(glyph.seq <= seq)
        n = self._path_len[index]
        xs, ys = self._path_xy
        self._path.set_data(xs[:n], ys[:n])
        y = self.lane.get(event.step) if event.step is not None else None
        self._cursor.set_data([seq] if y is not None else [], [y] if y is not None else [])
        status = outcome.status if index == len(outcome.events) - 1 else None
        final = event.kind in ("rollback_done", "committed")
        suffix = f"   →  {status}" if status is not None and not final else ""
        self.title.set_text(f"{index + 1}/{len(outcome.events)}  {_caption(event)}{suffix}")
        self.title.set_color(
            FAIL if status not in (None, Status.COMMITTED, Status.ROLLED_BACK) else INK
        )
        before = outcome.state_before or {}
        now = outcome.state_at(index) or {}
        for (b, a, mark), key in zip(self._cells, self.state_keys, strict=True):
            b.set_text(_short(before.get(key, "-"), self.budget[1]))
            a.set_text(_short(now.get(key, "-"), self.budget[2]))
            mark.set_visible(now.get(key, _NONE) != before.get(key, _NONE))

    def state_cells(self, index: int) -> list[tuple[str, str, str, bool]]:
        """(key, before, now, highlighted) as frame ``index`` shows them."""
        self._update(index)
        return [
            (key, b.get_text(), a.get_text(), mark.get_visible())
            for key, (b, a, mark) in zip(self.state_keys, self._cells, strict=True)
        ]

    def _blit(self, seq: int) -> None:
        """Draw a frame: glyphs build up on a cached layer, so the next frame adds only its own."""
        if seq < self._layer_seq:
            self._layer, self._layer_seq = self._run_background, 0
        self.canvas.restore_region(self._layer)
        for glyph in self._glyphs:
            if self._layer_seq < glyph.seq <= seq:
                self.ax.draw_artist(glyph.artist)
        self._layer, self._layer_seq = self.canvas.copy_from_bbox(self.fig.bbox), seq
        self.ax.draw_artist(self._path)
        self.ax.draw_artist(self._cursor)
        for _, now, mark in self._cells:
            if mark.get_visible():
                self.tax.draw_artist(mark)
                self.tax.draw_artist(now)
        self.fig.draw_artist(self.title)

    def render(self, index: int) -> bytes:
        """The PNG of frame ``index`` (cached: stepping back costs nothing)."""
        if index not in self._cache:
            self._update(index)
            self._blit(self._outcome.events[index].seq)  # type: ignore[union-attr]
            self._cache[index] = encode_png(self.canvas.buffer_rgba())
        return self._cache[index]

    def show(self, index: int) -> Figure:
        """Leave the figure itself at frame ``index`` (for animations and static pictures)."""
        self._update(index)
        for artist in self._animated():
            artist.set_animated(False)
        return self.fig

    def _cell_artists(self) -> list[Any]:
        return [artist for cell in self._cells for artist in cell]

    def _animated(self) -> list[Any]:
        glyphs = [g.artist for g in self._glyphs]
        return [*glyphs, self.title, self._path, self._cursor, *self._cell_artists()]
