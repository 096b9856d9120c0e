"""Carrying out what the saga machine answers, in process: ``drive`` synchronously, ``adrive``
awaiting. Each operation is a call (an action or an undo, wrapped once with its faults and
key), a wait on the clock, or a person's answer (none in process: "leave"); how it went is
told back to the machine, which decides the rest. One loop (``operations``) does it all."""

from __future__ import annotations

from collections.abc import Callable, Collection, Generator, Mapping
from typing import Any, NamedTuple

from . import _guards, _program_end
from ._at_exit import Finalizing
from ._forward import was_cut
from ._loop_end import loop_cut
from ._results import awaitable, awaited, checked, ended, to_its_end, with_end
from ._shutdown import shut_down, told_end
from ._timed import acall_timed, within
from ._wrapped import INERT
from .calls import call_timed, cancel_asked, is_async, own_cancel, refused, sleep
from .clock import Clock
from .errors import Cancelled, goes_on
from .events import describe
from .faults import untraced
from .machine import Machine, Phase
from .operations import RAISE, Ask, Finished, Op, RunStep, RunUndo, Wait
from .schedule import cancel, past_pivot

NO_ARGS: tuple[Any, ...] = ()
_STEP = Phase.STEP


class Call(NamedTuple):
    """Call ``fn(*args)``: the ``role`` ("action", "undo") of ``step``; past ``timeout``
    seconds it failed (as ``call_timed`` takes them)."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    role: str
    step: str
    timeout: float | None


def asks_cancel(m: Machine) -> bool:
    """Is the cancel asked now (``_graph_drive.ASKED_AT``), on any engine? Not once the run
    failed (an undo's retry wait): it changes nothing, a request read would be eaten."""
    return not m.rolling and m.phase is not Phase.DONE


def failed_asking(m: Machine, error: BaseException) -> Op | None:
    """The cancel function raised ``error``: the run fails with it, as if a step had (undone,
    ``rolled_back``, not ``cancelled``); past the pivot, declined and noted (``schedule``)."""
    if m.rolling or m.phase is Phase.DONE:
        return None
    if past_pivot(m):
        m.notes = [*m.notes, f"the cancel function raised ({describe(error)}) once the "
                   "irreversible step had started: ignored, the run goes on forward"]  # fmt: skip
        return None
    if m.phase is Phase.STEP:
        m.stop(error)  # told done first: its undo is logged, then the run fails
        return None
    if m.phase is Phase.STEP_WAIT:
        return m.interrupted(error)  # (the step waiting to retry failed for good)
    return m.fail(error)


def begun(m: Machine, step: str, exc: BaseException) -> None:
    """A Ctrl-C (or sys.exit) raised as ``step`` was told done, once the next step began
    (its start event, its intent row written), before its action is called: that step is
    not run now, its row written so at once, before the run's failure is handled, where a
    second Ctrl-C left it ``intent``, leaked for recover (attack62 F4)."""
    if m.phase is _STEP and m.current != step and not issubclass(type(exc), Exception):
        what = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else type(exc).__name__
        m.not_run(m.current, f"the {what} came as it started")  # type: ignore[arg-type]


class Driver:
    """What a run holds to carry out operations; ``Run`` fills it in."""

    m: Machine
    clock: Clock
    monotonic: Callable[[], float]
    started: float
    actions: dict[str, Callable[..., Any]]
    undos: dict[str, Callable[..., Any]]
    results: dict[str, Any]
    args: tuple[Any, ...] = NO_ARGS  # what each action is called with (Saga: the state)
    stateless: Collection[str] = ()  # steps whose undo is called without the state (by name)
    tracer: Callable[[], Mapping[str, Any]] | None = None
    asked: Callable[[], bool] | None = None  # has the caller asked the run to stop?
    stopped_by: BaseException | None = None  # what stopped it (a task's CancelledError)
    home: Any = None  # the task an AsyncRollback's block runs in (``calls.cancel_asked``)
    arun: Any = None  # (arun) its ``_forward.Home``: its task, its cancels before
    error: BaseException | None = None  # the last step error (a with-block raises it)
    raise_after: BaseException | None = None  # a Ctrl-C to re-raise when the rollback is done
    shutdown: BaseException | None = None  # the Ctrl-C asyncio.run ended on (``shut_down``)
    wake: Any = None  # (arun) an asyncio.Event set once the run stops: retry waits end then
    taken: Any = None  # (journal run, TakenOver): the run a takeover ended, and how
    in_doubt: BaseException | None = None  # a Ctrl-C that came as the commit was written
    undone: list[float] | None = None  # (in_a_row) when undos returned, not yet told
    uncalled: tuple[str, ...] = ()  # (completion=) steps launched whose action was not called
    began: str | None = None  # the step whose action was last called (a list's: ``cut_forward``)
    went_on = False  # an undo's work goes on (handed back, begun): its saga is held, F1
    recording = True  # (False: told every step, undo as it happens: ``tests/test_recorded.py``)

    def snap(self) -> None:
        """Snapshot the state (a traced run)."""

    def kept(self) -> bool:
        """Does a journal keep what an interruption leaves, for ``recover``?"""
        return False

    def fenced(self) -> BaseException | None:  # (another process's fence: its error)
        return None

    def tick(self) -> None:
        """Stamp the time of what is about to be told to the machine."""
        self.m.now = self.monotonic() - self.started

    def operations(self, op: Op, inline: bool = False) -> Generator[Call | float, Any, Op]:
        """The one loop: what the machine's answers mean in process, written once. It
        yields each call to make (a ``Call``) or each wait (seconds), is sent back what the
        call returned (or thrown what it raised), tells the machine, and returns the answer
        that hands control back (``PROCEED``, ``RAISE``, ``Finished``). ``drive`` and
        ``adrive`` only carry out what it yields; ``inline`` (``drive``): it makes the calls
        without a deadline itself, as ``drive`` would (a yield per call was most of a
        saga's cost: ``make bench``)."""
        m = self.m
        while True:
            kind = type(op)
            if kind is RunStep:
                step = op.step  # type: ignore[union-attr]
                try:
                    if inline:
                        self.began = step  # (its call begins now: before, a Ctrl-C is not in it)
                        result = self.actions[step](*self.args)
                        if result is not None and type(result) not in INERT:
                            result = checked(result, "action", step)
                    else:
                        result = yield Call(self.actions[step], self.args, "action", step, None)
                except GeneratorExit:  # closed, not interrupted: nothing to tell
                    raise
                except BaseException as exc:  # an Exception is the machine's to judge
                    if self.began != step and not issubclass(type(exc), Exception):
                        if m.phase is _STEP and m.current == step and not m.rolling:
                            m.not_run(step, f"the {type(exc).__name__} came as it started")
                        raise  # (before adrive called it: not in it, not run, attack67 F2;
                        # withdrawn at once: a block that goes on begins the next, F9)
                    back = step in self.results and not issubclass(type(exc), Exception)
                    op = self.returned_cut(exc) if back else self.step_raised(exc)
                    continue
                self.results[step] = result
                self.called()
                try:
                    op = m.step_ok() if self.asked is None else self.heard_done()  # (asked first)
                except BaseException as exc:
                    begun(m, step, exc)
                    raise
            elif kind is RunUndo:
                step, _, timeout = op  # type: ignore[misc]
                args = NO_ARGS if step in self.stateless else self.args
                try:
                    if inline and timeout is None:
                        done = self.undos[step](*args)
                        if done is not None and type(done) not in INERT:
                            checked(done, "undo", step)
                    else:
                        yield Call(self.undos[step], args, "undo", step, timeout)
                except GeneratorExit:  # closed, not interrupted: nothing to tell
                    raise
                except BaseException as exc:
                    op = self.undo_raised(exc)
                    continue
                self.called()
                op = m.undo_ok()
            elif kind is Wait:
                try:
                    yield op.seconds  # type: ignore[union-attr]
                except GeneratorExit:  # closed, not interrupted: nothing to tell
                    raise
                except BaseException as exc:  # Ctrl-C while waiting to retry
                    op = self.wait_raised(exc)
                    continue
                self.tick()
                if m.rolling:  # another undo attempt: is the saga still this run's?
                    taken = self.fenced()
                    if taken is not None:
                        op = m.interrupted(taken)
                        continue
                if self.asked is not None and asks_cancel(m):
                    cut = self.heard()  # a step waiting to retry is lost
                    if cut is not None:
                        op = cut  # type: ignore[assignment]
                        continue
                if not m.rolling:
                    try:  # its next attempt written down before it begins (a journal's)
                        self.retrying(m.current)  # type: ignore[arg-type]
                    except BaseException as exc:  # not written: not made, failed for good
                        self.error, plain = exc, isinstance(exc, Exception)  # (else a Ctrl-C)
                        op = m.interrupted(exc) if plain else self.wait_raised(exc)
                        continue
                op = m.resume()
            elif kind is Ask:
                op = m.answer("leave")  # in process, nobody is there to answer: halted
            else:
                return op

    def heard(self) -> Op | None:
        """Ask the caller's cancel (a step returned, a wait ended): the machine's answer if
        the run stops now, else None (a running step's run stops when it is told done)."""
        m = self.m
        try:
            if not self.asked():  # type: ignore[misc]
                return None
        except Exception as exc:  # a failure, not a cancel (a store it reads is down); its
            describe(exc)  # repr first: a Ctrl-C it raises is one in the function (attack37 F2)
            return failed_asking(m, untraced(exc))
        return cancel(m, self.cancelling())  # type: ignore[return-value]

    def heard_done(self) -> Op:
        """A step returned: its undo written (``returned``), the cancel asked (``heard``),
        then the machine told it is done (a Ctrl-C in either: ``_guards.cut_as_returned``)."""
        m, late = self.m, None
        try:
            self.returned(m.spec.name)  # type: ignore[union-attr]
            self.heard()
        except BaseException as exc:  # (an Exception is caught by ``heard``: a Ctrl-C)
            late = _guards.cut_as_returned(self, exc)
        op = m.step_ok(go_on=late is None)
        return op if late is None else m.fail(late)  # (past the pivot: halted, forward)

    def returned(self, step: str) -> None:
        """A step's call returned, before anything else is heard of it (``Run``: written)."""

    def retrying(self, step: str) -> None:
        """A step's wait is over and its next attempt begins (``Run``: written first)."""

    def cancelling(self) -> BaseException:
        """The error a cancelled run fails with (``Saga.run(cancel=...)``, ``arun``'s)."""
        return self.stopped_by or Cancelled.by_caller()

    def drive(self, op: Op) -> Op:
        """Carry out the operations synchronously. A KeyboardInterrupt or SystemExit in a
        call is thrown back in (what is left is pending) and re-raised once it is over."""
        # Undos without a deadline are called here (as by ``operations``), in a row when the
        # machine says them at once (``in_a_row``): a generator and sends cost most (bench).
        m = self.m
        try:
            while type(op) is RunUndo and op[2] is None:
                plan = m.undo_plan() if self.tracer is None and self.recording else ()
                if plan:
                    op = self.in_a_row(plan)
                    continue
                step = op[0]
                try:
                    done = self.undos[step](*(NO_ARGS if step in self.stateless else self.args))
                    if done is not None and type(done) not in INERT:
                        checked(done, "undo", step)
                except BaseException as exc:
                    op = self.undo_raised(exc)
                    continue
                self.called()
                op = m.undo_ok()
            if type(op) is Finished:
                return self.over(op)
        except BaseException as exc:  # raised outside a call: a stamp, an event, here
            self.told_undos()
            if not m.rolling:
                raise
            return self.cut(exc)
        loop = self.operations(op, inline=True)
        try:
            todo = next(loop)
            while True:
                try:
                    if type(todo) is float or type(todo) is int:
                        self.clock.sleep(todo)  # type: ignore[arg-type]
                        done = None
                    else:  # (a call without a deadline is made inline, by ``operations``)
                        done = call_timed(*todo, owner=self)  # type: ignore[misc]
                except BaseException as exc:
                    todo = loop.throw(exc)
                    continue
                todo = loop.send(done)
        except BaseException as exc:  # its answer, or raised outside a call
            return self.loop_ended(exc)
        finally:
            loop.close()  # now, not when a later gc pass would (amid another run)

    def loop_ended(self, exc: BaseException) -> Op:
        """``drive``'s or ``adrive``'s loop ended: it handed its answer back (StopIteration),
        or something raised outside a call (in an event, a write, here): going forward that
        is the caller's (the run fails there); in the rollback, it ends it (``cut``)."""
        if isinstance(exc, StopIteration):
            return self.over(exc.value)
        if not self.m.rolling or isinstance(exc, Finalizing):  # (Python's shutdown: no more)
            raise exc
        return self.cut(exc)

    def in_a_row(self, plan: tuple[str, ...]) -> Op:
        """Call the machine's ``undo_plan`` one undo after another, stamping when each
        returned; the machine is told at once (``undos_ok``), or as soon as anything reads
        the run meanwhile (``told_undos``), or before one raises: it decides the rest."""
        undos, stateless, args = self.undos, self.stateless, self.args
        done = self.undone = []
        for step in plan:
            try:
                result = undos[step](*(NO_ARGS if step in stateless else args))
                if result is not None and type(result) not in INERT:
                    result = checked(result, "undo", step)
            except BaseException as exc:
                self.told_undos()
                return self.undo_raised(exc)
            done.append(self.monotonic() - self.started)
        op = self.told_undos()
        self.undone = None
        assert op is not None
        return op

    def told_undos(self) -> Op | None:
        """Tell the machine the undos called in a row that returned so far (``in_a_row``)."""
        if not self.undone:
            return None
        m = self.m  # (first: a recorded block's machine, made now, is told them as it is)
        done = self.undone
        if not done:
            return None
        told, done[:] = tuple(done), ()
        return m.undos_ok(told)

    def cut(self, exc: BaseException) -> Op:
        """Raised outside a call once the run failed: the rollback ends, the rest pending."""
        return self.over(self.m.interrupted(exc, self.kept()))

    def over(self, op: Op) -> Op:
        """The loop handed control back: a Ctrl-C that cut the rollback short anywhere is
        re-raised once the rollback is over (an Exception there is the outcome's note)."""
        cut = self.m.interruption  # (read by type, as ``errors.interrupts``)
        if cut is not None and self.raise_after is None and not issubclass(type(cut), Exception):
            self.raise_after = cut
        return op

    async def adrive(self, op: Op) -> Op:
        """Carry out the operations awaiting what the calls return (a timed-out undo cancelled)."""
        loop = self.operations(op)
        try:
            todo = next(loop)
            while True:
                try:
                    if type(todo) is float or type(todo) is int:
                        done = await self.clock.asleep(todo)  # type: ignore[arg-type, func-returns-value]
                        if _program_end.ENDED and self.m.phase is Phase.STEP_WAIT:  # (a block's
                            await _program_end.gate(self, block=True)  # next try: 311 F1)
                    else:
                        fn, args, role, step, timeout = todo  # type: ignore[misc]
                        if role == "action":  # (its call begins now, not as it was handed
                            if cancel_asked(self.home):  # here: a Ctrl-C, a cancel asked
                                await sleep(0)  # before is not in it: attack67 F2, 95 F4)
                            self.began = step
                        if timeout is not None and not is_async(fn):  # (it may block)
                            done = await acall_timed(fn, args, role, step, timeout, self)
                        else:
                            if timeout is not None and (left := refused(self, role, step, timeout)):
                                raise left  # (its call left running: attack84 F4)
                            done = fn(*args)
                            if role == "action" and awaitable(done):  # kept as it returns
                                self.results[step] = done = await to_its_end(done, role, step)
                            elif role == "action":  # (no instant between: ``returned_cut``)
                                self.results[step] = done = checked(done, role, step)  # (F1)
                            elif awaitable(done):  # (to its end: work handed back, attack86)
                                whole = awaited(done, role, step)
                                done = await (
                                    whole
                                    if timeout is None
                                    else within(whole, timeout, role, step, self)
                                )
                            elif done is not None:  # (a generator, async or not, is never
                                checked(done, role, step)  # reported undone: attack84 F2)
                except BaseException as exc:  # CancelledError too
                    thrown = shut_down(self, exc, todo)  # (asyncio.run's end: ``_shutdown``)
                    if thrown is not None:
                        todo = loop.throw(with_end(thrown, exc))  # (its work's end kept)
                    elif not isinstance(todo, float | int) and "ended" in vars(exc):  # (its
                        end = ended(exc, "undo", todo[3])  # work waited for: told, never made
                        todo = loop.throw(self.shutdown or exc) if end is None else (  # again;
                            loop.send(end[1]) if end[0] else loop.throw(end[1]))  # fmt: skip
                    continue  # in doubt, left: attack105 F9, attack109 F5)
                todo = loop.send(done)
        except BaseException as exc:  # its answer, or raised outside a call
            return self.loop_ended(exc)
        finally:
            loop.close()  # now, not when a later gc pass would (amid another run)

    def step_raised(self, exc: BaseException) -> Op:
        self.called()
        if issubclass(type(exc), Exception) or own_cancel(exc):
            self.error = untraced(exc)
            return self.m.step_failed(exc)
        m, kept = self.m, getattr(exc, "__dict__", {})
        step: str = m.current  # type: ignore[assignment]
        end = ended(exc, "action", step) if "ended" in kept else None
        runs_on = kept.pop("runs_on", False)  # (told here, once: the same cancel raised on
        kept.pop("ended", None)  # out of this block into an outer one's step is not that
        kept.pop("ran_on", None)  # step's end, attack92 F1: a sub-saga's refund made twice)
        if end is not None and end[0]:  # a cancel or Ctrl-C came as the action's work ran on:
            self.results[step] = end[1]  # its end is told first, done (its undo logged),
            return self.returned_cut(exc)  # then the run fails with it (attack89 F1, 90 F7)
        if end is not None:  # (refused: failed for good, never retried; attack95 F2: a plan too)
            m.stop(exc)
            op = self.step_raised(end[1])
            self.error = self.raise_after = exc
            return op
        self.error = self.raise_after = exc  # Ctrl-C: the step failed for good, no retry
        return m.interrupted(exc, still_runs=bool(runs_on))  # (its wait given up)

    def returned_cut(self, exc: BaseException) -> Op:
        """A Ctrl-C (or sys.exit) as the loop resumed with a step's result (``adrive`` kept it
        as the call returned): the step is done, told so (``Machine.step_returned``), then
        the run fails there (a with-block's ``do`` raises it), never reported leaked
        (attack65 F8; a list's in ``saga.run``: ``_guards.told_returned``)."""
        self.called()
        self.error = self.raise_after = exc
        m = self.m
        m.step_returned()
        return RAISE if m.plan is None else m.fail(exc)

    def undo_raised(self, exc: BaseException) -> Op:
        self.called()
        if (cut := loop_cut(self, exc)) is not None:  # (asyncio.run's end, no Ctrl-C)
            return cut
        if issubclass(type(exc), Exception) or (own_cancel(exc) and not was_cut(exc)):
            self.went_on = self.went_on or goes_on(exc) is not None  # (attack104 F1)
            return self.m.undo_failed(untraced(exc))
        self.raise_after = self.raise_after if was_cut(exc) else exc  # (Ctrl-C: left
        told_end(self, exc)  # pending, its work's end told first; a cut by arun's cancel too)
        return self.m.interrupted(exc, self.kept())

    def wait_raised(self, exc: BaseException) -> Op:
        """A wait before a retry raised (a Ctrl-C, the clock's own error): in the rollback,
        an error is the outcome's note, never raised over the run's own (attack52 M3)."""
        self.tick()
        self.error = exc
        if not (self.m.rolling and issubclass(type(exc), Exception)):
            self.raise_after = exc
        return self.m.interrupted(exc, self.kept())

    def called(self) -> None:
        """A call returned or raised: stamp the time; a traced state may have changed."""
        self.m.now = self.monotonic() - self.started
        if self.tracer is not None:
            self.snap()
