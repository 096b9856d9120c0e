"""The helper threads of timed synchronous calls that outlived their timeout: the call goes
on there, "and may still complete". A daemon thread dies with the process, so a script (or
``recover``) that ended right after cut the refund it had begun, mid-call, and nothing said
so (attack283 F2). As the process ends they are waited for a while (``WAIT``), and any
still running is said in one line: cut mid-call, its effect to be checked by hand."""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ._at_exit import _open_blocks, said
from ._held import held
from ._loop_end import mid_call, not_undone

WAIT = 5.0
"""How long the process's end waits for such calls, all of them together."""

_LOCK = threading.Lock()
_RUNNING: list[tuple[threading.Event, str]] = []  # (set as it ends, "undo of step 'charge'")
os.register_at_fork(after_in_child=_RUNNING.clear)  # (a fork has none of these threads)


def helper(name: str, target: Callable[..., Any], *args: Any) -> tuple[Any, threading.Event]:
    """A helper daemon thread (not started) calling ``target(*args)``, and the Event set as
    that call ends: how its end is told (a join a Ctrl-C cut marks a thread running on
    stopped: CPython's bpo-45274 fix, in 3.11)."""
    ended = threading.Event()

    def call() -> None:
        try:
            target(*args)
        finally:
            ended.set()

    return threading.Thread(target=call, name=name, daemon=True), ended


def kept(ended: threading.Event, what: str, owner: object = None) -> None:
    """A call (``what``, of the run ``owner``: a saga's id in ``recover``) that runs on past
    its timeout, or past a Ctrl-C that cut its wait, until ``ended`` is set: waited for at
    the process's end."""
    run = owner if isinstance(owner, str) else getattr(owner, "saga_id", None)  # (recover's
    what += f" (saga {run!r})" if isinstance(run, str) else ""  # run: attack286 F6)
    with _LOCK:
        _RUNNING[:] = [(e, w) for e, w in _RUNNING if not e.is_set()]
        _RUNNING.append((ended, what))


def waited(deadline: float, forget: bool = True) -> list[str]:
    """Each such call waited for until ``deadline`` (``time.monotonic``): those still
    running then, named, and (``forget``) forgotten: told once, by the caller. A Ctrl-C cuts
    the wait (raised), what is left kept for the line that follows."""
    while (wait := deadline - time.monotonic()) > 0:  # (one made meanwhile too: 288 F6)
        running = [e for e, _ in list(_RUNNING) if not e.is_set()]
        if not running:
            break
        running[0].wait(min(wait, 1.0))
    if not forget:
        return [w for e, w in _RUNNING if not e.is_set()]
    with _LOCK:
        left, _RUNNING[:] = [w for e, w in _RUNNING if not e.is_set()], []
    return left


_END: dict[str, Any] = {"until": None, "cut": False}


def end_left(cut: bool = False, wait: float | None = None) -> float:
    """Seconds left of the process's end's one wait (``wait``, from its first ask), for all
    it waits for: these calls, a journal's last writes and marks (``durable.writers``): not
    one after another (attack286 F5: 10 s, a Ctrl-C ending one of them only); none once a
    signal (``cut``) ended it."""
    _END["cut"] = _END["cut"] or cut
    if _END["until"] is None:
        _END["until"] = time.monotonic() + (WAIT if wait is None else wait)
    return 0.0 if _END["cut"] else max(0.0, _END["until"] - time.monotonic())


def cut_line(left: list[str], waited: str) -> str:
    """What the process's end says of the calls ``left`` running."""
    one = len(left) == 1
    return (
        f"the {', '.join(left)} still ran in "
        f"{'its helper thread' if one else 'their helper threads'} {waited}: the process "
        f"ends, cutting {'it' if one else 'them'} mid-call; check "
        f"{'its effect' if one else 'their effects'} by hand (partly done, perhaps)"
    )


