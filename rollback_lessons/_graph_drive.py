"""Carrying out a graph saga in process (``schedule.GraphMachine`` decides, this calls).
Each step is a small loop written once (``step_ops``: call, tell the machine, wait and try
again when it says so); ``drive_graph`` runs the ready steps one at a time, in definition
order (or, with ``pick``, a chosen completion order without asyncio), ``adrive_graph`` at
once as asyncio tasks; both hand the rollback to the machine's loop (``Driver.drive``)."""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from . import _forward, _program_end
from ._branches import LOST, POLL, Broke, acarry, closed, not_run, original, returned_cut
from ._drive import Call, asks_cancel, failed_asking, own_cancel
from ._guards import began_cut, cancel_heard, settled
from ._results import ended
from ._shutdown import LoopEnded, branch_cut, half_made, rescued, taken_back
from .calls import answering, call_sync, call_timed, check_observer
from .events import describe
from .faults import untraced
from .machine import Phase
from .operations import Op, RunStep, Wait
from .rules import Kind
from .schedule import GraphMachine, GraphOp, Ready, cancel, past_pivot

if TYPE_CHECKING:
    from ._run import Run

Asked = Callable[[], bool] | None
"""Has the run's caller asked it to stop? (a cancel token's ``is_set``)"""
Pick = Callable[[tuple[str, ...]], str]
"""Which of the running steps finishes next (a chosen completion order)."""


def _cancel(run: Run, asked: Asked) -> GraphOp | None:
    """Tell the machine if the caller asked to stop (once)."""
    gm: GraphMachine = run.m  # type: ignore[assignment]
    if asked is None or gm.cancelled or not asks_cancel(gm):  # (failed meanwhile: not asked)
        return None
    try:
        try:
            if not asked():
                return None
        except Exception as exc:  # a failure; its repr first: a Ctrl-C it raises is one
            describe(exc)  # raised in the function (attack37 F2: the pivot told cut short)
            return asking_failed(gm, exc)
    except BaseException as exc:  # a Ctrl-C: the run fails there (a step that returned as
        run.raise_after = run.raise_after or exc  # it was asked is done: undone), then
        return gm.broken(exc, asked=True)  # it is re-raised (a step waiting to retry fails with it)
    op = cancel(gm, run.cancelling())
    if gm.cancelled:  # (journalled now: its branches may run on long before an event)
        cancel_heard(run, run.stopped_by, taken=True)
    return op  # type: ignore[return-value]


def asking_failed(gm: GraphMachine, error: Exception) -> GraphOp | None:
    """The cancel function raised ``error``: a failure, not a cancel (``_drive.failed_asking``):
    once the running steps ended the run fails with it, as a step's error would; past the
    pivot declined, and noted (the Step Functions runner's rule too: ``live.py``)."""
    if gm.rolling or gm.phase is Phase.DONE or gm.failing:
        return None
    if past_pivot(gm):
        failed_asking(gm, untraced(error))  # (declined, and noted)
        return None
    return gm.broken(untraced(error), asked=True)


CancelLike = Callable[[], bool] | Any
"""A cancel token: a ``threading.Event`` (or anything with ``is_set()``), or a function
answering True once the run should stop."""


def asked_of(cancel: CancelLike | None) -> Callable[[], bool] | None:
    if cancel is None:
        return None
    asks = is_set if callable(is_set := getattr(cancel, "is_set", None)) else cancel
    if not callable(asks):
        raise TypeError(f"cancel must be an Event (is_set()) or a function, got {cancel!r}")
    check_observer(asks, "cancel")  # (an async one's coroutine was read as True: 210 F1)
    return answering(asks)  # (a coroutine it returns refused as it comes: 230 F1)


ASKED_AT = (
    "before the first step starts, as each step returns (before it is told done: the last "
    "one too, before the run commits) and after each wait to retry a step"
)
"""Where a run's cancel is asked, on every engine (``saga.run``'s list and graph drivers,
DBOS, Step Functions, BPMN), and nowhere else: as often, at the same points, whatever runs
the saga (aside: ``stop_execution``, heard before a step starts, and ``arun``, which also
looks when a turn of its loop ends with no step ended, its branches running or waiting)."""


def listen(run: Run, asked: Asked) -> None:
    """Hand the machine the caller's cancel: it asks it as each step returns (the last one
    too, before the run commits), the one rule every engine keeps (``GraphMachine.hear``);
    its driver asks it before the start and after each wait (``ASKED_AT``)."""
    if asked is not None:
        run.m.hear = partial(_cancel, run, asked)  # type: ignore[attr-defined]


