"""A journal's path as a line prints it for an operator to paste back into a shell: the
same file named again, whatever its characters, by ``rollback-lessons`` and by the
``sqlite3`` shell alike."""

from __future__ import annotations

import shlex


def for_shell(path: str, sqlite3: bool = False) -> str:
    """``path`` quoted for a shell, so that a hint pasted back names the same file: a line
    break, a control character or a byte that is not UTF-8 (``surrogateescape``) in ANSI-C
    quoting (``$'...'``: bash, zsh), which the printed line keeps on one line (attack42 F9);
    otherwise ``shlex.quote``. A name a command would read as an option (``-d.db``) is given
    as ``./-d.db``; for the ``sqlite3`` shell, one it would open as a URI (``file:x.db``) or
    in memory (``:memory:``) too (attack291 F1: the statement the line gave opened another
    database, or none)."""
    if path.startswith("-") or (sqlite3 and path.startswith((":", "file:"))):
        path = "./" + path
    if path.isprintable() and not any("\udc80" <= c <= "\udcff" for c in path):
        return shlex.quote(path)
    out = []
    for c in path:
        if "\udc80" <= c <= "\udcff":  # (a byte the file system gave that is not UTF-8)
            out.append(f"\\x{ord(c) - 0xDC00:02x}")
        elif c in "\\'":
            out.append("\\" + c)
        elif c.isprintable() and c.isascii():
            out.append(c)
        else:
            out += [f"\\x{b:02x}" for b in c.encode("utf-8", "surrogatepass")]
    return "$'" + "".join(out) + "'"
