"""Running the explicit BPMN form on SpiffWorkflow (a BPMN engine in pure Python), as a
Camunda job worker would: each script task calls the worker, and the run is walked through
the saga machine afterwards."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from ..._graph_drive import asked_of
from ..._shutdown import exit_warned
from ...events import describe
from ...faults import InjectionLike, saga_faults
from ...graph import nesting
from ...machine import Machine, Phase
from ...operations import Finished, Op, RunStep, RunUndo, check_answers
from ...outcome import Outcome
from ...policies import PolicyLike, data_only
from ...rules import check_state, default_run_id
from ...saga import Saga, State
from ...schedule import GraphMachine
from ...snapshots import before_run
from .. import remote
from ..closed import GOES_ON, Closable
from ..error_record import keeping
from ..heard import Heard
from ..history import Visit, Worker, do, over_noted, undo, walk
from ..owed import undo_timeouts
from ..wire import (
    DEEPEST_ON,
    WRITTEN_LIST,
    SagaPlan,
    needs_graph,
    outcome_of,
    plan_of,
)
from .graph import GraphHost, run_workflow
from .model import ENGINE, BpmnEngineError, UnsupportedInBPMN, registered, to_bpmn_explicit
from .tree import completed as completed_deep
from .tree import unbounded

_CONTAINS = re.compile(r'list contains\((\w+), ("(?:[^"\\]|\\.)*")\)')


def _python(feel: str) -> str:
    """The FEEL this module writes (``=ok``, ``=list contains(logged, "x")``) as Python,
    for SpiffWorkflow's Python script engine."""
    python = _CONTAINS.sub(r"(\2 in \1)", feel.removeprefix("=").strip())
    return "go == " + python.removeprefix("go = ") if python.startswith("go = ") else python


@dataclass
class _Host:
    """What the model's script tasks call, as a Camunda job worker would answer: ``do``
    (the worker does the task and records it; it answers ``ok`` and the undo log, which is
    the saga machine's: each undo logged before or after its step) and ``undo``."""

    worker: Worker
    machine: Machine
    timeouts: dict[str, float | None] = field(default_factory=dict)

    def do(self, step: str) -> tuple[bool, list[str], bool]:
        made = self.worker.task("action", step)
        error = made.error
        if self.machine.phase == "step" and self.machine.current == step:
            if error is None:
                self.machine.step_ok()
            elif made.cut:  # a Ctrl-C: failed for good, rolled back, then re-raised
                self.machine.interrupted(error.to_exception())
            else:
                self.machine.step_failed(error.to_exception())
        logged = [n for n in self.worker.saga.names if self.machine.logged(n)]
        return error is None, logged, self.machine.halted  # halted: a person decides

    cut: str | None = None  # the undo a BaseException (Ctrl-C, sys.exit) raised in, if one did

    def undo(self, step: str) -> None:
        # a failed undo (past its timeout too, as in process): a dead letter, and on
        try:
            self.worker.task("undo", step, self.timeouts.get(step))
        except BaseException:
            self.cut = step
            raise


def run_explicit(
    saga: Saga, state: State | None = None, *, inject: InjectionLike | None = None,
    policy: PolicyLike | None = None, undo_order: str = "reverse", register: str | None = None,
    completion: Sequence[str] | None = None, cancel: Any = None, answers: Sequence[str] = (),
) -> Outcome:  # fmt: skip
    """Run the explicit BPMN form of ``saga`` on SpiffWorkflow, as ``saga.run`` (a list:
    policy *continue*, each task once; else refused before anything runs). A saga with
    parallel groups (or a graph's undo order) runs the graph form, whose undos the saga
    machine orders, one step at a time, under any policy written as data (retries as its
    jobs', a halt as an incident: ``halted``), steps retried by their own policy; one that
    decides in Python is refused (``UnsupportedPolicy``). ``answers``: a person's, in turn,
    at each incident (``retry``, ``fixed``, ``leave``; none left: ``leave``). ``cancel``
    (an Event, or a function) cancels as ``saga.run``'s does. ``completion`` is refused
    (``UnsupportedInBPMN``: a failure ends every branch at once). A Ctrl-C or ``sys.exit``
    in a step's action fails it for good, as in ``saga.run``, then is raised again. Errors
    are kept as raised (attack203 F2: matched by name, retried where saga.run was not)."""
    with keeping(saga.name):
        saga = registered(saga, register)  # (``register`` overrides, as in ``saga.run``)
        return _explicit(saga, state, inject, policy, undo_order, completion, cancel, answers)


