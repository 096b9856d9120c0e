"""A deadline on a call for the async engine: an awaited call past it is cancelled; a
synchronous undo runs in a helper thread, and, as in ``calls.call_timed``, a call that
outlived its timeout is never made again in the run, never overlapped (attack47 F5)."""

from __future__ import annotations

import contextlib
import sys
import weakref
from collections.abc import Callable
from typing import Any

from . import _forward
from ._forward import cut, home_asked
from ._late_threads import helper, kept
from ._numbers import plain_number
from ._results import _as_future, awaitable, awaited, checked, handed_off, on_a_loop, ran_on
from .calls import ON_LOOP, late, refused, timed_out, what


async def within(
    awaitable: Any, timeout: float, role: str, step: str, owner: object = None,
    shown: float | None = None,
) -> Any:  # fmt: skip
    """Await with a deadline: past ``timeout`` seconds the awaited call is cancelled and the
    attempt fails. One that will not stop (it swallows the cancellation) is not waited for
    again beyond a grace as long as its timeout: it is left behind, its outcome dropped, and,
    as a blocking call left in its helper thread, never made again in ``owner``'s run
    (attack84 F4: the retries overlapped it, three refunds at once). ``shown``: the
    timeout the error names (the step's own, where ``timeout`` is what was left of it).
    At Python's shutdown it is awaited here, its timeout not kept, as a timed synchronous
    call is made inline there (no task is made nor any import: attack289 F1)."""
    if sys.is_finalizing():
        return await awaitable
    import asyncio

    task = _forward.engine_task(_kept(awaitable))
    started = asyncio.get_running_loop().time()
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except BaseException as exc:
        if not task.cancelling():  # this run is cancelled itself: so is its call, once (a
            task.cancel()  # second, after asyncio.run's own, gave up the wait for a pool's
            # work still running: attack249 F1, told in doubt, recover made it again)
        left = started + 2 * timeout - asyncio.get_running_loop().time()  # (its timeout and
        end = await _task_end(task, left, owner, role, step)  # grace, as uncut: 252 F1)
        in_grace = asyncio.get_running_loop().time() > started + timeout  # (ended in its grace:
        if end is not None and end.done() and not end.cancelled() and in_grace:  # failed, as
            late(owner, role, step, keep=True, on_loop=True)  # uncut: it may have completed)
            end = asyncio.get_running_loop().create_future()
            end.set_exception(TimeoutError(_too_long(role, step, shown or timeout) + _ENDED_AFTER))
        if end is not None:
            ran_on(exc, True, end)  # (its end told first, never made again)
        raise
    if task in done:
        if task.cancelled():  # (its own task's cancel, asked in the call, a signal handler's:
            raise cut_short(owner)  # arun's, the call cut short, attack133 F1)
        escaped, result = task.result()
        if escaped:  # raised here, in the driver's frame: its rule for an interrupt applies
            raise result
        return result
    task.cancel()
    ours = task.cancelling()  # (a cancel asked in the call after it: its own, cut short)
    graced = asyncio.get_running_loop().time() + timeout
    try:
        await asyncio.wait({task}, timeout=timeout)
    except BaseException as exc:  # (asyncio.run's end in its grace: attack243 F1, made again
        await _end_within(task, graced - asyncio.get_running_loop().time())  # beside it)
        if not task.done():
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        late(owner, role, step, keep=True, on_loop=True)  # (timed out: never made again,
        end = asyncio.get_running_loop().create_future()  # what it did not known: in doubt)
        end.cancel()
        ran_on(exc, True, end)
        raise
    if task.cancelled() and task.cancelling() > ours and task not in _RUNS_ON:  # (a signal
        raise cut_short(owner)  # handler's, as the timeout's landed: arun's, attack134 F1)
    said = _too_long(role, step, shown or timeout)
    if task.done() and not task.cancelled():  # it would not stop, and ended in the grace:
        if task.exception() is None and task.result()[0]:
            raise task.result()[1]  # (a Ctrl-C it raised: the driver's rule applies)
        late(owner, role, step, keep=True, on_loop=True)  # what it did is not known, it is
        said += _ENDED_AFTER
        raise TimeoutError(said)  # never made again (attack86 F12: three refunds, "none")
    if not task.done() or task in _RUNS_ON:
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # never "unretrieved"
        late(owner, role, step, keep=True, on_loop=True)
        said += f" (the call was left running {ON_LOOP}, and may still complete)"
    raise TimeoutError(said)


