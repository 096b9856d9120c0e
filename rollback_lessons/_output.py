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
    """Standard output for the command's own printing: a write that fails is OutputError
    (a reader that stopped early stays a BrokenPipeError: it ends quietly)."""

    def write(self, text: str) -> int:
        try:
            return sys.stdout.write(text)
        except BrokenPipeError:
            raise
        except (OSError, ValueError) as exc:  # (ValueError: closed under us)
            raise OutputError(getattr(exc, "strerror", None) or str(exc)) from None

    def flush(self) -> None:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            raise
        except (OSError, ValueError) as exc:
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
