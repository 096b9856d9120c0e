"""One attempt of a journaled undo during ``recover``, made as the run would have made it
(awaited, timed, a generator refused): kept apart from ``recovery``, which decides what
runs; this only calls it."""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import threading
from collections.abc import Callable
from typing import Any

from .._results import _loop_here, awaited, checked, handed_off, on_a_loop
from .._timed import within
from ..calls import call_timed, is_async, refused
from .records import UndoRecord
from .registry import call_compensation


def run_undo(
    fn: Callable[..., Any], undo: UndoRecord, timeout: float | None, owner: object = None
) -> None:
    """One attempt of an undo, as the run would have made it: a coroutine it returns is
    awaited (``saga.arun`` awaits it too), a generator is the in-process drivers' error (its
    body never ran: a failed attempt), and past ``timeout`` seconds the attempt failed (an
    awaited undo is cancelled; a blocking one goes on in its helper thread, as in process).
    A call left running so (a blocking one, or an awaited one that would not stop) is never
    made again for ``owner`` (this recover of this saga): its further attempts fail at once,
    never two refunds at once (attack84 F4)."""

    blocked = _loop_here()  # (the caller's, blocked while recover runs: attack88 F4, a
    # Task of it handed back in the timeout's helper thread was waited for there)

    def attempt() -> None:
        if timeout is not None and (left := refused(owner, "undo", undo.step, timeout)):
            raise left
        result = call_compensation(fn, undo.args, undo.key)
        if on_a_loop(result) or handed_off(result):  # (work handed back: waited for where
            checked(result, "undo", undo.step, blocked)  # it runs, or cancelled: attack86 F4)
        elif inspect.isawaitable(result):
            _await(result, timeout, undo.step, owner, blocked)
        elif result is not None:
            checked(result, "undo", undo.step)

    if timeout is None or is_async(fn):
        attempt()
    else:  # (in its helper thread with this one's context: a recover it calls is nested)
        call_timed(contextvars.copy_context().run, (attempt,), "undo", undo.step, timeout, owner)


def _await(
    awaitable: Any, timeout: float | None, step: str, owner: object = None, blocked: Any = None
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

    threading.Thread(target=serve, name=f"rollback-lessons undo of {step!r}", daemon=True).start()
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
