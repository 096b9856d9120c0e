"""The DBOS runner under a running event loop (a Jupyter cell, code inside ``asyncio.run``).

DBOS's synchronous calls (``DBOS.list_workflows``, ``get_workflow_status``, ``recv``, ...)
refuse to run in a thread whose event loop runs, with advice about DBOS's own API
(``await list_workflows_async``) that does not apply to the runner (attack46's F4: the
README's example failed in a notebook cell). There, each public call of the runner and of
its handles runs whole in a thread of its own instead, the caller's thread waiting for it,
as Step Functions and BPMN run there: the same result, or the same error raised."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

C = TypeVar("C", bound=type)


def loop_runs() -> bool:
    """Does an event loop run in this thread (DBOS's sync calls then refuse)?"""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def in_own_thread(call: Callable[[], Any], name: str) -> Any:
    """``call()`` in a thread of its own (this thread's context copied: what a cell prints,
    the run's ``keeping``), its result returned, or whatever it raised raised here. A Ctrl-C
    (or exit) while this thread waits is raised here at once; the call goes on to its end in
    its thread (a saga's steps and undos are not cut short in the middle), as a saga started
    with ``start_saga`` goes on in DBOS's, and the exception's note says so."""
    context = contextvars.copy_context()
    ended: list[tuple[bool, Any]] = []
    done = threading.Event()

    def work() -> None:
        try:
            ended.append((True, context.run(call)))
        except BaseException as exc:  # (raised in the caller, whatever it is)
            ended.append((False, exc))
        finally:
            done.set()

    thread = threading.Thread(target=work, name=f"rollback-lessons {name}", daemon=True)
    try:
        thread.start()
        done.wait()
    except BaseException as exc:
        if not done.is_set():
            exc.add_note(
                f"{name}() goes on to its end in thread {thread.name!r}: an event loop runs "
                "in this thread, where DBOS's calls refuse to run"
            )
        raise
    ok, value = ended[0]
    if ok:
        return value
    raise value


def off_loop(cls: C) -> C:
    """Make each public method of ``cls`` (``classmethod`` too) run in a thread of its own
    when it is called where an event loop runs (``in_own_thread``); elsewhere as it is."""
    for attr, value in list(vars(cls).items()):
        if attr.startswith("_"):
            continue
        if isinstance(value, classmethod):
            setattr(cls, attr, classmethod(_wrapped(value.__func__, cls.__name__)))
        elif callable(value):
            setattr(cls, attr, _wrapped(value, cls.__name__))
    return cls


def _wrapped(fn: Callable[..., Any], owner: str) -> Callable[..., Any]:
    name = f"{owner}.{fn.__name__}"

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if not loop_runs():
            return fn(*args, **kwargs)
        return in_own_thread(functools.partial(fn, *args, **kwargs), name)

    return call
