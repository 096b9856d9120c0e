"""The saga in BPMN 2.0 (Camunda's notation), in two forms, each opening clean in Camunda
Modeler (bpmnlint's recommended rules and Camunda 8's own find nothing: every flow node
lists its incoming and outgoing flows, every event has a name).

``to_bpmn(saga)``: the form Camunda users draw. Each step is a service task (a Camunda 8 job
type per step, ``zeebe:taskDefinition``: ``do-<step>``, its undo ``undo-<step>``, so that no
two are the same) with a compensation boundary event and its handler
(``isForCompensation``); a step's failure is an error boundary event leading to a
compensation throw event, which compensates every *completed* step that has a handler. A
step whose undo is logged *before* it (it can fail after its effect: a charge that times
out) is not completed when it fails, so no handler covers it: its error boundary event leads
to its undo first, then to the compensation. A pivot has no handler, and a second error
boundary event (the BPMN error ``StepInDoubt``, which its worker throws for a failure after
the effect or a timeout) ends at a person: nothing is compensated across an email that may
have been sent (the saga machine's pivot rule). Each undo's job carries the undo policy's
``then`` as a task header (``on-failure``) its worker obeys. A step after the pivot has no
error path at all: it is retried forward (job retries) and, when they run out, Camunda
raises an incident for a person, as the saga halts. Beware the order: the BPMN spec
compensates in reverse order of the sequence flows, Camunda 8 invokes the handlers *without
any order*, so a saga whose undos depend on each other (lesson 02's folder and its file)
must be modelled explicitly there.

``to_bpmn_explicit(saga)``: that explicit form. The steps in a subprocess; a failure ends
it with a BPMN error; the error boundary event leads to a chain of undo tasks, newest
first, each behind a gateway that asks whether its undo was logged (a step's job adds it
to the ``logged`` list, before or after the step). It runs on SpiffWorkflow (a BPMN
engine in pure Python): ``run_explicit(saga, state, inject=...)`` gives the same Outcome
as ``saga.run`` (policy *continue*; Camunda itself is not run here).
Whether an undo was logged is the saga machine's answer, and the run is walked through the
machine afterwards (``runners.history``), as Step Functions' is. A policy that decides in
Python cannot be written into a model: it is refused before anything is written.
"""

from __future__ import annotations

import copy
from xml.sax.saxutils import quoteattr

from ...errors import InvalidPipelineError, RollbackLessonsError
from ...operations import StepSpec
from ...policies import PolicyLike, UndoPolicy, data_only
from ...rules import check_register
from ...saga import Saga
from ..owed import every_undo, owed
from ..wire import check_nesting
from .document import Model as _Model
from .document import Scope as _Scope
from .document import esc as _esc
from .document import ident as _id
from .document import render as _render

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_VERSION = "8.5.0"
"""The Camunda 8 version the files declare (compensation events need 8.5); Camunda
Modeler, and this package's lint test, check a file against that version's rules."""
HEADER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<bpmn:definitions xmlns:bpmn="{BPMN}"\n'
    '  xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI"\n'
    '  xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"\n'
    '  xmlns:di="http://www.omg.org/spec/DD/20100524/DI"\n'
    '  xmlns:zeebe="http://camunda.org/schema/zeebe/1.0"\n'
    '  xmlns:modeler="http://camunda.org/schema/modeler/1.0"\n'
    '  modeler:executionPlatform="Camunda Cloud" '
    f'modeler:executionPlatformVersion="{CAMUNDA_VERSION}"\n'
    '  id="rollback_lessons" targetNamespace="https://github.com/rollback-lessons">\n'
)
ERROR = '  <bpmn:error id="step_failed" name="step failed" errorCode="StepFailed"/>\n'
IN_DOUBT = (
    '  <bpmn:error id="step_in_doubt" name="step may have happened" errorCode="StepInDoubt"/>\n'
)
"""A pivot that fails after its effect (a timeout after the email left) may have happened:
its worker throws this error, not StepFailed, and the saga halts for a person (the saga
machine's pivot rule): nothing before it is compensated."""
W, H, GAP = 120, 80, 60  # a task's box (for names up to 14 characters), and the room between two


class UnsupportedInBPMN(InvalidPipelineError):
    """The saga uses an option this BPMN form does not express."""


class BpmnEngineError(RollbackLessonsError):
    """SpiffWorkflow raised an Exception in its own code mid-run (a bug of its): told to the
    saga machine as a Ctrl-C there is; its notes say what is left, the engine's error is its
    cause (attack78 F4)."""


