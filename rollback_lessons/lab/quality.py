"""What a picture must be to be read from the back row, measured on the figure itself.

A picture reports its smallest text (in pixels at the size it is drawn), texts that collide
or leave the figure, and arrows that cross a label. Pictures carry that report inside
their PNG (``png.encode_png(..., report=...)``), so a lesson's stored outputs can be checked
without redrawing them.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch
from matplotlib.text import Text

MIN_TEXT_PX = 12.0  # the standard: at least 12 px on a 1366x768 screen
SCREEN_WIDTH_PX = 934  # a notebook's output area at 1366x768 with the file browser open


def visible_texts(fig: Figure) -> list[Text]:
    """Every text of ``fig`` that is drawn (tick labels of axes switched off are not)."""
    hidden = {  # tick labels of axes switched off are never drawn
        id(t) for ax in fig.axes if not ax.axison for axis in (ax.xaxis, ax.yaxis)
        for t in axis.findobj(Text)
    }  # fmt: skip
    return [
        t for t in fig.findobj(Text)
        if t.get_visible() and t.get_text().strip() and id(t) not in hidden
        and (t.axes is None or t.axes.get_visible())
    ]  # fmt: skip


def text_px(text: Text, dpi: float) -> float:
    """The text's font size in pixels (its em, as CSS measures ``font-size``)."""
    return float(text.get_fontsize()) * dpi / 72


def min_text_px(fig: Figure) -> float:
    texts = visible_texts(fig)
    return min((text_px(t, fig.dpi) for t in texts), default=float("inf"))


def text_problems(fig: Figure) -> list[str]:
    """Texts of a drawn figure that collide with each other or are cut by its edge."""
    fig.draw_without_rendering()  # where the texts are, without painting a pixel
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    edge = fig.bbox
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in visible_texts(fig)]
    found = [
        f"cut: {text!r}"
        for text, box in boxes
        if box.x0 < edge.x0 or box.x1 > edge.x1 or box.y0 < edge.y0 or box.y1 > edge.y1
    ]
    for (one, a), (two, b) in itertools.combinations(boxes, 2):
        width = min(a.x1, b.x1) - max(a.x0, b.x0)
        height = min(a.y1, b.y1) - max(a.y0, b.y0)
        if width > 1 and height > 1:
            found.append(f"overlap: {one!r} / {two!r}")
    return found


# how far the "this event" ring keeps clear of a text's whole box: its stroke and the
# glyphs are drawn antialiased, each about half a pixel past its edge
RING_GAP_PX = 0.5
RING_SPARE_PX = 0.25  # what the layout leaves on top (rounding: the check never sees it touch)


def ring_keep_out(text: Text, renderer: Any) -> Any:
    """Where the "this event" ring may not reach: a text's whole box and ``RING_GAP_PX``
    round it. One rule: the Timeline sizes its ring by it, place_notes keeps notes off the
    rings' reach by it, and crossings checks it (newuser18: lesson 06's ring touched the
    tops of "effect happened", when both measured against the box shrunk by 1 px)."""
    return text.get_window_extent(renderer).padded(RING_GAP_PX)


def crossings(fig: Figure, *, drawn: bool = False) -> list[str]:
    """Arrows, connecting lines, the edges of parallel branches' bands and the run's end
    line that pass through a label (a text's box, shrunk by 1 px), and the "this event"
    ring that reaches a text (``ring_keep_out``). ``drawn``: the caller has just drawn the
    figure (text_problems did), so it is not drawn a second time (a full draw is most of
    the cost of a picture's report)."""
    if not drawn:
        fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    texts = visible_texts(fig)
    boxes = [(t.get_text(), t.get_window_extent(renderer).padded(-1)) for t in texts]
    kept = [(t.get_text(), ring_keep_out(t, renderer)) for t in texts]
    found = []
    for ax in fig.axes:
        paths = [
            p.get_path().transformed(p.get_transform())
            for p in ax.patches
            if isinstance(p, FancyArrowPatch) and p.get_visible()
        ]
        for line in ax.get_lines():
            if line.get_visible() and _is_connector(line):
                paths.append(line.get_path().transformed(line.get_transform()))
        edges, ends, circles = band_edges(ax), run_ends(ax), rings(ax)
        for path in paths + edges + ends + circles:
            what = (
                "a band's edge" if any(path is e for e in edges)
                else "the run's end line" if any(path is e for e in ends)
                else "the ring" if any(path is c for c in circles) else "an arrow"
            )  # fmt: skip
            ring = any(path is c for c in circles)
            points = path if ring else _sample(path)
            for text, box in kept if ring else boxes:
                if box.width <= 0 or box.height <= 0:
                    continue
                inside = (
                    (points[:, 0] > box.x0) & (points[:, 0] < box.x1)
                    & (points[:, 1] > box.y0) & (points[:, 1] < box.y1)
                )  # fmt: skip
                if inside.any():
                    found.append(f"{what} crosses {text!r}")
    return sorted(set(found))


