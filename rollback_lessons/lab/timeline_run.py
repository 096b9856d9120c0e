"""The artists of one run in a ``Timeline`` (timeline.py): its steps' and undos' bars,
marks and notes, made once per run and shown frame by frame; and the key a run's frames
are kept under, so that a run drawn before is not drawn again."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.lines import Line2D

from ..outcome import Outcome
from .drawing import (
    _DEAD,
    _HALTED,
    _ON_PATH,
    _UNDO_FAILED,
    FAIL,
    FORWARD,
    INK,
    NONE,
    PIVOT,
    REGISTER,
    RETRY,
    RETRY_MARK,
    SMALL,
    STOP_STYLE,
    UNDO,
    place_notes,
    rollback_shade,
)
from .quality import RING_SPARE_PX, RUN_END, leader_end, leader_gid, note_gid, off_lane

# the marks' sizes (points) where an event is EVENT_PX wide or more, scaled down below it:
# marks of events side by side never overlap (lesson 06: a cross covered the "undo logged"
# circle beside it, newuser15; quality.crowded_marks)
HEAD_MS, CROSS_MS, DOT_MS, EVENT_PX = 13.0, 13.0, 10.0, 16.5
RING_EW = 2.5  # the "this event" ring's line width (points)
MARK = "mark"  # the gid of a run's single-point marks (a bar's head, a cross, a ring, ...)
TOP = -0.8  # the lanes' top edge, above the first lane: the rollback's label clears its ring


@dataclass
class _Glyph:
    """An artist that appears at event ``seq`` and stays."""

    seq: int
    artist: Any


def run_key(outcome: Outcome, stopped_after: int | None) -> Hashable:
    """What a run's picture is drawn from, and nothing else (a panel's picture has no
    state table): its events, how it ended, what stayed done, and where Stop landed."""
    events = tuple((e.seq, e.kind, e.step, repr(e.details)) for e in outcome.events)
    return (stopped_after, str(outcome.status), tuple(outcome.leaked), events)


class Frames:
    """The PNG frames of the last ``runs`` runs drawn, by ``run_key``: a change back to a
    run shown before (a fault clicked on, then off) draws nothing; its frames are kept
    (and those drawn ahead: ``ahead``, some 20-40 runs a panel, a frame or two each)."""

    def __init__(self, runs: int = 64) -> None:
        self.runs = runs
        self._by: OrderedDict[Hashable, dict[int, bytes]] = OrderedDict()

    def of(self, key: Hashable | None) -> dict[int, bytes]:
        """The frames kept for ``key`` (a new, empty dict for a run not kept: ``None``)."""
        if key is None or self.runs <= 0:
            return {}
        frames = self._by.pop(key, {})
        self._by[key] = frames
        while len(self._by) > self.runs:
            self._by.popitem(last=False)
        return frames

    def peek(self, key: Hashable) -> dict[int, bytes]:
        """The frames kept for ``key``, as they are (none made, none moved)."""
        return self._by.get(key, {})


class RunArtists:
    """Mixed into ``Timeline``: it sets ``canvas``, ``fig``, ``ax``, ``tax``, ``lane``,
    ``state_keys``, ``_clip``, ``_cells``, ``_background`` and ``log_rows``."""

    canvas: Any
    fig: Any
    ax: Any
    tax: Any
    lane: dict[str, int]
    state_keys: tuple[str, ...]
    log_rows: int
    _clip: Any
    _cells: list[tuple[Any, Any, Any]]
    _background: Any
    _glyphs: list[_Glyph]
    _scale: float = 1.0

    def _cell_text(self, key: str, value: Any, column: int) -> str:  # pragma: no cover
        raise NotImplementedError

    def _event_px(self) -> float:
        """How wide one event is, in pixels, at the axes' limits."""
        (x0, _), (x1, _) = self.ax.transData.transform([(0, 0), (1, 0)])
        return float(abs(x1 - x0))

    def _keep(self, seq: int, artist: Any) -> None:
        self._glyphs.append(_Glyph(seq, artist))

    def _line(self, xs: list[float], ys: list[float], **style: Any) -> Line2D:
        """A line added without ``plot``'s bookkeeping (the limits are set by hand): a
        panel loads a run per click, and this is most of that work."""
        line = Line2D(xs, ys, **style)
        line.set_clip_path(self._clip)  # made once: add_artist would make one per artist
        self.ax.add_artist(line)
        return line

    def _bar(self, seq: int, start: int, y: int, colour: str, head: str) -> None:
        """A step or an undo, from its start to its end; the head points its way."""
        bar = self._line([start, seq], [y, y], color=colour, lw=7, solid_capstyle="butt")
        tip = self._line([seq], [y], marker=head, color=colour, ms=HEAD_MS * self._scale, ls="",
                         gid=MARK)  # fmt: skip
        for line in (bar, tip):
            self._keep(seq, line)
            self._marks.append(line)
        # a mark of the step's own events on the way (its undo logged before it ran) drawn
        # again over the bar, which hid it (lesson 06, newuser14; quality.hidden_marks)
        for mark in [m for m in self._marks if m.get_gid() == MARK]:
            x, on = (float(np.asarray(d, float)[0]) for d in mark.get_data())
            if on == y and start < x < seq:
                again = self._line([x], [on], ls="", gid=MARK)
                again.update_from(mark)
                self._keep(seq, again)
                self._marks.append(again)

    def _mark(self, seq: int, y: int, marker: str, colour: str, face: str | None = None) -> None:
        size = (CROSS_MS if marker in ("X", RETRY_MARK) else DOT_MS) * self._scale
        edge, width = (colour, 2.5) if face else ("white", 1)
        line = self._line(
            [seq], [y], marker=marker, ls="", mfc=face or colour, mec=edge, mew=width, ms=size,
            gid=MARK,
        )  # fmt: skip
        self._keep(seq, line)
        self._marks.append(line)

    def _note(
        self, seq: int, x: float, y: float, text: str, colour: str, ha: str = "center"
    ) -> None:
        artist = self.ax.text(x, y - 0.3, text, color=colour, fontsize=SMALL, ha=ha)
        artist.set_gid(note_gid(x, y))  # (its lane: quality.notes_off_lane reads it)
        self._notes.append((artist, x, y, ha))
        self._note_seq[id(artist)] = seq
        self._keep(seq, artist)

    def _leaders(self) -> None:
        """A note placed off its own step's lane (a crowded lane: half way to the next one,
        or above a higher one) gets a thin line to its marker: lesson 02's "dead letter" for
        make_folder sat on write_file's lane, beside write_file's "still done" (newuser20)."""
        renderer = self.canvas.get_renderer()
        for artist, x, y, _ in self._notes:
            if not off_lane(self.ax, artist, y, renderer):
                continue
            end = leader_end(self.ax, artist, x, renderer)
            leader = self._line(
                [x, end[0]], [y, end[1]], color=artist.get_color(), lw=0.8,
                gid=leader_gid(x, y), zorder=1,
            )  # fmt: skip
            self._keep(self._note_seq[id(artist)], leader)

    def _ring_room(self, events: Sequence[Any]) -> list[tuple[float, float, float]]:
        """Where the "this event" ring is drawn (each event on a lane) and the least it
        reaches there (pixels): round the event's own marks, 1 px off, and
        ``RING_SPARE_PX`` more (as Timeline._ring_ms sizes it: clear of a text's
        ``quality.ring_keep_out``). No note may sit there (place_notes' ``rings``)."""
        px = self.fig.dpi / 72
        own: dict[tuple[float, float], float] = {}
        for m in self._marks:
            if m.get_gid() == MARK:
                x, on = (float(np.asarray(d, float)[0]) for d in m.get_data())
                at = (x, on)
                reach = (m.get_markersize() + m.get_markeredgewidth()) * px / 2
                own[at] = max(own.get(at, 0.0), reach)
        return [
            (e.seq, y, own.get((e.seq, y), 0.0) + 1 + RING_EW * px + RING_SPARE_PX)
            for e in events
            if (y := self.lane.get(e.step) if e.step is not None else None) is not None
        ]

    def _build_run(self, outcome: Outcome, stopped_after: int | None) -> None:
        """Make the artists for one run; they show up frame by frame. ``stopped_after``:
        the panel's Stop was pressed once that many events had happened (a dotted line
        there, from the frame after it)."""
        for glyph in self._glyphs:
            glyph.artist.remove()
        self._glyphs = []
        self._notes: list[tuple[Any, float, float, str]] = []
        self._note_seq: dict[int, int] = {}  # each note's event (its leader shows with it)
        self._marks: list[Line2D] = []  # the run's bars and markers: no note on them
        fixed: list[Any] = []
        events = outcome.events
        self.ax.set_xlim(0, max(len(events), 1) + 1)
        self._scale = min(1.0, max(0.6, self._event_px() / EVENT_PX))
        started: dict[str, int] = {}
        # shaded from where the undos start: a halt after the pivot has no rollback to show
        failed_at = next((e.seq for e in events if e.kind == "rollback_start"), None)
        ends = [e.seq for e in events if e.kind in ("committed", "rollback_done", "halted")]
        if failed_at is not None:  # (its label clear of the run's end line)
            span, label = rollback_shade(self, failed_at, len(events), TOP, ends[-1:])
            self._keep(failed_at, span)
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
                end = Line2D([s, s], [0, 1], color=INK, lw=2, ls="--", gid=RUN_END,
                             transform=self.ax.get_xaxis_transform())  # fmt: skip
                end.set_clip_path(self._clip)
                self.ax.add_artist(end)
                self._keep(s, end)
                if k == "halted" and y is not None:  # a step past the point of no return
                    self._mark(s, y, *_HALTED)  # failed: its lane says "halted" (the legend's)
                    self._note(s, s, y, "left for a person ", PIVOT, "right")
                if k == "rollback_done":
                    for name in outcome.leaked:
                        self._note(s, s - 0.3, self.lane[name], "still done ", FAIL, "right")
        if stopped_after is not None and 0 < stopped_after < len(events):
            x = (events[stopped_after - 1].seq + events[stopped_after].seq) / 2
            stop = Line2D([x, x], [0, 1], transform=self.ax.get_xaxis_transform(),
                          gid="stop", **STOP_STYLE)  # fmt: skip
            stop.set_clip_path(self._clip)
            self.ax.add_artist(stop)
            self._keep(events[stopped_after].seq, stop)
        self._path_xy = (path_x, path_y)
        ring = self._ring_room(events)
        unplaced = place_notes(
            self.canvas, self.ax, self._notes, fixed, self._path_xy, marks=self._marks, rings=ring
        )
        if unplaced and fixed:
            # a note found no free spot: the rollback's label goes to the shade's other end
            # (the top corner the notes did not need), and the notes are placed again
            [label] = fixed
            if label.get_horizontalalignment() == "right":
                label.set_horizontalalignment("left")
                label.set_position((failed_at, TOP + 0.05))
            else:  # (just before the run's end line, or the lanes' end)
                label.set_horizontalalignment("right")
                label.set_position(((ends[-1] - 0.15) if ends else len(events) + 0.9, TOP + 0.05))
            unplaced = place_notes(
                self.canvas,
                self.ax,
                self._notes,
                fixed,
                self._path_xy,
                marks=self._marks,
                rings=ring,
            )
        if unplaced:  # still none: a note may go above a higher lane, at its own time
            place_notes(
                self.canvas,
                self.ax,
                self._notes,
                fixed,
                self._path_xy,
                far=True,
                marks=self._marks,
                rings=ring,
            )
        self._leaders()
        for glyph in self._glyphs:
            glyph.artist.set_animated(True)
        # This run's background: the static figure plus the state before, in both columns;
        # a frame then only draws the glyphs so far and the values that changed.
        before = outcome.state_before or {}
        self.canvas.restore_region(self._background)
        for (b, a, _), key in zip(self._cells, self.state_keys, strict=True):
            b.set_text(self._cell_text(key, before.get(key, NONE), 1))
            a.set_text(self._cell_text(key, before.get(key, NONE), 2))
            self.tax.draw_artist(b)
            self.tax.draw_artist(a)
        self._run_background = self.canvas.copy_from_bbox(self.fig.bbox)
        self._layer, self._layer_seq = self._run_background, 0
        # what the layer shows in each "now" cell: the value before, not highlighted
        self._initial = [(b.get_text(), False) for b, _, _ in self._cells]
        self._drawn = list(self._initial)