def _explicit(
    saga: Saga, state: State | None, inject: InjectionLike | None, policy: PolicyLike | None,
    undo_order: str, completion: Sequence[str] | None, cancel: Any, answers: Sequence[str],
) -> Outcome:  # fmt: skip
    check_state(state)
    if completion is not None:
        raise UnsupportedInBPMN(
            "the explicit BPMN form runs one step at a time, with no completion: a failure "
            "there ends every branch, so the steps still running could not finish"
        )
    asked = asked_of(cancel)
    chosen = data_only(policy if policy is not None else saga.policy, ENGINE)
    graph = needs_graph(saga, undo_order=undo_order, cancel=cancel, form=WRITTEN_LIST)
    if chosen.name != "continue" and not graph:
        raise UnsupportedInBPMN(
            "the explicit BPMN form of a list runs policy 'continue', undos newest first (a "
            "saga with parallel groups, or an undo order of a graph's, runs any policy "
            "written as data)"
        )
    retried = [s.name for s in saga.specs() if s.retry is not None]  # (a retriable step too)
    if retried and not graph:
        raise UnsupportedInBPMN(
            f"the explicit BPMN form of a list runs each task once: it cannot retry "
            f"{', '.join(retried)} (a saga with parallel groups' form can)"
        )
    answers = check_answers(answers)
    faults = saga_faults(inject, saga)
    run_id = default_run_id(saga.name)
    plan = plan_of(
        saga,
        run_id,
        policy=chosen,
        undo_order=undo_order,  # type: ignore[arg-type]
        graphs=True,
        engine=ENGINE,
    )  # (groups too deep, here too: NestedTooDeep)
    world: State = {} if state is None else state
    before = before_run(world) if state is not None else None
    with exit_warned(saga.name):  # (a sys.exit's notes: on stderr, attack56 F1)
        if graph:
            return _run_graph(saga, state, world, before, plan, faults, chosen, answers, asked)
        machine = Machine(plan.undo_policy(), plan=plan.specs(), name=saga.name, run_id=run_id)
        if type(machine.start()) is not RunStep:
            raise RuntimeError("the machine does not start with a step")
        timeouts = undo_timeouts(plan.specs(), plan.undo_policy())
        host = _Host(Worker(run_id, saga, world, faults), machine, timeouts)
        workflow = _parsed(saga, chosen, {"do": host.do, "undo": host.undo})
        try:
            workflow.do_engine_steps()
            if not workflow.is_completed():  # (SpiffWorkflow's code too: attack85 F5)
                raise NotCompleted(NOT_COMPLETED)  # (its own failure too: attack87 F4)
        except BaseException as exc:  # (an Exception there is SpiffWorkflow's own failure:
            if not issubclass(type(exc), Exception):  # told as a Ctrl-C there, attack78 F4)
                came_through_a_script()
            _cut_between(saga, state, before, plan, host, exc)
        host.worker.plan = plan  # (what is in effect: the machine replays the calls)
        host.worker.over = (None, OVER)  # (a Ctrl-C from now on, to run's return: said so)
        with over_noted(host.worker, None, OVER):
            calls = host.worker.calls  # each script task ran its task once: one visit each
            found = [Visit(do(c.step) if c.call == "action" else undo(c.step), 1, c.error is None)
                     for c in calls]  # fmt: skip
            outcome = outcome_of(saga, walk(plan, found, calls), before=before, state=state)
            Heard(saga).after(outcome)  # (the machine replays the engine's run: told once over)
            host.worker.reraise(outcome)  # (a Ctrl-C in an action: once what was done is undone)
            return outcome


