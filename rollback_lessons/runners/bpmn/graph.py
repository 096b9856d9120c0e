"""A saga with parallel groups in BPMN 2.0: each group a parallel gateway (split, one
branch per branch, then a join), in both forms.

``to_bpmn`` (compensation events, for Camunda 8): each step keeps its compensation boundary
event and handler; a failure's error boundary event leads to the compensation throw event.
Which order the handlers run in is not in the model: BPMN 2.0 undoes a scope's completed
activities in reverse order of their sequence flows, between two branches only by a data
dependency (13.5.5, undeclared here); Camunda 8 "invokes all compensation handlers at once
without any specific order". The document says so, beside the saga's declared undo order, in
its ``documentation``: a saga whose undos depend on each other must be modelled explicitly.

``to_bpmn_explicit``: the steps in a subprocess (a failure ends it with a BPMN error, which
stops every branch: nothing more starts), then a loop: a script task asks the saga machine
``What next`` (``go = what_next()``) and a gateway goes to that undo, or to the end. The undo
order is the machine's, at run time, as declared (reverse completion, reverse start, by
dependency, forward); never written in the model. ``run_graph`` runs it on SpiffWorkflow:
of the script tasks the engine has ready at once (the branches' first steps), the runner
runs the one the machine starts next (one at a time, in definition order, as ``saga.run``),
so the outcome is ``saga.run``'s.

The undo policy is in the model as Camunda writes it, on each job: its ``retries`` and the
header ``on-failure`` (``dead_letter``: recorded, the loop goes on; ``halt``: an incident,
the instance waits for a person). The runner plays Camunda's job worker: each retry after
the machine's backoff, on a halt the incident (no person here: ``halted``, as saga.run).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from ... import schedule
from ..._graph_drive import asking_failed
from ...errors import Cancelled
from ...events import describe
from ...machine import Phase
from ...operations import Ask, Finished, RunStep, RunUndo, Wait
from ...rules import Kind
from ...saga import Saga
from ...schedule import GraphMachine, Ready
from ..history import Worker
from ..wire import SagaPlan
from .document import Model, Scope
from .document import esc as _esc
from .tree import ready_tasks

ORDER_TEXT = {
    "reverse": "reverse completion order (the step that finished last is undone first)",
    "reverse_start": "reverse start order (the step that started last is undone first)",
    "by_dependency": "by dependency (a step's undo after the undos of every step that "
    "depended on it)",
    "forward": "the order the undos were logged (forward: only to show why it is wrong)",
}


def documentation(saga: Saga, undo_order: str) -> str:
    """What the model says about its order of compensation, for whoever deploys it."""
    return (
        f"The {saga.name} saga has parallel groups. Its declared undo order: "
        f"{ORDER_TEXT[undo_order]}. Camunda 8 does not follow it: on a compensation throw "
        "event it invokes all compensation handlers at once, without any specific order "
        "(BPMN 2.0 orders two branches only by a data dependency, section 13.5.5, undeclared "
        "here). rollback-lessons runs the explicit form of this saga (to_bpmn_explicit) on "
        "SpiffWorkflow instead: there, a script task asks the saga machine which undo runs "
        "next, in the declared order, one at a time."
    )


class Layout:
    """Places steps in columns, a group's branches in rows, and draws the flows."""

    def __init__(
        self, m: Model, w: float, h: float, gap: float, row: float, extra: float = 0
    ) -> None:
        self.m, self.w, self.h, self.gap, self.row = m, w, h, gap, row
        self.extra = extra  # what a step draws right of its task (a gateway)
        self.groups = 0

    def width(self, items: list[Any]) -> float:
        step = self.w + self.extra + self.gap
        return sum(step if isinstance(i, str) else self.group_width(i) for i in items)

    def group_width(self, item: dict[str, Any]) -> float:
        return 2 * (50 + self.gap) + max(self.width(b) for b in item["parallel"])

    def rows(self, items: list[Any]) -> int:
        return max([1] + [sum(self.rows(b) for b in i["parallel"]) for i in items
                          if not isinstance(i, str)])  # fmt: skip

    def chain(
        self, items: list[Any], source: str, at: tuple[float, float],
        step: Callable[[str, float, float], tuple[str, float]], **flow: Any,
    ) -> tuple[str, tuple[float, float], dict[str, Any]]:  # fmt: skip
        """Draw ``items`` from ``source`` (its right edge ``at``); ``step(name, x, y)`` draws
        one step and answers the node its way on leaves from and that node's right x. The
        last node, its right edge, and the condition of the flow out of it."""
        x, mid = at
        for item in items:
            y = mid - self.h / 2
            if isinstance(item, str):
                first = self.m.nodes
                before = len(first)
                out, right = step(item, x + self.gap, y)
                entry = list(first)[before]  # the first node the step drew
                self.m.flow(source, entry, [(x, mid), (x + self.gap, mid)], **flow)
                source, x, flow = out, right, self.ok
            else:
                source, x, flow = self.group(item["parallel"], source, x, mid, step, flow)
        return source, (x, mid), flow

    ok: dict[str, Any] = {}  # noqa: RUF012 (set by a form whose steps answer "ok")

    def group(
        self, branches: list[list[Any]], source: str, x: float, mid: float,
        step: Callable[[str, float, float], tuple[str, float]], flow: dict[str, Any],
    ) -> tuple[str, float, dict[str, Any]]:  # fmt: skip
        self.groups += 1
        n = self.groups
        split, join = f"split_{n}", f"join_{n}"
        sx = x + self.gap
        self.m.node("parallelGateway", split, f"group {n}: at once", (sx, mid - 25, 50, 50))
        self.m.flow(source, split, [(x, mid), (sx, mid)], **flow)
        inner = max(self.width(b) for b in branches)
        jx = sx + 50 + inner + self.gap
        ends = []
        y = mid
        for branch in branches:
            last, (right, _), out = self.chain(branch, split, (sx + 50, y), step)
            ends.append((last, right, y, out))
            y += self.rows(branch) * self.row
        self.m.node("parallelGateway", join, f"group {n}: all done", (jx, mid - 25, 50, 50))
        for last, right, y, out in ends:
            self.m.flow(last, join, [(right, y), (jx + 25, y), (jx + 25, mid + 25)]
                        if y != mid else [(right, y), (jx, mid)], **out)  # fmt: skip
        return join, jx + 50, {}


