"""How the command-line process ends, once its command's work is done and recorded: its output
flushed, the exit handlers run (logging's, and those a registry module or its client library
registered), then ``os._exit`` with the command's status. Python's own finalisation would run
the handlers with its default Ctrl-C handling, then restore SIG_DFL: a Ctrl-C in that window
ended the process with no line at all (killed by SIGINT), or printed a handler's traceback and
exited 0 (attack39 F1). Here a Ctrl-C or a ``sys.exit`` anywhere in it is one line, and the
status says so (130 for a Ctrl-C, 143 for a SIGTERM; a ``sys.exit`` keeps a failure code,
else 2)."""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ._starting import Terminated, raised_by_code

AT_END = "{} came as the process ended, its command's work done and recorded"

HANDLERS_WAIT = 5.0
"""How long the exit handlers (and the pools they stop) may take once the command is done
(``cli.run``: what is left of its ``THREAD_WAIT``, ``HANDLERS_LEAST`` at least)."""

HANDLERS_LEAST = 1.0


def ended(
    code: int,
    warn: Callable[[str], None],
    exit_status: Callable[[Any], int],
    within: float = HANDLERS_WAIT,
) -> int:
    """Flush, run the exit handlers under this rule (for ``within`` seconds at most), flush;
    the status to end with. ``exit_status``: an interrupt's status (``cli.interrupted_by``'s:
    130, 143, a code)."""
    cut: list[BaseException] = []
    hook = sys.unraisablehook

    def heard(raised: Any) -> None:  # (a handler's error: atexit reports it here)
        error = raised.exc_value
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            cut.append(error)
            return
        try:  # one line, not Python's traceback (attack45 L1); the command's status stands
            said = f"{type(error).__name__}: {error}" if error is not None else "an error"
            warn(f"an exit handler raised {said} as the process ended, its command's work "
                 "done and recorded")  # fmt: skip
        except BaseException:
            hook(raised)

    watchdog = threading.Timer(within, _gave_up, (code, warn))
    watchdog.daemon = True
    try:
        with contextlib.suppress(Exception):  # (a closed output: said by the command)
            sys.stdout.flush()
        sys.unraisablehook = heard
        watchdog.start()  # (a handler waiting for ever: multiprocessing's, attack186 F1)
        atexit._run_exitfuncs()
    except (KeyboardInterrupt, SystemExit) as exc:  # (between two handlers, or around)
        cut.append(exc)
    finally:
        sys.unraisablehook = hook
        watchdog.cancel()
    _waited_out(watchdog)
    if cut:
        with contextlib.suppress(BaseException):
            at_end(cut[0], code, warn)
        code = code or exit_status(cut[0])
    held: list[BaseException] = []  # (a Ctrl-C as they are stopped: said once they are)
    with contextlib.suppress(BaseException):  # (multiprocessing's handler, cut, left them)
        if stopped := stop_children(held=held):
            warn(f"{_workers(stopped)} a registry left running stopped as the process ended")
    if held and not cut:
        with contextlib.suppress(BaseException):
            at_end(held[0], code, warn)
        code = code or exit_status(held[0])
    with contextlib.suppress(BaseException):
        sys.stderr.flush()
    return code


def _workers(n: int) -> str:
    return f"{n} worker process{'es' * (n != 1)}"


GIVING_UP = threading.Lock()
"""Held by ``_gave_up`` to the process's end: the handler it gave up on, returning once its
children were stopped, ends here (``_waited_out``), never the process before its line is
said (attack197 F1: 5 of 8, no line)."""


def _waited_out(watchdog: threading.Timer) -> None:
    """Once the handlers returned (or were cut): if the watchdog gave up on them meanwhile,
    wait here for it to end the process with its line."""
    if watchdog.finished.is_set() and GIVING_UP.locked():  # (cancelled, or it ran)
        while True:
            with contextlib.suppress(KeyboardInterrupt, SystemExit):  # (held: it ends all)
                GIVING_UP.acquire()


def _gave_up(code: int, warn: Callable[[str], None]) -> None:
    """The exit handlers still ran when their time was up: said, the worker processes of a
    registry's pools still running stopped (``stop_children``), and the process ends with
    the command's own status (a registry's process pool waiting on a job for ever)."""
    GIVING_UP.acquire()
    with contextlib.suppress(BaseException):
        stopped = stop_children()
        warn("the exit handlers still ran after the command ended (a registry's pool or "
             "client?): the process ends without them"
             + (f", its {_workers(stopped)} stopped" if stopped else ""))  # fmt: skip
        sys.stderr.flush()
    os._exit(code)


