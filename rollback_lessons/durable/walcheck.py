"""A journal's write-ahead log (``-wal``) checked frame by frame, as SQLite reads it, before
anything reads the journal for ``recover`` (or ``journal show``, ``settle``).

SQLite takes a frame whose checksum fails as the log's end: what follows is dropped without a
word. Bytes overwritten inside the log (attack127 F1) so hid every saga written after them:
``recover`` said "recovered 0 sagas" with effects standing, or marked a saga rolled back with
nothing undone, and its checkpoint then deleted the log, the evidence with it. A crash never
leaves that shape: frames are written in order, each synced before the next commit, so only
the last ones can be torn, and frames of an older log (after a restart) carry other salts.
So a frame of this log that fails its checksum while a later frame carries this log's salts
is damage, refused in one line before anything is claimed or checkpointed. (A log cut short,
or damage in its last frames, reads as frames never written: that cannot be told.)"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

_MAGIC = (0x377F0682, 0x377F0683)  # (the low bit: checksums of big-endian words)
_HEADER = 32
_FRAME_HEADER = 24


def _checksum(data: bytes, s0: int, s1: int, big: bool) -> tuple[int, int]:
    """SQLite's WAL checksum of ``data`` (a multiple of 8 bytes), from (``s0``, ``s1``)."""
    words = struct.unpack(f"{'>' if big else '<'}{len(data) // 4}I", data)
    for even, odd in zip(words[0::2], words[1::2], strict=True):
        s0 = (s0 + even + s1) & 0xFFFFFFFF
        s1 = (s1 + odd + s0) & 0xFFFFFFFF
    return s0, s1


def wal_damage(path: Path) -> str | None:
    """What is damaged in ``path``'s write-ahead log, in a few words; None if nothing is (or
    there is no log). Read twice before it is said: a writer restarting the log as it is read
    changes its header, and is not damage."""
    first = _read(path)
    return first if first is None or _read(path) == first else None


def _read(path: Path) -> str | None:
    wal = path.with_name(path.name + "-wal")
    try:
        with open(wal, "rb") as log:  # (frame by frame: a log may be large)
            return _frames(log)
    except OSError:  # (none, or unreadable: SQLite says so as it opens the journal)
        return None


def _frames(log: BinaryIO) -> str | None:
    header = log.read(_HEADER)
    if len(header) < _HEADER:
        return None
    magic, _, page, _, salt1, salt2, c0, c1 = struct.unpack(">8I", header)
    more = bool(log.read(1))
    if magic not in _MAGIC or page < 512 or page > 65536 or page & (page - 1):
        return "its write-ahead log (-wal) has no valid header" if more else None
    big = bool(magic & 1)
    if _checksum(header[:24], 0, 0, big) != (c0, c1):
        return "its write-ahead log's (-wal) header fails its checksum" if more else None
    log.seek(_HEADER)
    s0, s1, n = c0, c1, 0
    bad: int | None = None
    while len(frame := log.read(_FRAME_HEADER + page)) == _FRAME_HEADER + page:
        ours = struct.unpack(">2I", frame[8:16]) == (salt1, salt2)
        if bad is not None and ours:
            return (
                f"its write-ahead log (-wal) fails its checksum at frame {bad + 1}, with later "
                "frames that SQLite would drop"
            )
        if bad is None and ours:
            got = _checksum(frame[:8] + frame[_FRAME_HEADER:], s0, s1, big)
            if got == struct.unpack(">2I", frame[16:24]):
                s0, s1 = got
            else:
                bad = n
        elif bad is None:
            bad = n  # (an older log's frames from here: none of ours may follow)
        n += 1
    return None