def rings(ax: Any) -> list[Any]:
    """The stroke of each hollow round mark (the "this event" ring) on the axes, as points
    every 2 px on its inner edge, middle and outer edge, in pixels: no text may sit under
    it (lessons 04 and 11: it covered "effect happened", newuser17)."""
    px = ax.figure.dpi / 72
    found = []
    for line in ax.get_lines():
        if not (
            line.get_visible() and len(_xs(line)) == 1 and line.get_marker() == "o"
            and str(line.get_markerfacecolor()).lower() == "none"
        ):  # fmt: skip
            continue
        cx, cy = ax.transData.transform((float(_xs(line)[0]), float(_ys(line)[0])))
        size, width = line.get_markersize() * px, line.get_markeredgewidth() * px
        points = []
        for r in (size / 2 - width / 2, size / 2, size / 2 + width / 2):
            angles = np.linspace(0, 2 * np.pi, max(int(2 * np.pi * r / 2), 8), endpoint=False)
            points.append(np.column_stack([cx + r * np.cos(angles), cy + r * np.sin(angles)]))
        found.append(np.concatenate(points))
    return found


def ring_crossings(fig: Figure) -> list[str]:
    """The texts the "this event" ring runs through (``crossings``' part for the ring, cheap
    enough to ask of every frame of a run)."""
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    found = []
    for ax in fig.axes:
        circles = rings(ax)
        if not circles:
            continue
        points = np.concatenate(circles)
        for text in visible_texts(fig):
            box = ring_keep_out(text, renderer)
            if box.width > 0 and box.height > 0 and (
                (points[:, 0] > box.x0) & (points[:, 0] < box.x1)
                & (points[:, 1] > box.y0) & (points[:, 1] < box.y1)
            ).any():  # fmt: skip
                found.append(f"the ring crosses {text.get_text()!r}")
    return sorted(set(found))


def _is_connector(line: Line2D) -> bool:
    return bool(line.get_gid() == "connector" or str(line.get_gid()).startswith(LEADER))


NOTE, LEADER = "note:", "leader:"  # the gids of a note on a lane and of its leader line


def note_gid(x: float, y: float) -> str:
    """A note's gid: its marker's place (x, its lane's y), as the quality checks read it."""
    return f"{NOTE}{x:g}:{y:g}"


def leader_gid(x: float, y: float) -> str:
    return f"{LEADER}{x:g}:{y:g}"


def off_lane(ax: Any, text: Text, y: float, renderer: Any) -> bool:
    """Whether a note's box lies nearer another lane than its own (lanes are 1 apart):
    its middle more than half a lane from its own lane's line."""
    box = ax.transData.inverted().transform(text.get_window_extent(renderer).get_points())
    return bool(abs((box[0][1] + box[1][1]) / 2 - y) > 0.5)


def leader_end(ax: Any, text: Text, x: float, renderer: Any) -> tuple[float, float]:
    """Where a note's leader line meets its box (data): the edge facing its marker, at
    the marker's x as far as the box reaches."""
    box = ax.transData.inverted().transform(text.get_window_extent(renderer).padded(1).get_points())
    (x0, y0), (x1, y1) = box.min(axis=0), box.max(axis=0)
    mid = (y0 + y1) / 2
    lane = float(str(text.get_gid()).split(":")[2]) if str(text.get_gid()).startswith(NOTE) else mid
    return min(max(x, x0), x1), (y0 if lane < mid else y1)