_ENDED_AFTER = " (it would not stop when cancelled, and ended after it: it may have completed)"


def _too_long(role: str, step: str, timeout: float) -> str:
    return f"{what(role, step)} took longer than its timeout of {timeout} s"


async def _task_end(task: Any, grace: float, owner: object, role: str, step: str) -> Any:
    """The end of a call whose wait a cancel cut (asyncio.run's end, a second Ctrl-C), its
    own task cancelled: one that swallows it is awaited a grace as long as its timeout, and
    its end, a future, given back (``ran_on``: the driver tells it, never makes the call
    again: attack242 F1, made again beside it, two refunds at once); past it, or a second
    cancel, left running, never made again in the run, in doubt (a future cancelled). None
    where it stopped (cut: made again where a journal holds it, as ever) or raised an
    interrupt."""
    import asyncio

    await _end_within(task, grace)
    end = asyncio.get_running_loop().create_future()
    if not task.done() or task in _RUNS_ON:
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # never "unretrieved"
        late(owner, role, step, keep=True, on_loop=True)
        end.cancel()  # (its end not known: in doubt, left pending, as a thread's)
        return end
    if task.cancelled() or (task.exception() is None and task.result()[0]):
        return None
    if task.exception() is not None:
        end.set_exception(task.exception())
    else:
        end.set_result(task.result()[1])
    return end


