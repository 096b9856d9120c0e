"""Calling a step's action or undo in process: what may be called, what it may return,
and a deadline for a synchronous call. The saga machine (``machine.py``) decides which call
comes next; these only make the call safely."""

from __future__ import annotations

import functools
import inspect
import sys
import threading
import time
import types
import weakref
from collections.abc import Callable
from typing import Any

from ._forward import cancels
from ._late_threads import helper, kept
from ._numbers import plain_number
from ._results import _loop_here, checked, what
from ._wrapped import INERT

_GENERATORS = inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR


_FUNCTION = types.FunctionType
_NOT_PLAIN = _GENERATORS | inspect.CO_COROUTINE


def _plain(fn: object) -> bool:
    """A plain function (through partials and bound methods): neither a generator nor a
    coroutine function, decided from its code flags without inspect's slower checks."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    fn = getattr(fn, "__func__", fn)
    if type(fn) is not _FUNCTION:
        return False
    return not fn.__code__.co_flags & _NOT_PLAIN and not (fn.__dict__ and _marked(fn))


def plain(fn: object) -> bool:
    """A plain Python function, told by its type and code flags alone: the common case, and
    the one ``make bench`` times (a with-block of lambdas)."""
    return (
        type(fn) is _FUNCTION
        and not fn.__code__.co_flags & _NOT_PLAIN  # type: ignore[attr-defined]
        and not (fn.__dict__ and _marked(fn))
    )


def is_async(fn: object) -> bool:
    """A coroutine function (through partials, bound methods and staticmethods), or an
    object whose ``__call__`` is one (a partial of it too)? (The one rule the engines and the
    exercises tell async-ness by.)"""
    fn = _bare(fn)
    return not _plain(fn) and (
        inspect.iscoroutinefunction(fn) or _legacy(fn) or _async_call(fn) or _marked(fn)
    )


def _bare(fn: object) -> object:
    """The callable under partials and ``staticmethod`` objects (callable, as such, since
    Python 3.10; inspect looks through neither a staticmethod nor one inside a partial, as
    Saga binds a Step's action: attack238 F1)."""
    while True:
        if isinstance(fn, functools.partial):
            fn = fn.func
        elif isinstance(fn, staticmethod):
            fn = fn.__func__
        else:
            return fn


def _marked(fn: object) -> bool:
    """A plain function marked as a coroutine function: ``mock.create_autospec`` of an async
    one (asyncio's ``_is_coroutine``: it returns AsyncMock's coroutine) or
    ``inspect.markcoroutinefunction`` (3.12) (attack238: taken as an on_event or action)."""
    kept = getattr(fn, "__dict__", None)
    if not kept:
        return False
    if "_is_coroutine_marker" in kept:
        return True
    asyncio = sys.modules.get("asyncio")  # (not imported here: a mark needs it loaded)
    mark = getattr(getattr(asyncio, "coroutines", None), "_is_coroutine", None)
    return mark is not None and kept.get("_is_coroutine") is mark


def _async_call(fn: object) -> bool:
    """An object (through partials) whose ``__call__`` is a coroutine function, or a
    generator function made one (attack90 F9: a partial of such an object was not counted)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if isinstance(fn, (types.FunctionType, types.MethodType)):
        return False  # (its __call__ is the function's own: told above)
    # looked up on its type, as a call does (a class's own async __call__ is its instances'),
    # and bound (a partialmethod's is its function only so: attack234 F4)
    return any(inspect.iscoroutinefunction(call) or _legacy(call) for call in _calls(fn))


def _calls(fn: object) -> tuple[object, ...]:
    """``fn``'s ``__call__``, on its type and bound (an instance's, not a class's)."""
    bound = getattr(fn, "__call__", None) if not isinstance(fn, type) else None  # noqa: B004
    return getattr(type(fn), "__call__", None), bound  # noqa: B004


def _legacy(fn: object) -> bool:
    """A generator function made a coroutine (``@types.coroutine``): ``await`` takes what it
    returns (attack88 F15: refused as a generator function, or as sync-only in ``arun``)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    return code is not None and bool(code.co_flags & inspect.CO_ITERABLE_COROUTINE)


ON_LOOP = "on the event loop or in a pool's thread"
"""Where an awaited call that would not stop when cancelled goes on (attack111 F7: a
pool's work was said to run on the loop)."""
SYNC_ONLY = "the synchronous Rollback cannot await it (use AsyncRollback)"
IN_A_STEP = (
    "a Step takes a plain function, which may return an awaitable for `await saga.arun(state)`"
    " (`lambda state: book(state)`)"
)


def check_callable(
    fn: object, role: str, step: str, *, allow_async: bool, why: str = SYNC_ONLY
) -> None:
    """Refuse what cannot run as ``step``'s ``role`` ("action", "undo"), before anything
    runs (``why``: what an async function is told)."""
    if _plain(fn):
        return
    if not callable(fn):
        raise TypeError(f"{what(role, step)} must be callable, got {fn!r}")
    # Saga binds the state with functools.partial (a staticmethod inside it: _bare)
    bare = _bare(fn)
    legacy = _legacy(bare)
    generator = (inspect.isgeneratorfunction(bare) and not legacy) or inspect.isasyncgenfunction(
        bare
    )
    if generator or check_observer_call(fn):  # (an object's __call__ too: attack234 F5)
        raise TypeError(
            f"{what(role, step)} is a generator function: calling it would not run its body. "
            "Make it a plain function (return a value instead of yielding it)"
        )
    if not allow_async and is_async(fn):  # (the one rule: an object whose __call__ is
        # async def, a partial of one, refused as an async def is: attack90 F9)
        raise TypeError(f"{what(role, step)} is an async function; {why}")


def check_observer(fn: object, who: str = "on_event") -> None:
    """Refuse an observer whose call would not run its body (an async or a generator
    function: called, never awaited or iterated; attack124 F3: it heard no event, said
    nowhere), before anything runs."""
    if not callable(fn):
        raise TypeError(f"{who} must be callable, got {fn!r}")
    bare = _bare(fn)
    generator = inspect.isgeneratorfunction(bare) or inspect.isasyncgenfunction(bare)
    if is_async(fn) or generator or check_observer_call(fn):
        kind = "an async" if is_async(fn) else "a generator"
        raise TypeError(
            f"{who} is {kind} function: it is called, never awaited or iterated, so its body "
            "would never run; make it a plain function (it may start async work of its own)"
        )


def check_observer_call(fn: object) -> bool:
    """An object (through partials) whose ``__call__`` is a generator function (attack230
    F2: refused as a bound generator method was, it heard no event)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if isinstance(fn, (types.FunctionType, types.MethodType)):
        return False
    return any(_generator(call) for call in _calls(fn))


def _generator(fn: object) -> bool:
    return (inspect.isgeneratorfunction(fn) and not _legacy(fn)) or inspect.isasyncgenfunction(fn)


def answering(asks: Callable[..., Any], who: str = "the cancel function") -> Callable[..., Any]:
    """``asks`` (a cancel function, checked), whose answer is a coroutine, a generator or an
    awaitable refused as it comes (closed, a TypeError: the run fails with it, as with any
    error of its cancel function): an async check behind a plain function or a lambda was
    read as True, every run cancelled before its first step (attack230 F1)."""

    def asked(*args: Any) -> Any:
        said = asks(*args)
        if (
            said is True
            or said is False
            or not (
                inspect.isawaitable(said) or inspect.isgenerator(said) or inspect.isasyncgen(said)
            )
        ):
            return said
        if inspect.iscoroutine(said) or inspect.isgenerator(said):
            said.close()
        raise TypeError(
            f"{who} returned a {type(said).__name__}, not True or False "
            "(an async function behind a plain one?): make it a plain function that answers"
        )

    return asked


def call_sync(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    role: str,
    step: str,
    blocked: Any = None,
    begun: dict[str, bool] | None = None,
) -> Any:
    """Call ``fn(*args)`` (``role`` of ``step``: "action", "undo"); an awaitable or a
    generator it returns is an error, never dropped silently; work it hands back is waited
    for (``_results.checked``; ``blocked``: the caller's loop, from a helper thread).
    ``begun``: the step marked called at the last instant before its call (``step_ops``)."""
    if begun is not None:
        begun[step] = True
    result = fn(*args)
    if result is None or type(result) in INERT:
        return result
    return checked(result, role, step, blocked)


_LOCK = threading.Lock()
LATE: weakref.WeakKeyDictionary[Any, set[tuple[str, str]]] = weakref.WeakKeyDictionary()
"""Per run (its driver), the calls, by (role, step), that outlived their timeout: not made
again in that run (attack47 F5)."""


LATE_IDS: dict[str, set[tuple[str, str]]] = {}
"""The same for a run known by its id (a remote engine's worker: ``runners/remote.py``),
the latest ``KEPT_IDS`` runs only (its helper threads die with its process anyway)."""
KEPT_IDS = 1024


def late(owner: object, role: str, step: str, keep: bool = False, on_loop: bool = False) -> bool:
    """Did the call of ``role`` of ``step`` outlive its timeout in ``owner``'s run (its
    driver, or its run id)? (With ``keep``: it just did; ``on_loop``: an awaited call that
    would not stop, left on the event loop, not in a helper thread.)"""
    if owner is None:
        return False
    table: Any = LATE_IDS if isinstance(owner, str) else LATE
    if keep:
        with _LOCK:
            table.setdefault(owner, set()).update(
                [(role, step), (role, step, "on_loop")] if on_loop else [(role, step)]
            )
            while len(LATE_IDS) > KEPT_IDS:
                del LATE_IDS[next(iter(LATE_IDS))]
    return (role, step) in table.get(owner, ())


def left_running(owner: object) -> bool:
    """Did any call of ``owner``'s run outlive its timeout (it may be running still)? (One
    lookup, no lock: a Ctrl-C as a ``with`` lock's exit began left it held, and every later
    journalled run in the process hung, attack118 F1.)"""
    return bool(LATE.get(owner)) if owner is not None else False


def refused(
    owner: object, role: str, step: str, timeout: float | None = None
) -> TimeoutError | None:
    """The error of a further attempt of a call left running in ``owner``'s run (``late``),
    saying where it went on; None: it may be made."""
    if not late(owner, role, step):
        return None
    table: Any = LATE_IDS if isinstance(owner, str) else LATE
    if (role, step, "on_loop") in table.get(owner, ()):
        where = f"was left running {ON_LOOP} (it would not stop when cancelled)"
        return still_running(role, step, where, timeout)
    return still_running(role, step, timeout=timeout)


def timed_out(role: str, step: str, timeout: float) -> TimeoutError:
    """The error of an attempt whose synchronous call outlived its timeout."""
    return TimeoutError(
        f"{what(role, step)} took longer than its timeout of {timeout} s (the call goes on "
        "in a helper thread and may still complete)"
    )


def still_running(
    role: str, step: str, where: str = "went on in a helper thread", timeout: float | None = None
) -> TimeoutError:
    """The error of a further attempt: not made, the timed-out call may be running (its
    ``timeout`` named: the dead letter is the last attempt's, attack85 F4)."""
    limit = f" of {timeout} s" if timeout is not None else ""
    return TimeoutError(
        f"{what(role, step)} not called again: its call that took longer than its timeout"
        f"{limit} {where}, and may still complete (or has)"
    )


def call_timed(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    role: str,
    step: str,
    timeout: float,
    owner: object = None,
) -> Any:
    """Call with a deadline, in a helper thread: past ``timeout`` seconds the attempt fails.

    A synchronous call cannot be pre-empted: the hung call goes on in its thread. So that
    two calls never overlap (two refunds at once), one that outlived its timeout in
    ``owner``'s run is never made again there: its further attempts fail at once
    (``still_running``), the same whatever the timing (every engine here agrees), and the
    undo ends a dead letter saying the call may still complete. The better fix is a timeout
    inside the call itself (a socket or HTTP timeout), or AsyncRollback, which cancels the
    awaited undo.
    """
    timeout = plain_number(timeout)  # (a number's subclass: as recover reads it, attack106 F8)
    if (refusal := refused(owner, role, step, timeout)) is not None:
        raise refusal
    box: dict[str, Any] = {}
    blocked = _loop_here()  # (a Task of it, handed back, cannot be waited for there)
    if sys.is_finalizing():  # (no thread starts at Python's shutdown: its start waited for
        return call_sync(fn, args, role, step, blocked)  # ever; called here, its timeout
    # not kept, a block's undos there their only chance: attack288 F4)

    def target() -> None:
        try:
            box["result"] = call_sync(fn, args, role, step, blocked)
        except BaseException as exc:
            box["error"] = exc

    name = what(role, step)
    thread, ended = helper(f"rollback-lessons {name}", target)
    kept(ended, name, owner)  # (from its start: however the wait ends, the process's end
    thread.start()  # waits for it if it runs on: a Ctrl-C, attack286 F1; a loop stopped, 288 F1)
    deadline = time.monotonic() + timeout  # (waited in parts: one wait past TIMEOUT_MAX, some
    while not ended.is_set() and (left := deadline - time.monotonic()) > 0:  # 292 years,
        ended.wait(min(left, threading.TIMEOUT_MAX / 2))  # raised OverflowError: attack50 F5)
    if not ended.is_set():
        late(owner, role, step, keep=True)
        raise timed_out(role, step, timeout)
    if "error" in box:
        raise box["error"]
    return box.get("result")


def own_cancel(exc: BaseException) -> bool:
    """A step's (or undo's) own CancelledError (a library it awaits cancelled a future): a
    failure, not an interrupt; the task running it is not being cancelled (none is, where
    no loop runs: ``saga.run`` takes it as ``arun`` does, attack48 F6)."""
    if type(exc).__name__ != "CancelledError":
        return False
    import asyncio

    try:
        task = asyncio.current_task()
    except RuntimeError:  # no event loop running: no task of it is being cancelled
        return isinstance(exc, asyncio.CancelledError)
    return isinstance(exc, asyncio.CancelledError) and task is not None and not cancels(task)


_NO_LOOP = ("no running event loop", "There is no current event loop in thread")


def off_its_loop(error: BaseException, step: str) -> BaseException:
    """An undo's error, said whole where it is asyncio's "no running event loop": a plain
    ``def`` undo with a timeout that ``arun`` and ``AsyncRollback`` called in their helper
    thread (``_timed``), where no loop runs, asked for one (``get_running_loop()``,
    ``ensure_future(...)``): its dead letter says why in one line, and what to do
    (attack90 F15: asyncio's text named a thread the user never made)."""
    if type(error) is not RuntimeError or not str(error).startswith(_NO_LOOP):
        return error
    from ._timed import _target  # (the helper thread's frame: called there, and only there)

    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code is not _target.__code__:
        tb = tb.tb_next
    if tb is None:
        return error
    said = RuntimeError(
        f"{what('undo', step)} ran in a helper thread (it has a timeout), where no event loop "
        "runs: to use the event loop, make it a coroutine (an `async def` in AsyncRollback's "
        "do; in a Step, a plain function returning one: `lambda state: refund()`)"
    )
    said.__cause__ = error
    return said


def cancel_asked(home: Any = None) -> bool:
    """Is the running task (or ``home``, the task a block runs in, its step awaited in a task
    of its own: ``asyncio.wait_for``, a TaskGroup) asked to cancel, the cancel not heard yet
    (asked by an observer, by the block's own code between two steps)? Heard before a step's
    call (``sleep(0)``: the block's task runs first, and cancels the step's), the step is not
    run; heard at its first await, it was taken for the step's interruption: in doubt,
    leaked; a plain function's never heard in the block (attack95 F4, attack98 F4)."""
    import asyncio

    tasks = (asyncio.current_task(), home)
    return any(t is not None and cancels(t) > 0 for t in tasks)


def quiet_failure(home: Any) -> None:
    """A step a block runs in a task of its own (``asyncio.shield``, ``ensure_future``, a
    TaskGroup) failed: its failure is the block's, recorded and raised by it, so asyncio is
    not left to log "Task exception was never retrieved" at exit (attack100 F10)."""
    import asyncio

    task = asyncio.current_task()
    if task is not None and task is not home:
        task.add_done_callback(lambda t: t.cancelled() or t.exception())


def this_task() -> Any:
    """The task running now (asyncio imported once a loop runs, never before)."""
    import asyncio

    return asyncio.current_task()


async def sleep(seconds: float) -> None:
    """``asyncio.sleep`` (asyncio imported once a loop runs, never before)."""
    import asyncio

    await asyncio.sleep(seconds)


async def heard_cancel() -> BaseException | None:
    """The cancel ``cancel_asked`` says is asked, heard now (None: it was not after all)."""
    import asyncio

    try:
        await asyncio.sleep(0)
    except asyncio.CancelledError as cancel:
        return cancel
    return None
