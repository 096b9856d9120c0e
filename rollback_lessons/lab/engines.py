"""Pictures of a saga as production engines hold it: the Step Functions state machine
(``draw_asl``) and the BPMN diagram (``draw_bpmn``), readable on a projector.

Boxes are states or tasks; a solid arrow is the normal way on (``Next``, a sequence flow), a
dashed one where a failure goes (``Catch``, an error boundary event), a dotted one a
person's answer (``Choice``) or a compensation handler's link (an association). Colours
are the lessons' own: steps blue, undos green, failures vermillion, a person purple.
"""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Patch, Polygon

from .bpmn_labels import B as _B
from .bpmn_labels import Label, place_labels, wrap_name
from .drawing import FAIL, FONT, FORWARD, INK, PIVOT, SMALL, UNDO
from .png import figure_png

GREY = "#777777"
WIDTH = 11.5  # inches: 920 px, shown 1:1 in a notebook at 1366x768 with the file browser open


def to_png(fig: Figure) -> bytes:
    """The picture as PNG bytes (``IPython.display.Image(to_png(fig))`` in a lesson), with
    its report inside: smallest text, texts that collide or are cut, arrows over labels."""
    return figure_png(fig)


# -- Step Functions ----------------------------------------------------------------------


def _role(name: str, state: Mapping[str, Any]) -> str:
    if state["Type"] in ("Succeed", "Fail"):
        return "end"
    if name.startswith("Undo "):
        return "undo"
    if name.startswith(("Ask ", "Answer ")):
        return "person"
    return "step"


_FILL = {"step": FORWARD, "undo": UNDO, "person": PIVOT, "end": GREY}


def _place_asl(asl: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """Columns by step; rows: the steps, their undos, a person asked, the person's answer;
    the ends at either side (a person's "left for me" under everything)."""
    states = asl["States"]
    steps = [n.removeprefix("Do ") for n in states if n.startswith("Do ")]
    column = {step: float(i) for i, step in enumerate(steps)}
    rows = {"Do ": 3.0, "Undo ": 2.0, "Ask a person about ": 1.0, "Answer about ": 0.0}
    where: dict[str, tuple[float, float]] = {}
    for name, state in states.items():
        prefix = next((p for p in rows if name.startswith(p)), None)
        if prefix is not None:
            where[name] = (column[name.removeprefix(prefix)], rows[prefix])
        elif state["Type"] == "Succeed":
            where[name] = (len(steps), 3.0)
        elif name == "Halted after the pivot":
            where[name] = (len(steps), 2.0)
        elif name == "Halted at the pivot":  # under the pivot, which has no undo there
            pivot = next(n for n, s in states.items() if n.startswith("Do ")
                         and any(c["Next"] == name for c in s.get("Catch", [])))  # fmt: skip
            where[name] = (column[pivot.removeprefix("Do ")], 2.0)
        elif state["Type"] == "Fail" and "person" in name:
            where[name] = ((len(steps) - 2) / 2, -1.0)  # wide: under every answer
        else:
            where[name] = (-1.0, 2.0)
    return where


def _lines(name: str, state: Mapping[str, Any], chars: int) -> list[str]:
    """A state's label wrapped to its box (never shrunk), and its Retry if it has one."""
    lines = textwrap.wrap(name, max(chars, 6), break_on_hyphens=False)
    tries = sum(r.get("MaxAttempts", 3) for r in state.get("Retry", []))
    return [*lines, f"Retry ×{tries}"] if tries else lines


def draw_asl(asl: Mapping[str, Any], *, width: float = WIDTH) -> Figure:
    """The state machine: each state a box, its Next / Catch / Choice edges as arrows that
    cross no label (a person's answers run in the gaps between the columns)."""
    states = asl["States"]
    where = _place_asl(asl)
    xs = [x for x, _ in where.values()]
    low = min(y for _, y in where.values())
    columns = max(xs) - min(xs) + 1
    rows = 3.55 - (low - 0.8)  # room under the lowest row for a bent Catch
    unit = 1.1  # inches per row
    fig = Figure(figsize=(width, 1.2 + unit * rows), dpi=80)
    FigureCanvasAgg(fig)  # drawn to PNG, in a notebook or not
    ax = fig.add_axes((0.01, 0.6 / (1.2 + unit * rows), 0.98, unit * rows / (1.2 + unit * rows)))
    ax.set_xlim(min(xs) - 0.55, max(xs) + 0.55)
    ax.set_ylim(low - 0.8, 3.55)
    ax.axis("off")
    person = low < 1.0
    box_w = 0.74 if person else 0.82
    font = FONT - 1  # 13.3 px
    column_px = width * 80 * 0.98 / columns
    chars = int(box_w * column_px / (font * 80 / 72 * 0.58))
    for name, (x, y) in where.items():
        state = states[name]
        colour = FAIL if state["Type"] == "Fail" else _FILL[_role(name, state)]
        wide = state["Type"] == "Fail" and "person" in name
        w = (max(xs) - 0.0 + box_w) if wide else box_w
        lines = _lines(name, state, chars if not wide else 60)
        h = max(0.6, 0.2 * len(lines) + 0.12)
        box = FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02",
                             fc="white", ec=colour, lw=2.2)  # fmt: skip
        ax.add_patch(box)
        ax.text(x, y, "\n".join(lines), ha="center", va="center", fontsize=font, color=INK,
                linespacing=1.05)  # fmt: skip
    used = set()
    for name, state in states.items():
        nexts = {state.get("Next")}
        for target, style, colour in _edges(state):
            _route(ax, where, name, target, style, colour, box_w, target in nexts)
            used.add(style)
    ax.set_title(asl.get("Comment", "state machine"), fontsize=FONT, loc="left", color=INK)
    legend = {
        "-": Line2D([], [], color=GREY, lw=2, label="Next"),
        "--": Line2D([], [], color=FAIL, lw=2, ls="--", label="Catch: a failure goes here"),
        ":": Line2D([], [], color=PIVOT, lw=2, ls=":", label="Choice: a person's answer"),
    }
    handles = [handle for style, handle in legend.items() if style in used]
    boxes = [
        Patch(fc="white", ec=c, lw=2, label=label)
        for role, c, label in ((("step", FORWARD, "a step"), ("undo", UNDO, "an undo"),
                                ("person", PIVOT, "a person"), ("end", GREY, "ends well"),
                                ("fail", FAIL, "ends failed")))
        if any((_role(n, s) == role and s["Type"] != "Fail")
               or (role == "fail" and s["Type"] == "Fail") for n, s in states.items())
    ]  # fmt: skip
    fig.legend(handles=boxes + handles, loc="lower center", ncol=4, frameon=False,
               fontsize=SMALL + 1)  # fmt: skip
    return fig


