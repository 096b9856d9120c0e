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


def crossings(fig: Figure, *, drawn: bool = False) -> list[str]:
    """Arrows, connecting lines, the edges of parallel branches' bands and the run's end
    line that pass through a label (a text's box, shrunk by 1 px).
    ``drawn``: the caller has just drawn the figure (text_problems did), so it is not drawn
    a second time (a full draw is most of the cost of a picture's report)."""
    if not drawn:
        fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    boxes = [(t.get_text(), t.get_window_extent(renderer).padded(-1)) for t in visible_texts(fig)]
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
        edges, ends = band_edges(ax), run_ends(ax)
        for path in paths + edges + ends:
            what = (
                "a band's edge" if any(path is e for e in edges)
                else "the run's end line" if any(path is e for e in ends) else "an arrow"
            )  # fmt: skip
            points = _sample(path)
            for text, box in boxes:
                if box.width <= 0 or box.height <= 0:
                    continue
                inside = (
                    (points[:, 0] > box.x0) & (points[:, 0] < box.x1)
                    & (points[:, 1] > box.y0) & (points[:, 1] < box.y1)
                )  # fmt: skip
                if inside.any():
                    found.append(f"{what} crosses {text!r}")
    return sorted(set(found))


def _is_connector(line: Line2D) -> bool:
    return bool(line.get_gid() == "connector")


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


def report(fig: Figure, *, cut_values: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """The picture's own account of itself: its smallest text and everything wrong with it
    (``cut_values``: values the drawer had to abbreviate)."""
    texts = text_problems(fig)  # draws the figure, once for both checks
    problems = [*texts, *crossings(fig, drawn=True), *(f"cut value: {v}" for v in cut_values)]
    return {
        "min_text_px": round(min_text_px(fig), 2),
        "width_px": round(fig.bbox.width),
        "problems": problems,
    }