async def _end_within(waiting: Any, seconds: float) -> None:
    """Wait ``seconds`` at most for ``waiting`` to end, through the cancels asyncio.run's end
    sends every task (the wait bounded); an interrupt (a second Ctrl-C) gives it up, the
    first one raised by the caller."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(seconds, 0.0)
    while not waiting.done() and (left := deadline - loop.time()) > 0:
        try:
            await asyncio.wait({waiting}, timeout=left)
        except asyncio.CancelledError:
            continue
        except BaseException:
            return


def cut_short(owner: object) -> BaseException:
    """The cancel that cut a call in its own task (``within``'s): asked of arun's task too, as
    a cancel of any engine task the call runs in is (``_forward``), the call cut short, in
    doubt, as by a Ctrl-C (marked ``cut``: never the call's own failure)."""
    import asyncio

    home_asked(owner)
    return cut(asyncio.CancelledError())


_RUNS_ON: weakref.WeakSet[Any] = weakref.WeakSet()
"""The calls' tasks that ended cancelled with their work still running (``_results``'
``runs_on``: a pool's, given up by a second cancel, asyncio.run's end then ``within``'s:
attack246 F1, read as stopped, retried beside it)."""


async def _kept(awaitable: Any) -> tuple[bool, Any]:
    """Await in a task of its own, a KeyboardInterrupt or SystemExit it raises returned,
    not raised: asyncio re-raises those out of the event loop, past the run (nothing undone,
    no outcome); ``within`` raises it where the driver awaits the call."""
    try:
        return False, await awaitable
    except BaseException as exc:
        end = exc.__dict__.get("ended")  # (cancelled, it ran on to its end: ``within``
        if exc.__dict__.get("ran_on") and not (end is not None and end.cancelled()):  # tells
            return False, None  # it as one that would not stop, never made again; work cut
            # by asyncio.run's end never ended: in doubt, attack249 F3, told done)
        if exc.__dict__.get("runs_on"):  # (a second cancel gave up its work's wait: the
            import asyncio  # work goes on, never made again)

            _RUNS_ON.add(asyncio.current_task())
        if not isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        return True, exc


async def acall_timed(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    role: str,
    step: str,
    timeout: float,
    owner: object = None,
) -> Any:
    """``call_timed`` for the async engine: an undo that is not a coroutine function, with a
    timeout, is called in a helper thread (a blocking call must neither freeze the event
    loop nor outlast its timeout: past it the attempt fails, the call goes on there and is
    never made again in the run, as in ``saga.run``); an awaitable it returns is awaited
    here, within the time left (``within``)."""
    timeout = plain_number(timeout)  # (a number's subclass: as recover reads it, attack106 F8)
    if (refusal := refused(owner, role, step, timeout)) is not None:
        raise refusal
    if sys.is_finalizing():  # (no thread starts there, nor an import: called here, 288 F5)
        return await _in_place(fn, args, role, step, timeout, owner)
    import asyncio

    loop = asyncio.get_running_loop()
    box: asyncio.Future[Any] = loop.create_future()
    thread, ended = helper(f"rollback-lessons {what(role, step)}", _target, loop, box, fn, args)
    kept(ended, what(role, step), owner)  # (from its start: waited for at the process's end
    try:  # if it runs on, however this wait ends: a loop stopped, attack288 F1)
        thread.start()
    except RuntimeError:  # (Python 3.12 on, at the program's end: no thread starts there, a
        ended.set()  # dead letter said "still ran in its helper thread", attack309 F6)
        return await _in_place(fn, args, role, step, timeout, owner)
    start = loop.time()
    try:
        done, _ = await asyncio.wait({box}, timeout=timeout)
    except GeneratorExit:  # (closed: Python's shutdown, its loop stopped; no await here)
        raise
    except BaseException as exc:  # (a cancel, asyncio.run's end: the call runs on there)
        await _thread_end(box, timeout - (loop.time() - start), owner, role, step)
        end = await _work_end(box, timeout - (loop.time() - start), owner, role, step)
        raise ran_on(exc, True, end)  # noqa: B904  (its end told first, never made again)
    if box not in done:
        box.cancel()
        late(owner, role, step, keep=True)
        raise timed_out(role, step, timeout)
    result = box.result()
    if awaitable(result):  # (awaited to its end, work it hands back too, within what is left)
        left = max(timeout - (loop.time() - start), 0.0)
        return await within(awaited(result, role, step), left, role, step, owner, shown=timeout)
    return result if result is None else checked(result, role, step)  # (a generator: F2)


async def _in_place(
    fn: Callable[..., Any], args: tuple[Any, ...], role: str, step: str, timeout: float,
    owner: object,
) -> Any:  # fmt: skip
    """``fn(*args)`` called right here, where no helper thread can start (Python's shutdown;
    from 3.12, the program's end): its timeout is not kept (an awaitable it returns is)."""
    result = fn(*args)
    if awaitable(result):
        return await within(awaited(result, role, step), timeout, role, step, owner)
    return result if result is None else checked(result, role, step)


async def _work_end(box: Any, left: float, owner: object, role: str, step: str) -> Any:
    """``box``, or, where the call handed work back (a pool's Future, one of this loop), that
    work's end awaited within what is left of the timeout, through asyncio.run's cancels
    (attack247 F1: told "not known to be undone", the refund landed, recover made it
    again); past it, kept and in doubt (a future cancelled)."""
    import asyncio

    if not box.done() or box.cancelled() or box.exception() is not None:
        return box
    loop, work = asyncio.get_running_loop(), box.result()
    deadline = loop.time() + left
    while handed_off(work) or (on_a_loop(work) and work.get_loop() is loop):  # (its result
        work = asyncio.wrap_future(_as_future(work)) if handed_off(work) else work  # more
        await _end_within(work, deadline - loop.time())  # work: to its end, 249 F2)
        if not work.done() or work.cancelled() or work.exception() is not None:
            break
        work = work.result()
    else:
        if work is box.result():
            return box  # (a plain end, told; more work of another kind: in doubt, as ever)
        end = loop.create_future()
        end.set_result(work)
        return end
    end = loop.create_future()  # (cut short above: not ended, cancelled, or failed)
    if not work.done():
        late(owner, role, step, keep=True)
    error = work.exception() if work.done() and not work.cancelled() else None
    end.set_exception(error) if error is not None else end.cancel()
    return end


async def _thread_end(box: Any, left: float, owner: object, role: str, step: str) -> None:
    """The end of a call in its helper thread, whose wait a cancel cut, awaited within what
    is left of its timeout (``ran_on``: the driver tells that end, never makes the call
    again: attack240 F1, made again beside it after a second Ctrl-C, two refunds at once).
    Past it, or a second cancel: left running, never made again in the run."""

    await _end_within(box, left)
    if not box.done():
        box.cancel()  # (its end unknown: in doubt)
        late(owner, role, step, keep=True)


def _target(loop: Any, box: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """The helper thread: call, and settle ``box`` on the loop with how it went."""
    try:
        result, error = fn(*args), None
    except BaseException as exc:
        result, error = None, exc

    def settle() -> None:
        if not box.done():
            box.set_exception(error) if error is not None else box.set_result(result)

    with contextlib.suppress(RuntimeError):  # (the loop closed meanwhile: nobody waits)
        loop.call_soon_threadsafe(settle)
