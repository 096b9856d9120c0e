"""``Rollback`` and ``AsyncRollback``: an application-level transaction as a ``with`` block.

Like ``contextlib.ExitStack``, but the callbacks run only when the block fails: each undo
is logged as its step succeeds (or just before, when the step may fail after its effect),
and on any exception the log is run backwards, last in first out. The original exception is
re-raised unchanged (same object, type and traceback). When the rollback is incomplete (dead
letters, a halt, or an effect no undo covers) it carries notes (``exc.__notes__``) saying
so, and ``rb.outcome`` has the details."""

from __future__ import annotations

import _thread
import sys
import threading
from collections.abc import Awaitable, Callable, Collection
from types import TracebackType
from typing import Any, TypeVar

from . import _at_exit, _forward, _guards, _shutdown
from ._arun import carried, told_once
from ._recorded import roll_back
from ._run import FUNCTION, NOT_PLAIN, Run, own_error
from ._wakeable import Wakeable
from .calls import INERT, cancel_asked, checked, heard_cancel, this_task
from .clock import Clock
from .errors import StepStillRunning
from .events import Event, EventSink
from .faults import InjectionLike
from .machine import Phase
from .outcome import DeadLetter, Outcome
from .policies import PolicyLike, RetryPolicy
from .ports import UndoJournal
from .rules import Register, UndoOrder

T = TypeVar("T")
_NEW, _OPEN, _ENDING, _CLOSED = "new", "open", "ending", "closed"


class _Base:
    _is_async = False

    def __init__(
        self,
        *,
        policy: PolicyLike = "continue",
        inject: InjectionLike | None = None,
        steps: Collection[str] | None = None,
        undo_order: UndoOrder = "reverse",
        clock: Clock | None = None,
        on_event: EventSink | None = None,
        name: str = "rollback",
        journal: UndoJournal | None = None,
        run_id: str | None = None,
    ) -> None:
        self._run = Run(  # (positionally: name, policy, inject, steps, undos, plan, undo_order,
            # clock, on_event, is_async, journal, run_id: ten keywords cost a with-block 0.6 us)
            name, policy, inject, tuple(steps) if steps is not None else None, None, None,
            undo_order, clock, on_event, self._is_async, journal, run_id)  # fmt: skip
        self._state = _NEW
        self._outcome: Outcome | None = None
        # the step running, one at a time (attack22 H1): {0: (its name,)}, async (name, end);
        self._running: dict[int, Any] = {}  # claimed by an atomic setdefault (attack28 F2)
        self._waiter: Any = None  # a lock released as a step ends: the block waits
        self._left: str | None = None  # the step the block stopped waiting for (a Ctrl-C)
        self._cut: BaseException = KeyboardInterrupt()  # (what stopped it: StepStillRunning)
        self._raised: tuple[str, BaseException] | None = None  # the last step's do raised

    @property
    def outcome(self) -> Outcome | None:
        """What was done and undone; None until the block ends."""
        if self._outcome is None and self._state is _CLOSED:
            self._outcome = self._run.outcome()
        return self._outcome

    def register(self, name: str, undo: Callable[[], Any]) -> None:
        """Log ``undo`` now, for an action the caller runs next (it may fail after its effect)."""
        self._check_open()
        if (running := self._running.get(0)) is not None:  # (its action: the caller's, next)
            raise StepStillRunning.refusing(name, running[0])
        self._run.register(name, undo)

    @property
    def events(self) -> list[Event]:
        """The events so far (built from the run's records each time they are read)."""
        return self._run.events()

    @property
    def dead_letters(self) -> list[DeadLetter]:
        return self._run.dead_letters

    def _check_open(self) -> None:
        if self._state is _ENDING:  # (attack27 F2: begun as the block's end was under way)
            raise RuntimeError(
                f"{type(self).__name__}'s block has ended (it raised, or returned): a step "
                "begun now is refused before its action; start steps inside the block"
            )
        if self._state is not _OPEN:
            raise RuntimeError(f"{type(self).__name__} is only usable inside its with block")

    def _commit(self) -> BaseException | None:
        """The block ended without an error: commit (one that fails is its failure)."""
        self._state = _CLOSED
        try:
            self._run.commit()
        except Exception as error:
            self._state = _ENDING  # (not committed: a Ctrl-C heard as it returns fails there)
            return error
        self._run.finish(None)
        if self._run.raise_after is not None:  # a Ctrl-C in an observer of the commit
            raise _guards.committed_note(self._run.raise_after, self._run)
        return None

    _woken: threading.Event | None = None  # set once the block failed (a step retries)
    _waking = False  # its set begun
    _awoken: Any = None  # AsyncRollback's: an asyncio.Event set with it

    def _stop_tries(self, failed: BaseException | None) -> None:
        """The block failed while a step of another thread runs: that step begins no new
        try (the machine's ``stop``), and its wait to retry ends at once (``Wakeable``)."""
        if self._woken is None:
            return  # (no step of this block retries)
        m = self._run.m
        if failed is not None and not m.rolling and m.phase in (Phase.STEP, Phase.STEP_WAIT):
            m.stop(failed)
        self._waking = True  # (``Rollback._cut_step``: never a second set over a held lock)
        self._woken.set()
        if self._awoken is not None:
            self._awoken.set()

    def _said_committed(self, late: BaseException) -> bool:
        """A Ctrl-C out of the commit: heard once it was done, it says so (True), as in an
        observer of the commit; as the journal recorded it, no outcome (True); before its
        write began, the block fails there, as in its last step (False: attack52 F1)."""
        done = _guards.committed(self._run)
        self._state = _CLOSED if done else _ENDING  # (done: its outcome says committed)
        if done:
            _guards.committed_note(late, self._run)
        return done or _guards.commit_in_doubt(self._run, late)

    def _enter(self) -> None:
        if self._state is not _NEW:
            raise RuntimeError(f"a {type(self).__name__} is single-use; make a new one")
        self._state = _OPEN