ENGINE = "BPMN"


def job_type(call: str, step: str) -> str:
    """The Camunda 8 job type of a step's action (``call`` "do") or its undo ("undo"): both
    prefixed, so that no two are ever the same (steps ``x`` and ``undo-x`` included)."""
    return f"{call}-{step}"


def _job(kind: str, retries: int = 1) -> str:
    """A Camunda 8 job: the type a worker subscribes to, and how many times Camunda hands
    it out before it raises an incident for a person (``retries``)."""
    return (
        f"<bpmn:extensionElements><zeebe:taskDefinition type={quoteattr(kind)} "
        f'retries="{retries}"/></bpmn:extensionElements>'
    )


def _task_size(steps: tuple[StepSpec, ...]) -> tuple[float, float]:
    """A task's box, wider and taller for longer step names: a name is one word broken
    after its underscores, so a long one needs a wider box and more lines in it."""
    extra = max(0, max(len(s.name) for s in steps) - 14)
    return W + min(6 * extra, 140), H + 2.7 * extra


def _attempts(step: StepSpec) -> int:
    return step.retry.max_attempts if step.retry is not None else 1


def _model_plan(
    saga: Saga, policy: PolicyLike | None = None
) -> tuple[tuple[StepSpec, ...], list[bool], list[bool], UndoPolicy]:
    """What a model needs, asked of the saga machine: the steps; which of them fail into the
    rollback (all but those the machine halts on: after the pivot, retried forward and then
    left for a person); which halt when they fail after their effect (a pivot: the
    machine's pivot rule); the undo policy. A policy that decides in Python is refused
    here, before anything is written."""
    chosen = data_only(policy if policy is not None else saga.policy, ENGINE)
    check_nesting(saga, ENGINE, written=True)  # (recursing per level: attack100 F1)
    specs = saga.specs()
    found = owed(specs)
    doubts = [o.after is not None and o.after.halts and not o.halts for o in found]
    return specs, [not o.halts for o in found], doubts, chosen


def _undo_job(step: str, policy: UndoPolicy) -> str:
    """An undo's job: handed out as many times as the policy's attempts, and what its last
    failure leads to, as a task header the worker reads (``on-failure``): ``dead_letter``
    (the worker records it and completes the job: the other undos go on) or ``halt`` (the
    worker fails the job for good: Camunda raises an incident, a person takes over)."""
    return _job(job_type("undo", step), policy.max_attempts).replace(
        "</bpmn:extensionElements>",
        f'<zeebe:taskHeaders><zeebe:header key="on-failure" value="{policy.then}"/>'
        "</zeebe:taskHeaders></bpmn:extensionElements>",
    )


