"""A Ctrl-C while the command line tool is still starting (importing the package, before
``cli.main`` can catch anything) is one line and exit 130, like a Ctrl-C later: nothing has
been done yet, so the process just ends. Installed by the package's ``__init__`` first of
all, and only when this process *is* the command (``rollback-lessons ...`` or ``python -m
rollback_lessons ...``): importing the package anywhere else changes no signal handler.
Importing this module installs it (the package imports it before anything else)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from types import FrameType

_LINE = b"rollback-lessons: interrupted (Ctrl-C)\n"


def _interrupted(signum: int, frame: FrameType | None) -> None:
    with contextlib.suppress(OSError):
        os.write(2, _LINE)
    os._exit(130)


def _is_the_command() -> bool:
    argv = list(getattr(sys, "orig_argv", []))
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "-m":
            return argv[i + 1 : i + 2] == ["rollback_lessons"]
        if arg.startswith("-m"):
            return arg == "-mrollback_lessons"
        if arg == "-c" or not arg.startswith("-"):  # code, or a script: which one is below
            break
        i += 2 if arg in ("-X", "-W") else 1  # (the options that take a value)
    return os.path.basename(sys.argv[0] if sys.argv else "") == "rollback-lessons"


def install() -> None:
    """While starting: a Ctrl-C ends the process with one line (exit 130)."""
    if _is_the_command() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        with contextlib.suppress(ValueError):  # (not the main thread: not the command)
            signal.signal(signal.SIGINT, _interrupted)


def started() -> None:
    """``cli.main`` catches a Ctrl-C from here on (KeyboardInterrupt, as Python raises it)."""
    if signal.getsignal(signal.SIGINT) is _interrupted:
        signal.signal(signal.SIGINT, signal.default_int_handler)


install()
