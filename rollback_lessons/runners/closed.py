"""``RunnerClosed``: a runner is closed. Every runner refuses a call after its ``close()``
before anything runs (attack41 F5: a closed DBOS runner ran its saga in the file of the runner
open now, a closed Step Functions runner sent it to AWS, a closed Temporal runner told of a
server to start again); DBOS also says so of a run its close stopped."""

from __future__ import annotations

import contextlib
import gc
import signal
import sys
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from .._held import held as _held
from ..errors import RollbackLessonsError

weakref_file = weakref.__file__  # (``weakref.finalize``'s frames: the finalizer's callers)


class RunnerClosed(RollbackLessonsError):
    """The runner is closed: a call made on it after ``close()`` (``refusing``: nothing ran),
    or, on DBOS, a run it stopped by closing while the saga waited or ran a step (``of``: left
    unfinished on the file, for the next launch there; attack21's D2, attack24's M1)."""

    @classmethod
    def refusing(cls, runner: object, call: str, where: str = "") -> RunnerClosed:
        """``runner.call(...)`` after the runner's ``close()`` (``where``: what it ran on)."""
        kind = type(runner).__name__
        on = f" ({where})" if where else ""
        return cls(
            f"this {kind}{on} was closed: {call}() refused, nothing was done; "
            f"start another ({kind}.start(...))"
        )

    @classmethod
    def stopping(cls, runner: object, saga: str, where: str = "") -> RunnerClosed:
        """Saga ``saga``'s, run on ``runner`` in this thread as another closed it: it stops
        there (attack96 F7: it said "nothing was done" of its next call, beside notes
        naming the steps it did)."""
        kind = type(runner).__name__
        on = f" ({where})" if where else ""
        return cls(
            f"this {kind}{on} was closed while saga {saga!r} ran on it: the saga stopped "
            "there, nothing more run (its notes name what it did and what is not undone)"
        )

    @classmethod
    def of(cls, run_id: str, path: Path | None, ran: bool = False, waited: str = ""
           ) -> RunnerClosed:  # fmt: skip
        """Saga ``run_id``'s, left unfinished on ``path`` (``ran``: while a step ran;
        ``waited``: what it waited for, its branches at once: their steps may have run)."""
        where = f" on {path}" if path is not None else ""
        if waited.startswith("its branches"):  # (attack97 F7: "waited", a branch running)
            return cls(
                f"the runner closed while saga {run_id!r} waited for {waited}; it is left "
                f"unfinished{where}, the steps of those branches that ran unsaved: a launch "
                "there goes on with it"
            )
        if ran:
            return cls(
                f"the runner closed while saga {run_id!r} ran a step; it is left unfinished"
                f"{where}, that step unsaved: a launch there goes on with it"
            )
        return cls(
            f"the runner closed while saga {run_id!r} waited; it is left unfinished{where}: "
            "a launch there goes on with it"
        )


STOPS = (
    "each stops once its step's call returns (at once if it waits), nothing more undone: "
    "its RunnerClosed's notes name what it did"
)
GOES_ON = "each goes on in its thread to its end (SpiffWorkflow is a library: nothing to stop)"


class RunsLeft(RuntimeWarning):
    """A runner closed while sagas ran on it in other threads (Step Functions, BPMN): what
    becomes of them is said at the close, not only by their own threads later (attack94 F2)."""


class Closable:
    """What a runner keeps of its close: ``_refuse_if_closed`` at the top of each call; the
    sagas running on it (``_running``), named by ``_left`` as it closes."""

    _closed = False

    @contextlib.contextmanager
    def _running(self, saga: str) -> Iterator[None]:
        runs: list[str] = self.__dict__.setdefault("_runs", [])
        mine: dict[int, list[str]] = self.__dict__.setdefault("_mine", {})
        runs.append(saga)
        here = mine.setdefault(threading.get_ident(), [])  # (innermost last: a step of one
        here.append(saga)  # may run another on it, attack100 F6)
        try:
            yield
        finally:
            runs.remove(saga)
            here.pop()
            if not here:
                mine.pop(threading.get_ident(), None)

    def _left(self, what: str) -> None:
        """Name the sagas still running as it closes, and ``what`` becomes of them (once)."""
        runs = list(self.__dict__.get("_runs", ()))
        if runs and not self._closed:
            names = ", ".join(map(repr, runs))
            many = "sagas" if len(runs) > 1 else "saga"
            warnings.warn(RunsLeft(f"{type(self).__name__} closed while {len(runs)} {many} "
                                   f"still ran on it ({names}): {what}"), stacklevel=3)  # fmt: skip

    def _where(self) -> str:
        """What this runner runs on, in words (for ``RunnerClosed``)."""
        return ""

    def _refuse_if_closed(self, call: str) -> None:
        """``RunnerClosed`` (one line, nothing run) once ``close()`` began."""
        if self._closed:
            saga = running_here(self)
            if saga is not None:  # (a saga this thread runs on it: it stops there)
                raise RunnerClosed.stopping(self, saga, self._where())
            raise RunnerClosed.refusing(self, call, self._where())