def stop_children(within: float = 1.0, held: list[BaseException] | None = None) -> int:
    """Stop the processes ``multiprocessing`` started here still running (a registry's pool
    workers on a job that never ends): SIGTERM, then SIGKILL past ``within`` seconds. Left,
    they ran an undo's work on after the command had ended and let go of its sagas' claims,
    for the next ``recover`` to run beside them (attack190). Done on a thread of its own,
    which no signal cuts: a Ctrl-C or SIGTERM meanwhile is held (``held``), the stop goes on
    (attack191 F1: a second one cut it, and the worker ran on). How many there were."""
    done: list[int] = []
    over = threading.Event()  # (not ``join``: 3.11's, cut by a Ctrl-C, took the thread ended)

    def stop() -> None:
        try:
            done.append(_stop_children(within))
        finally:
            over.set()

    threading.Thread(target=stop, name="children-stop", daemon=True).start()
    while True:
        try:
            while not over.wait():
                pass
            break
        except (KeyboardInterrupt, SystemExit) as exc:
            if held is not None:
                held.append(exc)
    return done[0] if done else 0


def _stop_children(within: float) -> int:
    mp = sys.modules.get("multiprocessing")
    if mp is None:
        return 0
    _no_new_workers()
    stopped: list[Any] = []
    for again in (False, True, True):  # (a worker forked as the last was stopped: too)
        children = [c for c in mp.active_children() if c not in stopped]
        if not children:
            break
        for child in children:
            with contextlib.suppress(Exception):
                (child.kill if again else child.terminate)()
        end = time.monotonic() + within
        for child in children:
            with contextlib.suppress(Exception):
                child.join(max(0.0, end - time.monotonic()))
                if child.is_alive():
                    child.kill()
                    child.join(within)
        stopped += children
    return len(stopped)


def _no_new_workers() -> None:
    """A ``multiprocessing.Pool``'s worker handler forks a new worker for each one that ends,
    until the pool is terminated (its own exit handler, cut or never reached, does it):
    told to stop first (attack191 F2: the workers it forked as the old ones were stopped
    outlived the command, holding its output open)."""
    pool = sys.modules.get("multiprocessing.pool")
    if pool is None:
        return
    for thread in threading.enumerate():
        if getattr(getattr(thread, "_target", None), "__name__", "") == "_handle_workers":
            thread._state = pool.TERMINATE  # type: ignore[attr-defined]


_SAID: list[bool] = []


def at_end(exc: BaseException, code: int, warn: Callable[[str], None]) -> None:
    """``exc`` cut the process's end: said (``AT_END``) if the command's work was done (it
    succeeded, or said it finished: ``durable.command.DONE``); after a command that was
    interrupted or failed, its one line said already what was done: no second, false one
    (attack66 F5)."""
    done = getattr(sys.modules.get("rollback_lessons.durable.command"), "DONE", None)
    if (code == 0 or done) and not _SAID:
        _SAID.append(True)  # (once: a second Ctrl-C as the handlers run, attack197 F3)
        warn(AT_END.format(came(exc)))


def came(exc: BaseException) -> str:
    """What cut the process's end, as ``AT_END`` says it."""
    kind = type(exc := interrupt_in(exc))
    if issubclass(kind, Terminated):
        return "a SIGTERM"
    if not issubclass(kind, KeyboardInterrupt | SystemExit):
        return f"an error ({kind.__name__})"
    if not issubclass(kind, KeyboardInterrupt):
        return "a sys.exit"
    return "a KeyboardInterrupt (raised; no Ctrl-C was sent)" if raised_by_code() else "a Ctrl-C"


def stop_pools(within: float) -> None:
    """Threading's own exit hooks, which Python runs before it waits for threads (the
    program ends by ``os._exit``): concurrent.futures' pools told to stop and their workers
    joined, within ``within`` seconds (attack186 F1: a registry's process pool, never told,
    left multiprocessing's exit handler waiting for its idle worker for ever)."""
    hooks = list(getattr(threading, "_threading_atexits", []))
    if not hooks:
        return
    stopping = threading.Thread(
        target=lambda: [hook() for hook in reversed(hooks)], name="pools-stop", daemon=True
    )
    stopping.start()
    stopping.join(within)


def threads_left(waited: str, warn: Callable[[str], None]) -> None:
    """Threads not ours still running as the process ends (a registry's), said in one line."""
    me = threading.current_thread()
    left = [t.name for t in threading.enumerate() if t.is_alive() and not t.daemon and t != me]
    if left:
        warn(
            f"thread{'s' * (len(left) != 1)} {', '.join(map(repr, left))} (not ours: the "
            "registry's?) "
            f"{waited if len(left) != 1 else waited.replace('were ', 'was ', 1)}; the process "
            f"ends without {'it' if len(left) == 1 else 'them'} (what "
            "the command did is recorded)"
        )


def interrupt_in(exc: BaseException) -> BaseException:
    """The Ctrl-C, SIGTERM or ``sys.exit`` that ``exc`` stands for: itself, or the one it was
    raised while handling (threading's ``Condition.wait``, a signal's KeyboardInterrupt
    landing as it began, raises RuntimeError('release unlocked lock') over it: told "a
    sys.exit came", attack286 F8); ``exc`` if none."""
    seen: BaseException | None = exc
    for _ in range(20):  # (a chain that loops: its first links only)
        if seen is None:
            break
        if issubclass(type(seen), KeyboardInterrupt | SystemExit):  # (its type: a __class__
            # that raises is read by none of this, test_class_by_type)
            return seen
        seen = seen.__context__
    return exc