class Rollback(_Base):
    """Run steps; if the block raises, undo the done ones in reverse order, then re-raise."""

    def __enter__(self) -> Rollback:
        self._enter()
        return self

    def do(
        self,
        name: str,
        action: Callable[[], T],
        undo: Callable[[], Any] | None = None,
        *,
        register: Register = "after",
        retry: RetryPolicy | None = None,
        undo_timeout: float | None = None,
    ) -> T:
        """Run ``action()`` and log ``undo`` (after it succeeds, or before it runs).

        ``undo_timeout``: seconds one attempt of the undo may take before it counts as
        failed. A blocking call cannot be pre-empted: it goes on in a helper thread and its
        result is dropped, so prefer a timeout inside the call itself.
        """
        claims, claim = self._running, (name, _thread.get_ident())  # (its thread's: _wait_step)
        try:  # (the claim, in the try: its finally frees it whatever instant a Ctrl-C lands)
            if claims.setdefault(0, claim) is not claim:  # another thread's step runs:
                raise StepStillRunning.refusing(name, claims.get(0, ("?",))[0])  # refused
            if retry is not None and self._woken is None:  # (its wait to retry: _stop_tries)
                self._woken = threading.Event()
                self._run.clock = Wakeable(self._run.clock, self._woken)
            return self._do(name, action, undo, register, retry, undo_timeout)
        except BaseException as exc:
            if 0 in claims and claims[0] is claim:  # (no call: its end told the machine at
                self._raised = (name, exc)  # the block's, if unheard: ``_guards.unheard``)
            if self._left != name:
                raise
            raise _guards.outlived(self._run, name, self._cut) from own_error(exc)  # (not the
            # machine's "step_ok() cannot happen now")
        finally:  # (no call before the claim is freed, nor before the block's waiter is
            if 0 in claims and claims[0] is claim:  # released: a C call, no instant inside)
                del claims[0]
                if (waiter := self._waiter) is not None:  # the block's end waits for it
                    try:  # noqa: SIM105 (suppress is Python: an instant before the release)
                        waiter.release()
                    except RuntimeError:  # (released already, not yet taken: one wake)
                        pass

    def _do(
        self,
        name: str,
        action: Callable[[], T],
        undo: Callable[[], Any] | None,
        register: Register,
        retry: RetryPolicy | None,
        undo_timeout: float | None,
    ) -> T:
        run = self._run
        history = run.history
        if (  # (``calls.plain``, inline: this is a with-block's every step)
            history is not None and self._state is _OPEN
            and type(action) is FUNCTION and not action.__code__.co_flags & NOT_PLAIN
            and not action.__dict__ and (undo is None  # (__dict__: no calls._marked mark)
                 or (type(undo) is FUNCTION and not undo.__code__.co_flags & NOT_PLAIN
                     and not undo.__dict__))
            and register == "after" and retry is None and undo_timeout is None
            and type(name) is str and name and name not in run.results
            and (not history or len(history[-1]) == 4)  # (none still runs: not one nested)
            and run.failure is None  # (not from an undo: the machine refuses that)
        ):  # fmt: skip
            # a plain step nobody watches (the common case, and make bench's): recorded as
            # begun, then as done; the machine hears of both when it is first asked
            begun = run.monotonic()
            history.append((name, undo, begun))
            try:
                result = action()
                if result is not None and type(result) not in INERT:
                    result = checked(result, "action", name)
            except BaseException as exc:  # the machine hears of everything now, and judges
                run.step_raised(exc)  # (RAISE: a plain step is never retried)
                return run._raise()  # type: ignore[no-any-return]
            run.results[name] = result
            if run.history is not history:  # told meanwhile (its action read the events)
                run.called()
                run.m.step_ok()  # (PROCEED: as it hears of a step live)
                return result
            history[-1] = (name, undo, begun, run.monotonic())
            return result
        if self._state is not _OPEN:
            self._check_open()
        if self._raised is not None:  # (a step before raised unheard, caught: told first)
            _guards.unheard(run, *self._raised)
        return run.step(name, action, undo, register, retry, undo_timeout)  # type: ignore[no-any-return]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        failed = exc
        try:  # a Ctrl-C heard from here on (only the entry is Python's) fails the block there
            failed = _guards.own_failure(self._run, exc)  # (an observer's Ctrl-C: after)
            if exc is not None and sys.is_finalizing():  # (Python's shutdown: attack84 F3)
                if self._run.journal is not None:
                    return _at_exit.left_at_exit(self._run.run_id, exc)  # (re-raises exc)
                _at_exit.undone_at_exit(self._run.run_id, exc)  # (said: attack85 F3)
            self._state = _ENDING  # no step begins now (one running is waited for)
            if self._running:  # a step still runs in another thread: the block ends once it
                failed = self._wait_step(failed)  # returns (then undone), never over it
            if self._raised is not None:  # a step's do raised unheard (a Ctrl-C: attack32)
                _guards.unheard(self._run, *self._raised)
            if failed is None:
                failed = self._commit()
                if failed is None:
                    return
        except BaseException as late:  # (attack28 F1) nothing committed: undone, re-raised
            if self._state is _CLOSED and self._said_committed(late):  # the commit's own
                raise  # (in the journal's hands), or heard once committed: said so
            if self._running and self._left is None:  # a step still runs in another thread
                failed = self._cut_step(late, failed)  # (heard at any instant: attack31 F2)
            elif failed is None:  # (no call here: no instant a second Ctrl-C is heard at)
                failed = late  # the block fails there, as in its last step
            elif self._run.raise_after is None:
                self._run.raise_after = late  # the block's error kept; re-raised after
        run = self._run
        try:
            if run.history is None:
                run.roll_back(failed)
            else:  # (a recorded block: its undos called before any machine is made)
                roll_back(run, failed)
        except BaseException as late:  # a Ctrl-C before the rollback's own guards
            _guards.landed_late(run, failed, late)
        self._state = _CLOSED  # (only now: an outcome never says committed for a failed block)
        if run.history is None:  # (else recorded, every undo returned: nothing to finish)
            run.finish(failed)
        if run.raise_after is not None and run.raise_after is not exc:  # a Ctrl-C in an undo:
            raise carried(run, run.raise_after, lambda: self.outcome)  # what is left pending
        if failed is not exc and (exc is None or run.raise_after is not exc):  # (exc: as is)
            raise failed
        # returning None re-raises the original exception, unchanged

    _Waiter = staticmethod(_thread.allocate_lock)  # (a test's seam: the block's wait)

    def _wait_step(self, failed: BaseException | None) -> BaseException | None:
        """The block ended while a step runs in another thread: it begins no new try, and
        the block waits for it, on a bare lock the step releases (C calls: no instant inside,
        unlike Event's, attack32 F1, F2); a Ctrl-C in the wait cuts it short (leaked)."""
        if failed is not None:  # (a Ctrl-C heard here or in the wait: ``_cut_step``)
            self._stop_tries(failed)
        (waiter := self._Waiter()).acquire(False)  # (held: the step's release wakes it)
        self._waiter = waiter
        while (claim := self._running.get(0)) is not None:  # (released as a step frees its
            if claim[1] == _thread.get_ident():  # claim, refused ones too; this thread's own:
                del self._running[0]  # its do's end cut before it freed it, no step runs,
                break  # attack114 F1: a hang)
            waiter.acquire(True, 1.0)  # (re-checked each second: a lost wake is no hang)
        return failed

    def _cut_step(self, late: BaseException, failed: BaseException | None) -> BaseException:
        """A Ctrl-C while the block waited for a step of another thread: that step is cut
        short (leaked), begins no new try, the Ctrl-C re-raised after the rollback; its wait
        to retry woken unless a wake was under way (its lock may be held: attack31 F3)."""
        self._left, self._cut = self._running.get(0, ("",))[0], late
        failed = _guards.cut_running(self._run, late, failed)
        if not self._waking:
            self._stop_tries(None)
        return failed


