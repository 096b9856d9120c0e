"""The activities: each runs one call of a saga's own callables, in this process (a step's
action or one attempt of its undo), on a daemon thread of its own, so that a call that
never returns can be abandoned when the runner closes."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory, CancelledError

from ...calls import still_running, timed_out
from ...faults import NO_FAULTS
from ...verdicts import after_effect
from .. import hosted, remote
from ..error_record import ErrorRecord, cut_text, lineage
from .ends import IN_DOUBT, NOT_CALLED, past_step_timeout
from .limits import ACTIVITY_SLOTS
from .running import running
from .workflow import ACTION, UNDO, StepCall

BENIGN = ApplicationErrorCategory.BENIGN  # a step's failure is data: logged at DEBUG, no WARNING


# -- the activities: they run the saga's own callables, in this process ------------------


def step_started(run_id: str, step: str) -> threading.Event:
    """Set when ``step``'s action activity has started (tests wait on it to cancel)."""
    return hosted.hosted(run_id).started.setdefault(step, threading.Event())


GATES: dict[str, Callable[[str], None]] = {}
"""By run id: what an action waits on before it is called, when its run plays a chosen
timing (``completion``): its turn, as ``saga.run(completion=...)`` gives it."""

Call = tuple[str, str, int]
"""A call: ``"action"`` or ``"undo"``, its step, its attempt."""

IN_FLIGHT: dict[str, dict[Call, Future[ErrorRecord | None]]] = {}
"""By run id: its calls still running in this process. A call the server stopped waiting
for (its activity timed out), or an undo past its own timeout, goes on in its thread: the
next undo waits for it (``_undo_call``)."""
_LOCK = threading.RLock()
_LATE: set[Future[ErrorRecord | None]] = set()  # calls whose attempt failed on its timeout


def late_calls(runs: Iterable[str], named: Sequence[str]) -> tuple[str, ...]:
    """The calls of ``runs`` running on their threads here that ``named`` (those a close
    abandoned) leaves out: past a timeout, unawaited (attack168 F2: never named)."""
    late = []
    for run_id in runs:
        for (kind, step, attempt), future in list(IN_FLIGHT.get(run_id, {}).items()):
            what = "the action" if kind == "action" else f"attempt {attempt} of the undo"
            said = f"{what} of {step!r} (run {run_id})"
            if not future.done() and not any(n.startswith(said) for n in named):
                late.append(f"{said}, past its timeout (the server no longer waits for it)")
    return tuple(late)


def _start(run: hosted.Hosted, run_id: str, call: Call,
           fn: Callable[[], ErrorRecord | None]) -> Future[ErrorRecord | None]:  # fmt: skip
    """``fn()`` on a thread of its own, in ``IN_FLIGHT`` until it ends (then in ``run.calls``,
    unless its attempt already failed on its timeout: ``_timed``)."""
    future: Future[ErrorRecord | None] = Future()
    context = contextvars.copy_context()  # the activity's: a step may heartbeat
    with _LOCK:
        IN_FLIGHT.setdefault(run_id, {})[call] = future
    kind, step, _ = call

    def work() -> None:
        cut = False
        try:
            error = context.run(fn)
        except BaseException as exc:  # (an Exception, remote's calls hand back as data): a
            error, cut = hosted.interrupted(run_id, exc, step, run), True  # Ctrl-C, sys.exit
        with _LOCK:
            if future not in _LATE:
                run.calls.append((kind, step, error is None))
                late = error is not None and (cut or after_effect(error.to_exception()))
                if kind == "action" and late:  # (in effect, perhaps)
                    run.effected.add(step)
            _LATE.discard(future)
            calls = IN_FLIGHT.get(run_id, {})
            if calls.get(call) is future:
                del calls[call]
            if not calls:  # (issue #25: an empty table stayed per run never read)
                IN_FLIGHT.pop(run_id, None)
            future.set_result(error)

    threading.Thread(target=work, name=f"rollback-lessons {kind} of {step}", daemon=True).start()
    return future


def _deadline() -> float:
    """When the server stops waiting for this activity (``time.monotonic``), give or take:
    a wait here never starts a call past it."""
    return time.monotonic() + (_deadline_seconds() or 1e9)


def _deadline_seconds() -> float:
    """The activity's start-to-close timeout (0: none): ``step_timeout`` for an undo with
    no timeout of its own."""
    timeout = activity.info().start_to_close_timeout
    return timeout.total_seconds() if timeout else 0.0


def _left(end: float) -> float:
    left = end - time.monotonic()
    if left <= 0:
        raise TimeoutError("the server stopped waiting for this call")  # (it hears nothing)
    return left


