"""What every picture of the package shares: the Okabe-Ito colours, the font sizes (drawn
at 80 dpi and shown 1:1, the smallest text is 12.2 px), text wrapping, the run's legend,
and notes placed where they collide with nothing."""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.path import Path

from ..events import Event
from ..outcome import Status
from .quality import BAND, NOTE, band_edges, leader_end, off_lane, ring_keep_out, run_ends, sample

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies; every
# meaning also has its own marker shape, so nothing depends on colour alone.
FORWARD = "#0072B2"  # blue
UNDO = "#009E73"  # bluish green
FAIL = "#D55E00"  # vermillion
RETRY = "#E69F00"  # orange
PIVOT = "#CC79A7"  # reddish purple
REGISTER = "#56B4E9"  # sky blue
HIGHLIGHT = "#F0E442"  # yellow: a value that changed
CURRENT = "#D3E9F7"  # pale blue: the event the frame shows (a log row)
INK = "#222222"
FAINT = "#BBBBBB"
BRANCH = "#ECE6F5"  # pale lavender: the lanes of one branch of a parallel group
BRANCH_EDGE = "#8E7CC3"

NONE = object()  # a key the state does not have
_ON_PATH = frozenset({"step_start", "step_done", "step_failed", "undo", "undo_done", "undo_failed"})
_DEAD = ("s", INK, "dead letter")
RETRY_MARK = "P"  # a filled plus: "tried again", in the lanes and in the legend
_HALTED = ("D", PIVOT)  # a diamond: "halted", a person goes on from here
_UNDO_FAILED = {
    "retry": (RETRY_MARK, RETRY, "retry"),
    "halt": (*_HALTED, "halt: for a person"),
}
_CHAR = 12 * 0.602 / 72  # inches: a DejaVu Sans Mono character in the state table
FONT = 13  # lane labels: 14.4 px at 80 dpi
SMALL = 11  # the smallest text anywhere: 12.2 px, drawn at the size it is shown
DPI = 80
TABLE_FONT = "DejaVu Sans Mono"  # ships with matplotlib: every character is as wide
SHADE = 0.1  # the rollback's background, in the lanes and in the legend
MAX_LINES = 4  # a state value wraps onto at most this many lines
PANEL_WIDTH = 7.0  # inches: the panel's picture, 560 px beside the state and the result
PICTURE_WIDTH = 11.5  # inches: a static picture, 920 px, shown 1:1 in a notebook


# A step's kind, in the one word a learner reads beside its name: in the lanes' labels and
# over the panel's controls alike (a compensable step says nothing).
KIND_WORDS = {"pivot": "irreversible", "retriable": "retried"}


def kind_word(kind: object) -> str:
    """``kind``'s word (``KIND_WORDS``), or "" for a compensable step."""
    return KIND_WORDS.get(str(kind), "")


def lane_label(step: str, labels: Mapping[str, str], kinds: Mapping[str, str]) -> str:
    """A lane's label: the step, its kind's word, and its own label under it."""
    word = kind_word(kinds.get(step))
    tag = f" ({word})" if word else ""
    return f"{step}{tag}\n{labels[step]}" if labels.get(step) else f"{step}{tag}"


def wrap(text: str, chars: int) -> list[str]:
    """``text`` on lines of at most ``chars`` characters, broken after a space or a comma
    where it can be (a word longer than a line is split)."""
    lines = textwrap.wrap(
        text.replace(", ", ",\0"), max(chars, 1), break_on_hyphens=False, drop_whitespace=False
    )
    out = [line.replace("\0", " ").rstrip() for line in lines]
    return [line for line in out if line] or [""]


def value_text(value: Any) -> str:
    return "-" if value is NONE else repr(value)


