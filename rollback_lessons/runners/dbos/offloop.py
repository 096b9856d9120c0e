"""The DBOS runner under a running event loop (a Jupyter cell, code inside ``asyncio.run``),
or called inside a DBOS workflow's step (a saga's step that stops its own run).

DBOS's synchronous calls (``DBOS.list_workflows``, ``get_workflow_status``, ``recv``, ...)
refuse to run in a thread whose event loop runs, with advice about DBOS's own API
(``await list_workflows_async``) that does not apply to the runner (attack46's F4: the
README's example failed in a notebook cell). There, each public call of the runner and of
its handles runs whole in a thread of its own instead, the caller's thread waiting for it,
as Step Functions and BPMN run there: the same result, or the same error raised."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ..._blocked import blocking

C = TypeVar("C", bound=type)

SLICE = 0.05
"""How often (s) a caller waiting for its call's thread looks whether a Ctrl-C came: under
``asyncio.run`` a Ctrl-C only cancels the main task, raising nothing (attack48's F5)."""

ABANDONED: list[threading.Thread] = []
"""Threads of ``start`` calls whose caller was interrupted: each closes the runner it made
when it ends (nobody holds it: attack48's F7); the next ``start`` waits for them first."""
_GUARD = threading.Lock()


def loop_runs() -> bool:
    """Does an event loop run in this thread (DBOS's sync calls then refuse)?"""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def wait_abandoned(timeout: float) -> None:
    """Let the abandoned calls' threads end (up to ``timeout`` s each), so what they made
    is closed before a new runner launches."""
    with _GUARD:
        ABANDONED[:] = [thread for thread in ABANDONED if thread.is_alive()]
        threads = list(ABANDONED)
    for thread in threads:
        if thread is not threading.current_thread():
            thread.join(timeout)


@contextlib.contextmanager
def _ctrl_c_heard() -> Iterator[threading.Event]:
    """An event set by a SIGINT while in the ``with`` (in the main thread) that cancelled
    the run: the handler there before is still called, and ``default_int_handler`` raises
    as ever, but ``asyncio.run``'s only cancels its main task and returns, which a caller
    blocked waiting for a thread never noticed (attack48's F5). Another handler that
    returns (a program's own) is the program's say: the wait goes on."""
    heard = threading.Event()
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield heard
        return
    task = asyncio.current_task() if loop_runs() else None
    before = task.cancelling() if task is not None else 0
    asyncios = isinstance(
        getattr(getattr(previous, "func", None), "__self__", None), asyncio.Runner
    )

    def hear(signum: int, frame: Any) -> None:
        previous(signum, frame)
        if asyncios or (task is not None and task.cancelling() > before):
            heard.set()

    signal.signal(signal.SIGINT, hear)
    try:
        yield heard
    finally:
        if signal.getsignal(signal.SIGINT) is hear:
            signal.signal(signal.SIGINT, previous)


def in_own_thread(
    call: Callable[[], Any], name: str, left: Callable[[Any], None] | None = None
) -> Any:
    """``call()`` in a thread of its own (this thread's context copied: what a cell prints,
    the run's ``keeping``), its result returned, or whatever it raised raised here. A Ctrl-C
    (or exit) while this thread waits is raised here at once (under ``asyncio.run``, whose
    Ctrl-C cancels its main task, as at an ``await``: ``CancelledError``); the call goes on
    to its end in its thread (a saga's steps and undos are not cut short in the middle), as
    a saga started with ``start_saga`` goes on in DBOS's, and the exception's note says so.
    ``left`` is then given what the call returns (nobody else gets it: a runner ``start``
    made is closed so)."""
    looping = loop_runs() or not in_dbos()  # (else: called in a run's step, 282 F3)
    context = outside_dbos(contextvars.copy_context())
    ended: list[tuple[bool, Any]] = []
    done = threading.Event()
    gone: list[bool] = []  # (the caller left: set under _GUARD, read there)

    def work() -> None:
        try:
            value = context.run(call)
        except BaseException as exc:  # (raised in the caller, whatever it is)
            ended.append((False, exc))
        else:
            with _GUARD:
                if not gone:
                    ended.append((True, value))
            if gone and left is not None:
                left(value)
        finally:
            done.set()
            with _GUARD:
                if thread in ABANDONED:
                    ABANDONED.remove(thread)

    thread = threading.Thread(target=work, name=f"rollback-lessons {name}", daemon=True)
    try:
        with _ctrl_c_heard() as heard, blocking():  # (this loop: work of it handed back
            thread.start()  # there is never waited for: attack98 F7, a hang)
            while not done.wait(SLICE):
                if heard.is_set():  # (as at an ``await``: asyncio.run then raises
                    raise asyncio.CancelledError  # KeyboardInterrupt, as for any Ctrl-C)
    except BaseException as exc:
        with _GUARD:
            if not ended:
                gone.append(True)
                if left is not None and not done.is_set():
                    ABANDONED.append(thread)
        if ended and ended[0][0] and left is not None:  # (made, then the Ctrl-C: not taken)
            left(ended[0][1])
        if gone:
            exc.add_note(
                f"{name}() goes on in thread {thread.name!r} "
                + (
                    "to its end"
                    if name.endswith(".close")
                    else "until it ends or the runner "
                    "is closed (a with-block's end closes it: a run then stops at its next "
                    "step, left on the file for a relaunch)"
                )
                + (
                    ": an event loop runs in this thread, where DBOS's calls refuse to run"
                    if looping
                    else ": it was called in a step of a run of the runner's"
                )
                + ("; what it makes is closed then (nobody holds it)" if left else "")
            )
        raise
    ok, value = ended[0]
    if ok:
        return value
    raise value


def in_dbos() -> bool:
    """Is this call made inside a DBOS workflow or step (a saga's step that stops its own
    run, or runs another saga on the runner)? DBOS's calls there count as the workflow's own
    steps: ``DBOS.send`` is refused as "no longer owned by this execution", a start fails an
    ``assert`` (attack278 F1, F2)."""
    from dbos import DBOS

    return DBOS.workflow_id is not None


def outside_dbos(context: contextvars.Context) -> contextvars.Context:
    """``context`` without DBOS's own variables (a call from a step runs as one from any
    other thread: DBOS's defaults)."""
    if not any(var.name.startswith("dbos") for var in context):
        return context
    fresh = contextvars.Context()
    for var, value in context.items():
        if not var.name.startswith("dbos"):
            fresh.run(var.set, value)
    return fresh


def off_loop(cls: C) -> C:
    """Make each public method of ``cls`` (``classmethod`` too) run in a thread of its own
    when it is called where an event loop runs (``in_own_thread``); elsewhere as it is. What
    a classmethod makes of ``cls`` for a caller who left is closed (``start``: F7)."""
    for attr, value in list(vars(cls).items()):
        if attr.startswith("_"):
            continue
        if isinstance(value, classmethod):
            made = _closer(cls)
            setattr(cls, attr, classmethod(_wrapped(value.__func__, cls.__name__, made)))
        elif callable(value):
            setattr(cls, attr, _wrapped(value, cls.__name__))
    return cls


def _closer(cls: type) -> Callable[[Any], None]:
    def close(made: Any) -> None:
        if isinstance(made, cls) and callable(shut := getattr(made, "close", None)):
            shut()

    return close


def _wrapped(
    fn: Callable[..., Any], owner: str, left: Callable[[Any], None] | None = None
) -> Callable[..., Any]:
    name = f"{owner}.{fn.__name__}"

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if not loop_runs() and not in_dbos():
            return fn(*args, **kwargs)
        return in_own_thread(functools.partial(fn, *args, **kwargs), name, left)

    return call