@activity.defn(name=ACTION)
def run_action(call: StepCall) -> None:
    """The action's call; past ``step_timeout`` (``call.timeout``, measured from its turn)
    its end is unknown: it goes on in its thread, and the step is in doubt (``IN_DOUBT``).
    A cancel of the workflow never cuts the call short (a Python call is not pre-empted;
    one that heartbeats may see it, ``activity.is_cancelled()``, and end early): its real
    end is reported, and the workflow hears the cancel as the step returns, as
    ``saga.run`` does. A cancel heard before the call began refuses it: never called."""
    ended: list[ErrorRecord | None] = []
    try:  # (a cancel its heartbeats hear as it waits for its turn is held back too)
        run = _hosted_here(call.run_id, f"the action of {call.step!r}")
        gate = GATES.get(call.run_id)
        refuse_if_closing(call.step)
        with activity.shield_thread_cancel_exception():
            if gate is not None:
                gate(call.step)  # (a close meanwhile ends the wait: ``closing``)
            refuse_if_closing(call.step)
            began(call)
            step_started(call.run_id, call.step).set()
            fault = run.faults.get(call.step, NO_FAULTS).action
            with running(f"the action of {call.step!r}", _executor()):
                act = functools.partial(remote.run_action, run.saga, call.step, run.state,
                                        fault, remote.kept(call.run_id))  # fmt: skip
                future = _start(run, call.run_id, ("action", call.step, call.attempt), act)
                try:
                    ended.append(future.result(call.timeout))
                except FutureTimeout:
                    ended.append(ErrorRecord(
                        IN_DOUBT, f"the action of {call.step!r} did not return within "
                        f"step_timeout ({call.timeout:g} s): it goes on, its end unknown",
                        call.step, None, [IN_DOUBT, *lineage(TimeoutError)],
                    ))  # fmt: skip
        _cancel_heard_by_now()
    except CancelledError:  # raised into this thread once the shield ends
        if not ended:  # before the call began: never called (attack69 F2: cut short)
            raise not_begun(call.step, "a cancel came before its call") from None
    if ended[0] is not None:
        raise _application_error(ended[0])


_BEGUN: dict[tuple[str, str, int], bool] = {}  # an action's attempt: began, or withdrawn


def began(call: StepCall) -> None:
    """The action's call begins now, unless the worker's end withdrew it (``withdrawn``):
    then it never does, refused as never begun."""
    with _LOCK:
        if _BEGUN.setdefault((call.run_id, call.step, call.attempt), True) is False:
            raise not_begun(call.step, "its worker stopped before its turn")


def withdrawn(call: StepCall) -> bool:
    """The worker's end cut this attempt (its task cancelled by the loop's end): if its
    call had not begun (waiting for its turn), it never will, and it is refused as never
    begun, scheduled again for a relaunch (attack57 F3: reported leaked, though never
    called); one that began stays cut short, in doubt."""
    with _LOCK:
        return _BEGUN.setdefault((call.run_id, call.step, call.attempt), False) is False


def not_begun(step: str, why: str) -> ApplicationError:
    return ApplicationError(f"the action of {step!r} was not begun: {why}", type=NOT_CALLED,
                            non_retryable=True, category=BENIGN)  # fmt: skip


HOST_WAIT = 5.0
"""Seconds a call of a run this process does not host waits for it to be hosted."""


def _hosted_here(run_id: str, what: str) -> hosted.Hosted:
    """The run's saga, state and faults here. A call of a run not hosted here (yet: a runner
    started again on its ``db_file`` is given the run's calls before its ``handle_for``
    hosts it; or another process's run) waits up to ``HOST_WAIT`` s for it, then is refused
    as never begun (``NOT_CALLED``): the workflow schedules it again, never counted as an
    attempt (attack51 F1: the undo was dead-lettered ``NotHosted``, its effect left)."""
    end = min(time.monotonic() + HOST_WAIT, _deadline() - 1.0)
    while (run := hosted.called(run_id)) is None:
        if closing().done() or time.monotonic() >= end:
            raise ApplicationError(
                f"{what} was not begun: run {run_id!r} is not hosted in this process "
                "(runner.handle_for hosts it)",
                type=NOT_CALLED,
                non_retryable=True,
                category=BENIGN,
            )
        time.sleep(0.05)
    return run


def _cancel_heard_by_now() -> None:
    """(A cancel the shield held back is raised into the thread by its next call, here.)"""