def to_bpmn(saga: Saga, *, policy: PolicyLike | None = None, undo_order: str = "reverse") -> str:
    """The saga as BPMN 2.0 XML with compensation events, deployable to Camunda 8 as is
    (see the module's docstring for what the order of compensation is there). The undo
    ``policy`` (the saga's own by default) is written into each undo's job: its attempts,
    and what its last failure leads to (``_undo_job``). A saga with parallel groups:
    parallel gateways, and the document states which order Camunda 8 undoes in (none)
    beside the saga's declared ``undo_order`` (``graph``)."""
    m = _Model()
    if saga.after is not None:
        from ...rules import GRAPH_UNDO_ORDERS, check_undo_order
        from . import graph

        check_undo_order(undo_order, GRAPH_UNDO_ORDERS)
        chosen = data_only(policy if policy is not None else saga.policy, ENGINE)
        check_nesting(saga, ENGINE, written=True)  # (recursing per level: attack100 F1)
        specs = {s.name: s for s in saga.specs()}
        graph.compensation_form(
            saga, m, lambda n: _undo_job(n, chosen),
            lambda n: _job(job_type("do", n), _attempts(specs[n])),
            _task_size(saga.specs()), undo_order,
        )  # fmt: skip
        pivot = any(s.kind == "pivot" for s in saga.specs())
        return _document(saga, m, ERROR + (IN_DOUBT if pivot else ""),
                         doc=graph.documentation(saga, undo_order))  # fmt: skip
    steps, paths, doubts, undo_policy = _model_plan(saga, policy)
    W, H = _task_size(steps)  # the module's names, sized for these steps
    line, top, y = 38, 100, 240  # the failure line; the undos a failure leads to; the steps
    end_x = 140 + len(steps) * (W + GAP)
    m.node("startEvent", "start", "start", (40, y + H / 2 - 18, 36, 36))
    previous, px = "start", 76.0
    failures: list[tuple[str, list[tuple[float, float]]]] = []  # paths to the compensation
    for n, step in enumerate(steps):
        x, mid = 140 + n * (W + GAP), 140 + n * (W + GAP) + W / 2
        task = _id("do", n)
        m.node("serviceTask", task, f"Do {step.name}", (x, y, W, H),
               head=_job(job_type("do", step.name), _attempts(step)))  # fmt: skip
        m.flow(previous, task, [(px, y + H / 2), (x, y + H / 2)])
        previous, px = task, x + W
        if paths[n]:
            failed = _id("failed", n)
            m.node("boundaryEvent", failed, f"{step.name} failed", (mid - 18, y - 18, 36, 36),
                   tail='<bpmn:errorEventDefinition errorRef="step_failed"/>',
                   attachedToRef=task)  # fmt: skip
            leaves, up = failed, y - 18
            if step.has_undo and step.register == "before":  # not completed: no handler runs
                first = _id("undo_failed", n)
                m.node("serviceTask", first, f"Undo {step.name}", (x, top, W, H),
                       head=_undo_job(step.name, undo_policy))  # fmt: skip
                m.flow(failed, first, [(mid, up), (mid, top + H)])
                leaves, up = first, top
            failures.append((leaves, [(mid, up), (mid, line), (end_x, line)]))
        if doubts[n]:  # it may have happened: a person decides, nothing is compensated
            doubt, halted = _id("in_doubt", n), _id("halted", n)
            m.node("boundaryEvent", doubt, f"{step.name} may have happened",
                   (mid - 18, y + H - 18, 36, 36),
                   tail='<bpmn:errorEventDefinition errorRef="step_in_doubt"/>',
                   attachedToRef=task)  # fmt: skip
            m.node("endEvent", halted, "halted: a person decides",
                   (mid - 18, y + H + 70, 36, 36))  # fmt: skip
            m.flow(doubt, halted, [(mid, y + H + 18), (mid, y + H + 70)])
        if not step.has_undo:
            continue  # nothing undoes it: no handler
        boundary, handler = _id("compensation", n), _id("undo", n)
        m.node("boundaryEvent", boundary, f"compensate {step.name}",
               (mid - 18, y + H - 18, 36, 36), tail="<bpmn:compensateEventDefinition/>",
               attachedToRef=task, cancelActivity="true")  # fmt: skip
        m.node("serviceTask", handler, f"Undo {step.name}", (x, y + H + 70, W, H),
               head=_undo_job(step.name, undo_policy),
               isForCompensation="true")  # fmt: skip
        m.artifacts.append(  # artifacts come after every flow element (the XSD's order)
            f'    <bpmn:association id="{_id("association", n)}" sourceRef="{boundary}" '
            f'targetRef="{handler}" associationDirection="One"/>'
        )
        m.edge(_id("association", n), [(mid, y + H + 18), (mid, y + H + 70)])
    m.node("endEvent", "committed", "committed", (end_x, y + H / 2 - 18, 36, 36))
    m.flow(previous, "committed", [(px, y + H / 2), (end_x, y + H / 2)])
    compensate_x = end_x + 90 if len(failures) > 1 else end_x
    if len(failures) > 1:
        m.join("a_step_failed", failures, (end_x, line))
    m.node("intermediateThrowEvent", "compensate", "compensate",
           (compensate_x, line - 18, 36, 36),
           tail='<bpmn:compensateEventDefinition waitForCompletion="true"/>')  # fmt: skip
    if len(failures) > 1:
        m.flow("a_step_failed", "compensate", [(end_x + 50, line), (compensate_x, line)])
    else:
        m.flow(failures[0][0], "compensate", failures[0][1])
    m.node("endEvent", "rolled_back", "rolled back", (compensate_x + 100, line - 18, 36, 36))
    m.flow("compensate", "rolled_back", [(compensate_x + 36, line), (compensate_x + 100, line)])
    return _document(saga, m, ERROR + (IN_DOUBT if any(doubts) else ""))


