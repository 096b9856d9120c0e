"""What a step's action or undo returns, taken to its end: one rule for every driver.

A call that hands back work is that work: a pool's Future, an asyncio Task or Future is
waited for wherever it runs (a synchronous run blocks on it, ``arun`` and ``AsyncRollback``
await it); its result and error are the call's (attack85 F7, attack86 F1-F4, F8). Work that
cannot be waited for from here (a Task of the loop a synchronous run blocks, of a loop that
runs nowhere) is cancelled: "before it ran" where its body had not begun, else in doubt
(``MayHaveRun``: a step's is reported leaked). A body that never ran (a coroutine a
synchronous run cannot await, a generator, a coroutine an awaited call gave back: an
``await`` missing) is an error, never reported done."""

from __future__ import annotations

import contextlib
import inspect
import sys
from types import AsyncGeneratorType, CoroutineType, GeneratorType
from typing import Any

from . import _wrapped
from ._blocked import BLOCKED
from ._forward import cancels, stepping
from ._wrapped import holds_work, kind_is, refused, runs_on, still, threaded
from .errors import MayHaveRun

PLAIN = frozenset({int, float, str, bool, bytes, dict, list, tuple, set})  # (no awaitable)

ASYNC_HINT = "(use AsyncRollback, or await saga.arun(state))"

KEPT: dict[str, Any] = {}
"""asyncio, once an async block or run began (``_shutdown.unowned``): an import, and even a
look in ``sys.modules``, fails at Python's shutdown, where an AsyncRollback's undos may run
(attack86 F5)."""


def _asyncio() -> Any:
    """asyncio, loaded already (a future of it is in hand, or a loop runs)."""
    return KEPT.get("asyncio") or sys.modules["asyncio"]


def what(role: str, step: str) -> str:
    """How an error names a call: "undo of step 'charge'"."""
    return f"{role} of step {step!r}"


def handed_off(result: Any) -> bool:
    """Is ``result`` work handed to a pool: a ``concurrent.futures.Future``, or the other
    stdlib pool's ``multiprocessing.pool`` ``AsyncResult`` (attack86 F13)?"""
    futures = sys.modules.get("concurrent.futures")  # (none made where it is not imported)
    if futures is not None and kind_is(result, futures.Future):  # (by type: a Mock of one
        return True  # is no Future, attack107 F1)
    pools = sys.modules.get("multiprocessing.pool")
    return pools is not None and kind_is(result, pools.ApplyResult)


def _as_future(result: Any) -> Any:
    """Work handed to a pool, as a ``concurrent.futures.Future`` (an ``AsyncResult`` is
    waited for in a thread of its own: it has no callback to chain)."""
    import concurrent.futures

    if kind_is(result, concurrent.futures.Future):
        return result
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    future.set_running_or_notify_cancel()  # (it runs: a cancel cannot stop it)

    def wait() -> None:
        try:
            future.set_result(result.get())
        except BaseException as exc:
            future.set_exception(exc)

    import threading

    threading.Thread(target=wait, name="rollback-lessons pool result", daemon=True).start()
    return future


def broken(error: BaseException, role: str, step: str) -> BaseException:
    """The error of work handed to a pool: a pool whose worker process died as it ran or
    waited (``BrokenProcessPool``, an OOM kill) cut the call short, in doubt (attack88 F14:
    a charge written, then ``os._exit``, was a clean refusal, ``rolled_back``)."""
    process = sys.modules.get("concurrent.futures.process")
    if process is None or not isinstance(error, process.BrokenProcessPool):
        return error
    return MayHaveRun(
        f"{what(role, step)} was handed to a process pool whose worker died ({error}): "
        "it may have begun, and had its effect"
    )


def _waited_out(future: Any, cut: BaseException) -> BaseException:
    """``cut`` (a Ctrl-C, an exit) came as a synchronous run waited for pool work, which
    goes on: its end (and that of work it gives back) is waited for, then ``cut`` carries
    it (``ended``: told first, attack90 F7: a refund logged before the charge ran while the
    charge went on, ``rolled_back``). A second one gives the wait up: ``cut`` says the work
    still runs (its step in doubt, its effect may land after any undo)."""
    try:
        while True:
            with contextlib.suppress(Exception):
                more = future.result()
            if future.exception() is not None or not handed_off(more):
                return ran_on(cut, True, future)
            future = _as_future(more)
    except BaseException:
        if future.done():  # (its own end: a worker's Ctrl-C sent back, attack92 F4)
            return ran_on(cut, True, future)
        cut.runs_on = True  # type: ignore[attr-defined]
        return cut