def running_here(runner: object) -> str | None:
    """The saga this thread runs on ``runner`` (``Closable._running``; the innermost), if any."""
    here = getattr(runner, "__dict__", {}).get("_mine", {}).get(threading.get_ident())
    return here[-1] if here else None


class Gone:
    """Stands for a closed runner's client: any use of it is ``RunnerClosed``. A run served
    from another thread as the runner closed sends nothing more (Step Functions: moto's mock
    ended, its boto3 client would have reached AWS itself)."""

    def __init__(self, runner: object, where: str) -> None:
        self._runner, self._where = runner, where

    def __getattr__(self, name: str) -> Any:
        saga = running_here(self._runner)
        if saga is not None:  # (the saga this thread runs: named, as ``stopping`` says it,
            raise RunnerClosed.stopping(self._runner, saga, self._where)  # attack99 F1)
        raise RunnerClosed(
            f"this {type(self._runner).__name__} ({self._where}) was closed while a saga ran "
            f"on it: its request {name} was not sent, and nothing more of that run is done"
        )


@contextlib.contextmanager
def collected() -> Iterator[None]:
    """Drop a runner's clients here and collect them at once, a Ctrl-C (or SIGTERM) heard
    meanwhile kept and delivered again as it ends: a library's finalizer (urllib3's pools)
    runs Python code, and a KeyboardInterrupt raised inside one is dropped by Python
    ("Exception ignored"), the script going on (attack56 F4); kept, it is raised after, in
    ``close``."""
    kept: list[int] = []
    try:
        with _held(kept):
            yield
            gc.collect()
    finally:
        for signum in dict.fromkeys(kept):
            signal.raise_signal(signum)  # (its own handler now: a KeyboardInterrupt here)


def stop_dropped(stop: Callable[[], None]) -> None:
    """A runner's finalizer (dropped unclosed): ``stop`` its server, a Ctrl-C (or SIGTERM)
    heard meanwhile kept, and delivered once the finalizer has returned, where the program
    was (``_later``). Raised in the finalizer, it was dropped by Python and cut the stop:
    the server ran on until the process ended (attack61 M3)."""
    here = sys._getframe()
    kept: list[int] = []
    try:
        with _held(kept):
            stop()
    finally:
        if kept:
            _later(list(dict.fromkeys(kept)), here)


def _later(signums: list[int], finalizer: FrameType) -> None:
    """Deliver ``signums`` again at the program's first event (a call, a return) outside
    ``finalizer`` and what it, or ``weakref``'s frames (finalizers the same drop runs),
    called: a profile function, this thread's only until then, raises them there with
    their own handlers."""
    previous = sys.getprofile()

    def deliver(frame: FrameType, event: str, arg: object) -> None:
        at: FrameType | None = frame
        while at is not None:
            if at is finalizer or at.f_code.co_filename == weakref_file:
                return
            at = at.f_back
        sys.setprofile(previous)
        for signum in signums:
            signal.raise_signal(signum)

    sys.setprofile(deliver)


def closed_under(runner: object, exc: BaseException, where: str) -> RunnerClosed | None:
    """What a run ends with that ``exc`` cut as its runner closed under it: a request of its
    that met the close inside the engine (moto's own error, its execution stopped by the
    close: attack196) is ``RunnerClosed``, as one the closed client refused is, its notes
    kept; None for any other error (one that is already, AWS's), or a Ctrl-C."""
    gone = getattr(runner, "_closed", False) and getattr(runner, "where", "") != "aws"
    saga = running_here(runner)
    if not gone or saga is None or not isinstance(exc, Exception) or isinstance(exc, RunnerClosed):
        return None
    closed = RunnerClosed.stopping(runner, saga, where)
    for note in getattr(exc, "__notes__", ()):
        closed.add_note(note)
    return closed
