"""One attempt of a journaled undo during ``recover``, made as the run would have made it
(awaited, timed, a generator refused): kept apart from ``recovery``, which decides what
runs; this only calls it."""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import os
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from .._results import _loop_here, awaited, checked, handed_off, on_a_loop, what
from .._timed import within
from ..calls import call_timed, is_async, refused
from .records import UndoRecord
from .registry import call_compensation

LEFT: dict[tuple[str, ...], tuple[object, Callable[[], bool]]] = {}
"""Per (journal, saga, step), an undo call a ``recover`` left running in this process as it
stopped (an interrupt a notebook or a service caught, or the call's timeout): how to tell
its work ended (and the recover that left it: its own rule, ``calls.refused``, says it in
that one). A later recover here never makes it again while it runs (attack90 F5: the
refund made twice at once, the first recover's pool work still running)."""
_LEFT_LOCK = threading.Lock()
LEFT_HERE = "left running in this process by a recover that stopped (interrupted, or timed out)"


def run_undo(
    fn: Callable[..., Any],
    undo: UndoRecord,
    timeout: float | None,
    owner: object = None,
    where: tuple[str, str] | None = None,
) -> None:
    """One attempt of an undo, as the run would have made it: a coroutine it returns is
    awaited (``saga.arun`` awaits it too), a generator is the in-process drivers' error (its
    body never ran: a failed attempt), and past ``timeout`` seconds the attempt failed (an
    awaited undo is cancelled; a blocking one goes on in its helper thread, as in process).
    A call left running so (a blocking one, or an awaited one that would not stop) is never
    made again for ``owner`` (this recover of this saga): its further attempts fail at once,
    never two refunds at once (attack84 F4); ``where`` (its journal, its saga): nor by a
    later recover in this process while it runs (``LEFT``)."""

    blocked = _loop_here()  # (the caller's, blocked while recover runs: attack88 F4, a
    # Task of it handed back in the timeout's helper thread was waited for there)
    key = None if where is None else (*where, undo.step)
    _not_left(key, undo.step, owner)
    ends: list[Callable[[], bool]] = []  # how to tell its work ended (the first: all of it)
    given: list[Any] = []  # what the call gave back (work handed back: its end, ``_ended``)

    def attempt() -> None:
        if timeout is not None and (left := refused(owner, "undo", undo.step, timeout)):
            raise left
        given.append(call_compensation(fn, undo.args, undo.key))  # (kept at once: a
        result = given[-1]  # Ctrl-C from here on leaves it known, attack90 F5)
        if on_a_loop(result) or handed_off(result):  # (work handed back: waited for where
            checked(result, "undo", undo.step, blocked)  # it runs, or cancelled: attack86 F4)
        elif inspect.isawaitable(result):
            _await(result, timeout, undo.step, owner, blocked, ends)
        elif result is not None:
            checked(result, "undo", undo.step)

    def whole() -> None:  # (the timed call's helper thread: its end is the whole call's)
        try:
            attempt()
        finally:
            over.set()

    over = threading.Event()
    try:
        if timeout is None or is_async(fn):
            attempt()
        else:  # (in its helper thread with this one's context: a recover it calls is nested)
            ends.append(over.is_set)
            call_timed(contextvars.copy_context().run, (whole,), "undo", undo.step, timeout, owner)
    except BaseException:
        if given and (on_a_loop(given[-1]) or handed_off(given[-1])):
            ends.append(partial(_ended, given[-1]))
        if key is not None and ends and not ends[0]():  # (it goes on: cut, or timed out)
            with _LEFT_LOCK:
                LEFT[key] = (owner, ends[0])
        raise


def file_id(path: object) -> str:
    """The journal's file, whatever its path's spelling (relative, a symlink: attack96 F3,
    a second recover given another name called the undo again while it ran)."""
    try:
        found = os.stat(str(path))
        return f"{found.st_dev}:{found.st_ino}"
    except OSError:
        return os.path.realpath(str(path))


def left_running(journal: str) -> set[str]:
    """The sagas of ``journal`` (its ``file_id``) a call of which a recover left running
    here, still running."""
    return {key[1] for key, (_, ended) in list(LEFT.items()) if key[0] == journal and not ended()}