def _edges(state: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    found = []
    if state.get("Next"):
        found.append((state["Next"], "-", GREY))
    found += [(c["Next"], "--", FAIL) for c in state.get("Catch", [])]
    found += [(c["Next"], ":", PIVOT) for c in state.get("Choices", [])]
    if state.get("Default"):
        found.append((state["Default"], ":", PIVOT))
    return found


def _route(ax: Any, where: Mapping[str, tuple[float, float]], name: str, target: str,
           style: str, colour: str, box_w: float, beside_next: bool) -> None:  # fmt: skip
    """One edge, drawn where it crosses no box: along a row side to side, between rows
    straight, a person's answer up through the gap beside its column."""
    (x0, y0), (x1, y1) = where[name], where[target]
    half, gap = box_w / 2, 1 - box_w
    if y0 == 0.0 and y1 == 2.0:  # an answer back up to an undo: through a gap
        if x1 == x0:  # retry: up the gap on the right, into the undo's right side
            lane = x0 + half + gap / 3
            points = [(x0 + half, y0), (lane, y0), (lane, y1 - 0.12), (x1 + half, y1 - 0.12)]
        else:  # fixed: up the gap on the left, into the previous undo's right side
            lane = x0 - half - gap / 3
            points = [(x0 - half, y0 + 0.1), (lane, y0 + 0.1), (lane, y1 + 0.12),
                      (x1 + half, y1 + 0.12)]  # fmt: skip
        _polyline(ax, points, style, colour)
        return
    if y1 == -1.0:  # down to the person's end, straight under the answer
        _polyline(ax, [(x0, y0 - 0.3), (x0, y1 + 0.3)], style, colour)
        return
    _arrow(ax, (x0, y0), (x1, y1), style, colour, box_w,
           0.35 if style == "--" and beside_next else None)  # fmt: skip


def _polyline(ax: Any, points: list[tuple[float, float]], style: str, colour: str) -> None:
    xs, ys = zip(*points, strict=True)
    line = ax.plot(xs, ys, color=colour, lw=1.8, ls=style)[0]
    line.set_gid("connector")
    ax.add_patch(FancyArrowPatch(points[-2], points[-1], arrowstyle="-|>", mutation_scale=14,
                                 color=colour, lw=0, shrinkA=0, shrinkB=0))  # fmt: skip


def _arrow(ax: Any, start: tuple[float, float], end: tuple[float, float], style: str,
           colour: str, box_w: float, bend: float | None = None) -> None:  # fmt: skip
    (x0, y0), (x1, y1) = start, end
    if y0 == y1 and bend is not None:  # beside another arrow: under the boxes
        a, b = (x0, y0 - 0.3), (x1, y1 - 0.3)
        bend = -bend if x1 < x0 else bend  # curving downwards either way
    elif y0 == y1:  # along a row: from side to side
        sign = 1 if x1 > x0 else -1
        a, b = (x0 + sign * box_w / 2, y0), (x1 - sign * box_w / 2, y1)
    else:  # between rows: from bottom to top (or back)
        sign = 1 if y1 > y0 else -1
        a, b = (x0, y0 + sign * 0.3), (x1, y1 - sign * 0.3)
    bend = bend or 0.0
    arrow = FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=14, color=colour, lw=1.8,
                            ls=style, connectionstyle=f"arc3,rad={bend}", shrinkA=0,
                            shrinkB=0)  # fmt: skip
    ax.add_patch(arrow)