def caption(event: Event) -> str:
    step = f" {event.step}" if event.step else ""
    extra = ""
    if event.kind == "undo_failed":
        extra = f" (then {event.details.get('then')})"
    elif event.kind in ("undo", "undo_done") and event.details.get("attempt", 1) > 1:
        extra = f" (attempt {event.details['attempt']})"
    elif event.kind == "rollback_done":
        extra = f": {event.details.get('status')}"
    elif a_cancel(event):  # the engine's event for a cancel (lesson 12's Stop): read as one
        extra = " (a cancel, not a failure)"  # (newuser11)
    return f"{event.kind}{step}{extra}"


def a_cancel(event: Event) -> bool:
    """Whether ``event`` is the engine's "pipeline_failed" (or a phase's event) for a
    cancel: its error is ``Cancelled(...)``, a Stop in the panel, never a failure."""
    return str(event.details.get("error", "")).startswith("Cancelled(")


def frame_caption(event: Event, index: int, total: int, status: object = None) -> str:
    """ "event 9 of 15: undo reserve_room"; on the last event (``status`` given) how the run
    ended too, said once: "rollback_done: rolled_back", "halted send_email", never
    "rolled_back → rolled_back"."""
    said = caption(event)
    said_already = str(status) in said.replace(":", " ").split()
    if status is not None and index == total - 1 and not said_already:
        said += f"; the run ends {status}"
    return f"event {index + 1} of {total}: {said}"


# How each way a run can end shows in its picture: the legend entries (or a note's words)
# of which its last frame holds at least one (tests/test_widgets_playback.py draws every
# status, in the panel and in a lesson's picture)
ENDING_MARKS: dict[Status, frozenset[str]] = {
    Status.COMMITTED: frozenset({"step done"}),  # every step's bar, and no failure
    Status.ROLLED_BACK: frozenset({"rollback"}),  # the shade, from where the undos start
    Status.ROLLBACK_INCOMPLETE: frozenset({"dead letter", "still done"}),  # (the note says it)
    Status.HALTED: frozenset({"halted"}),  # a diamond: where a person takes over
    Status.CANCELLED: frozenset({"Stop pressed", "rollback"}),
}


STOP_STYLE: dict[str, Any] = {"color": FAIL, "lw": 2.5, "ls": (0, (1, 1.5))}  # Stop: dotted
STOP_LABEL = "Stop pressed"


def legend_entries(
    *, table: bool, log: bool = False, parallel: bool = False, stop: bool = False
) -> list[tuple[str, Any]]:
    """(label, handle) for every colour and mark the picture can hold."""

    def mark(marker: str, face: str, edge: str, size: float = 11) -> Line2D:
        return Line2D([], [], ls="", marker=marker, mfc=face, mec=edge, mew=2, ms=size)

    entries: list[tuple[str, Any]] = [
        ("step done", mark(">", FORWARD, FORWARD)),
        ("undo logged", mark("o", "white", REGISTER)),
        ("failed", mark("X", FAIL, FAIL)),
        # its bar, whose head the cross covers (lesson 06 opens on one: newuser15)
        (
            "failed after effect",
            Line2D(
                [],
                [],
                color=FORWARD,
                lw=7,
                marker="X",
                mfc=FAIL,
                mec=FAIL,
                ms=11,
                solid_capstyle="butt",
            ),
        ),
        ("retry", mark(RETRY_MARK, RETRY, RETRY)),
        ("undone", mark("<", UNDO, UNDO)),
        ("dead letter", mark("s", INK, INK)),
        ("halted", mark(*_HALTED, PIVOT)),
        ("this event", mark("o", "none", INK, 15)),
        ("run's path", Line2D([], [], color=INK, lw=1.2, alpha=0.6)),
        ("run ends", Line2D([], [], color=INK, lw=2, ls="--")),
        ("rollback", Patch(color=UNDO, alpha=SHADE, lw=0)),
    ]
    if table:
        entries.append(("value changed", Patch(color=HIGHLIGHT, lw=0)))
    if log:
        entries.append(("this event, in the log", Patch(color=CURRENT, lw=0)))
    if parallel:
        entries.append(("a parallel branch", Patch(fc=BRANCH, ec=BRANCH_EDGE, lw=1)))
    if stop:
        entries.append((STOP_LABEL, Line2D([], [], **STOP_STYLE)))
    return entries