def on_a_loop(result: Any) -> bool:  # (``isfuture``'s test, by its class: attack106 F1)
    return getattr(type(result), "_asyncio_future_blocking", None) is not None


def _loop_here() -> Any:
    """The event loop running in this thread, or None."""
    asyncio = sys.modules.get("asyncio")
    return None if asyncio is None else asyncio._get_running_loop()


def _elsewhere(future: Any, blocked: Any = None) -> Any:
    """The loop ``future`` runs on, where it runs in another thread (then it can be waited
    for from here), else None. ``blocked``: a loop that waits for this one, in the thread
    that called (a helper thread's caller): waiting on it would wait for ever."""
    loop = future.get_loop()
    running = loop.is_running() and loop not in (_loop_here(), blocked, *BLOCKED)
    return loop if running else None


async def _settle(future: Any) -> Any:
    return await future


def _begun(future: Any) -> bool:
    """Has the body of the work behind ``future`` begun? Known for a Task of a coroutine;
    a bare Future's work is someone else's: it may have."""
    coro = future.get_coro() if hasattr(future, "get_coro") else None
    return not (inspect.iscoroutine(coro) and inspect.getcoroutinestate(coro) == "CORO_CREATED")


def _unwaitable(future: Any, role: str, step: str, hint: str = " " + ASYNC_HINT) -> Any:
    """Work on a loop that cannot be waited for from here: its end if it has one; else
    cancelled, and said how far it had got."""
    if future.done():
        if future.cancelled():
            raise MayHaveRun(
                f"{what(role, step)} returned an asyncio Task or Future that someone else "
                "cancelled (before it was handed back, or while it was waited for): it may "
                "have begun, and had its effect"
            )
        if (error := future.exception()) is not None:
            raise error
        return future.result()
    begun = _begun(future)
    with contextlib.suppress(RuntimeError):  # (its loop closed: it runs nowhere, ever;
        future.cancel()  # attack88 F9)
    if not begun and holds_work(future.get_coro() if hasattr(future, "get_coro") else None):
        raise runs_on(what(role, step), "an asyncio Task", hint)  # (attack102 F6)
    if not begun:
        raise TypeError(
            f"{what(role, step)} returned an asyncio Task that no loop can run here "
            f"(cancelled now, before it ran){': a synchronous run cannot await it' if hint else ''}"
            f"{hint}"
        )
    if not hasattr(future, "get_coro"):  # (a bare Future: its work is someone else's, which
        error = MayHaveRun(  # its cancel does not stop, as run_in_executor's: attack90 F10)
            f"{what(role, step)} returned an asyncio Future that cannot be waited for here: "
            f"its work (a thread's, run_in_executor's?) may go on, and may have had its "
            f"effect{hint}"
        )
        error.goes_on = True  # (never called again in that run: ``errors.goes_on``)
        raise error
    raise MayHaveRun(
        f"{what(role, step)} returned an asyncio Task or Future that had begun and cannot be "
        f"waited for here: cancelled mid-way, it may have had its effect{hint}"
    )