def first_of(completion: Sequence[str]) -> Pick:
    """Of the running steps, the one named first in ``completion`` finishes next (unnamed
    ones last, in the order they started)."""
    rank = {step: n for n, step in enumerate(completion)}
    return lambda running: min(running, key=lambda s: rank.get(s, len(rank)))


def step_ops(
    run: Run, step: str, asked: Asked, inline: bool = False, begun: Any = None
) -> Generator[Call | float, Any, GraphOp]:
    """One step, launched already: its attempts, waits and retries, told to the machine;
    returns the machine's answer once the step ended (more steps ready, or the run over).
    ``inline`` (synchronously): it makes its calls itself, as ``_carry`` would. ``begun``
    (``acarry``'s): a Ctrl-C here before its action was first called goes out as is (its
    branch finds it not begun: not run), not told as one cut inside the call."""
    gm: GraphMachine = run.m  # type: ignore[assignment]
    while True:  # (its call made before the ``try``: a Ctrl-C as it is, before it is handed
        call = Call(run.actions[step], run.args, "action", step, None)
        try:  # over, is not in the step's action: its branch finds it not begun, not run)
            if inline:  # (marked begun as it is called, as acarry does: before, never called)
                result = call_sync(run.actions[step], run.args, "action", step, None, begun)
            else:
                result = yield call
        except BaseException as exc:
            if type(exc) is GeneratorExit:  # closed (its driver told the machine already)
                raise
            if begun is not None and step not in begun and not isinstance(exc, Exception):
                raise  # (on its own lines, before its Call was handed over: never called)
            end = None if issubclass(type(exc), Exception) else ended(exc, "action", step)
            if end is not None and end[0]:  # its work's end, waited for as the cut came
                run.results[step] = end[1]  # (asyncio.run's second Ctrl-C): told first,
            elif end is not None:  # done: undone; refused: failed with its own error,
                run.called()  # never retried (attack95 F3: reported leaked)
                run.error = run.raise_after = exc
                gm.broken(exc)
                return gm.step_error(step, end[1])
            if step in run.results and not issubclass(type(exc), Exception):
                return returned_cut(run, step, exc) or Ready(())  # (returned: a Ctrl-C after)
            run.called()
            if issubclass(type(exc), Exception) or (own_cancel(exc) and not _forward.was_cut(exc)):
                run.error = untraced(exc)
                op = gm.step_error(step, exc)
            else:  # Ctrl-C: failed for good, never retried; re-raised once it is all over
                run.error = exc  # (a cancel of its task is arun's: raised as arun's, 132 F1)
                run.raise_after = run.raise_after if _forward.was_cut(exc) else exc
                op = gm.step_cut(step, exc, runs=bool(exc.__dict__.pop("runs_on", False)))
            if type(op) is not Wait:
                return op
            try:
                yield float(op.seconds)
            except GeneratorExit:
                raise
            except BaseException as exc:
                run.tick()
                if not issubclass(type(exc), Exception):
                    run.raise_after = exc
                return gm.step_cut(step, exc)
            run.tick()
            _cancel(run, asked)
            if not gm.failing:
                try:  # its next attempt written down before it begins (a journal's)
                    run.retrying(step)
                except BaseException as exc:  # not written: not made, failed for good
                    if not issubclass(type(exc), Exception):
                        run.raise_after = exc
                    run.error = untraced(exc)
                    return gm.step_cut(step, exc)
            op = gm.step_resume(step)
            if type(op) is RunStep:
                continue
            return op
        run.results[step] = result
        if asked is not None:  # (before the cancel is heard: ``listen``)
            run.returned(step)
        run.called()
        return gm.step_done(step)  # (the machine hears the cancel first: ``listen``)


def _carry(run: Run, loop: Generator[Call | float, Any, GraphOp]) -> GraphOp:
    """Carry out one step's loop synchronously."""
    try:
        todo = next(loop)
        while True:
            try:
                if isinstance(todo, Call):
                    fn, args, role, name, timeout = todo
                    if timeout is None:
                        done = call_sync(fn, args, role, name)
                    else:
                        done = call_timed(fn, args, role, name, timeout)
                else:
                    run.clock.sleep(todo)
                    done = None
            except BaseException as exc:  # a branch is arun's own task: a cancel of it is
                todo = loop.throw(branch_cut(run, exc))
                continue
            todo = loop.send(done)
    except StopIteration as over:
        return over.value  # type: ignore[no-any-return]