# -- the compensation form --------------------------------------------------------------


def compensation_form(
    saga: Saga, m: Model, undo_job: Callable[[str], str], do_job: Callable[[str], str],
    size: tuple[float, float], undo_order: str,
) -> None:  # fmt: skip
    """``to_bpmn``'s body for a graph (into ``m``)."""
    from ..wire import shape_of

    w, h = size
    specs = {s.name: s for s in saga.specs()}
    pivots = [s for s in saga.steps if s.kind is Kind.PIVOT]
    after_pivot: set[str] = set()
    assert saga.after is not None
    for name, deps in saga.after.items():  # a step that runs after the pivot: no way back
        if any(p.name in deps for p in pivots) or after_pivot & set(deps):
            after_pivot.add(name)
    lay = Layout(m, w, h, 60, h + 200)
    top = 100
    y = 240
    failures: list[tuple[str, float, float]] = []
    count = iter(range(10_000))

    def step(name: str, x: float, sy: float) -> tuple[str, float]:
        n = next(count)
        spec = specs[name]
        task = f"do_{n}"
        m.node("serviceTask", task, f"Do {name}", (x, sy, w, h), head=do_job(name))
        mid = x + w / 2
        if name not in after_pivot:
            failed = f"failed_{n}"
            m.node("boundaryEvent", failed, f"{name} failed", (mid - 18, sy - 18, 36, 36),
                   tail='<bpmn:errorEventDefinition errorRef="step_failed"/>',
                   attachedToRef=task)  # fmt: skip
            leaves = failed
            if spec.has_undo and spec.register == "before":  # not completed: undo it first
                first = f"undo_failed_{n}"
                m.node("serviceTask", first, f"Undo {name}", (x, sy - h - 40, w, h),
                       head=undo_job(name))  # fmt: skip
                m.flow(failed, first, [(mid, sy - 18), (mid, sy - 40)])
                leaves = first
            failures.append((leaves, mid, sy - 18 if leaves == failed else sy - h - 40))
        if spec.kind == Kind.PIVOT:
            doubt, halted = f"in_doubt_{n}", f"halted_{n}"
            m.node("boundaryEvent", doubt, f"{name} may have happened",
                   (x + w - 18, sy + h - 18, 36, 36),
                   tail='<bpmn:errorEventDefinition errorRef="step_in_doubt"/>',
                   attachedToRef=task)  # fmt: skip
            m.node(
                "endEvent", halted, "halted: a person decides", (x + w + 10, sy + h + 60, 36, 36)
            )
            m.flow(doubt, halted, [(x + w, sy + h + 18), (x + w + 28, sy + h + 60)])
        if spec.has_undo:
            boundary, handler = f"compensation_{n}", f"undo_{n}"
            m.node("boundaryEvent", boundary, f"compensate {name}",
                   (mid - 18, sy + h - 18, 36, 36), tail="<bpmn:compensateEventDefinition/>",
                   attachedToRef=task, cancelActivity="true")  # fmt: skip
            m.node("serviceTask", handler, f"Undo {name}", (x, sy + h + 70, w, h),
                   head=undo_job(name), isForCompensation="true")  # fmt: skip
            m.artifacts.append(
                f'    <bpmn:association id="association_{n}" sourceRef="{boundary}" '
                f'targetRef="{handler}" associationDirection="One"/>'
            )
            m.edge(f"association_{n}", [(mid, sy + h + 18), (mid, sy + h + 70)])
        return task, x + w

    m.node("startEvent", "start", "start", (40, y + h / 2 - 18, 36, 36))
    last, (x, mid), _ = lay.chain(shape_of(saga.definition), "start", (76, y + h / 2), step)
    end_x = x + lay.gap
    m.node("endEvent", "committed", "committed", (end_x, mid - 18, 36, 36))
    m.flow(last, "committed", [(x, mid), (end_x, mid)])
    line = top - 60
    m.join("a_step_failed", [(f, [(fx, fy), (fx, line), (end_x + 60, line)])
                             for f, fx, fy in failures], (end_x + 60, line))  # fmt: skip
    m.node("intermediateThrowEvent", "compensate", "compensate (Camunda 8: all at once)",
           (end_x + 150, line - 18, 36, 36),
           tail='<bpmn:compensateEventDefinition waitForCompletion="true"/>')  # fmt: skip
    m.flow("a_step_failed", "compensate", [(end_x + 110, line), (end_x + 150, line)])
    m.node("endEvent", "rolled_back", "rolled back", (end_x + 250, line - 18, 36, 36))
    m.flow("compensate", "rolled_back", [(end_x + 186, line), (end_x + 250, line)])