def _at_end() -> None:
    """A script's end (``atexit``): waited for ``WAIT`` s at most; said if cut (a Ctrl-C
    during the wait cuts them at once, said so, a second one held as it is: attack286 F10),
    on the process's own stderr (a Jupyter kernel's: its cell's output is gone by then,
    attack286 F3)."""
    cut = False
    if not any(not e.is_set() for e, _ in list(_RUNNING)):
        return  # (none left running: nothing to wait for, nor say)
    try:
        waited(time.monotonic() + end_left(), forget=False)
    except BaseException:  # (a Ctrl-C as it waits: the process ends now)
        cut = True
    said: list[bool] = []
    for _ in range(3):  # (a second Ctrl-C as the hold begins: tried again, never said twice)
        try:
            if not said:
                _said(said, cut)
            return
        except BaseException:  # (the hold not yet in place)
            continue


def _said(said: list[bool], cut: bool) -> None:
    with held([]):
        left = waited(0.0)
        if cut:  # (its wait cut short by a Ctrl-C: the rest of the end waits no more)
            end_left(cut=True)
        how = "interrupted" if _END["cut"] else f"of {WAIT:g} s at most over"
        if left:
            with contextlib.suppress(Exception):  # (stderr closed: nothing more to do)
                print(
                    f"rollback-lessons: {cut_line(left, f'as the program ended, its wait {how}')}",
                    file=sys.__stderr__ or sys.stderr,
                )
                still_open()
        said.append(True)


atexit.register(_at_end)  # (as the package loads, once: at a first call made by an exit hook,
# as they run, a hook registered then never runs: attack290 F1, 294 F3, cut unsaid; it
# returns at once when no call runs on. Hooks registered after the import run before it.)


def still_open() -> None:
    """Blocks still open as the process's end cut a call left running (each left suspended
    in a generator): a thread left running that holds its module's globals keeps Python's
    shutdown from closing a generator held there, so none of the block's undos would run
    and nothing would say so (attack289 F2). Which thread holds what is not known here:
    said, one line each, as what follows tells (the line of its end, or none: attack290 F2,
    "undo by hand" of an undo the shutdown then ran). (At ``atexit``: Python whole.)"""
    for block in _open_blocks("_Base"):
        run = block._run
        done = [*run.m.in_effect()[0], *run.m.in_effect()[1]]
        kept = (
            "the journal keeps it unfinished, and recover runs them"
            if run.journal is not None
            else "no journal keeps them: then undo by hand what it did "
            f"({', '.join(map(repr, done))})"
            if done
            else "it did nothing to undo"
        )
        said(
            f"saga {run.run_id!r}: its {type(block).__name__} block was still open as the "
            "program ended, beside that call, whose thread may keep Python's shutdown from "
            "ending it: unless a line saying it was ended follows, none of its undos ran; "
            f"{kept}"
        )


def closed_on(loop: Any, close: Any, blocks: list[Any]) -> None:
    """(``_at_exit._ended_here``, ``_task_left.ended_in_task``.) ``close()``, which ends
    ``blocks`` left on ``loop`` (an async generator's ``aclose``; a task's cancel, awaited),
    which runs on in a daemon thread as the program ends (never to end them: attack302 F6,
    attack306 F7), run on it, waited for while that loop runs (``begun_on``, ``finished``)."""
    finished(begun_on(loop, close), blocks)


