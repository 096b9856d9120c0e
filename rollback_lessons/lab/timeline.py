"""``Timeline``: one reusable figure that draws a run, lane by lane, frame by frame.

A new frame only changes what is visible and blits it onto a cached background, so
stepping through frames stays fast; notes are placed where they collide with no other
text. Drawn at the size it is shown (80 dpi, 1:1 on screen), its smallest text is 12 px.
A static picture can carry the state table (values wrapped, never cut short) and the
event log; the panel shows both as HTML beside the picture instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import TransformedPatchPath

from ..outcome import Outcome, Status
from .drawing import (  # noqa: F401 (the colours and sizes, for the modules that import them here)
    _CHAR,
    _DEAD,
    _HALTED,
    _ON_PATH,
    _UNDO_FAILED,
    BRANCH,
    BRANCH_EDGE,
    CURRENT,
    DPI,
    FAIL,
    FAINT,
    FONT,
    FORWARD,
    HIGHLIGHT,
    INK,
    MAX_LINES,
    NONE,
    PANEL_WIDTH,
    PICTURE_WIDTH,
    PIVOT,
    REGISTER,
    RETRY,
    RETRY_MARK,
    SHADE,
    SMALL,
    STOP_STYLE,
    TABLE_FONT,
    UNDO,
    draw_branches,
    frame_caption,
    kind_word,
    lane_label,
    legend_entries,
    lines_for,
    place_notes,
    rollback_shade,
    table_chars,
    value_text,
    wrap,
)
from .parts import TableAndLog
from .png import encode_png
from .quality import RING_SPARE_PX, min_text_px, ring_keep_out
from .timeline_run import MARK, RING_EW, TOP, Frames, RunArtists, _Glyph, run_key

RING_MS = 26.0  # "this event": the ring's size where the events beside it leave room


class Timeline(TableAndLog, RunArtists):
    """One reusable figure for a saga's steps; ``load`` a run, then ``render`` its frames.

    ``table`` draws the state (before and now) beside the lanes, each value on up to
    ``table_lines`` lines; ``log_rows`` lists the events under the lanes (a static picture);
    ``title`` says which event the frame shows (the panel says it in HTML instead)."""

    def __init__(
        self,
        steps: Sequence[str],
        *,
        kinds: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        state_keys: Sequence[str] = (),
        width: float = PICTURE_WIDTH,
        table: bool = True,
        table_lines: int = 1,
        value_chars: int = 20,
        log_rows: int = 0,
        title: bool = True,
        groups: Sequence[Sequence[Sequence[str]]] = (),
        stop: bool = False,
    ) -> None:
        self.steps = tuple(steps)
        self.groups = tuple(tuple(tuple(b) for b in g) for g in groups)
        self.kinds = dict(kinds or {})
        self.labels = dict(labels or {})
        self.state_keys = tuple(state_keys) if table else ()
        self.table = table and bool(self.state_keys)
        self.table_lines = max(1, min(table_lines, MAX_LINES))
        self.log_rows = log_rows
        self.lane = {name: i for i, name in enumerate(self.steps)}
        n = len(self.steps)
        self.chars = (
            self.table_chars(width, self.state_keys, value_chars) if self.table else (0, 0, 0)
        )
        entries = legend_entries(
            table=self.table, log=bool(log_rows), parallel=bool(groups), stop=stop
        )
        self.legend_columns = 6 if width >= 10 else 4 if width >= 6.5 else 3  # (none cut)
        legend_rows = math.ceil(len(entries) / self.legend_columns)
        lanes = 0.56 * n + 0.15  # and room above the first lane for the rollback's label
        row_h = 0.21 * self.table_lines + 0.08
        table_h = (0.3 + len(self.state_keys) * row_h) if self.table else 0
        self.area = max(lanes, table_h)
        self.log_h = 0.2 * log_rows + (0.3 if log_rows else 0)
        self.show_title = title  # the panel says the event in HTML instead (text is slow)
        self.top, self.bottom = (0.5 if title else 0.18), 0.38 + 0.27 * legend_rows
        height = self.top + self.area + self.log_h + self.bottom
        self.fig = Figure(figsize=(width, height), dpi=DPI)
        self.canvas = FigureCanvasAgg(self.fig)
        self.cut: list[str] = []  # what did not fit its cell (the picture's report says so)
        self._build_static(n, height, entries)
        self._static_cut = list(self.cut)
        self._glyphs: list[_Glyph] = []
        self._outcome: Outcome | None = None
        self._built: Outcome | None = None  # the run whose artists are made
        self._stopped_after: int | None = None
        self.frames = Frames()  # the frames of the runs drawn last (a panel's: no table)
        self._cache: dict[int, bytes] = {}

    table_chars = staticmethod(table_chars)
    lines_for = staticmethod(lines_for)

    # -- the parts that never change for these steps ---------------------------------

    def _build_static(self, n: int, height: float, entries: list[tuple[str, Any]]) -> None:
        inches = self.fig.get_figwidth()
        top = 1 - self.top / height
        bottom = (self.bottom + self.log_h) / height
        table = (sum(self.chars) * _CHAR + 0.4) if self.table else 0.0
        self.ax = self.fig.add_axes((0.3, bottom, 0.1, top - bottom))
        ax = self.ax
        ax.set_ylim(n - 0.5, TOP)
        lanes = [lane_label(s, self.labels, self.kinds) for s in self.steps]
        ax.set_yticks(range(n), lanes, fontsize=FONT)
        for name, tick in zip(self.steps, ax.get_yticklabels(), strict=True):
            tick.set_linespacing(1.0)
            if kind_word(self.kinds.get(name)):  # in ink: its word says it, no colour to explain
                tick.set_fontweight("bold")
        renderer = self.canvas.get_renderer()
        widest = max(
            (t.get_window_extent(renderer).width for t in ax.get_yticklabels()), default=0.0
        )
        left = (widest + 14) / (inches * DPI)
        right = 1 - (table + 0.25) / inches
        ax.set_position((left, bottom, max(right - left, 0.1), top - bottom))
        ax.set_xticks([])
        ax.set_xlabel("time  →", fontsize=SMALL + 1, loc="right", labelpad=2)
        for i in range(n):
            ax.axhline(i, color=FAINT, lw=1, zorder=0)
        draw_branches(ax, self.groups, self.lane)
        for spine in ("top", "right"):
            ax.spines[spine].set_visible(False)
        self._cells: list[tuple[Any, Any, Any]] = []
        if self.table:
            self._build_table(inches, table, top, bottom)
        self._log_texts: list[tuple[Any, Any]] = []
        if self.log_rows:
            self._build_log(inches, height)
        self.fig.legend(
            handles=[h for _, h in entries], labels=[label for label, _ in entries],
            loc="lower left", ncol=self.legend_columns, fontsize=SMALL + 1, frameon=False,
            bbox_to_anchor=(0.0, 0.0), columnspacing=1.0, handletextpad=0.4,
            handlelength=1.6, borderaxespad=0.3,
        )  # fmt: skip
        self.title = self.fig.text(
            0.012,
            1 - 0.25 / height,
            "",
            fontsize=FONT + 1,
            va="center",
            weight="bold",
            visible=self.show_title,
        )
        self._clip = TransformedPatchPath(ax.patch)
        (self._path,) = ax.plot([], [], color=INK, lw=1.2, alpha=0.6, zorder=1, gid="connector")
        # "this event": a ring under the marks (a failed cross beside it stays whole)
        (self._cursor,) = ax.plot(
            [], [], "o", ms=RING_MS, mfc="none", mec=INK, mew=RING_EW, zorder=1.9
        )
        for artist in (self.title, self._path, self._cursor, *self._frame_artists()):
            artist.set_animated(True)  # drawn per frame, kept out of the cached background
        self.canvas.draw()
        self._background = self.canvas.copy_from_bbox(self.fig.bbox)
        renderer, height = self.canvas.get_renderer(), self.fig.bbox.height
        boxes = [mark.get_window_extent(renderer) for _, _, mark in self._cells]
        # the "now" column in pixels, top-left origin (restore_region's); only cells there
        self._now_column = (
            (int(min(b.x0 for b in boxes)) - 2, int(height - max(b.y1 for b in boxes)) - 2,
             int(max(b.x1 for b in boxes)) + 2, int(height - min(b.y0 for b in boxes)) + 2)
            if boxes else (0, 0, 0, 0)
        )  # fmt: skip
        # every frame says its smallest text (a note is SMALL): the browser tests read it
        self._report = {"min_text_px": round(min(min_text_px(self.fig), SMALL * DPI / 72), 2)}

    # -- a run -----------------------------------------------------------------------

    def load(self, outcome: Outcome, stopped_after: int | None = None) -> None:
        """Show one run; its artists show up frame by frame. ``stopped_after``: the panel's
        Stop was pressed once that many events had happened (a dotted line there, from the
        frame after it). A run drawn before is not drawn again: its frames are kept
        (``frames``, by ``run_key``), and its artists are made again only when a frame not
        kept is asked for."""
        self._outcome, self._stopped_after = outcome, stopped_after
        self._cache = self.frames.of(None if self.table else run_key(outcome, stopped_after))
        self.cut = list(self._static_cut)
        events = len(outcome.events)
        if events > self.log_rows > 0:
            self.cut.append(f"the event log shows {self.log_rows} of {events} events")
        if not self._cache:
            self._ensure()

    def _ensure(self) -> None:
        """The artists of the run loaded (a run whose frames were all kept has none yet)."""
        if self._built is not self._outcome and self._outcome is not None:
            self._build_run(self._outcome, self._stopped_after)
            self._built = self._outcome

    def rebuild(self) -> None:
        """The loaded run's artists made again (after ``draw_ahead`` drew other runs)."""
        self._ensure()

    def draw_ahead(self, outcome: Outcome, index: int) -> bool:
        """Frame ``index`` of ``outcome``, a run not shown, drawn into ``frames`` (``ahead``);
        the loaded run stays loaded. False: kept already, nothing drawn."""
        key = run_key(outcome, None)
        if self.table or index in self.frames.peek(key):
            return False
        shown, stopped = self._outcome, self._stopped_after
        self.load(outcome)
        self.render(index)
        if shown is not None:
            self.load(shown, stopped)  # (its frames are kept: nothing drawn)
        return True

    @property
    def frame_count(self) -> int:
        return len(self._outcome.events) if self._outcome is not None else 0

    def _update(self, index: int) -> None:
        """Set every artist to how it looks after event ``index``."""
        outcome = self._outcome
        assert outcome is not None
        self._ensure()
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
        if y is not None:
            self._cursor.set_markersize(self._ring_ms(seq, y))
        status = outcome.status if index == len(outcome.events) - 1 else None
        total = len(outcome.events)
        self.title.set_text(frame_caption(event, index, total, status))
        self.title.set_color(
            FAIL if status not in (None, Status.COMMITTED, Status.ROLLED_BACK) else INK
        )
        before = outcome.state_before or {}
        now = outcome.state_at(index) or {}
        for (b, a, mark), key in zip(self._cells, self.state_keys, strict=True):
            b.set_text(self._cell_text(key, before.get(key, NONE), 1))
            a.set_text(self._cell_text(key, now.get(key, NONE), 2))
            mark.set_visible(now.get(key, NONE) != before.get(key, NONE))
        for row, (text, band) in enumerate(self._log_texts):
            shown = row < len(outcome.events) and row <= index
            text.set_visible(shown)
            band.set_visible(row == index)
            if shown:
                e = outcome.events[row]
                line = f"{e.seq:>3} {e.kind:<16}{e.step or '-':<13}" + " ".join(
                    f"{k}={v}" for k, v in e.details.items()
                )
                if len(line) > self.log_chars:
                    line = line[: self.log_chars - 1] + "…"
                    if f"event {e.seq}" not in self.cut:
                        self.cut.append(f"event {e.seq}")
                text.set_text(line)

    def _blit(self, seq: int) -> None:
        """Draw a frame: glyphs (and the state's cells) build up on a cached layer, so the
        next frame draws only what it changes; text is what costs."""
        if seq < self._layer_seq:
            self._layer, self._layer_seq = self._run_background, 0
            self._drawn = list(self._initial)
        self.canvas.restore_region(self._layer)
        for glyph in self._glyphs:
            if self._layer_seq < glyph.seq <= seq:
                self.ax.draw_artist(glyph.artist)
        want = [(now.get_text(), mark.get_visible()) for _, now, mark in self._cells]
        if want != self._drawn:  # the state changed: clear its column, draw what changed
            # xy: where the region's own origin goes (the whole figure's: 0, 0)
            self.canvas.restore_region(self._run_background, bbox=self._now_column, xy=(0, 0))
            for _, now, mark in self._cells:
                if mark.get_visible():
                    self.tax.draw_artist(mark)
                    self.tax.draw_artist(now)
            self._drawn = want
        self._layer, self._layer_seq = self.canvas.copy_from_bbox(self.fig.bbox), seq
        self.ax.draw_artist(self._path)
        self.ax.draw_artist(self._cursor)
        for mark in self._near_cursor(seq):  # drawn again over the ring: a cross stays whole
            self.ax.draw_artist(mark)
        for text, band in self._log_texts:
            if band.get_visible():
                self.lax.draw_artist(band)
            if text.get_visible():
                self.lax.draw_artist(text)
        if self.show_title:
            self.fig.draw_artist(self.title)

    def _ring_ms(self, seq: int, y: int) -> float:
        """The "this event" ring's size: around its event's own mark, clear of the marks of
        the events beside it where it can be (lesson 06: the failed cross covered half the
        ring of the event after it, newuser15; quality.crowded_marks), and of every text
        shown (quality.crossings)."""
        px = self.fig.dpi / 72
        unit, width = self._event_px(), self._cursor.get_markeredgewidth() * px
        own, room = 0.0, RING_MS * px / 2 + width / 2
        for glyph in self._glyphs:
            mark = glyph.artist
            if glyph.seq > seq or mark.get_gid() != MARK or mark.get_ydata()[0] != y:
                continue
            reach = (mark.get_markersize() + mark.get_markeredgewidth()) * px / 2
            apart = abs(float(mark.get_xdata()[0]) - seq)
            if apart == 0:
                own = max(own, reach)
            elif apart < 3:
                room = min(room, apart * unit - reach - 1.5)
        room = min(room, self._text_room(seq, y))
        outer = max(room, own + 1 + width)  # (its own mark inside it, always)
        return 2 * (outer - width / 2) / px

    def _text_room(self, seq: int, y: int) -> float:
        """How far the ring may reach from its centre before it runs into a text shown at
        this frame (a note: "effect happened" under the lane; lessons 04 and 11, newuser17),
        as ``quality.crossings`` measures it (``ring_keep_out``)."""
        renderer = self.canvas.get_renderer()
        cx, cy = self.ax.transData.transform((seq, y))
        room = math.inf
        for text in self.ax.texts:
            if not (text.get_visible() and text.get_text().strip()):
                continue
            box = ring_keep_out(text, renderer)
            dx = max(box.x0 - cx, 0.0, cx - box.x1)
            dy = max(box.y0 - cy, 0.0, cy - box.y1)
            room = min(room, math.hypot(dx, dy) - RING_SPARE_PX)
        return room

    def _near_cursor(self, seq: int) -> list[Any]:
        """The marks shown on the ring's lane within its reach (one event either side)."""
        xs, ys = self._cursor.get_data()
        if not len(xs):
            return []
        return [
            g.artist for g in self._glyphs
            if g.seq <= seq and g.artist.get_gid() == MARK
            and abs(g.artist.get_xdata()[0] - xs[0]) <= 1.5 and g.artist.get_ydata()[0] == ys[0]
        ]  # fmt: skip

    def render(self, index: int) -> bytes:
        """The PNG of frame ``index`` (cached: stepping back costs nothing)."""
        if index not in self._cache:
            self._update(index)
            self._blit(self._outcome.events[index].seq)  # type: ignore[union-attr]
            self._cache[index] = encode_png(self.canvas.buffer_rgba(), self._report)
        return self._cache[index]

    def show(self, index: int) -> Figure:
        """Leave the figure itself at frame ``index`` (for animations and static pictures)."""
        self._update(index)
        for artist in self._animated():
            artist.set_animated(False)
        self.title.set_visible(self.show_title)
        return self.fig

    def _frame_artists(self) -> list[Any]:
        cells = [artist for cell in self._cells for artist in cell]
        return cells + [artist for pair in self._log_texts for artist in pair]

    def _animated(self) -> list[Any]:
        glyphs = [g.artist for g in self._glyphs]
        return [*glyphs, self.title, self._path, self._cursor, *self._frame_artists()]

    @property
    def min_text_px(self) -> float:
        """The smallest text this picture draws, in pixels at its own size."""
        return float(self._report["min_text_px"])
