"""A cancel user code asks of the engine's task it runs in, inside ``saga.arun`` (a step or
an ``on_event`` observer calling ``asyncio.current_task().cancel()``): arun's own cancel,
asked of arun's task, as the README says of "a cancel of arun's task asked ... by an
observer, by the step itself" (attack123 F2: it was taken for asyncio.run's end, the run
going on to commit, or undoing nothing, a private ``LoopEnded`` raised). ``run.arun`` is
the run's ``Home``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Home:
    """Where a cancel asked of an engine's task goes: arun's task (an async block's, for its
    rollback: ``_shutdown.hand_off``)."""

    task: Any
    before: int  # (the task's cancels before the run: not this run's, ``heard_first``)
    asked: set[Any] = field(default_factory=set)  # (engine tasks whose cancel it was asked)
    given: list[Any] = field(default_factory=list)  # (the run task's answer, as it returned)
    branches: dict[Any, str] = field(default_factory=dict)  # (its steps' tasks: ``branches``)


def branches(run: Any) -> dict[Any, str]:
    """The dict of ``run``'s steps' tasks (task: step), kept on its ``Home`` if it has one:
    the program's end cuts them there (``_task_left.arun_left``)."""
    home = getattr(run, "arun", None)
    if home is None:
        return {}
    home.branches.clear()
    return home.branches  # type: ignore[no-any-return]


TURNS = 16
"""The turns of the loop ``arun`` gives before an irreversible step starts, so that a cancel
the loop delivers lands before it: a ``wait_for``'s timeout takes four (its timer, its
waiter, its own task cancelling arun's, arun's task hearing it: attack102 F7), another
task's ``wait_for`` (3.11) then a cancel up to eight (attack103 F6, F12): twice that, each a
bare ``sleep(0)``. Before any other step none (a late cancel: that step runs, then is
undone), so that the steps ending in one turn of the loop keep ``completion=``'s timing."""


_TASK: list[Any] = []  # (the class, made once asyncio is imported: ``engine_task``)


def engine_task(coroutine: Any) -> Any:
    """``asyncio.ensure_future(coroutine)`` for a task of the engine's own, which knows who
    asked its last cancel: code inside it (``inside``: user code's, a signal handler's
    ``current_task().cancel()``), code while the loop ran (``in_run``: that, another task's,
    a callback's: a "graceful shutdown" cancelling every task), or asyncio.run's end (the loop
    stopped: neither). Told apart by that, not by whether arun's task was asked too (attack134
    F2: a TaskGroup's cancel of the block asked first, the undo's own cancel was taken for
    asyncio.run's end; attack135 F1: a shutdown's, the private LoopEnded raised). A cancel
    taken back (``uncancel``, a cancel scope's) is no longer the last (135 F2)."""
    import asyncio
    import sys

    if not _TASK:

        class EngineTask(asyncio.Task):  # type: ignore[type-arg]
            inside = in_run = -1  # (the cancel count as the last one was asked so)

            def cancel(self, msg: Any = None) -> bool:
                asked = super().cancel(msg)
                try:
                    me = asyncio.current_task()
                except RuntimeError:  # (no loop running: asyncio.run's end)
                    self.inside = self.in_run = -1
                    return asked
                if asked:
                    self.in_run = self.cancelling()
                    self.inside = self.in_run if me is self else -1
                group_taken_back(self, asked, sys._getframe(1))
                return asked

            def uncancel(self) -> int:
                left = super().uncancel()
                if left < self.in_run:
                    self.inside = self.in_run = -1
                return left

        _TASK.append(EngineTask)
    return _TASK[0](coroutine, loop=asyncio.get_running_loop())


def inside(task: Any) -> bool:
    """Was ``task``'s last cancel asked from inside it (``engine_task``)?"""
    return bool(getattr(task, "inside", -1) == task.cancelling() > 0)


def in_run(task: Any) -> bool | None:
    """Was ``task``'s last cancel asked while the loop ran (None: not an engine's task)?"""
    if not is_engine_task(task):
        return None
    return bool(task.in_run == task.cancelling() > 0)


def is_engine_task(task: Any) -> bool:
    """Is ``task`` one of the engine's own (``engine_task``), which keeps its cancels' story
    itself (never ``hosted``)?"""
    return hasattr(task, "in_run")


def home_asked(run: Any) -> None:
    """A cancel asked of an engine's task, asked of arun's task (the run's ``Home``), if any."""
    home = getattr(run, "arun", None)
    if home is not None and not home.task.done():
        home.task.cancel()


