"""Pictures of a run: lanes per step, the run going forward, then the undo walking back.

``draw(outcome)`` gives the whole run as one figure, ``png(outcome)`` the same as PNG bytes
(with its report: smallest text, anything cut or colliding), ``frames(outcome)`` one PNG
per event, ``animate`` a matplotlib animation and ``save_gif`` a GIF for pages that run no
JavaScript. ``log=True`` adds the event log under the lanes. ``Timeline`` (in
``timeline.py``) keeps one figure and its artists for all of them.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.animation import FuncAnimation
from matplotlib.figure import Figure
from PIL import Image

from ..outcome import Outcome
from .graphs import Groups
from .png import encode_png, figure_png
from .timeline import (
    DPI,
    FAIL,
    FONT,
    FORWARD,
    HIGHLIGHT,
    PICTURE_WIDTH,
    PIVOT,
    REGISTER,
    RETRY,
    UNDO,
    Timeline,
    value_text,
)

__all__ = [
    "DPI", "FAIL", "FONT", "FORWARD", "HIGHLIGHT", "PIVOT", "REGISTER", "RETRY", "UNDO",
    "Timeline", "animate", "draw", "encode_png", "frames", "gif", "png", "save_gif",
    "timeline_for",
]  # fmt: skip


def timeline_for(
    outcome: Outcome,
    labels: Mapping[str, str] | None = None,
    width: float = PICTURE_WIDTH,
    *,
    log: bool = False,
    groups: Groups = (),
) -> Timeline:
    """A Timeline fitted to this run: every state value it takes shown whole (wrapped);
    ``groups`` (``graphs.branch_groups(saga)``) draws a parallel group's branches as bands
    of lanes side by side."""
    keys = list(outcome.state_before or {})
    keys += [k for k in outcome.state_after or {} if k not in keys]
    labels = outcome.labels if labels is None else labels
    states = [outcome.state_before or {}] + [
        outcome.state_at(i) or {} for i in range(len(outcome.events))
    ]
    values = {value_text(s[k]) for s in states for k in keys if k in s}
    longest = max((len(v) for v in values), default=1)
    chars = Timeline.table_chars(width, keys, longest)
    lines = Timeline.lines_for(values, chars[1])
    timeline = Timeline(
        outcome.steps,
        kinds=outcome.kinds,
        labels=labels,
        state_keys=keys,
        width=width,
        table_lines=lines,
        value_chars=longest,
        log_rows=len(outcome.events) if log else 0,
        groups=groups,
    )
    timeline.load(outcome)
    return timeline


def frames(
    outcome: Outcome, labels: Mapping[str, str] | None = None, *, groups: Groups = ()
) -> list[bytes]:
    """One PNG per event: played in order, the run unfolds and then unwinds."""
    timeline = timeline_for(outcome, labels, groups=groups)
    return [timeline.render(i) for i in range(timeline.frame_count)]


def draw(
    outcome: Outcome,
    labels: Mapping[str, str] | None = None,
    *,
    log: bool = False,
    groups: Groups = (),
) -> Figure:
    """The whole run in one figure: its last frame."""
    timeline = timeline_for(outcome, labels, log=log, groups=groups)
    return timeline.show(timeline.frame_count - 1)


def animate(
    outcome: Outcome, labels: Mapping[str, str] | None = None, interval: int = 600
) -> FuncAnimation:
    """A matplotlib animation (``to_jshtml()`` for static HTML export)."""
    timeline = timeline_for(outcome, labels)
    timeline.show(0)

    def step(index: int) -> list[Any]:
        timeline._update(index)
        return timeline._animated()

    return FuncAnimation(
        timeline.fig, step, frames=timeline.frame_count, interval=interval, blit=False
    )


def gif(
    outcome: Outcome, labels: Mapping[str, str] | None = None, ms_per_frame: int = 700
) -> bytes:
    """The frames as a looping GIF; the last frame lingers so the result can be read."""
    images = [
        Image.open(io.BytesIO(png)).convert("P", palette=Image.Palette.ADAPTIVE)
        for png in frames(outcome, labels)
    ]
    durations = [ms_per_frame] * (len(images) - 1) + [ms_per_frame * 5]
    out = io.BytesIO()
    images[0].save(
        out, format="gif", save_all=True, append_images=images[1:], duration=durations, loop=0
    )
    return out.getvalue()


def save_gif(
    outcome: Outcome,
    path: str | Path,
    labels: Mapping[str, str] | None = None,
    ms_per_frame: int = 700,
) -> Path:
    """Write ``gif(outcome)`` to ``path``: pages that run no JavaScript can still show it."""
    path = Path(path)
    path.write_bytes(gif(outcome, labels, ms_per_frame))
    return path


def png(
    outcome: Outcome,
    labels: Mapping[str, str] | None = None,
    *,
    log: bool = False,
    groups: Groups = (),
) -> bytes:
    """The last frame as PNG bytes (a static picture for readers without JavaScript), with
    its report inside (``png.read_report``): smallest text, anything cut or colliding.
    ``log=True`` lists the run's events under the lanes."""
    timeline = timeline_for(outcome, labels, log=log, groups=groups)
    fig = timeline.show(timeline.frame_count - 1)
    return figure_png(fig, cut_values=timeline.cut)
