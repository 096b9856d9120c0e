"""The SDK's native runtime kept for the process's life, so the process can always end
(attack61 H1), and its threads out of Python before the interpreter finalizes (ci45).

A process stopped as a worker's calls run (a SIGTERM handler's ``sys.exit``, two Ctrl-Cs)
may leave that worker's native side unfinished. Its runtime is then dropped at the
interpreter's end (the last client's deallocation), and that drop waits for the worker's
workflow thread, which waits for nothing: the process hangs for ever, past its signals.
Keeping one reference to the runtime that is never given back means it is never dropped:
the process exits as any other, its native threads ending with it.

Those threads hand each call's end to Python (the event loop's ``call_soon_threadsafe``),
releasing the GIL as they write to the loop's wake-up socket. One still inside that when the
interpreter finalizes (starved of CPU on a loaded machine, the loop's last event: the dev
server's shutdown) is stopped there by CPython as it asks for the GIL back, and the SDK's
native frames it unwinds release a GIL never taken: "Fatal Python error: PyGILState_Release"
or a SIGSEGV, status -6 or -11, after everything was said (temporalio/sdk-python#300). So the
process's end waits for those threads to leave Python first (``leave_python``), bounded.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time

from temporalio.client import Client
from temporalio.runtime import Runtime

_PINNED: list[object] = []  # (each kept one reference more than this list holds)

LEAVE_WITHIN = 2.0
"""Seconds the process's end waits for native threads to leave Python (one that never does,
another library's: the process ends all the same, as before)."""


def pin_runtime(client: Client) -> None:
    """Keep ``client``'s native runtime alive until the process ends (once per runtime)."""
    pin(client.service_client.config.runtime or Runtime.default())


def pin(runtime: Runtime) -> None:
    """Keep ``runtime``'s native side alive until the process ends, from when it is made: a
    Ctrl-C as a dev server started (no client yet) left it to the interpreter's end, in a
    traceback's frames, and its drop there waited for ever on the start's native task,
    which could no longer enter Python (attack115 F1: the process hung)."""
    native = getattr(getattr(runtime, "_core_runtime", None), "_ref", None)  # (the SDK's
    if native is None:  # private parts: another SDK version may name them otherwise, and
        return  # a runner must still start; the exit then is as it was before this)
    if any(kept is native for kept in _PINNED):
        return
    _PINNED.append(native)  # a module's global is cleared at the interpreter's end: the
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(native))  # reference it never gives back


def _native_in_python() -> list[int]:
    """Threads running Python that ``threading`` did not start (native ones: the SDK's; a
    ``_DummyThread`` is how ``threading`` names one that asked for its current thread)."""
    started = {t.ident for t in threading.enumerate() if not isinstance(t, threading._DummyThread)}
    return [ident for ident in sys._current_frames() if ident not in started]


def leave_python(within: float = LEAVE_WITHIN) -> None:
    """Wait, the GIL released, until no native thread runs Python (or ``within`` seconds): at
    the process's end, before the interpreter finalizes, where none may (module docstring)."""
    if not _PINNED:  # (no runtime of the SDK's made here: no native thread of its)
        return
    end = time.monotonic() + within
    while _native_in_python() and time.monotonic() < end:
        time.sleep(0.001)  # (no event to wait on: a native thread tells nothing when it leaves)