class AsyncRollback(_Base):
    """The ``async with`` twin: steps and undos may be coroutines; a cancelled task still
    undoes (shielded, a second cancel too) and its outcome says ``cancelled``."""

    _is_async = True

    async def __aenter__(self) -> AsyncRollback:
        _shutdown.unowned(f"saga {self._run.run_id!r}: its AsyncRollback block")  # (310 F4)
        self._enter()
        self._run.home = this_task()  # (its steps may run in tasks of their own: wait_for)
        self._entered_in = _at_exit.entered_in(sys._getframe(1))  # (its generator's: 303 F2)
        _forward.hosted(self._run.home, lambda: self._state is not _CLOSED)  # (138 F2, F5)
        return self

    async def do(
        self,
        name: str,
        action: Callable[[], Awaitable[T] | T],
        undo: Callable[[], Any] | None = None,
        *,
        register: Register = "after",
        retry: RetryPolicy | None = None,
        undo_timeout: float | None = None,
    ) -> T:
        """Await ``action()`` and log ``undo``; an undo past ``undo_timeout`` is cancelled.
        One step at a time: a ``do`` while another runs (``asyncio.gather``) is refused."""
        self._check_open()
        claims = self._running
        if claims:  # refused before anything (attack22 H1)
            raise StepStillRunning.refusing(name, claims[0][0])
        import asyncio

        if retry is not None and self._woken is None:  # (its wait to retry: ``_stop_tries``)
            self._woken, self._awoken = threading.Event(), asyncio.Event()
            self._run.clock = Wakeable(self._run.clock, self._woken, self._awoken)
        ended = asyncio.Event()
        try:  # (the claim, in the try: its finally frees it, attack28 F2)
            claims[0] = (name, ended, this_task())  # (its task's: ``__aexit__``)
            return await self._run.astep(name, action, undo, register, retry, undo_timeout)  # type: ignore[no-any-return]
        finally:
            if 0 in claims and claims[0][1] is ended:
                del claims[0]
            ended.set()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        failed = exc
        if exc is not None:  # (Python's shutdown, no loop running: attack86 F5, as Rollback's)
            try:  # (guarded: a Ctrl-C as it returns is re-raised once undone)
                failed = _guards.own_failure(self._run, exc)  # (an observer's Ctrl-C: after)
                at_exit = sys.is_finalizing() or _at_exit.no_loop(exc, self._run)  # (F5)
            except BaseException as late:
                at_exit, self._run.raise_after = False, self._run.raise_after or late
            if at_exit and self._run.journal is not None:  # (no import before: they fail)
                return _at_exit.left_at_exit(self._run.run_id, exc, "AsyncRollback", self._run)
            if at_exit:
                _at_exit.undone_at_exit(self._run.run_id, exc, "AsyncRollback")
                return self._undone_alone(exc)
        self._state = _ENDING  # no step begins now (one running is waited for)
        cancelled_again: Any = False  # (the cancel heard in the rollback, its message kept)
        if self._running and self._running[0][2] is sys.modules["asyncio"].current_task():
            del self._running[0]  # (its own do's end cut before freeing it, attack114 F1)
        if self._running:  # a step still runs in another task (a gather): the block
            import asyncio  # ends once it returns, never over it (attack22 H1)

            ended = self._running[0][1]
            if failed is not None:  # (as ``Rollback``'s: no new try, its wait ended)
                self._stop_tries(failed)
            while not ended.is_set():
                try:
                    await ended.wait()
                except asyncio.CancelledError as cancel:  # waited for still, as undos are
                    if failed is None:
                        failed = cancel  # (then the block fails there: cancelled)
                        self._stop_tries(failed)
                    elif cancel is not failed:
                        cancelled_again = cancel
        if failed is None:
            try:  # (inline: a function's entry is where CPython hears a Ctrl-C)
                if cancel_asked():  # asked as the last step ended: heard before the commit
                    failed = await heard_cancel()  # (attack95 F4), as in a step
                if failed is None:
                    failed = self._commit()
            except BaseException as late:  # heard at _commit's entry: nothing committed,
                if self._state is _CLOSED and self._said_committed(late):  # (as is)
                    raise
                failed = late  # the block fails there, as in its last step (undone, re-raised)
            if failed is None:
                return
        import asyncio  # only async users pay for importing asyncio

        run = self._run  # shielded: no cancel nor Ctrl-C cuts the rollback short (raised after)
        box: list[asyncio.Future[None]] = []
        try:
            _shutdown.hand_off(box, run.aroll_back, failed)  # (made and kept at once)
            cancelled_again = await _shutdown.shielded(box, run) or cancelled_again
        except BaseException as late:  # (a close once it ended, the loop closed: 301 F1)
            over = box and box[0].done() and not box[0].cancelled()
            if (type(late) is GeneratorExit or (box and box[0].cancelled())) and not over:
                raise _shutdown.closed_rolling(run, late)  # noqa: B904 (said, attack101 F4)
            if not (box and box[0].done() and late is box[0].exception()):
                run.raise_after = run.raise_after or late  # (heard here: re-raised after)
            if not box:  # (heard before the task was made: made now, once)
                _shutdown.hand_off(box, run.aroll_back, failed)
            cancelled_again = await _shutdown.shielded(box, run) or cancelled_again
        try:
            box[0].result()
        except BaseException as late:  # a Ctrl-C before the rollback's own guards
            _guards.landed_late(run, failed, late)
        self._state = _CLOSED
        run.finish(failed)
        after = run.raise_after if run.raise_after is not exc else None  # (an undo's, a Ctrl-C:
        if after is not None or (exc is not None and exc is run.shutdown):  # with its outcome;
            raise carried(run, after or exc, lambda: self.outcome)  # type: ignore[arg-type]
        told_once(exc)  # (its own Ctrl-C, re-raised out of a task: logged once, attack306 F3)
        cancelled_again = await _forward.late(asyncio.current_task()) or cancelled_again
        if cancelled_again:  # (the later cancel, after undoing, whatever the block raised:
            raise _shutdown.honoured(cancelled_again, _guards.left_notes(run))  # 139 F2)
        if failed is not exc and (exc is None or run.raise_after is not exc):  # (exc: as is)
            raise failed

    def _undone_alone(self, exc: BaseException) -> None:
        """Python's shutdown ended the block, no journal: its undos run there, on a loop."""
        run, self._state = self._run, _ENDING
        try:
            _shutdown.alone(run.aroll_back(exc), run)
        except BaseException as late:
            _guards.landed_late(run, exc, late)
        self._state = _CLOSED
        run.finish(exc)
        if run.raise_after is not None and run.raise_after is not exc:
            raise run.raise_after