def notes_off_lane(fig: Figure) -> list[str]:
    """Notes drawn off their own step's lane without a leader line to their marker: a
    learner reads a note as the lane's it sits on (newuser20, lesson 02)."""
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    found = []
    for ax in fig.axes:
        leaders = {
            str(line.get_gid())[len(LEADER) :]
            for line in ax.get_lines()
            if line.get_visible() and str(line.get_gid()).startswith(LEADER)
        }
        for text in ax.texts:
            gid = str(text.get_gid())
            if not (text.get_visible() and text.get_text().strip() and gid.startswith(NOTE)):
                continue
            place = gid[len(NOTE) :]
            y = float(place.split(":")[1])
            if off_lane(ax, text, y, renderer) and place not in leaders:
                found.append(f"note {text.get_text().strip()!r} off its lane, no leader")
    return found


BAND = "band"  # the gid of a parallel branch's band (drawing.draw_branches)


def band_edges(ax: Any) -> list[Any]:
    """The outlines of the axes' branch bands, in pixels: lines a note must not sit on
    (lesson 12: a band's edge ran through "effect happened", newuser8)."""
    return [
        p.get_path().transformed(p.get_transform())
        for p in ax.patches
        if p.get_gid() == BAND and p.get_visible()
    ]


RUN_END = "run-end"  # the gid of the dashed line where a run ends (timeline_run)


def run_ends(ax: Any) -> list[Any]:
    """The dashed "run ends" lines of the axes, in pixels: lines no text may sit on
    (lesson 11's grid: it ran through "rollback ←" and "dead letter", newuser9)."""
    return [
        line.get_path().transformed(line.get_transform())
        for line in ax.get_lines()
        if line.get_gid() == RUN_END and line.get_visible()
    ]


def sample(path: Any, step: float = 2.0) -> Any:
    """Points every ``step`` pixels along ``path`` (curves flattened first)."""
    return _sample(path, step)


def _sample(path: Any, step: float = 2.0) -> Any:
    """Points every ``step`` pixels along ``path`` (curves flattened first)."""
    vertices = np.asarray(
        [v for poly in path.to_polygons(closed_only=False) for v in poly], dtype=float
    )
    if len(vertices) < 2:
        return vertices.reshape(-1, 2)
    out = [vertices[:1]]
    for a, b in itertools.pairwise(vertices):
        n = max(int(np.hypot(*(b - a)) / step), 1)
        out.append(a + (b - a) * np.linspace(0, 1, n + 1)[1:, None])
    return np.concatenate(out)


NO_MARKER = (None, "None", "none", "", " ")


def _colours(line: Line2D) -> set[str]:
    """A marker's colours (face and edge), white and none left out: what tells it apart."""
    found = set()
    for colour in (line.get_markerfacecolor(), line.get_markeredgecolor()):
        if str(colour).lower() != "none" and to_hex(colour) != "#ffffff":
            found.add(to_hex(colour))
    return found


def _xs(line: Line2D) -> Any:
    return np.asarray(line.get_xdata(), float)


def _ys(line: Line2D) -> Any:
    return np.asarray(line.get_ydata(), float)


