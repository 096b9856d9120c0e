"""A Ctrl-C while the command line tool is still starting (importing the package, before
``cli.main`` can catch anything) is one line and exit 130, like a Ctrl-C later: nothing has
been done yet, so the process just ends. A SIGTERM (a service manager's stop, ``kill``, a CI
timeout) likewise, exit 143; once started, it is heard as a Ctrl-C is (``Terminated``).
Installed by the package's ``__init__`` first of all, and only when this process *is* the
command (``rollback-lessons ...`` or ``python -m rollback_lessons ...``): importing the
package anywhere else changes no signal handler.
Importing this module installs it (the package imports it before anything else)."""

# only modules Python has loaded before any script runs (``_signal``, not ``signal``, which
# imports ``enum``): the gap before the handler is installed is as short as the package can
# make it. (Python's own start-up, before the command's first line, is not the package's.)
import _signal as signal
import os
import sys

_LINE = b"rollback-lessons: interrupted (Ctrl-C)\n"
_TERM_LINE = b"rollback-lessons: interrupted (SIGTERM)\n"


class Terminated(KeyboardInterrupt):
    """A SIGTERM during the command: a Ctrl-C in all it does (what ran recorded, claims
    left for the next recover, nothing finalised that was not done), said as a SIGTERM and
    exit 143 (128 + 15). Without it SIGTERM's default action ended the command with no line."""


def _interrupted(signum: int, frame: object) -> None:
    _end(_settling(_LINE), 130)


def _terminated_early(signum: int, frame: object) -> None:
    _end(_settling(_TERM_LINE), 143)


def _settling(line: bytes) -> bytes:
    """A settle's line says whether the saga is settled (attack291 F2: said only
    "interrupted"): none is while the package loads."""
    words = [arg for arg in sys.argv[1:] if not arg.startswith("-")]
    if words[:2] != ["journal", "settle"]:
        return line
    return line[:-1] + b" before the settle was written: nothing was settled\n"


def _end(line: bytes, status: int) -> None:
    try:  # noqa: SIM105 (contextlib is not imported here: a module of its own to load)
        os.write(2, line)
    except OSError:
        pass
    os._exit(status)


HELD: list[int] = []
"""The signals heard while an interrupt was being handled (``handling``): noted, not raised."""


HEARD: list[int] = []
"""Every signal the command's own handlers heard (``_interrupt``, ``_terminate``)."""


def _interrupt(signum: int, frame: object) -> None:
    HEARD.append(signum)
    if not _noted(signum, frame):
        raise _own(KeyboardInterrupt())


def _terminate(signum: int, frame: object) -> None:
    HEARD.append(signum)
    if not _noted(signum, frame):
        raise _own(Terminated())


def _own(exc: KeyboardInterrupt) -> KeyboardInterrupt:
    """``exc`` marked as raised by the command's own handler: only its handling holds a
    second signal (attack71 F4: a ``sys.exit`` in an undo held every later one)."""
    exc.own_signal = True  # type: ignore[attr-defined]
    return exc


def _noted(signum: int, frame: object) -> bool:
    """Is this signal only noted (``HELD``): heard as the package's own code handles the
    command's own interrupt (``handling``), or as the handler of another one runs (two at
    once: Python calls the second as the first's begins, before it has raised)?"""
    at = frame
    while at is not None and getattr(at, "f_code", None) not in _HANDLERS:
        at = getattr(at, "f_back", None)
    if at is None and not handling():
        return False
    HELD.append(signum)
    return True


_HOME = os.path.dirname(os.path.abspath(__file__)) + os.sep