def drive_graph(run: Run, asked: Asked = None, pick: Pick | None = None) -> Op:
    """Run the graph synchronously: one step at a time, the first ready in definition order
    (or, with ``pick``, every ready step started at once and ``pick`` choosing which running
    step finishes next); then the rollback, if any."""
    gm: GraphMachine = run.m  # type: ignore[assignment]
    listen(run, asked)
    op: GraphOp = _cancel(run, asked) or gm.start()
    loops: dict[str, Generator[Call | float, Any, GraphOp]] = {}
    launched: list[str] = []  # (each step as it is launched; ``begun``: its action called)
    begun: dict[str, bool] = {}
    try:  # (the loop's test too: a Ctrl-C there, as a step returned, attack273 F2)
        while type(op) is Ready:  # (asked as each step returns, not again here: nor is it in
            # arun's timing that ``pick`` plays, each step's end run to its freed steps'
            for step in gm.ready() if pick is not None else gm.ready()[:1]:  # start in one
                run.tick()  # turn: attack47 F4)
                launched.append(step)
                gm.launch(step)
                loops[step] = step_ops(run, step, asked, inline=True, begun=begun)
            step = pick(tuple(loops)) if pick is not None else next(iter(loops))
            op = _carry(run, loops[step])
            del loops[step]
    except BaseException:  # steps launched whose actions were not called yet (the timing
        run.uncalled = tuple(s for s in launched if s not in begun)  # played, or a Ctrl-C
        raise  # before its call, attack269 F1): cut short, they had no effect (attack19 F6)
    return run.drive(op)  # type: ignore[arg-type]


