"""The DBOS runner: DBOS launched in this process on a SQLite system database, each saga a
workflow (``workflow.py``), its record read back as ``saga.run``'s Outcome."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from typing import Any

from dbos import DBOS
from dbos._error import DBOSUnexpectedStepError

from ..._checks import check_flag
from ..._graph_drive import CancelLike, asked_of
from ..._guards import check_completion
from ..._numbers import plain_number
from ...errors import InvalidPipelineError
from ...faults import InjectionLike, saga_faults
from ...outcome import Outcome, RunRecord
from ...policies import PolicyLike, check_seconds, resolve_policy
from ...rules import check_run_id, check_state, default_run_id
from ...saga import Saga, State
from ...snapshots import before_run
from .. import hosted
from ..closed import Closable
from ..error_record import keeping
from ..hosted import UnknownRun
from ..wire import check_nesting, needs_graph, plan_of, record_of
from . import hosting, ids, launch, offloop, stops, waits, workflow
from .graph import graph_workflow
from .handle import REPLAY_VERSION as REPLAY_VERSION
from .handle import DBOSHandle, ReplayRefused, WorkflowFailed, ended_error, replay_version
from .held import hold, let_go, url
from .hosting import check
from .launch import DBOSUnavailable
from .offloop import off_loop
from .workflow import saga_workflow

NAME = "rollback-lessons"
LISTEN = 0.02
"""How often (s) DBOS looks in its SQLite file for a message a workflow waits on
(``DBOS.recv``: an at-once branch ending, a person's answer): SQLite has no LISTEN/NOTIFY,
so its listener thread polls, by default every second, and every wait for a message lasted
up to that second (most of a graph run at once). One query per waiting workflow per look,
nothing when none waits."""


LOOK = 0.1
"""How often (s) ``record`` looks whether the run it waits for ended, or waits for its steps
(``sagas=`` could not make them: it would never end here)."""
_LOOK = threading.Event()  # (never set: a sleep)
ABANDONED_WAIT = 60.0
"""How long (s) ``start`` waits for a ``start`` whose caller a Ctrl-C took away (under an
event loop: its thread goes on) to end and close the runner it made (attack48's F7)."""


@off_loop  # (under a running event loop, each call runs in a thread of its own: F4)
class DBOSRunner(Closable):
    """Runs sagas as DBOS workflows, in this process: ``with DBOSRunner.start() as runner:
    outcome = runner.run(saga, state)``"""

    def __init__(
        self, path: Path, stranded: Mapping[str, str] | None = None, lock: int | None = None
    ) -> None:
        self.path, self._lock, self._closed = path, lock, False
        waits.OPEN[:] = [path]
        self.stranded: dict[str, str] = dict(stranded or {})
        """Sagas left unfinished on this file by a version this one does not resume (their
        DBOS application version, by run id): ``handle_for`` refuses them in one line."""
        self.failed: dict[str, str] = {}
        """Sagas on this file that DBOS ended ERROR in its own code (a write that failed),
        which it never resumes: their line (``WorkflowFailed``), by run id."""

    @classmethod
    def start(
        cls,
        system_database: str | os.PathLike[str] | None = None,
        *,
        sagas: Mapping[str, Callable[[str], Saga]] | None = None,
    ) -> DBOSRunner:
        """Launch DBOS on the SQLite file ``system_database`` (a new temporary one by
        default). Launching on the file of a process that died resumes its sagas: ``sagas``
        says how to make each by name for a run id (its state is then empty; such a saga
        acts on a world outside memory). DBOS's INFO logs are kept quiet. A file another
        live runner holds is refused in one line (``FileInUse``), before DBOS launches: its
        launch would resume that runner's running sagas and run their steps again; so is one
        that cannot be opened (``FileUnusable``: its folder missing, say), and a ``sagas``
        function making a saga whose steps differ from an unfinished run's (``SagaChanged``),
        checked before DBOS launches (it would resume the file's other runs first)."""
        offloop.wait_abandoned(ABANDONED_WAIT)  # (a start cut short closes its runner: F7)
        if not launch.LAUNCHED.acquire(blocking=False):
            if launch.LEFT:  # (a closed runner's sagas still run a step here)
                raise launch.refused_meanwhile(system_database)
            if any(thread.is_alive() for thread in offloop.ABANDONED):
                raise DBOSUnavailable(
                    "DBOS already runs in this process: a start cut short by a Ctrl-C still "
                    "runs in its thread, which closes its runner once it ends: try again then"
                )
            raise DBOSUnavailable("DBOS already runs in this process: close that runner first")
        lock, launched = None, False
        try:
            hosting.FACTORIES.update(sagas or {})
            hosting.opening(False)
            waits.opening()
            workflow.new_launch()  # an intent an earlier launch saved is a dead process's
            if system_database is None:
                path = Path(tempfile.mkdtemp(prefix="rollback-lessons-dbos-")) / "dbos.sqlite"
            else:
                path = Path(system_database)
            lock = hold(path)  # (before DBOS resumes anything on the file)
            if hosting.FACTORIES:  # (before DBOS resumes anything either: attack20's N2)
                launch.refuse_changed(launch.saved_unfinished(path))
            logging.getLogger("dbos").setLevel(logging.WARNING)
            logging.getLogger("dbos").addFilter(launch.STOPPED)  # (once: a filter is added once)
            version = replay_version()
            launched = True  # (from here, DBOS may resume the file's sagas on its threads)
            DBOS(config={"name": NAME, "system_database_url": url(path),
                         "log_level": "WARNING", "application_version": version,
                         "notification_listener_polling_interval_sec": LISTEN})  # fmt: skip
            DBOS.launch()  # resumes the workflows a dead process left on this file
            unfinished = DBOS.list_workflows(
                status=["PENDING", "ENQUEUED"], has_parent=False, load_input=False,
                load_output=False,
            )  # fmt: skip
            stranded = {
                w.workflow_id: str(w.app_version) for w in unfinished if w.app_version != version
            }
            failed = ended_error()  # (DBOS resumes none: said at each launch, attack78 F5)
            for said in failed.values():
                logging.getLogger("rollback_lessons").warning("%s", said)
        except BaseException:
            if launched:  # stopped as ``close`` stops it, the lock kept while a saga runs on
                launch.close(path, lock)  # (attack22's H3: a Ctrl-C after the launch let the
            else:  # lock go with DBOS still resuming: another launch ran the saga too)
                if lock is not None:
                    let_go(lock)
                launch.LAUNCHED.release()
            raise
        runner = cls(path, stranded, lock)
        runner.failed = failed
        return runner

    def start_saga(
        self,
        saga: Saga,
        state: State | None = None,
        *,
        inject: InjectionLike | None = None,
        policy: PolicyLike | None = None,
        register: str | None = None,
        undo_order: str = "reverse",
        halt_wait: float | None = 0.0,
        run_id: str | None = None,
        wait: bool = False,
        completion: Sequence[str] | None = None,
        cancel: CancelLike | None = None,
        at_once: bool = False,
    ) -> DBOSHandle:
        """Start ``saga`` as a workflow; everything is checked before it starts. A policy
        of one's own decides in the workflow (it is saved with it: its class must be
        importable where the workflow resumes). ``wait``: run it in this thread, to its end
        (``run`` does), rather than in DBOS's own threads. A ``run_id`` DBOS or a start here
        holds is refused before anything is hosted (``ids.RunIdInUse``: ids must be unique).

        A saga with parallel groups (or a list with an undo order of a graph's or a timing)
        drives the graph machine (``graph.graph_workflow``): a group's branches
        one after the other, in definition order, as ``saga.run`` runs them, or in the
        timing ``completion`` plays (``saga.run(..., completion=...)``); ``cancel`` (an
        Event, or a function answering True) cancels as ``saga.run(..., cancel=...)`` does:
        nothing more starts, what was done is undone, the status says ``cancelled``.
        ``at_once``: the ready steps run at once instead, as ``await saga.arun`` runs them,
        each attempt a child workflow telling this one when it ended; without step retries
        the Outcome is then ``saga.run(..., completion=...)``'s for the order they finished
        in. ``DBOSHandle.stop`` cancels the children too (a running call ends, nothing follows).
        A closed runner refuses it (``RunnerClosed``): DBOS may run another file now."""
        self._refuse_if_closed("start_saga")
        check_nesting(saga, "DBOS")  # (first: DBOS's own checks recurse, attack287 F1)
        check_state(state)
        if run_id is not None:  # (the undos' idempotency keys are '<run id>:<step>')
            check_run_id(run_id)
        faults = saga_faults(inject, saga)
        check_completion(completion, saga.names)
        if halt_wait is not None:  # (a duration, checked: attack108 F9, Temporal's unchecked)
            check_seconds(halt_wait, "halt_wait", zero=True)
            halt_wait = plain_number(halt_wait)
        check_flag(wait, "wait")
        if check_flag(at_once, "at_once") and completion is not None:
            raise InvalidPipelineError("completion plays a timing; at_once runs the real one")
        asked = asked_of(cancel)
        chosen = resolve_policy(policy if policy is not None else saga.policy)
        run_id = run_id or default_run_id(saga.name)
        ids.check(run_id, self.path)  # (before plan_of hosts a policy in code under it)
        self._started: str | None = run_id  # (a Ctrl-C in ``run`` names it)
        plan = plan_of(
            saga, run_id, policy=chosen, register=register,  # type: ignore[arg-type]
            undo_order=undo_order, halt_wait=halt_wait, graphs=True,  # type: ignore[arg-type]
            engine="DBOS",
        )  # fmt: skip
        graph = needs_graph(plan, undo_order=undo_order, completion=completion, at_once=at_once)
        world: State = {} if state is None else state
        names = {s: (f.action and str(f.action), f.undo and str(f.undo)) for s, f in faults.items()}
        before = before_run(world) if state is not None else None
        args: tuple[Any, ...] = (plan, hosting.picklable(chosen, plan), names)
        run: Callable[..., dict[str, Any]] = saga_workflow
        if graph:
            timing = list(completion) if completion is not None else None
            args = (*args, timing, asked is not None, at_once)
            run = graph_workflow
        else:  # a list: its cancel asked where saga.run asks a list's
            args = (*args, asked is not None)
        kept = hosted.Hosted(saga, world, faults)  # (its handle reads it after the end too)
        with ids.taken(run_id, kept, self.path):  # (F1, F2)
            if asked is not None:
                workflow.CANCELS[run_id] = asked
            if wait:
                launch.CALLERS.add(run_id)  # (a close from another thread waits for it)
                try:
                    data = waits.unless_closed(lambda: run(*args), run_id, self.path)()
                    stops.saved(run_id)  # (DBOS saved its result: no cancel lands later)
                except stops.CANCELLED as exc:
                    stopped = exc

                    def result() -> dict[str, Any]:
                        raise stopped

                    return DBOSHandle(saga, run_id, state, before, result, self.path, kept)
                except Exception as exc:  # (DBOS's own failure, ERROR: one line, attack78 F5)
                    WorkflowFailed.check(run_id, exc)
                    raise
                finally:
                    launch.CALLERS.discard(run_id)
                    if self._closed:  # (stopped by the close: the file let go before it
                        launch.let_go_first()  # says a launch goes on with it, 293 F2)
                return DBOSHandle(saga, run_id, state, before, lambda: data, self.path, kept)
            started = DBOS.start_workflow(run, *args)
        if isinstance(execution := getattr(started, "future", None), Future):
            execution.add_done_callback(partial(stops.saved, run_id, kept.left))  # (as above)
        return DBOSHandle(saga, run_id, state, before, started.get_result, self.path, kept)

    def handle_for(self, saga: Saga, run_id: str) -> DBOSHandle:
        """A handle on a saga DBOS runs or ran on this file (one this launch resumed after
        the process that started it died, say), as Temporal's ``handle_for``: a person
        answers it (``pending()``, ``resolve()``), ``outcome()`` waits for its end; with the
        state it acts on when this process still hosts the run. A run id DBOS does not know
        is refused (``UnknownRun``)."""
        self._refuse_if_closed("handle_for")
        _not_a_branch(run_id)
        status = DBOS.get_workflow_status(run_id)
        if status is None:
            raise UnknownRun(f"DBOS has no saga {run_id!r} in {self.path}")
        self._not_stranded(run_id)
        run = hosted.RUNS.get(run_id)
        state = run.state if run is not None else None
        check(run_id, saga)  # (the steps it was started with: SagaChanged, one line)
        if status.status in ("PENDING", "ENQUEUED"):  # resumed here, perhaps waiting for it
            hosting.host(run_id, saga)
        else:  # (over: its plan read is kept no longer, issue #25)
            hosting.PLANS.pop(run_id, None)
        result: Callable[[], Any] = DBOS.retrieve_workflow(run_id).get_result
        kept = hosted.RUNS.get(run_id)  # (over: what its end left is read from it)
        return DBOSHandle(saga, run_id, state, None, result, self.path, kept)

    def run(self, saga: Saga, state: State | None = None, **options: Any) -> Outcome:
        """Run ``saga`` on DBOS; its Outcome, errors as raised (``saga.run``'s: ``keeping``)."""
        self._refuse_if_closed("run")
        self._started = None
        with keeping(saga.name):
            try:
                return self.start_saga(saga, state, wait=True, **options).outcome()
            except (KeyboardInterrupt, SystemExit) as exc:  # (while this thread waited on
                self._left_said(exc, self._started)  # the run's own: attack42 F11, DBOS)
                raise

    def _left_said(self, exc: BaseException, run_id: object) -> None:
        """A Ctrl-C (or exit) that left saga ``run_id`` unfinished says so and where: the
        run is DBOS's, on the file, and a launch there goes on with it."""
        with contextlib.suppress(Exception):
            status = DBOS.get_workflow_status(str(run_id)) if run_id is not None else None
            if status is not None and status.status in ("PENDING", "ENQUEUED"):
                exc.add_note(
                    f"saga {run_id!r} is left unfinished on {self.path}: a launch there "
                    f"(DBOSRunner.start) goes on with it (record({run_id!r}) tells how it ended)"
                )

    def _not_stranded(self, run_id: str) -> None:
        """A run another application version left is never resumed here (an answer, a
        record, would wait forever): refused in one line, saying what to do."""
        if run_id in self.stranded:
            raise ReplayRefused(
                f"saga {run_id!r} was left unfinished by another version of rollback-lessons "
                f"(DBOS application version {self.stranded[run_id]!r}; this one runs "
                f"{replay_version()!r}), and DBOS resumes a workflow only on the version that "
                f"started it: launch that version on {self.path} to finish it, or have a "
                "person check it by hand: its undos may still be pending"
            )

    def record(self, run_id: str) -> RunRecord:
        """The record of run ``run_id``, once it ended (waited for): one this launch
        resumed, say, after the process that started it died. One that waits for its saga
        (``waiting``; its saga ``sagas=`` could not make, saying why) is refused in one line
        (``NotHosted``): it would never end here (one whose ``sagas=`` raised is waited for
        while it is tried again, ``hosting.TRIES`` times); one that this version cannot resume
        (another version started it) is ``ReplayRefused``; a run id DBOS does not know (a
        saga never started) is ``UnknownRun``. One ``stop()`` stopped (DBOS keeps no result):
        the record ``outcome()`` gives (``stops.take``)."""
        self._refuse_if_closed("record")
        _not_a_branch(run_id)
        self._not_stranded(run_id)  # (attack17's G4: it waited forever, or advised in vain)
        if DBOS.get_workflow_status(run_id) is None:
            raise UnknownRun(f"DBOS has no saga {run_id!r} in {self.path}")
        while True:  # (until it ends, or waits for its steps here: refused, not waited on)
            self._refuse_if_closed("record")  # (closed meanwhile: this call is named, F7)
            name = self._unhosted().get(run_id)  # refused for good, or no factory: no try to
            if name is not None and (  # come (a run being tried again is waited for: one
                run_id in hosting.REFUSED or name not in hosting.FACTORIES  # made between two
            ):  # reads was refused as not hosted, a CI at load)
                refused = hosting.REFUSED.get(run_id)
                raise hosted.NotHosted(
                    f"saga {run_id!r} ({name!r}) waits for its steps: {refused}"
                    if refused is not None else
                    f"saga {run_id!r} ({name!r}) waits for its steps, which this process does "
                    f"not know: launch with sagas={{{name!r}: ...}}, or use "
                    "handle_for(saga, run_id)"
                )  # fmt: skip
            status = DBOS.get_workflow_status(run_id)
            if (status is None or status.status not in ("PENDING", "ENQUEUED")) and (
                run_id not in waits.HERE  # (stopped: CANCELLED at once, its workflow here
            ):  # still on its way to the stop, what it did not yet kept: wait for it)
                break
            _LOOK.wait(LOOK)
        try:
            return record_of(stops.late_noted(run_id, DBOS.retrieve_workflow(run_id).get_result()))
        except DBOSUnexpectedStepError as exc:
            raise ReplayRefused.of(run_id, exc, self.path) from None
        except stops.CANCELLED as exc:  # (stopped: the record outcome() gives)
            return record_of(stops.take(run_id, exc))
        except Exception as exc:  # (DBOS's own failure, ERROR: one line, attack78 F5)
            WorkflowFailed.check(run_id, exc)
            raise
        finally:
            if run_id not in hosted.RUNS:  # (no handle here reads it: kept no longer)
                stops.forget(run_id)

    def waiting(self) -> dict[str, str]:
        """The sagas left unfinished on this file that this process cannot go on with, as
        it does not know their steps (their saga's name, by run id): resumed at launch, they
        wait (``sagas=`` at ``start``, or ``handle_for(saga, run_id)``, hosts one). One whose
        saga ``sagas=`` could not make (it raised, or made another saga) is among them, while
        it is tried again too (``hosting.TRIES`` times, ``BACKOFF`` doubled between: a
        service the factory reads may be back; each failed try a warning on the
        ``rollback_lessons`` logger); ``record`` says why."""
        self._refuse_if_closed("waiting")
        return self._unhosted()

    def _unhosted(self) -> dict[str, str]:
        """``waiting``'s answer, for a call that refused a closed runner by its own name.
        What this process runs is read before DBOS's list: a run that ends between the two
        reads is then still this process's in the first (read after, it was in neither, and
        ``record`` refused a run of this process as not hosted: ci146)."""
        here = {*hosted.RUNS, *stops.ENDED, *stops.STOPPED}  # (its workflow ended here, its
        unfinished = DBOS.list_workflows(status=["PENDING", "ENQUEUED"], has_parent=False)
        names = {w.workflow_id: hosting.saga_name(w.input) for w in unfinished}
        return {  # result not yet saved by DBOS: it ends, it waits for nothing)
            run_id: name
            for run_id, name in names.items()
            if name is not None
            and run_id not in here
            and (
                name not in hosting.FACTORIES
                or run_id in hosting.REFUSED
                or run_id in hosting.RETRYING
            )
            and run_id not in self.stranded  # (another version's: no saga resumes it here)
        }

    def _where(self) -> str:
        return f"on {self.path}"

    def close(self) -> None:
        """Stop DBOS in this process. A saga that only waits (for a person's answer, a
        retry's backoff) stops at once, unfinished: the next launch on the file asks again,
        or waits what is left of the backoff. A saga still running a step (or an undo) stops
        at its next DBOS call, that step unsaved (as after a crash: at the relaunch its action
        is in doubt, its undo runs again); ``close`` waits ``GRACE`` s for it. One still
        running then is named in a ``RunsLeftRunning`` warning, and the file stays locked (a
        relaunch, here or in another process, is refused: ``FileInUse``) until it ended.
        Closing again does nothing (the lock and the launch are let go once, by whoever
        holds them)."""
        with stops.STOPPING:  # (a stop under way ends first: attack185 F1, F2)
            if self._closed:
                return
            self._closed = True
            waits.OPEN.clear()
        lock, self._lock = self._lock, None
        try:
            launch.close(self.path, lock, stacklevel=4)  # (one frame more: off_loop's wrapper)
        finally:
            stops.clear()  # (no handle of this launch is read again)

    def __enter__(self) -> DBOSRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _not_a_branch(run_id: str) -> None:
    """Refuse, in one line, the id of an at_once branch's child workflow (``<run id>:<n>``,
    no saga of its own: attack89 F2, a bare TypeError from deep in the record's reading)."""
    if isinstance(run_id, str) and (parent := stops.parent_of(run_id)):
        raise UnknownRun(
            f"{run_id!r} is not a saga: it is a branch's child workflow of saga {parent!r} "
            "(a run id never holds ':'); ask for that saga"
        )
