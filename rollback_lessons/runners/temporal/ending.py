"""The worker shut down inside its event loop on every stop path (attack61 H1, M2).

``asyncio.run`` ending on a stop (a SIGTERM handler's ``sys.exit``, a second Ctrl-C) cancels
every task left, the worker's own among them: its pollers and its calls were cut in no order,
its shutdown never finished, its native side left running. The process then hung at the
interpreter's end (the SDK's native runtime dropped, waiting on that worker's thread), and a
call that had ended here was reported cut short, its end unknown to a relaunch. So the
worker's tasks (those created in its context: ``start``) take that last cancel as a
shutdown instead: the worker stops as ``close`` stops it, with its grace (calls that end
within it report their end), bounded (past it, the cancels are delivered as they were)."""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, Protocol


class Ending(Protocol):
    def _worker_end(self) -> Coroutine[Any, Any, None]:
        """Shut the worker down, bounded (the runner's own)."""


_WORKER: contextvars.ContextVar[_Owner | None] = contextvars.ContextVar("worker", default=None)


class _Kept(asyncio.Task):  # type: ignore[type-arg]
    """A task of a worker's: a cancel made as its loop ends (not running: ``asyncio.run``
    cancelling what is left) starts that worker's shutdown instead, once."""

    owner: _Owner
    at_end = False  # (its cancel deferred by the loop's end)

    def cancel(self, msg: Any = None) -> bool:
        if self.get_loop().is_running() or self.done() or self.owner.given_up:
            return super().cancel(msg)
        self.at_end = True
        self.owner.defer(self)
        return False

    def exception(self) -> BaseException | None:
        """(``asyncio.run``, its loop stopped, reports a task it cancelled that ended with an
        error: the worker read those of its own tasks, this one's is not news.)"""
        if self.at_end and not self.get_loop().is_running() and not self.cancelled():
            return None
        return super().exception()


class _Owner:
    """A runner's worker's tasks (a cancel of one at the loop's end deferred), and the one
    task that shuts the worker down then."""

    def __init__(self, runner: Ending) -> None:
        self.runner, self.given_up = runner, False
        self.tasks: weakref.WeakSet[_Kept] = weakref.WeakSet()  # (every one made, not only
        # those whose cancel was deferred)
        self.ending: asyncio.Task[None] | None = None

    def defer(self, task: _Kept) -> None:
        if self.ending is None:  # (a plain task, made after asyncio.run listed what to cancel)
            self.ending = task.get_loop().create_task(self._end(), context=contextvars.Context())

    async def _end(self) -> None:
        try:
            await self.runner._worker_end()
        finally:  # (whatever did not end within the grace: cut as the loop's end would)
            self.given_up = True
            # (every one, also those made after the loop's end listed its tasks: the SDK's
            # poll begun during the shutdown, its native future cancelled, is never resolved
            # into the closed loop, a stray "RuntimeError: Event loop is closed" on stderr)
            for task in list(self.tasks):
                task.cancel()


def start(runner: Ending, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """Run the worker's ``coro`` as a task whose tasks (and theirs) are the worker's: a cancel
    made as the loop ends shuts the worker down (``runner._worker_end``) before they end."""
    loop = asyncio.get_running_loop()
    factory = loop.get_task_factory()
    if not getattr(factory, "keeps_workers", False):
        loop.set_task_factory(_factory(factory))
    context = contextvars.copy_context()
    context.run(_WORKER.set, _Owner(runner))
    return loop.create_task(coro, context=context)


def ending(worker: asyncio.Task[None]) -> bool:
    """Was this worker's shutdown (its task: ``start``'s) begun by its loop's end?"""
    owner = getattr(worker, "owner", None)
    return owner is not None and owner.ending is not None


def gone(worker: asyncio.Task[None]) -> bool:
    """Is this worker gone, or going (its task cancelled, or its shutdown begun by the loop's
    end)? Nothing here would run a saga's undos then."""
    return worker.done() or bool(worker.cancelling()) or ending(worker)


def _factory(previous: Callable[..., Any] | None) -> Callable[..., Any]:
    def make(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        context = kwargs.get("context")
        owner = _WORKER.get() if context is None else context.get(_WORKER)
        if owner is None:
            if previous is not None:
                return previous(loop, coro, **kwargs)
            return asyncio.Task(coro, loop=loop, **kwargs)
        task = _Kept(coro, loop=loop, **kwargs)
        task.owner = owner
        owner.tasks.add(task)
        return task

    make.keeps_workers = True  # type: ignore[attr-defined]
    return make
