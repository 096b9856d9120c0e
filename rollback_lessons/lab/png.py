"""A fast PNG writer for the panel's frames (mostly white pictures, written often)."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import numpy as np


def _chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def encode_png(rgba: Any) -> bytes:
    """An RGB PNG of an RGBA buffer: no per-row filter search, zlib level 1.

    About twice as fast as a general encoder on these mostly-white frames, which is what
    lets a whole replay render within the panel's time budget.
    """
    pixels = np.asarray(rgba)
    height, width = pixels.shape[:2]
    rows = np.zeros((height, width * 3 + 1), np.uint8)  # each row: filter byte 0, then RGB
    rows[:, 1:] = pixels[:, :, :3].reshape(height, width * 3)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(rows.tobytes(), 1)),
            _chunk(b"IEND", b""),
        )
    )