# -- the explicit form --------------------------------------------------------------------


def explicit_form(
    saga: Saga, m: Model, undo_job: Callable[[str], str], do_job: Callable[[str], str],
    size: tuple[float, float], feel: Callable[[str], str], next_job: str,
) -> None:  # fmt: skip
    """``to_bpmn_explicit``'s body for a graph (into ``m``)."""
    from ..wire import shape_of

    w, h = size
    lay = Layout(m, w, h, 60, h + 160, extra=70)
    lay.ok = {"condition": "=ok", "name": "ok"}
    y = 120
    shape = shape_of(saga.definition)
    inner_w = lay.width(shape) + 200
    inner_h = lay.rows(shape) * lay.row + 80
    m.node("startEvent", "start", "start", (20, y + h / 2 - 18, 36, 36))
    outer = m.scope
    box = m.node("subProcess", "steps", "steps", (60, y - 60, inner_w, inner_h))
    box.content = m.scope = Scope()
    m.node("startEvent", "steps_start", "begin", (80, y + h / 2 - 18, 36, 36))
    count = iter(range(10_000))

    def step(name: str, x: float, sy: float) -> tuple[str, float]:
        n = next(count)
        task, gate, fail = f"do_{n}", f"ok_{n}", f"fail_{n}"
        script = _esc(f"ok = do({feel(name)})")
        m.node("scriptTask", task, f"Do {name}", (x, sy, w, h), head=do_job(name),
               scriptFormat="python", tail=f"<bpmn:script>{script}</bpmn:script>")  # fmt: skip
        m.node("exclusiveGateway", gate, f"{name} ok?", (x + w + 20, sy + h / 2 - 25, 50, 50),
               default=f"{gate}_no")  # fmt: skip
        m.flow(task, gate, [(x + w, sy + h / 2), (x + w + 20, sy + h / 2)])
        m.node("endEvent", fail, f"{name} failed", (x + w + 27, sy + h + 40, 36, 36),
               tail='<bpmn:errorEventDefinition errorRef="step_failed"/>')  # fmt: skip
        m.flow(gate, fail, [(x + w + 45, sy + h / 2 + 25), (x + w + 45, sy + h + 40)],
               ref=f"{gate}_no")  # fmt: skip
        return gate, x + w + 70

    lay.gap = 60
    last, (x, mid), out = lay.chain(shape, "steps_start", (116, y + h / 2), step)
    m.node("endEvent", "steps_done", "all done", (x + 40, mid - 18, 36, 36))
    m.flow(last, "steps_done", [(x, mid), (x + 40, mid)], **out)
    m.scope = outer
    end_x = 60 + inner_w
    m.flow("start", "steps", [(56, y + h / 2), (60, y + h / 2)])
    m.node("endEvent", "committed", "committed", (end_x + 60, y + h / 2 - 18, 36, 36))
    m.flow("steps", "committed", [(end_x, y + h / 2), (end_x + 60, y + h / 2)])
    by = y - 60 + inner_h
    m.node("boundaryEvent", "failed", "a step failed", (100, by - 18, 36, 36),
           tail='<bpmn:errorEventDefinition errorRef="step_failed"/>',
           attachedToRef="steps")  # fmt: skip
    # the loop: What next? -> that undo -> What next? ... -> the end
    ly = by + 120
    m.join("asked", [("failed", [(118, by + 18), (118, ly), (160, ly)])], (160, ly))
    m.node("scriptTask", "what_next", "What next", (250, ly - h / 2, w, h),
           head=next_job, scriptFormat="python",
           tail="<bpmn:script>go = what_next()</bpmn:script>")  # fmt: skip
    m.flow("asked", "what_next", [(210, ly), (250, ly)])
    m.node("exclusiveGateway", "which", "which undo?", (250 + w + 40, ly - 25, 50, 50),
           default="which_none")  # fmt: skip
    m.flow("what_next", "which", [(250 + w, ly), (290 + w, ly)])
    ux = 250 + w + 140
    undos = [s for s in saga.specs() if s.has_undo]
    for k, spec in enumerate(undos):
        task = f"undo_{k}"
        uy = ly + 60 + k * (h + 40)
        script = _esc(f"undo({feel(spec.name)})")
        m.node("scriptTask", task, f"Undo {spec.name}", (ux, uy, w, h),
               head=undo_job(spec.name), scriptFormat="python",
               tail=f"<bpmn:script>{script}</bpmn:script>")  # fmt: skip
        down = 290 + w + 25
        m.flow("which", task, [(down, ly + 25), (down, uy + h / 2), (ux, uy + h / 2)],
               condition=f"=go = {feel('Undo ' + spec.name)}",
               name=f"undo {spec.name}")  # fmt: skip
        m.flow(task, "asked", [(ux + w, uy + h / 2), (ux + w + 30, uy + h / 2),
                               (ux + w + 30, ly - h), (185, ly - h), (185, ly - 25)])  # fmt: skip
    m.node("endEvent", "rolled_back", "done: as the saga machine ended it",
           (ux + w + 100, ly - 18, 36, 36))  # fmt: skip
    m.flow("which", "rolled_back", [(340 + w, ly), (ux + w + 100, ly)], ref="which_none")


