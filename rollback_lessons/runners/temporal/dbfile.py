"""What a dev server's ``db_file`` is, when the server stopped at once over its database:
a file Temporal began and never finished making (a first start cut short), or perhaps
another program's."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def not_its_database(db_file: str | os.PathLike[str], line: str) -> str:
    """Why the dev server stopped at once over ``db_file`` (``line``, its log's), in one
    line (attack115 F2: a file Temporal itself half made, by a first start cut short, was
    blamed on "another program", and "give one only Temporal wrote")."""
    said = f"Temporal's dev server cannot keep its histories in {db_file} (db_file): it "
    if "unable to open database file" in line:  # (SQLite's CANTOPEN, attack218 F2: not
        return (  # "another program's" database)
            f"{said}stopped at once, saying {line!r}: it could not open or create the file "
            "there (a folder it may not write in, a file system that takes no database?): "
            "give a path in a folder of your own."
        )
    if half_made(db_file):
        return (
            f"{said}stopped at once, saying {line!r}: the file holds only part of Temporal's "
            "own tables (a first start on it cut short?) and no saga's history: delete it "
            "(with its -wal and -shm files) and start again."
        )
    return (
        f"{said}stopped at once, saying {line!r}: is it another program's SQLite database? "
        "Give a new file, or one only Temporal wrote."
    )


def half_made(db_file: str | os.PathLike[str]) -> bool:
    """Is ``db_file`` one a Temporal dev server began and never finished making (its own
    ``namespaces`` table there, not all of its tables), holding no workflow's history?"""
    try:
        con = sqlite3.connect(Path(db_file).resolve().as_uri() + "?mode=ro", uri=True)
        try:
            found = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
            if "namespaces" not in found or "cluster_metadata_info" in found:
                return False
            return "executions" not in found or not con.execute(
                "SELECT 1 FROM executions LIMIT 1").fetchone()  # fmt: skip
        finally:
            con.close()
    except (sqlite3.Error, OSError, ValueError):
        return False


def wal_begun(path: str | os.PathLike[str]) -> bool:
    """A -wal SQLite began (its magic number first): an empty file beside it is a database
    under way, not one to refuse (attack233 F5: any file there let an empty one through,
    and the server then removed it, blamed on "another program's SQLite database")."""
    try:  # (a frame at least after its header: attack236 F1, the magic alone let it by)
        with open(path, "rb") as file:
            head = file.read(32)
            size = os.fstat(file.fileno()).st_size
    except OSError:
        return False
    if len(head) < 32 or head[:4] not in (b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83"):
        return False
    return size >= 32 + 24 + int.from_bytes(head[8:12], "big")
