"""The SDK's native runtime kept for the process's life, so the process can always end
(attack61 H1).

A process stopped as a worker's calls run (a SIGTERM handler's ``sys.exit``, two Ctrl-Cs)
may leave that worker's native side unfinished. Its runtime is then dropped at the
interpreter's end (the last client's deallocation), and that drop waits for the worker's
workflow thread, which waits for nothing: the process hangs for ever, past its signals.
Keeping one reference to the runtime that is never given back means it is never dropped:
the process exits as any other, its native threads ending with it.
"""

from __future__ import annotations

import ctypes

from temporalio.client import Client
from temporalio.runtime import Runtime

_PINNED: list[object] = []  # (each kept one reference more than this list holds)


def pin_runtime(client: Client) -> None:
    """Keep ``client``'s native runtime alive until the process ends (once per runtime)."""
    runtime = client.service_client.config.runtime or Runtime.default()
    native = getattr(getattr(runtime, "_core_runtime", None), "_ref", None)  # (the SDK's
    if native is None:  # private parts: another SDK version may name them otherwise, and
        return  # a runner must still start; the exit then is as it was before this)
    if any(kept is native for kept in _PINNED):
        return
    _PINNED.append(native)  # a module's global is cleared at the interpreter's end: the
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(native))  # reference it never gives back