def given(run: Any, answer: Any) -> Any:
    """A branch's ``answer``, its task ended cancelled as it returned it (a cancel asked of
    it then, by a signal handler's ``asyncio.current_task().cancel()``): arun's cancel, the
    answer standing (attack126 F1: taken for asyncio.run's end, nothing undone)."""
    home_asked(run)
    if type(answer).__name__ == "Broke":  # (a branch's failure, told already: raised
        raise answer  # as ``answer_of`` raises one read off its task)
    return answer


def forwarded(run: Any, exc: BaseException) -> bool:
    """Is ``exc``, delivered here, a cancel user code asked of the engine's task it ran in,
    not asyncio.run's end (which cancels arun's own task too)? Then it is taken back, and
    asked of arun's task (if ``forward_asked`` did not already)."""
    home = getattr(run, "arun", None)  # (first: no import where no arun, at Python's
    if home is None or issubclass(type(exc), Exception):  # shutdown it fails, attack86 F5)
        return False
    import asyncio

    if not issubclass(type(exc), asyncio.CancelledError):  # (by type: attack34 F1)
        return False
    task = asyncio.current_task()
    if task in home.asked:  # (asked of arun's task already: ``forward_asked``)
        home.asked.discard(task)
    elif task is not None and inside(task) and not home.task.done():
        home.task.cancel(*exc.args[:1])  # (user code's, whatever else was asked: attack134
        # F2; its message kept, attack183 F2)
    elif (
        task is None
        or task is home.task
        or not task.cancelling()
        or issubclass(type(exc.__context__), KeyboardInterrupt | SystemExit)
        or home.task.done()
        or in_run(task) is False  # (asked as the loop stopped: asyncio.run's end)
    ):
        return False
    elif home.task.cancelling() <= home.before:  # (asked by another task, a callback: a
        home.task.cancel(*exc.args[:1])  # cancel of the run's, if its own was not asked)
    elif in_run(task) is None:  # (not an engine's task: arun's asked already, or asyncio.run's
        return False  # end, as before the engine's tasks knew)
    task.uncancel()  # type: ignore[union-attr]
    return True


def forward_asked(run: Any) -> bool:
    """Is a cancel asked of this engine's task as it ran, not yet delivered (``_must_cancel``:
    a ``TaskGroup`` of Python 3.11 leaves its count up, nothing asked), asked of arun's task?
    Asked as the task runs, it is user code's: asked of arun's task at once, before another
    task looks for it (``heard_first``); its delivery is then taken back (``forwarded``)."""
    home = getattr(run, "arun", None)
    if home is None:
        return False
    import asyncio

    task = asyncio.current_task()
    if task is None or task is home.task:
        return False
    if task in home.asked:
        return True
    if not getattr(task, "_must_cancel", False) or home.task.done():
        return False  # (asked as it ran: user code's, whatever arun's task was asked,
    home.asked.add(task)  # attack125 F1: with arun's asked too, taken for asyncio.run's end)
    home.task.cancel(getattr(task, "_cancel_message", None))  # (its message: attack183 F2)
    return True


async def turn(run: Any) -> None:
    """One turn of the loop in an engine's task, a cancel user code asked of that task
    (``forwarded``) heard here as arun's, never dropping the task's answer with it."""
    import asyncio

    try:
        await asyncio.sleep(0)
    except asyncio.CancelledError as exc:
        if not forwarded(run, exc):
            raise


async def answered(run: Any, answer: Any) -> Any:
    """``answer``, once a cancel user code asked of this task as it ran (a step or an
    observer: ``forwarded``) is heard: asyncio would end the task cancelled, its answer lost."""
    if forward_asked(run):
        await turn(run)  # (delivered at the first turn, taken back)
    return answer


async def late(task: Any) -> Any:
    """A cancel asked of ``task`` (arun's, an async block's) once its run was over, as its
    outcome was built (a signal handler's ``task.cancel()``): delivered here, to be raised
    with the outcome, not left to end the task cancelled, the outcome dropped (attack116 F3),
    or swallowed by the error the task raised (F4). Its last look is an attribute's (no call
    after it, where a signal handler could run)."""
    import asyncio

    try:
        if task is None or not task._must_cancel:
            return None
    except AttributeError:  # (a task of another make: not looked for)
        return None
    try:
        await asyncio.sleep(0)
    except asyncio.CancelledError as exc:
        return exc
    return None


def cut(exc: BaseException) -> BaseException:
    """``exc``, a cancel asked of the task a call ran in, marked as cutting that call short:
    in doubt, as by a Ctrl-C, never the call's own failure (attack132 F1, F2)."""
    vars(exc)["cut"] = True
    return exc


def was_cut(exc: BaseException) -> bool:
    """Did ``exc`` cut a call short (``cut``)?"""
    return "cut" in getattr(exc, "__dict__", {})