def _cut_between(saga: Saga, state: State | None, before: Any, plan: SagaPlan, host: _Host,
                 exc: BaseException) -> NoReturn:  # fmt: skip
    """SpiffWorkflow stopped by a BaseException in its own code (a Ctrl-C between two tasks)
    or in an undo: a fresh machine is told what the worker did, in order, then what
    ``saga.run`` does at that instant. Going forward the run fails there (a step begun, its
    action not called, is not run), the undos it asks done here by the worker (the workflow
    dropped, never resumed: each undo runs once); mid-rollback it ends there, halted, the
    rest pending (an undo never called, untold). Then ``exc`` is raised, ``saga.run``'s notes."""
    m = Machine(plan.undo_policy(), plan=plan.specs(), name=plan.name, run_id=plan.run_id)
    m.told_as_called = True  # (an undo never called, the stop before it: never told)
    calls, worker, ours = list(host.worker.calls), host.worker, False
    interrupt = not issubclass(type(exc), Exception)  # (an Exception: SpiffWorkflow's own)
    op: Op = m.start()
    while not isinstance(op, Finished):
        if type(op) not in (RunStep, RunUndo):  # (a list's form: policy continue, no retry)
            raise RuntimeError(f"the machine answered {op!r}, which no list form gives")
        kind, step = ("action" if type(op) is RunStep else "undo"), op.step  # type: ignore[union-attr]
        made = next((c for c in calls if (c.call, c.step) == (kind, step)), None)
        if made is not None:
            calls.remove(made)
        elif kind == "action":  # never called: the interrupt came before it
            m.not_run(step, *([] if interrupt else ["the BPMN engine failed as it started"]))
            op, ours = m.fail(exc), True
            continue
        elif not ours:  # the engine's rollback was cut short there: halted, the rest pending
            if host.cut != step:  # (in the engine's own code, not in that undo)
                m.cut(exc, f"in the BPMN engine's own code, before the undo of {step}")
            op = m.interrupted(exc)
            continue
        else:
            try:
                m.undo_begins()
                made = worker.task("undo", step, host.timeouts.get(step))
            except BaseException as again:  # (a second Ctrl-C, in an undo: halted there)
                op = m.interrupted(again)
                continue
        told = made.error.to_exception() if made.error is not None else None
        if kind == "undo":  # (one a Ctrl-C cut short, in the engine's rollback: ends it;
            op = m.undo_begins() or (m.undo_ok() if told is None else (  # told as it began)
                m.interrupted(told) if made.cut else m.undo_failed(told)
            ))  # fmt: skip
        else:
            op = m.step_ok() if told is None else (
                m.interrupted(told) if made.cut else m.step_failed(told)
            )  # fmt: skip
    outcome = outcome_of(saga, m.record(), before=before, state=state)
    Heard(saga).after(outcome)  # (told once the run is over, as the list form's are)
    remote.reraise(exc, outcome, engine_error(exc))  # (raises it)
    raise exc


def engine_error(exc: BaseException) -> BaseException:
    """What a stop in SpiffWorkflow's own code raises: a Ctrl-C (any BaseException that is
    not an Exception) as it is; an Exception, a bug of the engine's, as one line saying so,
    ``exc`` its cause (the notes, added after, say what is left: attack78 F4)."""
    if not issubclass(type(exc), Exception):
        return exc
    said = f"BPMN: SpiffWorkflow failed in its own code, the run stopped there: {describe(exc)}"
    error = BpmnEngineError(said)
    error.__cause__ = exc
    return error


def _parsed(saga: Saga, chosen: Any, host: dict[str, Any], graph: bool = False) -> Any:
    """The explicit form of ``saga`` as a SpiffWorkflow workflow whose scripts call ``host``."""
    from SpiffWorkflow.bpmn import BpmnWorkflow
    from SpiffWorkflow.bpmn.parser import BpmnParser
    from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment

    unbounded()  # (its searches of the task tree to any depth: attack98 F3)

    class FeelConditions(PythonScriptEngine):  # type: ignore[misc]
        def evaluate(self, task: Any, expression: str, external_context: Any = None) -> Any:
            return super().evaluate(task, _python(expression), external_context)

    try:
        xml = to_bpmn_explicit(saga, policy=chosen, graph=graph).encode()
    except RecursionError:  # (groups nested deep: attack96 F5, a raw RecursionError)
        raise _too_long(saga, graph) from None
    try:  # (SpiffWorkflow readies its start event here, before any step: attack83 F1)
        (parser := BpmnParser()).add_bpmn_str(xml)
        return BpmnWorkflow(
            parser.get_spec("saga_explicit"),
            parser.get_subprocess_specs("saga_explicit"),
            script_engine=FeelConditions(environment=TaskDataEnvironment(host)),
        )
    except Exception as exc:  # a bug of the engine's as it builds the workflow: nothing ran
        if _recursed(exc):  # (attack94 F1: "failed in its own code", no limit named)
            raise _too_long(saga, graph) from None
        error = engine_error(exc)
        error.add_note(f"saga {saga.name!r}: it stopped as it built the workflow, before any "
                       "step: nothing ran")  # fmt: skip
        raise error from exc