def place_notes(
    canvas: Any,
    ax: Any,
    notes: list[tuple[Any, float, float, str]],
    fixed: list[Any],
    path: tuple[list[float], list[float]] = ([], []),
    far: bool = False,
    marks: Sequence[Any] = (),
    rings: Sequence[tuple[float, float, float]] = (),
) -> int:
    """Move each note to the first spot near its marker where it overlaps no other text
    and neither the run's ``path`` (data coordinates) nor a branch band's edge runs through
    it; returns how many found no such spot.

    Tried in order: above, below, then beside (left or right) above and below, then half
    way to the next lane (``far``: then above each higher lane). The ``fixed`` texts (the
    rollback label) never move. Lanes on bands (a graph's branches): a note above or below
    its marker crosses the band's edge, so next it goes beside the marker on its own lane,
    clear of the run's ``marks`` (its bars and markers: Line2D), before any spot further off.
    ``rings``: where the "this event" ring may be drawn (x, y in data) and its least reach
    there (pixels): a note's box (``quality.ring_keep_out``, as quality.crossings) keeps
    that far from each, from the note's own event on (lessons 04 and 11: the ring covered "effect
    happened", newuser17). A note of a lane (``quality.note_gid``) placed off it gets a line
    to its marker (``TimelineRun._leaders``): a spot whose line crosses no text placed is
    taken first, then any (newuser20: lesson 02's "dead letter" sat on another lane).
    """
    import numpy as np

    renderer = canvas.get_renderer()
    inside = ax.get_window_extent(renderer).padded(-2)
    placed = [t.get_window_extent(renderer).padded(2) for t in fixed]
    points = np.empty((0, 2))
    if len(path[0]) > 1:  # the path, a point every 2 px
        corners = ax.transData.transform(np.column_stack(path))
        pieces = [
            a + (b - a) * np.linspace(0, 1, max(int(np.hypot(*(b - a)) / 2), 1) + 1)[:, None]
            for a, b in itertools.pairwise(corners)
        ]
        points = np.concatenate(pieces)
    edges = [sample(edge) for edge in band_edges(ax)]  # a band's edge crosses no note either
    # nor the run's end line (on the note's own box, shrunk by 1 px, as quality.crossings)
    ends = [sample(end) for end in run_ends(ax)]
    ends_at = np.concatenate(ends) if ends else np.empty((0, 2))
    points = np.concatenate([points, *edges]) if edges else points
    if edges:  # the marks and bars a note beside its marker must leave clear
        placed += [m.get_window_extent(renderer).padded(4) for m in marks]
    at = [(*ax.transData.transform((x, y)), reach, x) for x, y, reach in rings]
    ring_all = np.array(at).reshape(-1, 4)
    unplaced = 0
    for artist, x, y, ha in notes:
        ring_at = ring_all[ring_all[:, 3] > x - 0.5]  # the rings drawn while it is shown
        spots = [(x, y - 0.3, ha), (x, y + 0.45, ha)]
        # on its lane, in its band: just above its line, just below it, or across it; the
        # text itself (19 px of the band's 38, the text 15) clear of the path and the edges
        beside = [(d, a) for d in (0.45, 1.0, 1.5, 2.2, 3.0, 4.5, 6.0) for a in ("left", "right")]
        spots += [
            (x + d if a == "left" else x - d, y + dy, a)
            for dy in ((-0.08, 0.33, 0.12) if edges else ())
            for d, a in beside
        ]
        tight = len(spots)  # the spots before it are checked with a 2 px margin
        for shift in (0.35, 1.0, 1.5, 2.2, 3.0, 4.0):  # then beside it, further away
            for dy in (-0.3, 0.45):
                spots += [(x - shift, y + dy, "right"), (x + shift, y + dy, "left")]
        for dy in (-0.62, 0.75, -0.9, 1.0):  # last: half way to the next lane, or further
            spots += [(x, y + dy, ha), (x - 0.35, y + dy, "right"), (x + 0.35, y + dy, "left")]
        for shift in (1.0, 2.0, 3.0, 4.5, 6.0):  # a crowded graph: further along, between lanes
            for dy in (-0.62, 0.75):
                spots += [(x - shift, y + dy, "right"), (x + shift, y + dy, "left")]
        top = min(ax.get_ylim())
        for up in itertools.count(1):  # far: last of all, above a higher lane, at its time
            if not far or y - 0.3 - up < top:
                break
            spots += [(x, y - 0.3 - up, ha), (x - 0.35, y - 0.3 - up, "right")]
        chosen = None
        # a spot off its lane: its leader through no text, then (none) through any
        tries = [(n, spot, strict) for strict in (True, False) for n, spot in enumerate(spots)]
        for n, (sx, sy, sha), strict in tries:
            if chosen is not None:
                break
            artist.set_position((sx, sy))
            artist.set_horizontalalignment(sha)
            box = artist.get_window_extent(renderer).padded(2)
            fits = inside.x0 <= box.x0 and box.x1 <= inside.x1
            fits = fits and inside.y0 <= box.y0 and box.y1 <= inside.y1 + 4
            on = box.padded(-2) if 1 < n < tight else box
            crossed = bool(
                len(points)
                and (
                    (points[:, 0] > on.x0) & (points[:, 0] < on.x1)
                    & (points[:, 1] > on.y0) & (points[:, 1] < on.y1)
                ).any()
            )  # fmt: skip
            own = box.padded(-3)
            crossed = crossed or bool(
                len(ends_at)
                and (
                    (ends_at[:, 0] > own.x0) & (ends_at[:, 0] < own.x1)
                    & (ends_at[:, 1] > own.y0) & (ends_at[:, 1] < own.y1)
                ).any()
            )  # fmt: skip
            if len(ring_at):  # (as quality.crossings measures it)
                near = ring_keep_out(artist, renderer)
                dx = np.maximum(np.maximum(near.x0 - ring_at[:, 0], ring_at[:, 0] - near.x1), 0)
                dy = np.maximum(np.maximum(near.y0 - ring_at[:, 1], ring_at[:, 1] - near.y1), 0)
                crossed = crossed or bool((np.hypot(dx, dy) < ring_at[:, 2]).any())
            leader = np.empty((0, 2))
            if str(artist.get_gid()).startswith(NOTE) and off_lane(ax, artist, y, renderer):
                # off its lane: a line leads to its marker (timeline_run), through no text
                end = ax.transData.transform(leader_end(ax, artist, x, renderer))
                mark = ax.transData.transform((x, y))
                steps = max(int(np.hypot(*(end - mark)) / 2), 1) + 1
                leader = mark + (end - mark) * np.linspace(0, 1, steps)[:, None]
                leader = leader[np.hypot(*(leader - mark).T) > 10]  # (its marker's own box)
                crossed = crossed or (strict and any(
                    ((leader[:, 0] > o.x0) & (leader[:, 0] < o.x1)
                     & (leader[:, 1] > o.y0) & (leader[:, 1] < o.y1)).any()
                    for o in placed
                ))  # fmt: skip
            if fits and not crossed and not any(box.overlaps(other) for other in placed):
                chosen = box
                points = np.concatenate([points, leader])  # later notes keep off it too
        if chosen is None:  # nowhere free: keep the first spot (the tests catch it)
            artist.set_position((x, y - 0.3))
            artist.set_horizontalalignment(ha)
            chosen = artist.get_window_extent(renderer).padded(2)
            unplaced += 1
        placed.append(chosen)
    return unplaced