# -- BPMN --------------------------------------------------------------------------------

_DI = "{http://www.omg.org/spec/BPMN/20100524/DI}"
_DC = "{http://www.omg.org/spec/DD/20100524/DC}"
_WP = "{http://www.omg.org/spec/DD/20100524/DI}waypoint"
_TASKS = {"serviceTask", "scriptTask", "task"}
_EVENTS = {"startEvent", "endEvent", "boundaryEvent", "intermediateThrowEvent"}


def draw_bpmn(xml: str, *, width: float = WIDTH) -> Figure:
    """A BPMN 2.0 document drawn from its own diagram (BPMNDI) coordinates; a gateway's
    question and an end event's name go where no flow runs and no other label or shape is."""
    root = ET.fromstring(xml)
    elements = {e.get("id"): e for e in root.iter() if e.get("id")}
    bounds: dict[str, tuple[float, float, float, float]] = {}
    edges: dict[str, list[tuple[float, float]]] = {}
    for shape in root.iter(f"{_DI}BPMNShape"):
        b = shape.find(f"{_DC}Bounds")
        assert b is not None
        bounds[str(shape.get("bpmnElement"))] = tuple(  # type: ignore[assignment]
            float(b.get(k, 0)) for k in ("x", "y", "width", "height")
        )
    for edge in root.iter(f"{_DI}BPMNEdge"):
        edges[str(edge.get("bpmnElement"))] = [
            (float(p.get("x", 0)), float(p.get("y", 0))) for p in edge.iter(_WP)
        ]
    x0 = min(x for x, _, _, _ in bounds.values()) - 20
    x1 = max(x + w for x, _, w, _ in bounds.values()) + 20
    y0 = min(y for _, y, _, _ in bounds.values()) - 20
    y1 = max(y + h for _, y, _, h in bounds.values()) + 40
    lines = list(edges.values())
    labels: list[Label] = []
    for _ in range(3):  # labels widen the diagram, which shrinks its scale: settle it
        scale = width * 80 / (x1 - x0)  # pixels per diagram unit
        font = max(SMALL, min(SMALL + 1, scale * 11))  # at least 12.2 px
        labels = place_labels(elements, bounds, lines, font, scale)
        x0 = min([x0, *(b[0] - 10 for *_, b in labels)])
        x1 = max([x1, *(b[2] + 10 for *_, b in labels)])
        y0 = min([y0, *(b[1] - 10 for *_, b in labels)])
        y1 = max([y1, *(b[3] + 10 for *_, b in labels)])
    height = max(3.0, width * (y1 - y0) / (x1 - x0))
    total = height + 1.3  # the legend below, the title above
    fig = Figure(figsize=(width, total), dpi=80)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.005, 0.8 / total, 0.99, height / total))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y1, y0)  # BPMN's y grows downwards
    ax.set_aspect("equal")
    ax.axis("off")
    for ref, (x, y, w, h) in sorted(bounds.items(), key=lambda kv: -kv[1][2] * kv[1][3]):
        _shape(ax, elements[ref], x, y, w, h, font, scale)
    for text, (sx, sy, ha, va), _ in labels:
        ax.text(sx, sy, text, ha=ha, va=va, fontsize=font, color=INK, linespacing=1.05)
    for ref, points in edges.items():
        kind = elements[ref].tag.removeprefix(_B)
        failure = (
            kind == "sequenceFlow"
            and elements[elements[ref].get("sourceRef", "")].find(f"{_B}errorEventDefinition")
            is not None
        )
        style, colour = (
            (":", UNDO)
            if kind == "association"
            else ("--" if failure else "-", FAIL if failure else GREY)
        )
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, color=colour, lw=1.5, ls=style, gid="connector")
        ax.add_patch(
            FancyArrowPatch(
                points[-2],
                points[-1],
                arrowstyle="-|>",
                mutation_scale=12,
                color=colour,
                lw=0,
                shrinkA=0,
                shrinkB=0,
            )
        )
    process = root.find(f"{_B}process")
    title = process.get("name", "process") if process is not None else "process"
    ax.set_title(title, fontsize=FONT, loc="left", color=INK)
    fig.legend(
        handles=_bpmn_legend(root), loc="lower center", ncol=3, frameon=False, fontsize=SMALL + 1
    )
    return fig