def _run_graph(saga: Saga, state: State | None, world: State, before: Any, plan: SagaPlan,
               faults: dict[str, Any], chosen: Any, answers: Sequence[str],
               asked: Callable[[], bool] | None = None) -> Outcome:  # fmt: skip
    """The graph form on SpiffWorkflow: the saga machine, driven live, picks which ready
    step runs and answers each ``What next`` (``graph.run_workflow``)."""
    after = plan.after or {s.name: [p.name] if p else [] for s, p in
                           zip(plan.steps, [None, *plan.steps], strict=False)}  # fmt: skip
    machine = GraphMachine(
        plan.undo_policy(), plan=plan.specs(), after={s: tuple(d) for s, d in after.items()},
        undo_order=plan.undo_order, name=plan.name, run_id=plan.run_id,
    )  # fmt: skip
    machine.told_as_called = True  # (an undo a stop came before: never told)
    host = GraphHost(plan, Worker(plan.run_id, saga, world, faults), machine, answers=answers,
                     asked=asked)  # fmt: skip
    heard = Heard(saga)
    heard.live(machine)  # each event told as the machine makes it
    machine.start()
    workflow = _parsed(saga, chosen, {"do": _told(host, heard), "undo": host.undo,
                                      "what_next": host.what_next}, graph=True)  # fmt: skip
    try:
        completed = run_workflow(workflow, host)  # False: it waits at an incident (a person's)
        ended = completed_deep(workflow)  # (SpiffWorkflow's code too: attack85 F5)
        if not isinstance(host.op, Finished) or completed != ended:
            raise NotCompleted(NOT_COMPLETED)  # (its own failure too: attack87 F4)
    except BaseException as exc:  # (told to the machine: its notes say what is left; an
        if not issubclass(type(exc), Exception):  # Exception, SpiffWorkflow's own: so too)
            came_through_a_script()
        stopped(host, exc)
        outcome = outcome_of(saga, machine.record(), before=before, state=state)
        remote.reraise(exc, outcome, engine_error(exc))
        raise
    host.worker.machine = machine  # (what is in effect: the live machine says)
    host.worker.over = (heard, OVER)  # (a Ctrl-C from now on, to run's return: said so)
    with over_noted(host.worker, heard, OVER):
        outcome = outcome_of(saga, machine.record(), before=before, state=state)
        host.worker.reraise(outcome)
        heard.reraise(outcome)  # (a Ctrl-C in on_event: once what was done is undone)
        return outcome


class NotCompleted(RuntimeError):
    """SpiffWorkflow stopped a workflow not completed, nor at an incident: its own failure
    (a ``StopIteration`` in one of its iterators, a task filter or ``Task.has_state``, ends
    its iteration early, silently). Told to the machine as any failure in its code is:
    ``BpmnEngineError``, its notes saying what is left (attack87 F4: a bare RuntimeError)."""


NOT_COMPLETED = "the workflow stopped with no task ready, not completed"

OVER = "BPMN: the run was over"
"""What a Ctrl-C once the workflow ended says first (``history.over_noted``; attack51 F4)."""


def came_through_a_script() -> None:
    """A Ctrl-C that left a script task went through SpiffWorkflow's ``exec`` of the
    script's text, and CPython marks such a KeyboardInterrupt unhandled for good (a flag
    each ``exec`` of a text first clears): the process then ended killed by SIGINT (exit
    130) although the caller caught the interrupt this run re-raises, all done (harden50).
    Cleared here; raised on to the top, it is marked again there."""
    exec("None", {})  # (a constant text: clears that flag, nothing else)


def _told(host: GraphHost, heard: Heard) -> Callable[[str], bool]:
    """``host.do``, where a Ctrl-C an observer raised as it was told an event fails the run
    there, as in ``saga.run`` (``Heard.failed``): nothing more starts, what was done is
    undone, then it is raised."""

    def do(step: str) -> bool:
        try:
            return host.do(step)
        except BaseException as exc:
            host.op = heard.failed(host.m, exc)  # (any other: raised as it is)
            return False

    return do