def checked(result: Any, role: str, step: str, blocked: Any = None) -> Any:
    """A synchronous run's result, taken to its end: work handed back is waited for, a body
    that never ran is a TypeError that says so (``blocked``: as ``_elsewhere``)."""
    if on_a_loop(result):
        loop = _elsewhere(result, blocked)
        if loop is None:
            return checked(_unwaitable(result, role, step), role, step, blocked)
        asyncio = _asyncio()  # (``result`` is one of its futures)
        waited = asyncio.run_coroutine_threadsafe(_settle(result), loop)
        while True:  # (its error, the call's)
            try:
                done = waited.result(_LOOK)
            except TimeoutError:
                if not loop.is_running():  # (stopped while waited on: runs nowhere now)
                    return checked(_unwaitable(result, role, step), role, step, blocked)
                continue
            except (KeyboardInterrupt, SystemExit) as cut:  # (an action's: waited for to its
                if role != "action":  # end, then told first, attack92 F7)
                    raise
                raise _waited_out(waited, cut) from None
            except BaseException:
                if waited.cancelled() and result.cancelled():  # (cancelled by its owner
                    _unwaitable(result, role, step)  # while waited on: attack89 F3)
                raise
            if (bad := gave_back(done, role, step)) is not None:
                raise bad  # (it ran to its end: attack88 F10)
            return checked(done, role, step, blocked)
    if handed_off(result):  # work handed to a pool: waited for, its error the call's
        future, threads = _as_future(result), threaded(result)  # (asked before its end)
        try:
            done = future.result()
        except Exception as error:
            raise broken(error, role, step) from None
        except BaseException as cut:  # (a Ctrl-C or exit as it runs: it cannot be stopped.
            if role != "action" or not (future is result or threads):  # A process Pool's job:
                vars(cut).update(runs_on=role == "action")  # not waited for (the terminal's
                raise  # Ctrl-C kills its worker too, attack92 F9), in doubt: attack108 F7)
            raise _waited_out(future, cut) from None  # (a ThreadPool's too: attack107 F5)
        if (bad := gave_back(done, role, step)) is not None:
            raise bad  # (it ran to its end: attack89 F4)
        return checked(done, role, step, blocked)
    if hasattr(type(result), "__await__") or _legacy(result):  # (closed, never dropped)
        raise refused(result, what(role, step), ASYNC_HINT)
    if kind_is(result, GeneratorType, AsyncGeneratorType):  # (attack84 F2)
        raise _wrapped.generator_back(result, what(role, step), ASYNC_HINT)
    return still(result, what, role, step)  # (a value holding begun work: attack105 F1)


def gave_back(result: Any, role: str, step: str) -> MayHaveRun | None:
    """The error of an awaited call that gave back a coroutine, a generator, an async
    generator or another awaitable that is no Task or Future: a body that never ran (an
    ``await`` missing inside it: ``return refund()``), never reported done (attack85 F2),
    yet the call that gave it back ran to its end: in doubt (``MayHaveRun``); None for any
    other result."""
    if result is None or type(result) in PLAIN:
        return None
    if kind_is(result, CoroutineType) or kind_is(result, GeneratorType):
        if (begun := _wrapped.primed(what(role, step), result)) is not None:
            return begun  # (left as it is: its finally is its owner's, attack111 F4)
        result.close()
        kind = "a coroutine" if kind_is(result, CoroutineType) else "a generator"
    elif kind_is(result, AsyncGeneratorType):
        kind = "an async generator"
    elif hasattr(type(result), "__await__") and not on_a_loop(result):
        kind = "an awaitable"  # (lazy until awaited, as a request object: attack90 F16)
    else:
        return None
    return MayHaveRun(  # (what ran before it may have had its effect: attack88 F10)
        f"{what(role, step)} gave back {kind} when awaited: its body never ran (an await "
        "missing inside it?), though what ran before it may have had its effect"
    )


def awaitable(result: Any) -> bool:
    """Does the async drivers' ``awaited`` have work to do on ``result``?"""
    return result is not None and type(result) not in PLAIN and (
        hasattr(type(result), "__await__") or handed_off(result) or _legacy(result)
    )  # fmt: skip


def _legacy(result: Any) -> bool:
    """A generator-based coroutine (``@types.coroutine``'s): ``await`` takes it (attack88 F15)."""
    return kind_is(result, GeneratorType) and inspect.isawaitable(result)