def handling() -> bool:
    """Is the command's own interrupt (a Ctrl-C, a SIGTERM its handler raised: ``_own``; not
    a ``sys.exit``, whose clean-up a signal still cuts: attack71 F4) being handled here, by
    the package's code (the frame that caught it: its traceback's first)? The exception being
    handled, or one it was raised while handling (its ``__context__``, ``__cause__``). From
    the first signal's handler on (its ``raise``: the handler, a ``finally``, a ``with``'s
    exit, the ``except`` that tells it), a second signal is only noted, so the first one's
    clean-up runs and its line is told (attack68 F1-F3: one that landed before a ``held``
    was entered cut that clean-up, or the line, or was a traceback). A registry's undo that
    caught a Ctrl-C and works in its ``except`` holds nothing: a signal held there was lost,
    the undo going on (attack71 F1)."""
    now = sys.exc_info()[1]
    at = getattr(now, "__traceback__", None)
    if at is None or not at.tb_frame.f_code.co_filename.startswith(_HOME):
        return False
    seen: set[int] = set()
    todo = [now]
    while todo:
        exc = todo.pop()
        if exc is None or id(exc) in seen:
            continue
        if isinstance(exc, KeyboardInterrupt) and getattr(exc, "own_signal", False):
            return True
        seen.add(id(exc))
        todo += [exc.__context__, exc.__cause__]
    return False


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
    """While starting: a Ctrl-C ends the process with one line (exit 130), a SIGTERM too
    (exit 143; one ignored, as a parent may have it, stays ignored)."""
    if not _is_the_command():
        return
    for signum, default, handler in (
        (signal.SIGINT, signal.default_int_handler, _interrupted),
        (signal.SIGTERM, signal.SIG_DFL, _terminated_early),
    ):
        try:
            if signal.getsignal(signum) == default:
                signal.signal(signum, handler)
                OURS.add(signum)
        except ValueError:  # (not the main thread: not the command)
            return
    os.register_at_fork(after_in_child=_as_python_has_them)


OURS: set[int] = set()
"""The signals whose handler the command put in as it began (not one its starter ignored)."""


def _as_python_has_them() -> None:
    """A fork of the command (a registry's ``multiprocessing`` pool worker) is not the
    command: its Ctrl-C and SIGTERM are Python's again (attack190 F1: a pool's workers,
    stopped by SIGTERM as the command ended, raised ``Terminated`` in their job, a
    traceback each, and one left running survived a plain ``kill``)."""
    OURS.clear()
    for signum, default, ours in (
        (signal.SIGINT, signal.default_int_handler, (_interrupted, _interrupt)),
        (signal.SIGTERM, signal.SIG_DFL, (_terminated_early, _terminate)),
    ):
        try:
            if signal.getsignal(signum) in ours:
                signal.signal(signum, default)
        except ValueError:  # (forked from a thread Python does not take as the main one)
            pass


_HANDLERS = {f.__code__ for f in (_interrupt, _terminate, _own, _noted, handling)}