def _document(saga: Saga, m: _Model, before: str = "", process: str = "saga", doc: str = "") -> str:
    name = quoteattr(f"the {saga.name} saga")
    documented = f"    <bpmn:documentation>{_esc(doc)}</bpmn:documentation>\n" if doc else ""
    return (
        HEADER
        + before
        + f'  <bpmn:process id="{process}" name={name} isExecutable="true">\n'
        + documented
        + "\n".join(_render(m.scope, "    ") + m.artifacts)
        + "\n  </bpmn:process>\n"
        + '  <bpmndi:BPMNDiagram id="diagram">\n'
        + f'    <bpmndi:BPMNPlane id="plane" bpmnElement="{process}">\n'
        + "\n".join(m.shapes)
        + "\n    </bpmndi:BPMNPlane>\n  </bpmndi:BPMNDiagram>\n</bpmn:definitions>\n"
    )


def _feel_string(text: str) -> str:
    """A FEEL string literal (also a Python one): quotes, backslashes and line breaks
    escaped, so that a name of any characters ``rules.check_name`` allows fits."""
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        .replace("\r", "\\r").replace("\t", "\\t")
    )  # fmt: skip
    return f'"{escaped}"'


def to_bpmn_explicit(
    saga: Saga, *, policy: PolicyLike | None = None, graph: bool | None = None
) -> str:
    """The explicit form: steps in a subprocess, a BPMN error on failure, and the undos
    chained newest first behind "was it logged?" gateways (runs on SpiffWorkflow).

    Each step's job answers ``ok``, the ``logged`` list (its undo is added before or
    after the step) and ``halted`` (a pivot that failed after its effect: a person
    decides); the conditions are FEEL, as Camunda 8 wants them. A saga with parallel
    groups: parallel gateways, then a loop asking the saga machine which undo runs next
    (``graph``); so is a list with ``graph=True`` (as a chain: what ``run_explicit`` runs
    when ``wire.needs_graph`` says so)."""
    m = _Model()
    if graph or (graph is None and saga.after is not None):
        from . import graph as form

        chosen = data_only(policy if policy is not None else saga.policy, ENGINE)
        check_nesting(saga, ENGINE, written=True)  # (recursing per level: attack100 F1)
        specs = {s.name: s for s in saga.specs()}
        form.explicit_form(
            saga, m, lambda n: _undo_job(n, chosen),
            lambda n: _job(job_type("do", n), _attempts(specs[n])),
            _task_size(saga.specs()), _feel_string, _job("what-next"),
        )  # fmt: skip
        return _document(saga, m, ERROR, process="saga_explicit")
    steps, paths, doubts, undo_policy = _model_plan(saga, policy)
    W, H = _task_size(steps)  # the module's names, sized for these steps
    room = 40 + 1.6 * (H - 80)  # above the steps: their gateways' questions (longer names)
    y, step_w, mid_y = 80 + room, W + GAP + 40, 80 + room + H / 2
    end_x = 160 + len(steps) * step_w
    m.node("startEvent", "start", "start", (20, mid_y - 18, 36, 36))
    outer = m.scope
    box = m.node("subProcess", "steps", "steps", (60, y - room, end_x, H + 120 + room))
    box.content = m.scope = _Scope()
    m.node("startEvent", "steps_start", "begin", (80, mid_y - 18, 36, 36))
    previous, px = "steps_start", 116.0
    condition: dict[str, str] = {}
    for n, step in enumerate(steps):
        x = 160 + n * step_w
        task, gate, fail = _id("do", n), _id("ok", n), _id("fail", n)
        name = _feel_string(step.name)
        m.node("scriptTask", task, f"Do {step.name}", (x, y, W, H),
               head=_job(job_type("do", step.name), _attempts(step)), scriptFormat="python",
               tail=f"<bpmn:script>{_esc(f'ok, logged, halted = do({name})')}</bpmn:script>",
               )  # fmt: skip
        m.flow(previous, task, [(px, y + H / 2), (x, y + H / 2)], **condition)
        if not paths[n]:  # after the pivot: retried forward by its job, never a way back
            previous, px, condition = task, x + W, {}
            continue
        m.node("exclusiveGateway", gate, f"{step.name} ok?", (x + W + 20, y + H / 2 - 25, 50, 50),
               default=f"{gate}_no")  # fmt: skip
        m.flow(task, gate, [(x + W, y + H / 2), (x + W + 20, y + H / 2)])
        m.node("endEvent", fail, f"{step.name} failed", (x + W + 27, y + H + 40, 36, 36),
               tail='<bpmn:errorEventDefinition errorRef="step_failed"/>')  # fmt: skip
        m.flow(gate, fail, [(x + W + 45, y + H / 2 + 25), (x + W + 45, y + H + 40)],
               ref=f"{gate}_no")  # fmt: skip
        if doubts[n]:  # failed after its effect: it may have happened, a person decides
            doubt = _id("in_doubt", n)
            m.node("endEvent", doubt, f"{step.name} may have happened",
                   (x + W - 23, y + H + 40, 36, 36),
                   tail='<bpmn:errorEventDefinition errorRef="step_in_doubt"/>')  # fmt: skip
            m.flow(gate, doubt, [(x + W + 32, y + H / 2 + 13), (x + W + 32, y + H + 25),
                                 (x + W - 5, y + H + 25), (x + W - 5, y + H + 40)],
                   condition="=halted", name="halted")  # fmt: skip
        previous, px, condition = gate, x + W + 70, {"condition": "=ok", "name": "ok"}
    m.node("endEvent", "steps_done", "all done", (end_x, mid_y - 18, 36, 36))
    m.flow(previous, "steps_done", [(px, y + H / 2), (end_x, y + H / 2)], **condition)
    m.scope = outer
    m.flow("start", "steps", [(56, mid_y), (60, mid_y)])
    m.node("endEvent", "committed", "committed", (end_x + 100, mid_y - 18, 36, 36))
    m.flow("steps", "committed", [(end_x + 60, mid_y), (end_x + 100, mid_y)])
    m.node("boundaryEvent", "failed", "a step failed", (100, y + H + 102, 36, 36),
           tail='<bpmn:errorEventDefinition errorRef="step_failed"/>',
           attachedToRef="steps")  # fmt: skip
    undo_y, item_w = y + H + 180 + room, W + 230
    index = {s.name: n for n, s in enumerate(steps)}  # the undos in the machine's order
    chain = [(index[name], steps[index[name]]) for name in every_undo(steps)]
    source, point = "failed", (118.0, float(y + H + 138))
    for k, (n, step) in enumerate(chain):
        x, mid = 160 + k * item_w, undo_y + H / 2
        gate, task, joined = _id("logged", n), _id("undo", n), _id("undone", n)
        m.node("exclusiveGateway", gate, f"{step.name} logged?", (x, mid - 25, 50, 50),
               default=f"{gate}_no")  # fmt: skip
        m.flow(source, gate, [point, (point[0], mid), (x, mid)] if k == 0 else [point, (x, mid)])
        script = _esc(f"undo({_feel_string(step.name)})")
        m.node("scriptTask", task, f"Undo {step.name}", (x + 80, undo_y, W, H),
               head=_undo_job(step.name, undo_policy), scriptFormat="python",
               tail=f"<bpmn:script>{script}</bpmn:script>")  # fmt: skip
        m.flow(gate, task, [(x + 50, mid), (x + 80, mid)],
               condition=f"=list contains(logged, {_feel_string(step.name)})",
               name="logged")  # fmt: skip
        join_x = x + 80 + W + 30
        m.join(joined, [(task, [(x + 80 + W, mid), (join_x, mid)])], (join_x, mid))
        m.flow(gate, joined, [(x + 25, mid + 25), (x + 25, undo_y + H + 30),
                              (join_x + 25, undo_y + H + 30), (join_x + 25, mid + 25)],
               ref=f"{gate}_no")  # fmt: skip
        source, point = joined, (join_x + 50, mid)
    end = 160 + len(chain) * item_w
    m.node("endEvent", "rolled_back", "rolled back", (end, undo_y + H / 2 - 18, 36, 36))
    m.flow(source, "rolled_back", [point, (end, undo_y + H / 2)])
    if any(doubts):
        m.node("boundaryEvent", "in_doubt", "a step may have happened",
               (end_x - 40, y - room - 18, 36, 36),
               tail='<bpmn:errorEventDefinition errorRef="step_in_doubt"/>',
               attachedToRef="steps")  # fmt: skip
        m.node("endEvent", "halted", "halted: a person decides",
               (end_x + 100, y - room - 80, 36, 36))  # fmt: skip
        m.flow("in_doubt", "halted", [(end_x - 22, y - room - 18), (end_x - 22, y - room - 62),
                                      (end_x + 100, y - room - 62)])  # fmt: skip
    return _document(saga, m, ERROR + (IN_DOUBT if any(doubts) else ""), process="saga_explicit")


def registered(saga: Saga, register: str | None) -> Saga:
    """``saga`` with every undo logged as ``register`` says (``saga.run``'s override: the
    models and the machine read ``saga.specs()``); checked first (attack278 F3: refused
    with Python's own TypeError, where every other engine ran it)."""
    if register is None:
        return saga
    check_register(register)
    made = copy.copy(saga)
    made._specs = saga.specs(register)  # type: ignore[arg-type]
    return made