def _shape(
    ax: Any, element: ET.Element, x: float, y: float, w: float, h: float, font: float,
    scale: float,
) -> None:  # fmt: skip
    kind = element.tag.removeprefix(_B)
    name = element.get("name") or ""
    if kind in _TASKS:
        undo = element.get("isForCompensation") == "true" or name.startswith("Undo")
        colour = UNDO if undo else FORWARD
        ax.add_patch(
            FancyBboxPatch(
                (x, y), w, h, boxstyle="round,pad=0,rounding_size=10", fc="white", ec=colour, lw=2
            )
        )
        chars = max(6, int((w * scale - 10) / (font * 80 / 72 * 0.62)))
        ax.text(
            x + w / 2,
            y + h / 2,
            "\n".join(wrap_name(name, chars)),
            ha="center",
            va="center",
            fontsize=font,
            color=INK,
            linespacing=1.05,
        )
    elif kind == "subProcess":
        ax.add_patch(
            FancyBboxPatch(
                (x, y), w, h, boxstyle="round,pad=0,rounding_size=12", fc="none", ec=GREY, lw=1.5
            )
        )
        ax.text(x + 10, y + 16, name, fontsize=font, color=GREY, va="center")
    elif kind == "exclusiveGateway":
        cx, cy = x + w / 2, y + h / 2
        ax.add_patch(
            Polygon([(cx, y), (x + w, cy), (cx, y + h), (x, cy)], fc="white", ec=INK, lw=1.5)
        )
        ax.plot([cx - w / 6, cx + w / 6], [cy - h / 6, cy + h / 6], color=INK, lw=1.5)
        ax.plot([cx - w / 6, cx + w / 6], [cy + h / 6, cy - h / 6], color=INK, lw=1.5)
    elif kind in _EVENTS:
        cx, cy, r = x + w / 2, y + h / 2, w / 2
        error = element.find(f"{_B}errorEventDefinition") is not None
        compensate = element.find(f"{_B}compensateEventDefinition") is not None
        colour = FAIL if error else UNDO if compensate else INK
        lw = 3.5 if kind == "endEvent" else 1.5
        ax.add_patch(Circle((cx, cy), r, fc="white", ec=colour, lw=lw))
        if kind in ("boundaryEvent", "intermediateThrowEvent"):
            ax.add_patch(Circle((cx, cy), r * 0.8, fc="none", ec=colour, lw=1))
        if compensate:  # two triangles pointing back: "rewind"
            for dx in (-r * 0.45, 0.0):
                ax.add_patch(
                    Polygon(
                        [
                            (cx + dx - r * 0.05, cy),
                            (cx + dx + r * 0.4, cy - r * 0.35),
                            (cx + dx + r * 0.4, cy + r * 0.35),
                        ],
                        fc=colour,
                        ec=colour,
                    )
                )
        elif error:  # a lightning stroke
            ax.plot(
                [cx - r * 0.4, cx - r * 0.1, cx + r * 0.1, cx + r * 0.4],
                [cy + r * 0.4, cy - r * 0.2, cy + r * 0.2, cy - r * 0.4],
                color=colour,
                lw=1.5,
            )


def _bpmn_legend(root: ET.Element) -> list[Any]:
    """One entry per kind of line and glyph the diagram holds (and none it does not)."""

    def glyph(colour: str, marker: str, label: str) -> Line2D:
        return Line2D([], [], color=colour, marker=marker, ls="", mfc="white", ms=10, label=label)

    has = {tag: root.find(f".//{_B}{tag}") is not None for tag in
           ("association", "exclusiveGateway", "compensateEventDefinition")}  # fmt: skip
    found: list[Any] = [
        Patch(fc="white", ec=FORWARD, lw=2, label="a step (task)"),
        Patch(fc="white", ec=UNDO, lw=2, label="an undo (task)"),
        glyph(INK, "o", "start / end (thick) event"),
        Line2D([], [], color=GREY, lw=2, label="sequence flow"),
        Line2D([], [], color=FAIL, lw=2, ls="--", label="after a failure (error event)"),
    ]
    if has["association"]:
        found.append(Line2D([], [], color=UNDO, lw=2, ls=":", label="compensation handler"))
    if root.find(f".//{_B}subProcess") is not None:
        found.append(Patch(fc="white", ec=GREY, lw=1.5, label="sub-process"))
    if has["exclusiveGateway"]:
        found.append(glyph(INK, "D", "gateway: one way on"))
    if has["compensateEventDefinition"]:
        found.append(glyph(UNDO, "o", "compensation event"))
    found.append(glyph(FAIL, "o", "error event"))
    return found