async def awaited(result: Any, role: str, step: str, blocked: Any = None) -> Any:
    """``arun``'s and ``AsyncRollback``'s result of a call, taken to its end: what the call
    returned awaited (a coroutine, any awaitable), then any work it hands back awaited
    wherever it runs (a pool's Future, a Task of this loop or another's); a body given back
    that never ran is an error. (``blocked``: as ``_elsewhere``, for ``recover``'s loop of
    its own in a helper thread.)"""
    asyncio = _asyncio()  # (no import: at Python's shutdown it fails)

    if not (on_a_loop(result) or handed_off(result)):
        if result is None or not (hasattr(type(result), "__await__") or _legacy(result)):
            return checked(result, role, step, blocked)
        result = await result
        if (bad := gave_back(result, role, step)) is not None:
            raise bad
    while on_a_loop(result) or handed_off(result):
        if handed_off(result):
            result = await _pooled(_as_future(result), role, step)
        elif result.done():  # (its end; cancelled, as a synchronous run says: attack88 F11)
            result = _unwaitable(result, role, step, hint="")
        elif result.get_loop() is asyncio.get_running_loop():
            work = result  # a Task (a cancel reaches its body), or a bare Future: work done
            try:  # elsewhere (``run_in_executor``'s), which a cancel cannot stop (F6)
                result = await (work if hasattr(work, "get_coro") else _unstoppable(work))
            except asyncio.CancelledError as cut:
                me = asyncio.current_task()
                if work.done() and not work.cancelled():  # (it ended as the cancel came:
                    raise ran_on(cut, True, work) from None  # its end known, attack92 F5)
                if not work.cancelled() or (me is not None and cancels(me)):
                    raise  # (this run's own cancel)
                result = _unwaitable(work, role, step, hint="")  # (cancelled by its owner
                # while awaited: it may have begun, attack88 F11)
        elif (loop := _elsewhere(result, blocked)) is not None:
            result = await _on_its_loop(result, loop, role, step)
        else:
            result = _unwaitable(result, role, step, hint="")
        if (bad := gave_back(result, role, step)) is not None:
            raise bad
    return still(result, what, role, step)


_LOOK = 0.25
"""How often a wait on another loop looks whether that loop still runs (seconds)."""


async def _on_its_loop(future: Any, loop: Any, role: str, step: str) -> Any:
    """Await a Task (or Future) of a loop running in another thread, there. Cancelled (a
    timeout's cancel), the cancel is passed to it there and its end awaited: one that would
    not stop is not cut short here (attack88 F1: the wait ended at once, the retries made
    three refunds). Its loop stopping while waited on leaves it running nowhere (F2: a wait
    for ever): then it is as work no loop can run (``_unwaitable``)."""
    asyncio = _asyncio()
    waiting = asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_settle(future), loop))
    cancelled: BaseException | None = None
    while True:
        try:
            await asyncio.wait({waiting}, timeout=_LOOK)  # (a cancel of this wait: not of it)
        except asyncio.CancelledError as exc:
            if cancelled is None:
                with contextlib.suppress(RuntimeError):  # (its loop closed meanwhile)
                    loop.call_soon_threadsafe(future.cancel)
            cancelled = exc
            continue
        if waiting.done():
            if cancelled is not None:  # (it stopped when cancelled, or would not: the
                raise ran_on(cancelled, not waiting.cancelled(), waiting)  # cancel is the
                # caller's, told after the work's end: ``ended``)
            if waiting.cancelled() and future.cancelled():  # (cancelled by its owner while
                return _unwaitable(future, role, step, hint="")  # awaited: attack89 F3)
            return waiting.result()
        if not loop.is_running():  # (a cancel heard meanwhile is the caller's: raised, its
            if cancelled is not None:  # work in doubt, never made again: attack90 F14)
                raise ran_on(cancelled, True) from None
            return _unwaitable(future, role, step)


async def to_its_end(result: Any, role: str, step: str) -> Any:
    """An action's result awaited to its end (``awaited``), in the block's own task (its
    context, its ``current_task``). A cancel of that task reaches the action as asyncio
    delivers it; one the action swallows (a Task of this loop that will not stop, a
    coroutine that catches it) is raised once the action ends, that end carried (``ended``:
    told first), never lost (attack90 F2: the block committed and ran its next step)."""
    asyncio = _asyncio()
    me = asyncio.current_task()
    runs, before = stepping(me), me.cancelling() if me is not None else 0  # (139 F1)
    try:
        value, raised = await awaited(result, role, step), False
    except Exception as error:
        value, raised = error, True
    finally:
        runs[0] = False
    if me is None or me.cancelling() <= before:
        if raised:
            raise value
        return value
    end = asyncio.get_running_loop().create_future()  # (made only for a swallowed cancel)
    end.set_exception(value) if raised else end.set_result(value)
    raise ran_on(asyncio.CancelledError(), True, end)


