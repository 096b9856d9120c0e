"""A fast PNG writer for the panel's frames (mostly white pictures, written often), and the
picture's own report (smallest text, problems) carried inside the PNG as a text chunk."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

KEY = b"rollback-lessons"  # the tEXt keyword of the picture's report


def _chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def encode_png(rgba: Any, report: dict[str, Any] | None = None) -> bytes:
    """An RGB PNG of an RGBA buffer: no per-row filter search, zlib level 1.

    About twice as fast as a general encoder on these mostly-white frames, which is what
    lets a whole replay render within the panel's time budget. ``report`` (see
    ``quality.report``) goes into a tEXt chunk.
    """
    pixels = np.asarray(rgba)
    height, width = pixels.shape[:2]
    rows = np.empty((height, width * 3 + 1), np.uint8)  # each row: filter byte 0, then RGB
    rows[:, 0] = 0
    rows[:, 1:].reshape(height, width, 3)[...] = pixels[:, :, :3]  # one copy, in place
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    text = b""
    if report is not None:
        text = _chunk(b"tEXt", KEY + b"\0" + json.dumps(report).encode("latin-1"))
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            text,
            _chunk(b"IDAT", zlib.compress(rows.tobytes(), 1)),
            _chunk(b"IEND", b""),
        )
    )


def read_report(png: bytes) -> dict[str, Any] | None:
    """The report a picture carries (``None`` if it has none)."""
    at = 8
    while at + 8 <= len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        tag, body = png[at + 4 : at + 8], png[at + 8 : at + 8 + length]
        if tag == b"tEXt" and body.startswith(KEY + b"\0"):
            return dict(json.loads(body[len(KEY) + 1 :].decode("latin-1")))
        if tag == b"IDAT":
            return None
        at += 12 + length
    return None


def size(png: bytes) -> tuple[int, int]:
    """(width, height) in pixels."""
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


def figure_png(fig: Figure, cut_values: Sequence[str] = ()) -> bytes:
    """A finished figure as PNG bytes with its report (what a lesson stores)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from .quality import report

    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)  # drawn to pixels, in a notebook or not
    found = report(fig, cut_values=list(cut_values))  # (lays the figure out, paints nothing)
    fig.canvas.draw()  # painted: a blank picture otherwise (lessons 02-06 re-executed, s37)
    return encode_png(fig.canvas.buffer_rgba(), found)  # type: ignore[attr-defined]
