"""A handle on a saga running as a DBOS workflow (``DBOSRunner.start_saga``, ``handle_for``):
its outcome, a person's answer, DBOS's own stop; and the application version sagas are
started and resumed on (``REPLAY_VERSION``)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from dbos import DBOS
from dbos._error import DBOSUnexpectedStepError

from ...errors import RollbackLessonsError
from ...events import describe
from ...outcome import Outcome
from ...saga import Saga, State
from .. import heard, hosted, remote
from ..asking import AnswerRefused, Question, check_answer, refuse_unless_asked
from ..wire import outcome_of, record_of
from . import hosting, lifetime, replay, stops, waits, workflow
from .offloop import off_loop
from .waits import RunnerClosed

REPLAY_VERSION = "rollback-lessons-1"
"""DBOS's application version for every saga this runner starts. DBOS resumes a workflow
only on the application version that started it, and by default it computes that version
from the code (a hash of the workflows' source and of how many steps are named: a step
added changes it), so a saga an earlier version left unfinished, waiting for a person say,
was never resumed after an upgrade: left ``PENDING``, a person's answer waited on forever.
Fixed here, and kept while the code replays every saga an earlier version saved (a step
renamed stays replayable under its earlier name: ``workflow.EARLIER_HEARD``); to change
only when that can no longer hold (the sagas left by the one before are then refused in
one line, ``ReplayRefused``). ``DBOS__APPVERSION``, DBOS's own way to pin it, wins when set
(an operator who pinned it keeps the sagas an earlier version left under it)."""


def replay_version() -> str:
    """The application version this process starts and resumes sagas on."""
    return os.environ.get("DBOS__APPVERSION") or REPLAY_VERSION


class ReplayRefused(RollbackLessonsError):
    """DBOS could not resume a saga: a step it saved has another name than the one this
    code runs there (another version started it). One line: which step, and what to do."""

    @classmethod
    def of(cls, run_id: str, exc: DBOSUnexpectedStepError, path: Path | None) -> ReplayRefused:
        _, step_id, expected, recorded = exc.inputs
        where = f" on {path}" if path is not None else ""
        return cls(
            f"saga {run_id!r} cannot be resumed by this version of rollback-lessons: DBOS "
            f"saved its step {step_id} as {recorded!r} where this code runs {expected!r} "
            f"(another version started it); launch the version that started it{where} to "
            "finish it, or have a person check it by hand: its undos may still be pending"
        )


class WorkflowFailed(RollbackLessonsError):
    """DBOS's own code failed in a saga's workflow (a write of a step's result: a disk full),
    and DBOS ended it ERROR, which it never resumes: one line, what the saga left in effect
    as the note DBOS saved with the error says (``lifetime.ended_note``), the error its cause."""

    @classmethod
    def check(cls, run_id: str, exc: Exception) -> None:
        """``exc``, DBOS's answer for ``run_id``'s result, raised as one line if DBOS says
        the run ended ERROR (else the caller raises it as it is)."""
        if not cls.line(run_id, exc):  # (this package's own: RunnerClosed, ...: as it is)
            return
        try:
            status = DBOS.get_workflow_status(run_id)
        except Exception:  # (DBOS gone meanwhile, say: its error is raised as it is)
            return
        said = cls.line(run_id, exc) if status is not None and status.status == "ERROR" else ""
        if said:
            raise cls(said) from exc

    @staticmethod
    def line(run_id: str, exc: BaseException | None) -> str:
        """The line of run ``run_id``, ended ERROR by ``exc`` ("": one of this package's own
        errors or a replay refused, said as they are)."""
        if exc is None or isinstance(exc, (RollbackLessonsError, DBOSUnexpectedStepError)):
            return ""
        said = next((n.removeprefix(lifetime.ERROR_SAID + ": ") for n in getattr(
            exc, "__notes__", ()) if n.startswith(lifetime.ERROR_SAID)), None)  # fmt: skip
        left = said or "what it left in effect was not saved: check its steps by hand"
        if said and "undone:" in said:
            left += " (have a person check and undo them by hand)"
        error = exc.args[0] if isinstance(exc, lifetime.EndedBy) and exc.args else describe(exc)
        return (f"saga {run_id!r} ended ERROR in DBOS ({error}), which DBOS never "
                f"resumes; {left}")  # fmt: skip


SAGA_WORKFLOWS = ("rollback_lessons.saga", "rollback_lessons.graph_saga")


def ended_error() -> dict[str, str]:
    """The sagas on the open file that DBOS ended ERROR in its own code, by run id: their
    line (``WorkflowFailed``), said at each launch, as they stay in effect (attack78 F5)."""
    found = DBOS.list_workflows(status="ERROR", has_parent=False, load_input=False,
                                name=list(SAGA_WORKFLOWS))  # fmt: skip
    lines = {w.workflow_id: WorkflowFailed.line(w.workflow_id, w.error) for w in found}
    return {run_id: said for run_id, said in lines.items() if said}


@off_loop  # (under a running event loop, each call runs in a thread of its own: F4)
class DBOSHandle:
    """A saga running as a DBOS workflow: ``outcome()``; a halted one waits for a person
    (``pending()``, ``resolve(question, answer)``); ``stop()`` is DBOS's own
    ``cancel_workflow`` (nothing undone)."""

    def __init__(
        self,
        saga: Saga,
        run_id: str,
        state: State | None,
        before: Any,
        result: Any,
        path: Path | None = None,
        run: hosted.Hosted | None = None,
    ) -> None:
        self.saga, self.run_id, self.path = saga, run_id, path
        self._state, self._before = state, before
        self._run = run  # (what is read once the run ended for good: ``lifetime.over``)
        self._heard = heard.Heard(saga)  # told the events once, by the first outcome() read
        closed = waits.unless_closed(result, run_id, path)
        self._result = waits.telling_left(closed, self._heard, run_id, run)  # (``Heard.left``)

    def _closed(self) -> bool:
        """Is this handle's runner closed (DBOS gone with it, or open on another file)?"""
        return self.path is not None and [self.path] != waits.OPEN

    def _refuse_if_closed(self, call: str) -> None:
        """A handle of a runner closed since (DBOS gone with it) reads nothing more: one line,
        ``RunnerClosed``, that says where the run's record is (attack42 F4: a committed run
        was said left unfinished, ``pending()`` raised DBOS's raw error)."""
        if self._closed():
            raise RunnerClosed(
                f"the runner of saga {self.run_id!r} on {self.path} was closed: {call}() refused, "
                f"nothing was read; a launch there (DBOSRunner.start) reads its record "
                f"(record({self.run_id!r})), and goes on with it if it is unfinished"
            )

    def pending(self) -> Question | None:
        """The question the saga waits on a person for (its number and the undos at stake,
        the one asked about first), or None when it asks nothing: a run over asks nothing,
        though a stop left its question saved (attack178 F2: the workflow, cancelled, could
        not clear it)."""
        self._refuse_if_closed("pending")
        asked = Question.of(DBOS.get_event(self.run_id, "pending", timeout_seconds=0))
        return asked if asked is None or self._running() else None

    def resolve(self, question: Question, answer: str) -> None:
        """Answer ``question`` (as ``pending()`` gave it): "retry" the undo, it was "fixed"
        by hand, or "leave" it. Returns once the saga took this very answer. An answer to
        a question the saga is not asking now (already answered, by another caller too,
        given up on, not yet asked, the saga over) is refused (``AnswerRefused``): the
        workflow says which answer it took (``workflow._ask``), so of two answers at once
        exactly one is taken and the other refused, never accepted and dropped."""
        check_answer(question, answer)
        self._refuse_if_closed("resolve")
        if not self._running():
            raise AnswerRefused(f"saga {self.run_id} is over: nothing was answered")
        refuse_unless_asked(question, self.pending(), self.run_id)
        said = {"step": question.step, "answer": answer, "id": uuid.uuid4().hex}
        DBOS.send(self.run_id, said, f"answer-{question.number}")
        took = self._taken(question.number)
        if took != said["id"]:
            why = ("it took another answer first" if took else
                   "it stopped waiting first" if took is not None else "it is over")  # fmt: skip
            raise AnswerRefused(
                f"saga {self.run_id} did not take this answer to question {question.number} "
                f"(about {question.step}): {why}; nothing was answered"
            )

    def _running(self, unknown: bool = True) -> bool:
        status = DBOS.get_workflow_status(self.run_id)
        if status is None:
            return unknown
        return status.status in ("PENDING", "ENQUEUED")

    def _taken(self, number: int) -> str | None:
        """The id of the answer question ``number`` took ("" none), once the saga says;
        None if it ended (or was stopped) without saying."""
        while True:
            took = DBOS.get_event(self.run_id, workflow.taken(number), timeout_seconds=1)
            if took is not None:
                return str(took)
            if not self._running(unknown=False):
                took = DBOS.get_event(self.run_id, workflow.taken(number), timeout_seconds=0)
                return None if took is None else str(took)

    def stop(self) -> None:
        """``DBOS.cancel_workflow``: DBOS stops the workflow as its next step begins, and
        nothing is undone (the outcome says ``halted``, every undo pending, and names it). A
        cancel that compensates is the run's ``cancel`` token instead. Its runner closed:
        ``RunnerClosed``, nothing stopped (a run of that id on another file open now is not
        this one: attack35 F2 stopped it; with none open it was DBOS's own error)."""
        closed = RunnerClosed(f"the runner of saga {self.run_id!r} on {self.path} is closed: "
                              "nothing was stopped")  # fmt: skip
        if self._closed():
            raise closed
        replay.wait(self.run_id)  # (resumed here: past what DBOS saved of it, attack164 F3)
        with stops.STOPPING:  # (a close waits for it: never DBOS gone as it stops, 185 F1)
            if self._closed():
                raise closed
            stops.stop_run(self.run_id)
        status = DBOS.get_workflow_status(self.run_id)  # (read after: DBOS never turns an end
        if status is not None and status.status in ("SUCCESS", "ERROR"):  # it saved into
            stops.asked_late(self.run_id)  # CANCELLED, so one saved now came first: noted, as
        # one that lands as it ends, 157 F2; read before, one saved in between: 164 F1)

    def outcome(self) -> Outcome:
        """The run's Outcome; a Ctrl-C, ``sys.exit`` in a call of it here is raised then."""
        run = self._run or hosted.RUNS.get(self.run_id)
        left = run.left if run is not None else {}
        if run is None:  # (not running here as the runner closed: nothing of it was kept)
            self._refuse_if_closed("outcome")
        try:  # (a result DBOS saved from here is final: read after a close too)
            data: dict[str, Any] = left["ended"] if left.get("saved") else self._result()
        except DBOSUnexpectedStepError as exc:  # (resumed by another version: one line)
            raise ReplayRefused.of(self.run_id, exc, self.path) from None
        except (waits.LeftWaiting, hosting.Unhosted) as gone:  # (BaseExceptions: never the
            waited = getattr(gone, "what", "")  # caller's)
            raise RunnerClosed.of(self.run_id, self.path, waited=waited) from None
        except stops.CANCELLED as exc:  # (DBOS keeps no result: the record kept here)
            data = stops.take(self.run_id, exc, left)
        except RunnerClosed:  # (closed as it was stopped: the stop's record, if its workflow
            data = left.get("stopped") or {}  # heard it first, attack185 F1)
            if not data or stops.REPLAYED in data:
                raise
        except Exception as exc:  # (DBOS's own failure, ERROR: one line, attack78 F5)
            WorkflowFailed.check(self.run_id, exc)
            raise
        finally:
            hosted.release(self.run_id)
            workflow.CANCELS.pop(self.run_id, None)
            workflow.HEARD.pop(self.run_id, None)
            heard.MADE.pop(self.run_id, None)
            stops.forget(self.run_id)
        data = stops.late_noted(self.run_id, data)
        outcome = outcome_of(self.saga, record_of(data), before=self._before, state=self._state)
        self._heard.after(outcome)  # (here, never in the workflow: a resumed run tells nothing)
        remote.reraise(run.interrupt if run is not None else None, outcome)  # (as saga.run)
        return outcome