async def _pooled(future: Any, role: str, step: str) -> Any:
    """Await work handed to a pool. A cancel (a timeout's, the caller's) cannot stop it:
    this wait goes on, as an awaited call that will not stop does, so ``within`` leaves it
    running and the run never calls it again (attack86 F9: three refunds at once, the dead
    letter saying none ran). Never withdrawn: a ``concurrent.futures.Future`` that is not yet
    running may be a queued job, or work running elsewhere that its ``cancel()`` does not
    stop (``run_coroutine_threadsafe``'s, a thread's own: attack90 F12, F13). Cancelled by
    its pool (``shutdown(cancel_futures=True)``: it never began), its error is the pool's,
    not a cancel of this task (attack88 F7)."""
    asyncio = _asyncio()

    waiting = asyncio.wrap_future(future)
    try:
        return await asyncio.shield(waiting)
    except asyncio.CancelledError as cancelled:
        me = asyncio.current_task()
        if future.cancelled() and not (me is not None and cancels(me)):
            return future.result()  # (raises concurrent.futures' CancelledError)
        return await _unstoppable(waiting, cancelled)
    except Exception as error:
        raise broken(error, role, step) from None


async def _unstoppable(waiting: Any, cancelled: BaseException | None = None) -> Any:
    """Await work a cancel cannot stop. Cancelled, its end is awaited, and then the cancel is
    raised, the caller's, never swallowed (attack88 F8), said to have run on (``ran_on``).
    A second cancel gives the wait up (a Future nobody ever sets would hang it for good):
    the cancel is raised then, said to leave the work running (``runs_on``: its step in
    doubt, never reported undone, attack90 F4)."""
    asyncio = _asyncio()
    if cancelled is None:
        try:
            return await asyncio.shield(waiting)
        except asyncio.CancelledError as exc:
            cancelled = exc
    while True:
        while not waiting.done():
            try:
                await asyncio.wait({waiting})
            except asyncio.CancelledError:  # a second cancel gives the wait up: the work
                cancelled.runs_on = True  # type: ignore[union-attr]  # still runs, in doubt
                raise cancelled from None  # (never a wait nobody can end: attack92 F11)
        if waiting.cancelled() or waiting.exception() is not None:
            break
        more = waiting.result()  # (work whose result is more work: to its end too, F1)
        if not handed_off(more):
            break
        waiting = asyncio.wrap_future(_as_future(more))
    raise ran_on(cancelled, True, waiting) from None


def ran_on(cancel: BaseException, went_on: bool, end: Any = None) -> BaseException:
    """The cancel of a wait for work that would not stop, said so when it ran on to its end
    (``_timed.within`` then never calls it again: it may have completed); ``end``: the
    future that holds that end (``ended``)."""
    cancel.ran_on = went_on  # type: ignore[attr-defined]
    cancel.ended = end if went_on else None  # type: ignore[attr-defined]
    return cancel


def with_end(cut: BaseException, cancel: BaseException) -> BaseException:
    """``cut``, which stands for ``cancel`` (asyncio.run's end: the Ctrl-C), carrying the end
    of the work ``cancel`` waited for, if it knew it (attack89 F1, attack95 F3)."""
    if cut is not cancel and "ended" in getattr(cancel, "__dict__", {}):
        ran_on(cut, True, cancel.__dict__["ended"])
    return cut


def ended(cancel: BaseException, role: str, step: str) -> tuple[bool, Any] | None:
    """The end of the work a cancel waited for (``ran_on``), if it is known and final:
    (True, its result) or (False, its error, an Exception); None where it is not (the
    work cancelled, a BaseException, a result that is more work or a body never run). A
    driver tells the machine that end before the cancel (attack89 F1: a charge done was
    reported leaked and left standing, one declined said to be in doubt)."""
    kept = getattr(cancel, "__dict__", {})  # (told once, taken off: not an outer step's end)
    future, _ = kept.pop("ended", None), kept.pop("ran_on", None)
    if future is None or not future.done() or future.cancelled():
        return None
    error = future.exception()
    if error is not None:
        return (False, broken(error, role, step)) if isinstance(error, Exception) else None
    result = future.result()
    if awaitable(result) or kind_is(result, GeneratorType, AsyncGeneratorType):
        return None  # (more work, or a body that never ran: in doubt, as the cut says)
    if _wrapped.may_hold_work(result):  # (a second Ctrl-C gives the look up: attack111 F3)
        vars(cancel)["runs_on"] = True  # (a value holding work begun: it goes on, in doubt,
        return None  # never told done, attack108 F2: the refund ran, the charge landed)
    return (True, result)