def started() -> None:
    """``cli.main`` catches a Ctrl-C from here on (KeyboardInterrupt, as Python raises it),
    and a SIGTERM as one (``Terminated``), to the process's end (``cli.run``); one heard as
    an interrupt is being handled, only noted (``handling``)."""
    if signal.getsignal(signal.SIGINT) is _interrupted:
        signal.signal(signal.SIGINT, _interrupt)
    if signal.getsignal(signal.SIGTERM) is _terminated_early:
        signal.signal(signal.SIGTERM, _terminate)
    if not STARTED:  # (the signals the command was started with blocked stay so)
        STARTED.append(set(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
        if OURS:  # (the command's: a Ctrl-C Python discards is kept, attack299 F2)
            sys.unraisablehook = _unraisable


def reclaimed(module: object) -> object:
    """``module`` (a registry) imported, or an undo of ``recover`` recorded (``kept``): if it
    put Python's default Ctrl-C handler back (it, or a library it loads), the signal's own
    default (``SIG_DFL``: a Ctrl-C then killed the command, no line, the undo it cut named
    nowhere: attack294 F5, 298 F1) or ignored it (``SIG_IGN``: every later one ignored,
    exit 0: attack299 F4), the command's own goes back in, SIGTERM's too; a signal it
    blocked (``pthread_sigmask``: never heard, exit 0: attack298 F2, 299 F5) is unblocked,
    so one sent meanwhile is heard now. The handler raises the same KeyboardInterrupt, and
    counts it: one an undo raises itself is told as such, never as a Ctrl-C nobody sent
    (attack286 F11). A handler of the registry's own is left alone; a signal the command's
    starter ignored or blocked stays so."""
    for signum, ours in ((signal.SIGINT, _interrupt), (signal.SIGTERM, _terminate)):
        now = signal.getsignal(signum)
        put_back = now == signal.SIG_DFL or now == signal.SIG_IGN
        if signum in OURS and (put_back or now is signal.default_int_handler):
            signal.signal(signum, ours)  # (default_int_handler: SIGINT's, or the registry's)
    if STARTED:
        mask = set(signal.pthread_sigmask(signal.SIG_BLOCK, []))
        blocked = {signal.SIGINT, signal.SIGTERM} & mask - STARTED[0]
        if blocked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
    if STARTED and OURS:  # (the command's own: attack300 F1, F3)
        _ours_again()
    return module


def _ours_again() -> None:
    """A registry's wakeup fd (``set_wakeup_fd``) dropped: one to a full pipe or a closed
    fd made every Ctrl-C a traceback of Python's before the command's line; the command
    keeps none. Its ``sys.unraisablehook`` put behind the command's (``_unraisable``), which
    hands it every error but the command's own Ctrl-C (else lost in a fork hook, exit 0)."""
    global _HOOK
    try:  # noqa: SIM105 (contextlib is not imported here: a module of its own to load)
        signal.set_wakeup_fd(-1)
    except ValueError:  # (not the main thread)
        pass
    if sys.unraisablehook is not _unraisable:
        _HOOK, sys.unraisablehook = sys.unraisablehook, _unraisable


STARTED: list[set[int]] = []
"""Set once the command has started (``started``): the signals blocked as it did."""


def kept() -> None:
    """Once an undo of the command's ``recover`` is recorded, and as the command's work
    ends: what the undo did to the command's Ctrl-C and SIGTERM undone (``reclaimed``),
    and one Python discarded meanwhile raised now (``SWALLOWED``)."""
    if not STARTED:
        return
    reclaimed(None)
    if SWALLOWED:
        cut = SWALLOWED[0]
        SWALLOWED.clear()
        raise cut


SWALLOWED: list[BaseException] = []
"""The command's own Ctrl-C or SIGTERM raised where Python discards what is raised (an
``os.fork`` hook, logging's: attack299 F2, the Ctrl-C lost, every undo run, exit 0; a
``__del__``): kept, raised by ``kept`` once the undo is recorded; if it is not within a
second (the undo blocks: a pool whose worker that Ctrl-C killed, attack300 F2), the signal
is sent again, to land in the undo."""
_HOOK = sys.unraisablehook
AGAIN_AFTER = 1.0


def _unraisable(unraisable: object) -> None:
    exc = getattr(unraisable, "exc_value", None)
    if issubclass(type(exc), KeyboardInterrupt) and getattr(exc, "own_signal", False):
        import threading

        SWALLOWED.append(exc)  # type: ignore[arg-type]
        again = threading.Timer(AGAIN_AFTER, _again, (exc,))
        again.daemon = True
        again.start()
    else:
        _HOOK(unraisable)  # type: ignore[arg-type]


def _again(exc: BaseException) -> None:
    if any(kept is exc for kept in SWALLOWED):  # (not raised yet: sent again)
        SWALLOWED.clear()
        os.kill(os.getpid(), signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)


def raised_by_code() -> bool:
    """Was the KeyboardInterrupt the command is ending with raised by code it ran (an undo's
    body, a registry's lookup: attack281 F3), not by a Ctrl-C? Only known while the
    command's own handler hears every Ctrl-C (a registry may have put its own in): then
    none has come."""
    return not HEARD and signal.getsignal(signal.SIGINT) is _interrupt


def unwrapped(exc: RuntimeError) -> BaseException:
    """The Ctrl-C (or ``sys.exit``) Python 3.11 wraps in a RuntimeError when it lands as a
    class is made ("Error calling __set_name__": a dataclass field, on a lazy import of
    the package's own modules: attack45 F3); any other RuntimeError as it is."""
    cause = exc.__cause__
    if type(exc) is RuntimeError and isinstance(cause, KeyboardInterrupt | SystemExit):
        return cause
    return exc


install()