def table_chars(width: float, keys: Sequence[str], value_chars: int = 20) -> tuple[int, int, int]:
    """How many characters fit on a line of each column (key, before, now): as many as
    the longest value needs (``value_chars``), within 38% of the picture's width."""
    key = min(max((len(str(k)) for k in keys), default=5), 14)
    key = max(key, 6)  # the heading "state" fits above it
    room = int((0.38 * width - 0.4) / _CHAR) - key
    value = max(min(value_chars, room // 2), 6)
    return (key, value, value)


def lines_for(values: Iterable[str], chars: int) -> int:
    return max((len(wrap(v, chars)) for v in values), default=1)


def _band(branch: Any, lane: Mapping[str, int]) -> tuple[float, float] | None:
    """Where a branch's band spans, in lanes (as ``draw_branches`` draws its outermost)."""
    lanes = [lane[s] for s in branch if s in lane]
    return (min(lanes) - 0.42, max(lanes) + 0.42) if lanes else None


def draw_branches(ax: Any, groups: Any, lane: Mapping[str, int]) -> None:
    """Each branch of a parallel group: its lanes side by side on one pale band, a gap
    between branches (a nested group's band sits inside its branch's, narrower)."""
    for group in groups:
        for branch in group:
            lanes = [lane[s] for s in branch if s in lane]
            if not lanes:
                continue
            depth = sum(
                1 for other in groups for b in other
                if set(branch) < set(b)
            )  # fmt: skip
            inset = 0.015 * depth
            band = Rectangle(
                (inset, min(lanes) - 0.42 + 0.05 * depth), 1 - 2 * inset,
                max(lanes) - min(lanes) + 0.84 - 0.1 * depth, fc=BRANCH, ec=BRANCH_EDGE,
                lw=1, zorder=0, transform=ax.get_yaxis_transform(), gid=BAND,
            )  # fmt: skip
            ax.add_patch(band)


def rollback_shade(
    timeline: Any, start: int, events: int, top: float, ends: Sequence[float] = ()
) -> tuple[Any, Any]:
    """The rollback's shade, from event ``start`` to the end of the lanes, and its label at
    the top (kept inside the lanes: a late rollback's goes left of the end). The shade
    leaves out the bands of parallel branches: over their lavender it made a grey-blue no
    legend names (newuser7); a band keeps its own colour, the rollback shades the rest.
    ``ends``: where the run's end line is (its label never sits on it)."""
    canvas, ax = timeline.canvas, timeline.ax
    span = Rectangle(
        (start - 0.5, 0), events + 1.5 - start, 1,
        color=UNDO, alpha=SHADE, lw=0, transform=ax.get_xaxis_transform(),
    )  # fmt: skip
    bands = [_band(branch, timeline.lane) for group in timeline.groups for branch in group]
    outer = [b for b in bands if b and not any(o and o != b and o[0] <= b[0] and b[1] <= o[1]
                                                for o in bands)]  # fmt: skip
    if outer:  # the lanes' area, with a hole (drawn the other way round) for each band
        (x0, x1), (y1, y0) = ax.get_xlim(), ax.get_ylim()
        rings = [[(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]]
        rings += [[(x0, a), (x0, b), (x1, b), (x1, a), (x0, a)] for a, b in outer]
        codes = [Path.MOVETO, *[Path.LINETO] * 3, Path.CLOSEPOLY] * len(rings)
        span.set_clip_path(Path([v for r in rings for v in r], codes), ax.transData)
    else:
        span.set_clip_path(timeline._clip)
    ax.add_artist(span)
    label = ax.text(start, top + 0.05, " rollback ←", color=UNDO, fontsize=FONT, va="top")
    renderer = canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    lines = [ax.transData.transform((x, 0))[0] for x in ends]  # the run's end line (pixels)
    # after the rollback's start; else just before the run's end line; else at the lanes' end
    for x, ha in ((start, "left"), *((x - 0.15, "right") for x in ends), (events + 0.9, "right")):
        label.set_horizontalalignment(ha)
        label.set_position((x, top + 0.05))
        box = label.get_window_extent(renderer).padded(-1)
        if (
            inside.x0 <= box.x0
            and box.x1 <= inside.x1
            and not any(box.x0 < line < box.x1 for line in lines)
        ):
            break
    return span, label