def begun_on(loop: Any, close: Any, first: Any = None) -> Any:
    """``close()`` handed to ``loop`` (``closed_on``), not waited for: ``first()`` (a plain
    call, a cut no step may start after: attack309 F1, a step begun after the cut was said)
    made as the loop takes it, in the same turn, then ``close()``'s task. A loop that does
    not take it within ``TAKEN`` seconds (busy, blocked) never begins it (one lock decides:
    attack306 F6, said not run as it ran)."""
    import asyncio
    from concurrent.futures import Future

    taken: list[bool | None] = [False]
    deciding = threading.Lock()
    done: Future[Any] = Future()
    made: list[Any] = []  # (its task: silenced if its loop stops under it, ``finished``)

    def taking() -> None:
        with deciding:
            if taken[0] is None:  # (given up on: never begun)
                return
            taken[0] = True
        try:
            if first is not None:
                first()
            task = asyncio.ensure_future(close(), loop=loop)
            made.append(task)
        except BaseException as exc:
            done.set_exception(exc)
            return
        task.add_done_callback(
            lambda t: (
                done.set_result(None)
                if t.cancelled()
                else (done.set_exception(e) if (e := t.exception()) else done.set_result(None))
            )
        )

    async def taken_whole() -> None:  # (no cut first: the close awaited in the task that
        with deciding:  # takes it, an undo's Ctrl-C raised there as it was, 306 F5)
            if taken[0] is None:
                return
            taken[0] = True
        made.append(asyncio.current_task())
        await close()

    if first is None:
        return loop, taken, deciding, asyncio.run_coroutine_threadsafe(taken_whole(), loop), (
            time.monotonic() + TAKEN), made  # fmt: skip
    loop.call_soon_threadsafe(taking)
    return loop, taken, deciding, done, time.monotonic() + TAKEN, made


def finished(begun: Any, blocks: list[Any]) -> None:
    """What ``begun_on`` handed over, waited for while its loop runs; a loop that did not
    take it in time, or that stopped as it ran it (an undo's Ctrl-C ended its thread), is
    said, never waited for (attack306 F5: the exit hung for ever)."""
    from concurrent.futures import TimeoutError as NotYet

    loop, taken, deciding, done, end, made = begun
    ident = getattr(loop, "_thread_id", None)  # (its thread, while it runs)
    thread = next((t for t in threading.enumerate() if t.ident == ident), None)
    while not taken[0] and time.monotonic() < end and loop.is_running():
        time.sleep(0.01)
    with deciding:
        if not taken[0]:
            taken[0] = None
    how = f"did not take the close within {TAKEN:g} s: none of its undos ran"
    if not taken[0] and not loop.is_running():  # (it stopped first: not busy)
        how = "stopped before it took the close: none of its undos ran"
    while taken[0] and loop.is_running():
        try:
            return done.result(0.1)  # type: ignore[no-any-return]
        except NotYet:
            continue
    if thread is not None and not loop.is_running():  # (its thread's own last words, an
        thread.join(0.5)  # excepthook's traceback, first: not torn by the lines that follow)
    if taken[0]:
        how = "stopped as the close ran: its undos did not all run"
        for task in made:  # (its own, left pending by the loop's stop: never said)
            task._log_destroy_pending = False
    for block in blocks:  # (what stands named: attack306 F1; said once, attack309 F3)
        if taken[0] and getattr(getattr(block._run.m, "phase", None), "name", "") == "DONE":
            continue  # (its rollback over as its loop stopped: its end says it, 310 F6)
        told = how  # (one rolling back as it was left: an undo of it may be mid-call, 309 F7)
        if not taken[0] and getattr(getattr(block._run, "m", None), "rolling", False):
            told = f"did not take the close within {TAKEN:g} s, its rollback running there"
        said(f"saga {block._run.run_id!r}: its event loop {told}{not_undone(block._run)}, "
             f"kept nowhere{mid_call(block._run)}")  # fmt: skip
        _said_once(block._run, made)


def _said_once(run: Any, made: list[Any]) -> None:
    """A run (or block) said left as its loop stopped under its close: nothing more says it
    (Python's shutdown, ``rolling_left``), nor asyncio's "Task was destroyed but it is
    pending!" for its tasks, the engine's and the close's (attack309 F3: said three times)."""
    from ._forward import quieted

    vars(run).update(exit_said=True, rolling_said=True)
    home = getattr(getattr(run, "arun", None), "task", None) or getattr(run, "home", None)
    quieted(home)
    for task in made:
        task._log_destroy_pending = False


TAKEN = 5.0