class BpmnRunner(Closable):
    """The explicit form on SpiffWorkflow as a ``Runner``: the engine is a library, so there
    is nothing to start or stop; ``run`` is ``run_explicit``. Closed, it refuses ``run``
    (``RunnerClosed``) as every runner does, so that code written for one runner holds for all."""

    @classmethod
    def start(cls) -> BpmnRunner:
        return cls()

    def run(
        self,
        saga: Saga,
        state: State | None = None,
        *,
        inject: InjectionLike | None = None,
        policy: PolicyLike | None = None,
        undo_order: str = "reverse",
        register: str | None = None,
        completion: Sequence[str] | None = None,
        cancel: Any = None,
        answers: Sequence[str] = (),
    ) -> Outcome:
        """Run ``saga`` with SpiffWorkflow and return its Outcome (``run_explicit``)."""
        self._refuse_if_closed("run")
        with self._running(saga.name):
            return run_explicit(saga, state, inject=inject, policy=policy, undo_order=undo_order,
                                register=register, completion=completion, cancel=cancel,
                                answers=answers)  # fmt: skip

    def close(self) -> None:
        """Refuse every call from now on; a run under way goes on to its end, named."""
        try:
            self._left(GOES_ON)
        finally:
            self._closed = True

    def __enter__(self) -> BpmnRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stopped(host: GraphHost, exc: BaseException) -> None:
    """The graph form's workflow stopped on ``exc`` (a Ctrl-C, ``sys.exit``): nothing more
    runs (dropped). Going forward the run fails here; in the rollback it ends here, halted,
    what is not known undone noted, and "in SpiffWorkflow's code" if no undo of the host's
    was under way (``cut``; in it, its wait or its person's answer: as Step Functions, 165)."""
    m = host.m
    entry = m.entry if m.rolling else None
    if entry is not None and host.cut is None:
        m.cut(exc, f"in the BPMN engine's own code, before the undo of {entry.step}")
    if not m.rolling and m.phase is not Phase.DONE:  # going forward: it fails here
        m.cut(exc, "in the BPMN engine's own code, going forward")
        for step in m.busy:  # (launched: cut short if its action was called)
            called = any((c.call, c.step) == ("action", step) for c in host.worker.calls)
            m.step_cut(step, exc, called=called)
        if not m.rolling and m.phase is not Phase.DONE:
            m.fail(exc)
    if m.phase is not Phase.DONE:
        m.interrupted(exc)


def _recursed(exc: BaseException) -> bool:
    """Is ``exc`` (or what it wraps, SpiffWorkflow's ValidationException) a RecursionError?"""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        one = todo.pop()
        if one is None or id(one) in seen:
            continue
        seen.add(id(one))
        if isinstance(one, RecursionError) or "RecursionError(" in describe(one):
            return True
        todo += [one.__cause__, one.__context__]
    return False


def _too_long(saga: Saga, graph: bool, others: bool = True) -> UnsupportedInBPMN:
    """A saga SpiffWorkflow cannot build within Python's recursion limit, refused so."""
    return UnsupportedInBPMN(
        f"BPMN: saga {saga.name!r} ({len(saga.steps)} steps) is too long for "
        "SpiffWorkflow, which builds its workflow recursing once per step (and per "
        "level of nested groups): Python's "
        f"recursion limit ({sys.getrecursionlimit()}) was reached at this call's depth; "
        "nothing ran. "
        + ("" if graph else "Its graph form (undo_order='by_dependency') takes more; ")
        + (_others(saga) if others else "saga.run takes it")
    )


def _others(saga: Saga) -> str:
    """Which engines take ``saga`` as it is (its groups' nesting: ``DEEPEST_ON``): Step
    Functions was named for one 150 deep, which moto cannot parse (attack100 F5)."""
    depth = nesting(saga.definition)
    them = [e for e in ("Step Functions", "DBOS", "Temporal") if depth <= DEEPEST_ON[e][0]]
    if not them:
        return "saga.run takes it"
    named = f"{', '.join(them[:-1])} and {them[-1]}" if len(them) > 1 else them[0]
    return f"{named} take{'s' * (len(them) == 1)} it as it is"