def hidden_marks(fig: Figure) -> list[str]:
    """Marks the legend names (by shape and colour) whose centre a bar or mark of another
    event, drawn after them, covers (and no copy of the mark drawn after that): each event's
    mark must stay in sight. The marks of one event (at one x: a failed step's cross on its
    arrow's head) may lie on each other; hollow rings ("this event") are left out. Lesson 06:
    the "undo logged" circle lay under the arrow of the step that then failed (newuser14)."""
    named: dict[str, list[tuple[str, set[str]]]] = {}
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes)]
    for legend in (legend for legend in legends if legend is not None):
        for handle, text in zip(legend.legend_handles, legend.get_texts(), strict=False):
            if isinstance(handle, Line2D) and handle.get_marker() not in NO_MARKER:
                named.setdefault(str(handle.get_marker()), []).append(
                    (text.get_text(), _colours(handle))
                )
    found = []
    px = fig.dpi / 72  # points to pixels
    for ax in fig.axes:
        drawn = sorted(  # in the order they are painted (sorted is stable)
            (line for line in ax.get_lines() if line.get_visible() and len(_xs(line))),
            key=lambda line: line.get_zorder(),
        )
        for i, mark in enumerate(drawn):
            shape = str(mark.get_marker())
            label = next(
                (word for word, colours in named.get(shape, []) if colours & _colours(mark)),
                None,
            )
            if label is None or len(_xs(mark)) != 1 or mark.get_markerfacecolor() == "none":
                continue
            x, y = float(_xs(mark)[0]), float(_ys(mark)[0])
            cx, cy = ax.transData.transform((x, y))
            covered = None
            for j, later in enumerate(drawn[i + 1 :], i + 1):
                xs = _xs(later)
                if float(xs.max()) == x:
                    continue  # the same event's
                points = ax.transData.transform(np.column_stack([xs, _ys(later)]))
                if len(xs) == 1 and later.get_marker() not in NO_MARKER:
                    reach = later.get_markersize() * px / 2
                    if np.hypot(*(points[0] - (cx, cy))) < reach:
                        covered = j
                elif len(xs) == 2 and later.get_linestyle() not in NO_MARKER:
                    (x0, y0), (x1, y1) = points
                    half = later.get_linewidth() * px / 2
                    if y0 == y1 and min(x0, x1) < cx < max(x0, x1) and abs(cy - y0) < half:
                        covered = j
            if covered is not None and not any(
                str(again.get_marker()) == shape and _colours(again) == _colours(mark)
                and list(_xs(again)) == [x] and list(_ys(again)) == [y]
                for again in drawn[covered + 1 :]
            ):  # fmt: skip
                found.append(f"hidden mark: {label!r} at event {x:g}, under a later event's")
    return found


def _reach(line: Line2D, px: float) -> float:
    """A single-point mark's radius in pixels, its edge included."""
    return float(line.get_markersize() + line.get_markeredgewidth()) * px / 2


def crowded_marks(fig: Figure, *, rings: bool = True) -> list[str]:
    """Marks of different events on one lane that overlap (by more than a pixel), the
    hollow "this event" ring among them: each must be read whole. The marks of one event
    (a cross on its arrow's head, the ring around its own mark) may lie on each other.
    Lesson 06 as it opens: the failed cross covered the "undo logged" circle's right edge
    and half the ring of the event after it, within 45 px (newuser15). ``rings``: the
    hollow ring too (around a mark of its own, beside another's, it may touch that one:
    at 16 px an event, no ring fits round a mark between two others)."""
    px = fig.dpi / 72
    found = []
    for ax in fig.axes:
        marks = [
            line for line in ax.get_lines()
            if line.get_visible() and len(_xs(line)) == 1
            and line.get_marker() not in NO_MARKER and line.get_linestyle() in NO_MARKER
            and (rings or str(line.get_markerfacecolor()) != "none")
        ]  # fmt: skip
        for one, two in itertools.combinations(marks, 2):
            x1, y1, x2, y2 = (float(f(m)[0]) for m in (one, two) for f in (_xs, _ys))
            if x1 == x2 or y1 != y2:
                continue
            a, b = ax.transData.transform([(x1, y1), (x2, y2)])
            if np.hypot(*(a - b)) < _reach(one, px) + _reach(two, px) - 1:
                found.append(f"crowded marks: events {min(x1, x2):g} and {max(x1, x2):g}")
    return sorted(set(found))


def report(fig: Figure, *, cut_values: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """The picture's own account of itself: its smallest text and everything wrong with it
    (``cut_values``: values the drawer had to abbreviate)."""
    texts = text_problems(fig)  # draws the figure, once for both checks
    problems = [*texts, *crossings(fig, drawn=True), *hidden_marks(fig), *crowded_marks(fig)]
    problems += notes_off_lane(fig)
    problems += [f"cut value: {v}" for v in cut_values]
    return {
        "min_text_px": round(min_text_px(fig), 2),
        "width_px": round(fig.bbox.width),
        "problems": problems,
    }