async def adrive_graph(run: Run, asked: Asked = None) -> Op:
    """Run the graph's ready steps at once, as asyncio tasks, until the run is over; then
    the rollback, if any. Called shielded (``Saga.arun``): a cancellation of the caller's
    task is told to the machine there, and this goes on to undo. Whatever raises going
    forward outside a step's call (a journal write as a step starts or ends) never leaves a
    branch behind: the machine hears it (``broken``), the branches still running are
    awaited and told, and only then is the run failed with it."""
    import asyncio

    gm: GraphMachine = run.m  # type: ignore[assignment]
    tasks: dict[asyncio.Future[GraphOp], str] = _forward.branches(run)
    broken: BaseException | None = None
    again: BaseException | None = None  # a second Ctrl-C, as a branch's failure was told
    run.wake = asyncio.Event()  # set once the run stops: a branch's retry wait ends then
    begun: dict[str, bool] = {}  # the steps whose action was called (``acarry``)
    ends: dict[Any, Any] = {}  # each branch's answer, by its task, as it returns

    def start_ready() -> None:
        for step in gm.ready():
            if tasks and unheard():  # (arun's task cancelled as one started: heard first)
                return
            run.tick()
            coroutine = None
            try:
                gm.launch(step)  # here or as a step ends, not in its task: never launched twice
                coroutine = branch(step)
                tasks[_forward.engine_task(coroutine)] = step
            except BaseException:  # (a Ctrl-C as its task was made: attack55 F5)
                untasked(step, coroutine)
                raise

    def untasked(step: str, coroutine: Any) -> None:
        """``step`` launched, its task perhaps never made: kept if made, else not called."""
        made = half_made(coroutine) if coroutine is not None else []  # (F8: half made,
        if made and step in gm.busy:  # unregistered; never scheduled: ended, never awaited
            tasks[made[0]] = step  # for ever, attack58 F5's hang)
        elif step in gm.busy and step not in tasks.values():
            gm.not_called(step)

    async def branch(step: str) -> GraphOp:
        mine = asyncio.current_task()
        try:
            op = await acarry(run, step_ops(run, step, asked, False, begun), begun)
            if type(op) is Ready:  # the steps its end frees start now, before another step's
                op = await heard_first() or op  # end is told (two ending in one turn of the
                start_ready()  # loop): the order a timing of ``saga.run(completion=...)`` gives
            ends[mine] = op = await _forward.answered(run, op)  # (kept: a cancel asked
            return op  # after it ends the task cancelled, its answer read there, 126 F1)
        except BaseException as exc:  # told the machine now, in this task: no other
            if type(exc) is GeneratorExit and closed(asyncio, mine):  # (closed, ``ended``:
                raise  # the machine told already; else an observer's, attack124 F1)
            exc = taken_back(exc, private=True) or exc  # (asyncio.run's end: the Ctrl-C)
            exc = run.shutdown if isinstance(exc, LoopEnded) and run.shutdown else exc
            try:  # branch's end goes first
                answer = told(step, original(exc), step in begun)
            except BaseException as again:  # a second Ctrl-C as it was told (an observer of
                answer = None  # the step's failure): cuts the rollback. Its step done, the
                if step not in gm.busy and not gm.failing:  # first unheard: told now, here,
                    answer = gm.broken(original(exc))  # before a branch's end commits it
                ends[mine] = broke = Broke(exc, answer, again)  # (returned: never logged,
                return broke  # type: ignore[return-value]  # 122 F1; kept as ``op``)
            ends[mine] = broke = Broke(exc, answer)
            return broke  # type: ignore[return-value]

    def told(step: str, exc: BaseException, called: bool = True) -> GraphOp | None:
        """A Ctrl-C while its own step runs or waits (a wait's cancel function, an observer
        of its retry) cuts that step short, as ``saga.run`` does; else the run fails there.
        Before its action was first ``called``, the step was not run (attack62 F3)."""
        if not issubclass(type(exc), Exception) and step in gm.busy and not gm.rolling:
            if called and step in run.results:  # (its call returned, not told: done)
                return returned_cut(run, step, exc)
            return gm.step_cut(step, exc) if called else not_run(gm, step, exc)
        if exc is run.in_doubt:  # a Ctrl-C as the commit was written: nothing is undone,
            return settled(run, exc)  # the journal says (saga.run's rule; attack21 A1)
        return gm.broken(exc)

    async def heard_first() -> GraphOp | None:
        """A cancel of arun's task asked as a step ended (by an observer, by the step itself)
        is heard before the next step starts, told to the machine as a cancel asked there:
        nothing more starts, a pivot not yet started never does (attack98 F1: heard only as
        arun's task next ran, after the next step, the pivot too). The caller's cancel
        function is asked at its own points only (``ASKED_AT``)."""
        _forward.forward_asked(run)  # (one asked of this task, a branch's: arun's)
        await _program_end.gate(run)  # (a daemon's loop at the program's end: 310 F2, F5)
        if run.arun is None or gm.cancelled or broken is not None:
            return None
        pivot = Kind.PIVOT in [gm.specs[s].kind for s in gm.ready()]  # (before it only:
        for _ in range(_forward.TURNS if pivot else 0):  # a timing of ends kept) turns of
            await _forward.turn(run)  # the loop: a cancel it delivers, a wait_for's timeout, a
        for _ in range(3):  # call_soon_threadsafe, lands before the email: attack102 F7
            if not unheard():  # (then arun's task runs first: ``shielded`` hears it)
                break
            await _forward.turn(run)
        return ask() if run.stopped_by is not None else None

    def unheard() -> bool:
        """Is arun's task asked to cancel, ``shielded`` not yet told (its cancels before
        arun began are not this run's)?"""
        if run.arun is None or run.stopped_by is not None:
            return False
        return bool(run.arun.task.cancelling() > run.arun.before)

    def ask() -> GraphOp | None:
        """The cancel, asked here (not as a step ends): a Ctrl-C in it fails the run."""
        nonlocal broken
        try:
            return _cancel(run, asked)
        except BaseException as exc:  # (nothing is left behind: the branches are awaited)
            broken = broken or exc
            return gm.broken(exc)

    answers: list[GraphOp | None] = []  # the branches' answers read, kept till acted on

    def read(done: set[asyncio.Future[GraphOp]]) -> GraphOp:
        """The ended branches' answers, each read once (a Ctrl-C as one is read: its task is
        read again), the first that ends the run acted on, else the steps ready."""
        for task in done:
            if task in tasks:
                answers.append(answer_of(task))
                del tasks[task]
        return first_over() or Ready(gm.ready())

    def answer_of(task: asyncio.Future[GraphOp]) -> GraphOp | None:
        nonlocal broken, again
        kept = ends.pop(task, None)  # (its answer, once given)
        try:
            if kept is not None and task.cancelled():  # (asked of it as it returned, a
                return _forward.given(run, kept)  # signal handler's: arun's, attack126 F1)
            answer = task.result()
            if isinstance(answer, Broke):  # (a branch asyncio lost, ended: ``rescued``)
                raise answer
            return answer
        except Broke as exc:  # told the machine in part (and ``broken``): fails there
            broken = broken or original(exc.exc)
            again = again or exc.again
            step = tasks[task]  # (a second Ctrl-C as a step never called was told: not run,
            if exc.again is not None and step not in begun and step in gm.busy:  # not leaked)
                return not_run(gm, step, broken)
            return exc.answer
        except asyncio.CancelledError as exc:  # cancelled before its first line ran
            if tasks[task] in gm.busy:  # (asyncio.run's end, attack43 F6): never called
                gm.not_called(tasks[task])
            broken = broken or run.shutdown or LoopEnded(describe(exc))
            return gm.broken(broken)
        except BaseException as exc:  # a Ctrl-C as its branch began, before its ``try``: its
            broken = broken or exc  # action never called (read again, never: a loop for ever);
            own = task.done() and not task.cancelled() and task.exception() is exc
            if own and isinstance(exc, KeyboardInterrupt | SystemExit):  # (its branch's own:
                run.shutdown = run.shutdown or exc  # asyncio raised it out of the loop, F5)
            return told(tasks[task], exc, called=tasks[task] in begun)

    def first_over() -> GraphOp | None:
        over = [a for a in answers if a is not None and type(a) is not Ready]
        return over[0] if over else None

    listen(run, asked)
    op: GraphOp | None = ask()
    if broken is None and op is None:
        try:
            op = gm.start()
        except BaseException as exc:  # an observer of the start: the run fails there
            broken = exc
            op = gm.broken(exc)
    op = op if op is not None else Ready(gm.ready())
    look = False  # only after a wait with no step ended: each end was asked as it returned,
    while type(op) is Ready:  # where saga.run and ``completion=`` ask (attack47 F4)
        try:  # (the turn's own lines too: a Ctrl-C there left a branch running, fixarun3)
            cut = ask() if broken is None and look else None
            cut = cut or await heard_first()  # (as a step ended: before the next starts)
            look = False
            if cut is not None:
                op = cut
                continue
            try:
                start_ready()
            except BaseException as exc:  # (a step whose start was not written never runs)
                broken = broken or exc
                answer = gm.broken(exc)  # (no step runs: the run's end, its rollback)
                if answer is not None and type(answer) is not Ready:
                    op = answer
                    break
            if not tasks:
                break
            # (the looks before the wait too: a Ctrl-C as one returns is heard, attack58 F4)
            if gm.failing:  # (a branch's retry wait ends: it will not be tried again)
                run.wake.set()
            poll = POLL if asked is not None and not gm.failing else LOST
            answers.clear()  # (the last round's: acted on)
            done, _ = await asyncio.wait(tasks, timeout=poll, return_when=asyncio.FIRST_COMPLETED)
            look = not done  # (a look while every branch runs or waits: arun's own)
            done = done or rescued(  # (one lost before its action was called: not run)
                tasks, run.shutdown, lambda step, cut: Broke(cut, told(step, cut, step in begun))
            )
            op = read(done)
        except asyncio.CancelledError as exc:  # asyncio.run's end (a second Ctrl-C, an exit)
            if _forward.forwarded(run, exc):  # (an observer's cancel of this task: arun's)
                continue
            if (ki := taken_back(exc, private=True)) is None:  # while steps run: the run
                raise  # fails there, what was done undone,
            run.shutdown = run.shutdown or (None if isinstance(ki, LoopEnded) else ki)
            broken = broken or ki  # the branches awaited (attack42 F1, F10; attack43 F6: a
            op = first_over() or gm.broken(ki) or Ready(gm.ready())  # cancel no Ctrl-C made,
            continue  # as it stopped the loop inside its own code: this task is arun's own)
        except (KeyboardInterrupt, SystemExit) as exc:  # heard here, as the wait began or its
            broken = broken or exc  # answers were read: the branches are awaited and told,
            op = first_over() or gm.broken(exc) or Ready(gm.ready())  # then the run fails
            continue  # (attack55 F4, attack62 F2: left to asyncio.run's end, a MachineError
            # logged per branch, a branch still running dropped, the outcome said nowhere)
    if broken is not None and not isinstance(broken, Exception) and run.raise_after is None:
        run.raise_after = broken  # a Ctrl-C: re-raised once what was done is undone
    if again is not None:  # (every branch ended): the run fails, its rollback cut at once
        if type(op) is Ready:
            assert broken is not None
            op = run.fail(broken)
        return began_cut(run, again)  # (no undo called yet: "as the rollback began")
    if type(op) is Ready:  # no step's end answered the run's end: it fails here
        assert broken is not None
        if gm.rolling:  # (failed, its answer lost to the Ctrl-C as it was told: the rollback
            return run.cut(broken)  # cut there, named by it, as saga.run's: attack62 F1)
        return await run.aroll_back(broken)
    return await run.adrive(op)  # type: ignore[arg-type]
