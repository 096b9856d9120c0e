"""A journal's write-ahead log (``-wal``) checked frame by frame, as SQLite reads it, before
the journal is opened.

SQLite takes a frame whose checksum fails as the log's end: what follows is dropped without a
word. Bytes overwritten inside the log (attack127 F1) so hid every saga written after them:
``recover`` said "recovered 0 sagas" with effects standing, or marked a saga rolled back with
nothing undone, and its checkpoint then deleted the log, the evidence with it. A log can end
in frames that do not chain without any damage: a write cut short (a full disk, a kill, even
after its commit frame was written, before it counted: attack129 F1) leaves its frames, and
the next commit writes over their start only (attack128 F1, F2), perhaps in turn cut short
over them (attack130 F1). Each such leftover is the rest of one transaction: at most one
commit among frames that chain on. So damage is a break in the chain followed by frames that
chain on up to two commits: committed work SQLite would drop. Refused in one line before anything
is claimed or checkpointed. (A log cut short, or damage in its last transactions, reads as
frames never written: that cannot be told.)"""

from __future__ import annotations

import os
import stat
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
    path = Path(os.path.realpath(path))  # (SQLite's log is the real file's: attack130 F3)
    wal = path.with_name(path.name + "-wal")
    if (not path.exists() or not path.stat().st_size) and wal.is_file() and wal.stat().st_size:
        return "its write-ahead log (-wal) is there without the journal's file: moved or emptied"
    for end, what in (("-wal", "write-ahead log (-wal)"), ("-shm", "shared-memory file (-shm)")):
        if (odd := _not_a_file(path.with_name(path.name + end))) is not None:
            return f"its {what} is {odd}"  # (SQLite's own words named the journal's file:
    try:  # "Is a directory", "unable to open", attack291 F4; without blocking: a FIFO there
        fd = os.open(wal, os.O_RDONLY | os.O_NONBLOCK)  # would wait for ever, attack128 F9)
    except OSError:  # (none, or unreadable: SQLite says so as it opens the journal)
        return None
    with open(fd, "rb") as log:  # (frame by frame: a log may be large)
        return _frames(log)


def _not_a_file(path: Path) -> str | None:
    """What ``path`` is, if there and not a regular file (a symbolic link: SQLite opens
    neither a -wal nor a -shm through one)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None
    if stat.S_ISLNK(mode):
        return "a symbolic link, which SQLite does not follow"
    return None if stat.S_ISREG(mode) else "not a regular file"


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
    chain: tuple[int, int] | None = (c0, c1)  # (what the next frame chains from)
    n, broken, commits = 0, None, 0
    while len(frame := log.read(_FRAME_HEADER + page)) == _FRAME_HEADER + page:
        ours = struct.unpack(">2I", frame[8:16]) == (salt1, salt2)
        stored = struct.unpack(">2I", frame[16:24])
        good = ours and chain is not None and _checksum(frame[:8] + frame[24:], *chain, big)
        commit = frame[4:8] != bytes(4)
        if good != stored:  # (a break: the frames after it chain from this one's own)
            broken, commits = broken if broken is not None else n, 0
        elif broken is not None and commit:
            commits += 1
            if commits >= 2:
                return (
                    f"its write-ahead log (-wal) fails its checksum at frame {broken + 1}, "
                    "before committed frames that SQLite would drop"
                )
        chain, n = (stored if ours else None), n + 1
    return None


def growth(path: Path) -> tuple[int, int] | None:
    """The journal's ``-wal`` size, and the bytes its file must grow by to take the log's
    committed pages back (SQLite's checkpoint writes them there, the log given back only
    then): a log a reader's snapshot let grow till the disk filled cannot be written back
    until that room is found (attack285 F3). None if there is no log, or it needs none."""
    path = Path(os.path.realpath(path))
    try:
        size, fd = path.stat().st_size, os.open(f"{path}-wal", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    with open(fd, "rb") as log:
        if not stat.S_ISREG(os.fstat(fd).st_mode) or len(head := log.read(_HEADER)) < _HEADER:
            return None
        magic, _, page, _, salt1, salt2 = struct.unpack(">6I", head[:24])
        if magic not in _MAGIC or page < 512 or page > 65536 or page & (page - 1):
            return None
        pages = 0  # (the file's size in pages after the log's last commit of this salt)
        while len(frame := log.read(_FRAME_HEADER)) == _FRAME_HEADER:
            after = struct.unpack(">I", frame[4:8])[0]
            if after and struct.unpack(">2I", frame[8:16]) == (salt1, salt2):
                pages = after
            log.seek(page, os.SEEK_CUR)
        need = pages * page - size
        return (os.fstat(fd).st_size, need) if need > 0 else None
