"""Where a BPMN picture's labels go (``engines.draw_bpmn``): a step's name broken after its
underscores, a gateway's question and an end event's name where no flow runs and no shape
or other label is."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping

B = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in diagram units (y downwards)
_Spot = tuple[float, float, str, str]  # x, y, ha, va
Label = tuple[str, _Spot, Box]


def wrap_name(text: str, chars: int) -> list[str]:
    """``text`` in lines of at most ``chars``, broken at a space or after an underscore (a
    step's name is one word: ``charge_card``), a part longer than a line cut where it must."""
    lines, line = [], ""
    for part in re.split(r"(?<=[_ ])", text):
        while len(part.rstrip()) > chars:  # longer than a line: on lines of its own
            if line:
                lines.append(line.rstrip())
                line = ""
            lines.append(part[:chars])
            part = part[chars:]
        if len((line + part).rstrip()) > chars:
            lines.append(line.rstrip())
            line = ""
        line += part
    return [*lines, line.rstrip()] if line.strip() else lines


def place_labels(
    elements: Mapping[str | None, ET.Element], bounds: Mapping[str, tuple[float, ...]],
    lines: list[list[tuple[float, float]]], font: float, scale: float,
) -> list[Label]:  # fmt: skip
    """Each gateway's question and each named end event's name, at the first of its spots
    (above a gateway, centred or to either side; under, right, above or left of an event)
    that no flow crosses and no shape or placed label covers (the first spot if none is)."""
    em = font * 80 / 72 / scale  # a font's height in diagram units
    taken: list[Box] = [
        (x, y, x + w, y + h) for ref, (x, y, w, h) in bounds.items()
        if elements[ref].tag != f"{B}subProcess"
    ]  # fmt: skip
    placed: list[Label] = []
    for ref, (x, y, w, h) in bounds.items():
        kind, name = elements[ref].tag.removeprefix(B), elements[ref].get("name") or ""
        if not name:
            continue
        cx, cy, gap = x + w / 2, y + h / 2, 0.4 * em
        if kind == "exclusiveGateway":
            text = "\n".join(wrap_name(name, 20))
            above = y - gap - 0.6 * em  # clear of a task beside it (taller than a gateway)
            spots: list[_Spot] = [  # higher and higher: over a tall task beside it
                (sx, above - k * 0.5 * em, ha, "bottom") for k in range(12)
                for sx, ha in ((cx, "center"), (x, "left"), (x + w, "right"))
            ]  # fmt: skip
        elif kind == "endEvent" and elements[ref].find(f"{B}errorEventDefinition") is None:
            text = "\n".join(wrap_name(name, 20))
            spots = [
                (cx, y + h + gap, "center", "top"), (x + w + gap, cy, "left", "center"),
                (cx, y - gap, "center", "bottom"), (x - gap, cy, "right", "center"),
            ]  # fmt: skip
        else:
            continue
        rows = text.split("\n")
        size = (max(map(len, rows)) * 0.62 * em + 0.4 * em, len(rows) * 1.2 * em)
        own = (x, y, x + w, y + h)
        boxes = [(spot, _box(spot, size)) for spot in spots]
        spot, box = next(
            (
                (spot, box) for spot, box in boxes
                if not any(_crosses(box, points) for points in lines)
                and not any(_overlaps(box, other) for other in taken if other != own)
            ),
            boxes[0],
        )  # fmt: skip
        taken.append(box)
        placed.append((text, spot, box))
    return placed


def _box(spot: _Spot, size: tuple[float, float]) -> Box:
    (x, y, ha, va), (w, h) = spot, size
    left = {"center": x - w / 2, "left": x, "right": x - w}[ha]
    top = {"center": y - h / 2, "top": y, "bottom": y - h}[va]
    return (left, top, left + w, top + h)


def _overlaps(a: Box, b: Box) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def _crosses(box: Box, points: list[tuple[float, float]]) -> bool:
    x0, y0, x1, y1 = box
    for (ax_, ay), (bx, by) in itertools.pairwise(points):
        for t in (i / 40 for i in range(41)):
            px, py = ax_ + (bx - ax_) * t, ay + (by - ay) * t
            if x0 < px < x1 and y0 < py < y1:
                return True
    return False