def group_exiting(frame: Any) -> bool:
    """Is ``frame`` (the caller of a task's ``cancel``) a ``TaskGroup`` of Python 3.11 asking
    its host's cancel as it exits (a child failed then)? 3.11 never takes that one back (3.12
    does): the host's cancel count stays up, and a later CancelledError of the code's own (a
    future cancelled) was read as a cancel of the run (attack136 F2, attack137 F1-F3)."""
    from asyncio.taskgroups import TaskGroup

    code = TaskGroup._on_task_done.__code__
    return frame.f_code is code and bool(getattr(frame.f_locals.get("self"), "_exiting", False))


def group_taken_back(task: Any, asked: bool, frame: Any) -> None:
    """A cancel just ``asked`` of ``task`` by ``frame``: on Python 3.11, a ``TaskGroup``'s as
    it exits (``group_exiting``) is taken back, as 3.12 does."""
    import sys

    if asked and sys.version_info < (3, 12) and group_exiting(frame):
        task.uncancel()


def cancels(task: Any) -> int:
    """The cancels asked of ``task`` that are a run's: all of an engine task's; of the task an
    ``AsyncRollback`` is in (``hosted``), those asked since it was entered. One being handled
    as it was entered, one the code swallowed before, a count a 3.11 ``TaskGroup`` left, are
    not the block's (attack137 F2; taken back at entry, they were lost to the caller:
    attack138 F2, F3)."""
    blocks = _open(task)
    return max(task.cancelling() - (blocks[-1][1] if blocks else 0), 0)


def _open(task: Any) -> list[Any]:
    """The blocks open in ``task`` (``hosted``), innermost last; once none is, the task is
    left as it was (its ``cancel`` its own again: attack138 F5)."""
    blocks = getattr(task, "hosted_blocks", None)
    if not blocks:
        return []
    while blocks and not blocks[-1][0]():
        blocks.pop()
    if not blocks:
        with contextlib.suppress(AttributeError):  # (the wrapper, if any: 3.11)
            del task.cancel
    return blocks


def hosted(task: Any, is_open: Any) -> None:
    """An ``AsyncRollback`` entered in ``task`` (its steps run there), open while ``is_open()``:
    the task's cancels before are not the block's (``cancels``; a pending one is), and on
    Python 3.11, while a block is open in it, a ``TaskGroup``'s cancel as it exits is taken
    back as 3.12 does (``group_exiting``)."""
    import sys
    import types

    if task is None or is_engine_task(task):
        return
    blocks = _open(task)
    if not blocks:
        task.hosted_blocks = blocks  # (a C task takes attributes, with no ``__dict__``)
    if not blocks and sys.version_info < (3, 12):
        plain = type(task).cancel

        def cancel(self: Any, msg: Any = None) -> bool:
            asked = plain(self, msg)
            if asked and _open(self):
                group_taken_back(self, asked, sys._getframe(1))
            return asked

        task.cancel = types.MethodType(cancel, task)
    blocks.append((is_open, task.cancelling() - (1 if task._must_cancel else 0)))


def stepping(task: Any) -> list[bool]:
    """A step's task that no block is open in (a task of its own: ``asyncio.wait_for``'s,
    ``gather``'s), hosted while the step runs (``hosted``: its 3.11 ``TaskGroup``'s cancel
    taken back there too, attack139 F1); the flag returned, set False, ends that."""
    runs = [True]
    if task is not None and not is_engine_task(task) and not _open(task):
        hosted(task, lambda: runs[0])
    return runs


DESTROYED = "Task was destroyed but it is pending!"


def quieted(home: Any, running: bool = False) -> None:
    """asyncio's own "Task was destroyed but it is pending!" (and the task's repr) for
    ``home``, a run's or a block's task on a loop that stopped, and for the engine's tasks
    there, which Python's shutdown collects pending once the package has said in one line
    what the run left (attack305 F1, F2: told twice, the second raw): silenced (any other
    report of that loop goes on as it was). ``running``: a loop still running, in a daemon's
    thread, a run of it said left for good (``_program_end.gate``)."""
    with contextlib.suppress(Exception):
        loop = home.get_loop()
        if loop.is_running() and not running:
            return
        home._log_destroy_pending = False
        dropping(loop, "quieted", lambda c: c.get("message") == DESTROYED and hasattr(
            c.get("task"), "in_run"))  # fmt: skip


def dropping(loop: Any, mark: str, drop: Callable[[dict[str, Any]], bool]) -> None:
    """``loop``'s exception handler, wrapped once per ``mark``: the reports ``drop`` picks
    (what the package said in one line already) dropped, any other as it was."""
    if getattr(loop, mark, False):
        return
    before = loop.get_exception_handler()

    def handler(loop: Any, context: dict[str, Any]) -> None:
        if not drop(context):
            before(loop, context) if before is not None else loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    setattr(loop, mark, True)
