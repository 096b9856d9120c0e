"""A saga running on Temporal, as its caller holds it (``SagaHandle``): its outcome, a
cancel, its history, and a halted saga's questions to a person and their answers."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Awaitable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from temporalio.client import WorkflowExecutionStatus as Running
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError, TerminatedError
from temporalio.service import RPCError

from ...events import build_events
from ...outcome import Outcome, Table
from ...saga import Saga, State
from .. import hosted, remote
from ..asking import AnswerRefused, Question, check_answer, refuse_unless_asked
from ..closed import RunnerClosed
from ..heard import Heard
from ..wire import outcome_of, record_of
from .activities import GATES, IN_FLIGHT, step_started
from .left import gone_unsaid, said, server_gone
from .limits import TOO_LARGE, OutcomeTooLarge
from .lost import (
    RunDeleted,
    SagaTerminated,
    ServerLost,
    ServerSlow,
    ask,
    failed_after_effect,
    history_table,
    never_heard,
    unheard,
)

if TYPE_CHECKING:
    from .runner import TemporalRunner


T = TypeVar("T")


def _release(run_id: str) -> None:
    """The run is over here: forget its saga, policy and timing. Its calls still running on
    their threads stay in ``IN_FLIGHT`` until they end (a runner started again here waits for
    them: attack168 F1, its undo ran before the action in doubt landed)."""
    hosted.release(run_id)
    GATES.pop(run_id, None)


SETTLE = 2.0
"""Seconds a terminated saga's report waits for its calls still running here to end (the
server stopped waiting for them, their threads did not): one that ends counts as done or
failed, one that does not is named with its end unknown."""


async def _calls_ended(run_id: str) -> list[tuple[str, str]]:
    """Wait (up to ``SETTLE`` seconds) for the run's calls still running in this process;
    those still running then, as (kind, step)."""
    calls = dict(IN_FLIGHT.get(run_id, {}))
    if calls:
        await asyncio.wait([asyncio.wrap_future(f) for f in calls.values()], timeout=SETTLE)
    return [(kind, step) for (kind, step, _), future in calls.items() if not future.done()]


UNKNOWN = (
    "The answer was sent; whether the saga took it is not known (pending() says whether "
    "it still asks)."
)
"""What a resolve cut off from the server after sending its answer says: only the server's
own word (the run's, or "no such run") may say an answer was refused."""
UNSENT = (
    "The answer may have reached the server; whether the saga took it is not known "
    "(pending() says whether it still asks)."
)


class SagaHandle:
    """A saga running on Temporal: ``await handle.outcome()``, or ``await handle.cancel()``."""

    def __init__(self, runner: TemporalRunner, saga: Saga, handle: WorkflowHandle[Any, Any],
                 state: State | None, before: dict[str, Any] | None,
                 run: hosted.Hosted | None = None) -> None:  # fmt: skip
        self.runner, self.saga, self.workflow = runner, saga, handle
        self._run = run  # (its workflow releases it as it returns: read from here then)
        self.run_id = handle.id
        self._state, self._before = state, before
        self._heard = Heard(saga)  # told the events once, by the first outcome() read

    def ran_into(self, exc: BaseException) -> bool:
        """Is ``exc`` the run's own (a CancelledError an undo policy's ``decide`` raised),
        raised again as its outcome was read: not a cancel of the caller's wait?"""
        run = self._run or hosted.find(self.run_id)
        return run is not None and run.interrupt is exc

    def started(self, step: str) -> threading.Event:
        return step_started(self.run_id, step)

    @property
    def ui_url(self) -> str | None:
        """This workflow's page in Temporal's Web UI (when the runner serves one). The
        namespace and the run id are each one path segment, percent-encoded: a saga named
        ``booking #42`` (a space, ``#``, ``?``, ``/``) linked to another page (attack41)."""
        base = self.runner.ui_url
        if not base:
            return None
        space, run = (quote(x, safe="") for x in (self.runner.client.namespace, self.run_id))
        return f"{base}/namespaces/{space}/workflows/{run}"

    async def cancel(self) -> None:
        """Ask the saga to cancel; a server that does not answer is ``ServerLost``
        (``ServerSlow`` if it answers now); its "no such run" is raised as it came."""
        await self._ask(self.workflow.cancel(), CANCEL_FATE)

    async def history(self, *, ids: bool = True) -> Table:
        """The workflow's own event history, as Temporal keeps it: each activity scheduled,
        completed or failed (with its step), and each signal. Workflow-task bookkeeping is
        left out. This history, not the worker, is what survives a crash. ``ids=False``
        leaves out the event ids (they depend on timing; the order does not)."""
        return await self._ask(history_table(self.workflow.fetch_history_events(), ids=ids))

    async def pending(self) -> Question | None:
        """The question a halted saga waits on a person for (a Query: its number and the
        undos at stake, the one asked about first), or None when it asks nothing: a run
        over asks nothing, though one terminated as it asked keeps its question (attack180
        F2: a Query of a closed run replays its history, up to the question)."""
        asked = await self._question()
        if asked is None:
            return None
        try:
            over = (await self._ask(self.workflow.describe())).status is not Running.RUNNING
        except RPCError as exc:  # (NOT_FOUND only: ``_ask``)
            raise self._over(exc, "no question can be read") from None
        return None if over else asked

    async def _question(self) -> Question | None:
        """The question the workflow's Query gives (a closed run's too: the last it asked)."""
        try:
            return Question.of(await self._ask(self.workflow.query("question")))
        except RPCError as exc:  # (NOT_FOUND only: ``_ask``)
            raise self._over(exc, "no question can be read") from None

    async def resolve(self, question: Question, answer: str) -> None:
        """Answer ``question`` (as ``pending()`` gave it) by a Signal: "retry" the undo, it
        was "fixed" by hand, or "leave" it for later; returns once the saga took this very
        answer. One it did not take is refused (``AnswerRefused``): to a question not asked
        now (already answered, by another caller too, given up on, not yet asked, the saga
        over). The workflow says which answer it took (the Update ``answered``,
        ``person.PersonAsked``), so of two answers at once exactly one is taken."""
        check_answer(question, answer)
        said = uuid.uuid4().hex
        try:
            asked = await self._question()  # (over, its question refused below)
            if (
                asked is None
                and (await self._ask(self.workflow.describe())).status is not Running.RUNNING
            ):
                raise AnswerRefused(f"saga {self.run_id} is over: nothing was answered")
            refuse_unless_asked(question, asked, self.run_id)
            args = [answer, question.number, question.step, said]
            # sent, perhaps, once called: only the server's "no such run" says not
            await self._ask(self.workflow.signal("resolve", args=args), UNSENT)
        except RPCError as exc:  # (NOT_FOUND only: ``_ask``)
            raise self._over(exc, "nothing was answered") from None
        took = await self._taken(question.number)
        if took != said:
            why = "it took another answer first" if took else "it stopped waiting first"
            raise AnswerRefused(
                f"saga {self.run_id} did not take this answer to question {question.number} "
                f"(about {question.step}): {why}; nothing was answered"
            )

    async def _taken(self, number: int) -> str | None:
        """The id of the answer question ``number`` took ("" none), once it is settled; None
        if the saga ended without saying (terminated, say)."""
        began = time.monotonic()
        for _ in range(3):  # (an Update the server failed, alive: its workflow task failed)
            slow = False  # (this Update cut short, or failed, the server alive)
            try:
                return str(
                    await self._ask(
                        self.workflow.execute_update("answered", args=[number]), UNKNOWN
                    )
                )
            except WorkflowUpdateFailedError:  # the run is over by now
                pass
            except RPCError:  # over: the server's "no such run"
                pass
            except ServerSlow:  # (attack24's L4: a server at load 30, alive, was called lost)
                slow = True
            try:  # a run over is asked by a Query (its worker replays its history)
                took = await self._ask(self.workflow.query("taken", number), UNKNOWN)
            except RPCError as exc:  # the server's own "no such run" (attack236 F3: told
                raise RunDeleted.of(self.run_id, exc) from None  # "start it again")
            if took is not None or not slow:  # settled, or over
                return None if took is None else str(took)
            await asyncio.sleep(0.2)  # (then asked again: its workflow task is retried)
        raise ServerSlow(  # the server answers, the saga did not say in time: not lost
            f"the Temporal server answers, but saga {self.run_id} did not say within "
            f"{time.monotonic() - began:.0f} s whether it took this answer to question "
            f"{number}. {UNKNOWN}"
        )

    async def _told(self) -> None:
        """The events of a run that ended with no result (terminated, failed at a limit),
        told to its observers before the error is raised: asked of the run (the Query
        ``told``, its history replayed by a worker); none if it cannot say (too big for a
        payload, the server gone): the error is raised all the same."""
        if not self._heard.wanted:
            return
        try:
            rows = await self._ask(self.workflow.query("told"))
        except Exception:  # (nothing to tell: the run's own error follows)
            return
        told = [(kind, step, tuple(map(tuple, details)), None) for kind, step, details in rows]
        self._heard.before_raise(build_events(told, self.run_id))

    async def _ask(self, call: Awaitable[T], also: str = "") -> T:
        """Every call about this saga goes through ``lost.ask`` (ServerLost or ServerSlow);
        once its runner closed, none (attack42 F4: told to start a server again to finish a
        saga that had committed, on a server that kept nothing)."""
        if self.runner._closed:
            getattr(call, "close", lambda: None)()  # (never awaited: closed, not warned of)
            raise self._closed_error()
        try:
            return await ask(self.workflow, call, also)
        except (ServerLost, ServerSlow) as lost:
            if self.runner._closed:  # (closed as it waited: its own stop, not a server lost,
                raise self._closed_error() from None  # "still in effect: none", attack293 F1)
            if isinstance(lost, ServerSlow):
                raise
            told = lost.told_by(self.runner.env is not None, self.runner.db_file,  # (its own
                                lambda: server_gone(self.runner.address))  # fmt: skip
            if told is lost:  # dev server with no db_file: nothing to start again)
                raise
            raise told from None

    def _closed_error(self) -> RunnerClosed:
        lost = self.runner.lost.get(self.run_id)
        if lost is not None:  # (attack46 F1: its record went with the server, said so)
            kept = (
                "the dev server it started stopped with it, keeping nothing (no db_file), while "
                f"the saga ran: nothing will finish or undo it; its record said, {said(lost)}"
            )
        elif self.runner.env is None:
            kept = "the server keeps the saga: a runner connected to it again reads it (handle_for)"
        elif self.runner.db_file is not None:
            kept = (
                "the dev server it started stopped with it: a runner started again on the "
                "same db_file, port and task_queue reads the saga there (handle_for)"
            )
        else:
            kept = "the dev server it started stopped with it, keeping nothing (no db_file)"
        return RunnerClosed(
            f"the runner of saga {self.run_id!r} ({self.runner.server}) was closed: this "
            f"handle reads nothing more, this call did nothing; {kept}"
        )

    def _over(self, exc: RPCError, so: str) -> AnswerRefused:
        """The server's "no such run": the saga is over (``so``: what the caller could not do)."""
        return AnswerRefused(f"saga {self.run_id} is over ({exc.message}): {so}")

    async def outcome(self) -> Outcome:
        try:
            result: dict[str, Any] = await self._ask(self.workflow.result())
        except WorkflowFailureError as exc:
            cause = exc.cause
            try:
                await self._told()  # what the machine told before the end (a Query)
                if isinstance(cause, ApplicationError) and cause.type == TOO_LARGE:
                    raise OutcomeTooLarge(**cause.details[0]) from None  # (it ran: how it ended)
                if isinstance(cause, TerminatedError):  # (read before the run is released)
                    history, running = await self.history(), await _calls_ended(self.run_id)
                    events = self.workflow.fetch_history_events()
                    effected = await self._ask(failed_after_effect(events))
                    raise SagaTerminated.of(self.run_id, cause.message, history,
                                            running, effected) from None  # fmt: skip
                raise
            finally:
                _release(self.run_id)
        except (ServerLost, ServerSlow):  # kept hosted: a server back on its database resumes it
            raise
        except RPCError as exc:  # (NOT_FOUND only, ``_ask``): deleted by retention, say
            deleted = RunDeleted.of(self.run_id, exc)  # (before it is released: what ran here)
            _release(self.run_id)
            raise deleted from None
        except asyncio.CancelledError as stopped:  # (the wait, not the run: it goes on,
            gone_unsaid(self, stopped)  # hosted here, for whoever reads it next: ``runner.run``
            raise  # on its caller's cancel; its worker gone, said: attack87 F5)
        except BaseException:
            _release(self.run_id)
            raise
        record = record_of(result)
        run = self._run or hosted.find(self.run_id)
        if run is not None:
            record = replace(record, notes=(*record.notes, *unheard(run, record)))
        if record.leaked:  # (why each may have happened, if its end was never heard)
            here = run.effects()[0] if run is not None else ()
            events = self.workflow.fetch_history_events()
            with contextlib.suppress(Exception):  # (unread: no note, nothing false said)
                doubt = await self._ask(never_heard(events, record.leaked, here, run))
                record = replace(record, notes=(*record.notes, *doubt))
        _release(self.run_id)
        outcome = outcome_of(self.saga, record, before=self._before, state=self._state)
        self._heard.after(outcome)  # (here, never in the workflow: a replay tells nothing)
        remote.reraise(run.interrupt if run is not None else None, outcome)  # (as saga.run)
        return outcome


CANCEL_FATE = (
    "The cancel may have reached the server; whether the saga took it is not known: "
    "outcome() tells once the server is back."
)
"""What a cancel that got no answer did: not known, whatever the last error says. The
client connected when the runner started, and the SDK retries a call that got no answer:
an earlier attempt may have reached the server even when the last one could not connect
(attack19's F8: "did not reach the server (no connection)", yet the saga ended cancelled).
Only the server, once back, tells (``outcome()``, ``pending()``)."""
