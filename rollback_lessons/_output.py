"""The command line tool's own output: standard output for what a command prints (a write
that fails is ``OutputError``: one line, never the journal's error), and its one-line
messages on standard error."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

from .events import one_line


class OutputError(Exception):
    """Stdout cannot be written (a full disk, a closed device): never told as the journal's."""


class _Stdout:
    """Standard output for the command's own printing: the one the command began with
    (``bind``: a registry module or an undo that replaces ``sys.stdout`` is not the
    command's, attack112 F1); a text it cannot encode (an ASCII stdout) written escaped, as
    Python's stderr does (F3: the whole report was lost); a write that fails otherwise is
    OutputError (a reader that stopped early stays a BrokenPipeError: it ends quietly)."""

    target: Any = None

    def bind(self, target: Any) -> None:
        self.target = target

    def write(self, text: str) -> int:
        out = self.target if self.target is not None else sys.stdout
        try:
            try:
                return out.write(text)  # type: ignore[no-any-return]
            except UnicodeEncodeError:
                encoding = getattr(out, "encoding", None) or "ascii"
                return out.write(text.encode(encoding, "backslashreplace").decode(encoding))  # type: ignore[no-any-return]
        except BrokenPipeError:
            raise
        except Exception as exc:  # (closed under us: ValueError; None: AttributeError)
            raise OutputError(getattr(exc, "strerror", None) or str(exc)) from None

    def flush(self) -> None:
        try:
            (self.target if self.target is not None else sys.stdout).flush()
        except BrokenPipeError:
            raise
        except Exception as exc:
            raise OutputError(getattr(exc, "strerror", None) or str(exc)) from None


STDOUT: Any = _Stdout()


def _say(*lines: str) -> None:
    for line in lines:
        print(line, file=STDOUT)


def _warn(line: str) -> None:
    """One line on standard error, escaped (``one_line``), if there is one (closed: no fail);
    in one write (a signal between its text and its newline glued the next line to it)."""
    if sys.stderr is not None:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(f"rollback-lessons: {one_line(line)}\n")


def _quiet_stdout() -> None:
    """What stdout still buffers goes nowhere: no second error when Python flushes at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # (no file behind it: nothing to flush)
        pass