def _not_left(key: tuple[str, ...] | None, step: str, owner: object) -> None:
    """Refuse the attempt while a call of this undo another recover left runs here."""
    if key is None:
        return
    left = LEFT.get(key)  # (the lock only to drop an ended call's: attack118 F1, a lock
    if left is not None and left[1]():  # left held by a Ctrl-C hung every later recover)
        with _LEFT_LOCK:
            if LEFT.get(key) is left:
                del LEFT[key]
        left = None
    if left is not None and left[0] is not owner:
        raise TimeoutError(
            f"{what('undo', step)} not called again: its call, {LEFT_HERE}, may still "
            "complete (or has)"
        )


def _ended(work: Any) -> bool:
    """Has work handed back ended, and the work it gave back in turn (``checked`` waits
    for the last of such a chain)?"""
    while True:
        if not (work.done() if hasattr(work, "done") else work.ready()):
            return False
        try:
            work = work.result(0) if hasattr(work, "exception") else work.get(0)
        except BaseException:  # (it failed, or was cancelled: over)
            return True
        if not (on_a_loop(work) or handed_off(work)):
            return True


def _await(
    awaitable: Any,
    timeout: float | None,
    step: str,
    owner: object = None,
    blocked: Any = None,
    ends: list[Callable[[], bool]] | None = None,
) -> None:
    """Await an undo's awaitable to its end (``recover`` is synchronous), on an event loop
    of its own in a daemon thread, from any thread (a notebook's has a running loop).

    Past ``timeout`` the awaited call is cancelled and the attempt fails (``within``, as in
    process); one that will not stop (it swallows the cancellation) is left behind on that
    loop, which goes on in its thread, nobody waiting for it, as a blocking undo goes on in
    its helper thread. (``asyncio.run`` would wait for it at its shutdown: forever.)"""
    import asyncio

    blocked = blocked or _loop_here()  # (the caller's: a Task of it cannot be waited for)

    async def main() -> None:
        whole = awaited(awaitable, "undo", step, blocked)  # (to its end, as in process)
        await (whole if timeout is None else within(whole, timeout, "undo", step, owner))

    loop = asyncio.new_event_loop()
    task = loop.create_task(main())  # (its thread has not started: nothing runs it yet;
    # it runs in this thread's context, copied: a recover it calls is a nested one)
    error: list[BaseException] = []
    settled = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            try:
                loop.run_until_complete(task)
            except BaseException as exc:  # told in the caller's thread, whatever it is
                error.append(exc)
            settled.set()
            left = asyncio.all_tasks(loop)
            if left:  # an undo that would not stop: it goes on here, its outcome dropped
                loop.run_until_complete(asyncio.wait(left))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            settled.set()
            asyncio.set_event_loop(None)
            loop.close()

    thread = threading.Thread(target=serve, name=f"rollback-lessons undo of {step!r}", daemon=True)
    thread.start()
    if ends is not None:  # (its loop's thread ends once every task of it did)
        ends.append(lambda: not thread.is_alive())
    try:
        settled.wait()
    except BaseException:  # a Ctrl-C while it runs: its call is cancelled, as in process
        with contextlib.suppress(RuntimeError):  # (the loop closed meanwhile: it ended)
            loop.call_soon_threadsafe(task.cancel)
        raise
    if error:
        raise error[0]


def text_cut(cut: BaseException, error: BaseException) -> bool:
    """Was ``cut`` (heard as recover told an undo's ``error``) raised by that error's own
    ``repr`` or ``str``, a method of its type in ``cut``'s traceback (attack91 F5: a
    KeyboardInterrupt from there was told as a Ctrl-C nobody sent, the undo unnamed)?"""
    codes = set()
    for name in ("__repr__", "__str__"):
        with contextlib.suppress(Exception):
            codes.add(getattr(type(error), name).__code__)
    tb = cut.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code in codes:
            return True
        tb = tb.tb_next
    return False


def type_name(error: BaseException) -> str:
    """The name of ``error``'s type, never raising (its repr may)."""
    try:
        return str(type(error).__qualname__)
    except Exception:
        return "an exception"
