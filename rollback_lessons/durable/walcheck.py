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

_MAGIC = (0x377F0682, 0x377F0683)  # (the low bit: checksums of big-endian words)
_HEADER = 32
_FRAME_HEADER = 24


def _checksum(data: bytes, s0: int, s1: int, big: bool) -> tuple[int, int]:
    """SQLite's WAL checksum of ``data`` (a multiple of 8 bytes), from (``s0``, ``s1``)."""
    words = struct.unpack(f"{'>' if big else '<'}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
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
        with open(wal, "rb") as log:
            data = log.read()
    except OSError:  # (none, or unreadable: SQLite says so as it opens the journal)
        return None
    if len(data) < _HEADER:
        return None
    magic, _, page, _, salt1, salt2, c0, c1 = struct.unpack(">8I", data[:_HEADER])
    frame = _FRAME_HEADER + page
    if magic not in _MAGIC or page < 512 or page & (page - 1):
        return "its write-ahead log (-wal) has no valid header" if len(data) > _HEADER else None
    big = bool(magic & 1)
    if _checksum(data[:24], 0, 0, big) != (c0, c1):
        framed = len(data) >= _HEADER + frame
        return "its write-ahead log's (-wal) header fails its checksum" if framed else None
    s0, s1, at, n = c0, c1, _HEADER, 0
    bad: int | None = None
    while at + frame <= len(data):
        head = data[at : at + _FRAME_HEADER]
        ours = struct.unpack(">2I", head[8:16]) == (salt1, salt2)
        if bad is not None and ours:
            return (
                f"its write-ahead log (-wal) fails its checksum at frame {bad + 1}, with later "
                "frames that SQLite would drop"
            )
        if bad is None and ours:
            got = _checksum(head[:8] + data[at + _FRAME_HEADER : at + frame], s0, s1, big)
            if got == struct.unpack(">2I", head[16:24]):
                s0, s1 = got
            else:
                bad = n
        elif bad is None:
            bad = n  # (an older log's frames from here: none of ours may follow)
        at, n = at + frame, n + 1
    return None