@activity.defn(name=UNDO)
def run_undo(call: StepCall) -> None:
    run = _hosted_here(call.run_id, f"attempt {call.attempt} of the undo of {call.step!r}")
    if ("undo", call.step, True) in run.calls:  # done here, its end lost with the server
        return  # (``workflow``: the attempt's end unheard, it is asked again)
    end, unheard = _deadline(), None
    errors: list[ErrorRecord | None] = []
    try:  # (a cancel its heartbeats hear never cuts the call short: its end is reported)
        with (
            activity.shield_thread_cancel_exception(),
            running(f"attempt {call.attempt} of the undo of {call.step!r}", _executor()),
        ):
            try:
                if call.timeout is not None and (call.step in _timed_out(run) or _runs_on(call)):
                    late = still_running("undo", call.step, timeout=call.timeout)
                    errors.append(ErrorRecord.of(late, call.step, call.run_id))
                else:  # (as in process, ``calls.call_timed``: attack47 F5)
                    future = _undo_call(run, call, end)
                    errors.append(
                        _timed(future, call, run)
                        if call.timeout is not None
                        else future.result(_left(end))
                    )
            except (TimeoutError, FutureTimeout) as exc:  # the server stopped waiting: data,
                said: BaseException = exc
                if call.timeout is None:  # no WARNING; told as the server tells it (ci134),
                    said = past_step_timeout(call.step, _deadline_seconds())  # its end unknown:
                    unheard = IN_DOUBT  # asked again once, as after the server's timeout
                errors.append(ErrorRecord.of(said, call.step, call.run_id))  # (s78: a clean
                # failure when this beat the server's: dead-lettered, never asked again)
        _cancel_heard_by_now()
    except CancelledError:  # raised into this thread once the shield ends
        if not errors:
            raise
    error = errors[0]
    if error is not None:
        raise _application_error(error, unheard)


def _runs_on(call: StepCall) -> bool:
    """An earlier attempt of this undo runs on here past its timeout, its runner closed since
    (attack168 F1): never made again (``_timed_out``, that runner's)."""
    with _LOCK:
        return any((k, s) == ("undo", call.step) and n != call.attempt and not f.done()
                   for (k, s, n), f in IN_FLIGHT.get(call.run_id, {}).items())  # fmt: skip


def _timed_out(run: hosted.Hosted) -> set[str]:
    """The steps whose undo's call outlived its timeout in this run: never called again."""
    return vars(run).setdefault("timed_out", set())  # type: ignore[no-any-return]


def _timed(
    future: Future[ErrorRecord | None], call: StepCall, run: hosted.Hosted
) -> ErrorRecord | None:
    """An undo attempt with a timeout of its own, measured here as in process (the message
    is ``calls.call_timed``'s): past it the attempt failed, and its call goes on in its
    thread, tracked (``IN_FLIGHT``) so that no other undo of the run starts before it ends,
    and never made again in the run (``run_undo``), as in process."""
    try:
        return future.result(call.timeout)
    except FutureTimeout:
        with _LOCK:
            if not future.done():
                _LATE.add(future)
                _timed_out(run).add(call.step)
                late = timed_out("undo", call.step, float(call.timeout or 0))
                return ErrorRecord.of(late, call.step, call.run_id)
        return future.result()


def _undo_call(run: hosted.Hosted, call: StepCall, end: float) -> Future[ErrorRecord | None]:
    """The undo's call: the one still running here (asked before, its end unheard by the
    server: this attempt's end is its end), or a new one once no other call of the run runs
    here (an undo never runs twice at once, nor before an earlier call of its run ended: the
    undo order holds, and an action in doubt lands before its undo)."""
    while True:
        with _LOCK:
            calls = IN_FLIGHT.get(call.run_id, {})
            key = ("undo", call.step, call.attempt)
            mine = [f for (k, s, _), f in calls.items() if (k, s) == ("undo", call.step)]
            if key in calls or (mine and call.timeout is None):  # (this attempt asked again)
                return calls.get(key) or mine[0]
            others = [f for f in calls.values() if f not in mine]
            if not others:
                _left(end)
                fault = run.faults.get(call.step, NO_FAULTS).undo
                undo = functools.partial(remote.run_undo, run.saga, call.step, run.state, fault,
                                         call.attempt, call.run_id, None,
                                         remote.kept(call.run_id))  # fmt: skip
                return _start(run, call.run_id, key, undo)
        wait(others, _left(end))


_HERE = threading.local()  # the activity's thread: the close of the runner running it


def _executor() -> object:
    """The executor (``Threads``) whose thread runs this activity."""
    return getattr(_HERE, "executor", None)


def closing() -> Future[None]:
    """Done once the runner whose worker runs this activity began to close (``Threads``)."""
    closed: Future[None] | None = getattr(_HERE, "closed", None)
    return closed if closed is not None else Future()


def refuse_if_closing(step: str) -> None:
    """Once its runner began to close, no action begins (attack21's T1: a turn given during
    close began an action, which close then abandoned, its end unknown): the activity fails
    as never called (``NOT_CALLED``), and the workflow schedules it again, for the worker
    of whoever takes the run up."""
    if closing().done():
        raise not_begun(step, "its runner is closing")