# -- running the explicit form ------------------------------------------------------------


class Incident(Exception):
    """An undo's job failed for good under a policy whose ``on-failure`` is ``halt``: no
    retries left, Camunda raises an incident on its task (it waits there for a person)."""


class GraphHost:
    """What the explicit form's script tasks call, as Camunda's job worker would answer:
    ``do`` runs a step the saga machine launched, ``what_next`` answers the machine's next
    undo, ``undo`` runs it. A job is handed out as its ``retries`` say, after the machine's
    backoff (``sleep``); an undo whose policy halts ends in an incident, which a person
    resolves (``answers``, in turn: ``retry``, ``fixed``) or leaves (``Incident``: halted).
    A cancel (``asked``) is heard where ``saga.run`` hears it (``_graph_drive.ASKED_AT``);
    once it stops the run, ``do`` answers False, and the machine's undos run, shielded."""

    def __init__(
        self, plan: SagaPlan, worker: Worker, machine: GraphMachine,
        sleep: Callable[[float], None] = time.sleep, answers: Sequence[str] = (),
        asked: Callable[[], bool] | None = None,
    ) -> None:  # fmt: skip
        self.plan, self.worker, self.m, self.sleep = plan, worker, machine, sleep
        self.answers, self.asked = list(answers), asked  # (a person's answers, in turn)
        self.op: Any = None
        self.cut: str | None = None  # the undo a BaseException raised in, if one did
        if asked is not None:  # asked as each step returns, before the run commits
            machine.hear = self.cancel

    def cancel(self) -> None:
        """Tell the machine if the caller asked to stop (once), as ``_graph_drive._cancel``."""
        m = self.m
        if self.asked is None or m.cancelled or m.failing or m.phase is not Phase.FORWARD:
            return
        try:
            try:
                if not self.asked():
                    return
            except Exception as exc:
                describe(exc)  # (its repr first: a Ctrl-C it raises is one raised here)
                op = asking_failed(m, exc)
            else:
                op = schedule.cancel(m, Cancelled.by_caller())
        except BaseException as exc:  # a Ctrl-C: as in process, undone, raised (attack37 F5)
            self.worker.interrupt = self.worker.interrupt or exc
            op = m.broken(exc, asked=True)
        if op is not None and type(op) is not Ready:
            self.op = op

    def pick(self, ready: list[str]) -> str | None:
        """Of the steps whose tasks the engine has ready, the one the machine starts next."""
        return next((s for s in self.m.ready() if s in ready), None)

    def do(self, step: str) -> bool:
        """Run ``step``'s job; True if the run goes on (False: it failed, or was cancelled,
        and nothing more starts)."""
        m = self.m
        if not m.seen:  # asked where saga.run asks it (``_graph_drive.ASKED_AT``): before
            self.cancel()  # the first step starts, as each returns, after each retry's wait
        if step not in m.ready():  # the run failed or was cancelled: it may not start
            return False
        op: Any = m.launch(step)
        while True:
            made = self.worker.task("action", step)
            error = made.error
            if error is None:
                op = m.step_done(step)
                break
            if made.cut:  # a Ctrl-C: failed for good, never retried (re-raised at the end)
                op = m.step_cut(step, error.to_exception())
                break
            op = m.step_error(step, error.to_exception())
            if type(op) is not Wait:
                break
            try:  # the job's retry backoff; a Ctrl-C in it fails the step for good, as in
                self.sleep(op.seconds)  # process, and is raised at the end (attack203 F1)
            except BaseException as exc:
                if isinstance(exc, Exception):
                    raise
                self.worker.interrupt = self.worker.interrupt or exc
                op = m.step_cut(step, exc)
                break
            self.cancel()
            op = m.step_resume(step)
            if type(op) is not RunStep:
                break
        if type(op) is not Ready:
            self.op = op
        return error is None and not m.failing

    def what_next(self) -> str:
        op = self.op
        if isinstance(op, Finished):
            return "end"
        assert type(op) is RunUndo
        return f"Undo {op.step}"

    def undo(self, step: str) -> None:
        op = self.op
        assert type(op) is RunUndo and op.step == step
        while type(op) is RunUndo and op.step == step:
            if (ended := self.m.undo_begins()) is not None:  # told as its call begins; an
                op = ended  # observer's Ctrl-C at its event ended the rollback: never called
                break
            self.cut = step  # (while it runs or waits to retry: a Ctrl-C, sys.exit came in it,
            error = self.worker.task("undo", step, op.timeout).error  # ``spiff.stopped``: as
            op = self.m.undo_ok() if error is None else self.m.undo_failed(error.to_exception())
            if type(op) is Wait:  # the job handed out again, after the policy's backoff (in
                self.sleep(op.seconds)  # process, "during the undo": attack158 F4)
                op = self.m.resume()
            if type(op) is Ask:  # an incident: a person resolves it, or it stays (asked, in
                op = self.m.answer(said := self.answers[0] if self.answers else "leave")  # the
                del self.answers[:1]  # undo: 165 F1; taken as the machine hears it: F2)
                if said == "leave":
                    self.cut, self.op = None, op
                    raise Incident(f"undo {step} failed for good: an incident, for a person")
            self.cut = None
        self.op = op


def run_workflow(workflow: Any, host: GraphHost) -> bool:
    """Run the workflow's engine tasks one at a time: of the steps' script tasks ready at
    once (parallel branches), the one the saga machine starts next; anything else first.
    False if it stopped at an incident (an undo's task failed for good: a person decides)."""
    while True:
        ready = ready_tasks(workflow)
        if not ready:
            return True
        steps = {}
        for task in ready:
            name = task.task_spec.bpmn_name or ""
            if task.task_spec.name.startswith("do_") and name.startswith("Do "):
                steps[name.removeprefix("Do ")] = task
        others = [t for t in ready if t not in steps.values()]
        chosen = others[0] if others else steps.get(host.pick(list(steps)) or "", ready[0])
        try:
            chosen.run()
        except Exception as exc:
            cause = type(exc.__cause__ or exc.__context__)  # (by type: ``errors.interrupts``)
            if issubclass(type(exc), Incident) or issubclass(cause, Incident):
                return False
            raise
        for sub in sorted(workflow.get_active_subprocesses(), key=lambda v: v.depth, reverse=True):
            if sub.parent_task_id is not None:
                parent = workflow.get_task_from_id(sub.parent_task_id)
                parent.task_spec._update(parent)
        workflow.refresh_timers()