class AbandonedCalls(RuntimeWarning):
    """A runner closed while steps or undos were still running in this process: they were
    left to finish (or hang) on their own threads; Temporal's history says what they were."""


class Threads(ThreadPoolExecutor):
    """Each activity on a daemon thread of its own: a step or an undo that never returns
    can be abandoned (``abandon``: its activity fails, the worker can stop) and does not
    hold up the interpreter's exit (a thread pool's threads are joined at exit). A
    ThreadPoolExecutor by type, as the SDK asks of the executor of synchronous
    activities; its pool is never used (sized as the worker's slots, ``ACTIVITY_SLOTS``:
    the SDK warns of a pool smaller than them)."""

    def __init__(self) -> None:
        super().__init__(max_workers=ACTIVITY_SLOTS)
        self._pending: set[Future[Any]] = set()
        self.closed: Future[None] = Future()  # done once its runner begins to close

    def begin_close(self) -> None:
        """No action begins from now on (``refuse_if_closing``); one waiting for its turn
        stops waiting."""
        with contextlib.suppress(InvalidStateError):
            self.closed.set_result(None)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()

        def work() -> None:
            if not future.set_running_or_notify_cancel():
                return  # (its start was cut: ``_Cut``)
            _HERE.closed, _HERE.executor = self.closed, self
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                with contextlib.suppress(InvalidStateError):  # abandoned meanwhile
                    future.set_exception(exc)
            else:
                with contextlib.suppress(InvalidStateError):
                    future.set_result(result)

        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        _SUBMITTED.set(future)  # (in the activity's task: ``_Cut`` reads it)
        threading.Thread(target=work, name="rollback-lessons activity", daemon=True).start()
        return future

    def abandon(self) -> int:
        """Fail every call still running (its thread runs on, its result is dropped): how
        many there were."""
        pending = list(self._pending)
        for future in pending:
            with contextlib.suppress(InvalidStateError):
                future.set_exception(AbandonedCall("abandoned when the runner closed"))
        return len(pending)


MESSAGE_LIMIT = 32_768
"""Characters of an error's text an activity hands back, counted as sent (a lone surrogate
escaped: six), as Step Functions cuts a task failure's ``cause``: a longer one (a 3 MB
message) makes a failure too big for the server to take, so the step would be heard as timed
out, in doubt, and an undo asked again, instead of failing as it did. A run's record holds
about 40 such failed attempts within its own 2 MB for texts in ASCII (a character takes up
to 4 bytes in UTF-8: fewer then); with more, the record's texts are cut shorter, each alike,
so that it fits (``record_fit.fit``, a note saying so: attack76 F1)."""


def fitted(error: ErrorRecord) -> ErrorRecord:
    """``error`` as Temporal carries it: every text escaped (``ErrorRecord.escaped``: a lone
    surrogate cannot be sent, the SDK would send its own failure, the class lost), then each
    one over ``MESSAGE_LIMIT`` cut to it (a class's name too: ``ErrorRecord.names_cut``), a
    note saying so at the cut: the failure is still the one it was (its type, its lineage,
    the start of its message), told in a size Temporal carries. (Cut after escaping: what
    is sent is bounded, attack32 F5.)"""
    safe = error.names_cut(MESSAGE_LIMIT, "Temporal", MESSAGE_LIMIT).escaped()  # (names too)
    over = [k for k, v in vars(safe).items() if isinstance(v, str) and len(v) > MESSAGE_LIMIT]
    if safe is error and not over:
        return error
    # (not ``live``: its very exception, kept here, would tell it whole again in the
    # record's events: too big, or a result the workflow cannot send, a hang)
    cut: dict[str, Any] = {k: _cut(getattr(error, k)) for k in over}
    return dataclasses.replace(safe, **cut, live=None)


def _cut(text: str) -> str:
    return cut_text(text, MESSAGE_LIMIT, "Temporal", MESSAGE_LIMIT)


def _application_error(error: ErrorRecord, kind: str | None = None) -> ApplicationError:
    """A failure as Temporal carries it: the facts (type and its ancestors, the injected
    fault) in ``details``, not in the message, and no cause (its own ``__str__`` may not
    print), each text cut to fit (``fitted``); ``kind`` its type for the workflow if not
    the error's (``IN_DOUBT``: its end unknown). Never retried by Temporal: the machine in
    the workflow decides."""
    error = fitted(error)
    return ApplicationError(
        error.message,
        vars(error),
        type=kind or error.type,
        non_retryable=True,
        category=BENIGN,
    )


class AbandonedCall(Exception):
    """The activity's call was still running when its runner closed."""


_SUBMITTED: contextvars.ContextVar[Future[Any] | None] = contextvars.ContextVar("sub", default=None)
