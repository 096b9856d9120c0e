"""The saga in BPMN 2.0 (Camunda's notation), in two forms.

``to_bpmn(saga)``: the form Camunda users draw. Each step is a service task (a Camunda 8
job type per step, ``zeebe:taskDefinition``) with a compensation boundary event and its
handler (``isForCompensation``); a step's failure is an error boundary event leading to a
compensation throw event, which compensates every completed step that has a handler. A
pivot has no handler. Beware the order: the BPMN spec compensates in reverse order of the
sequence flows, Camunda 8 invokes the handlers *without any order*, so a saga whose undos
depend on each other (lesson 02's folder and its file) must be modelled explicitly there.

``to_bpmn_explicit(saga)``: that explicit form. The steps in a subprocess; a failure ends
it with a BPMN error; the error boundary event leads to a chain of undo tasks, newest
first, each behind a gateway that asks whether its undo was logged. It runs on
SpiffWorkflow (a BPMN engine in pure Python): ``run_explicit(saga, state, inject=...)``
gives the same Outcome as ``saga.run`` (policy *continue*; Camunda itself is not run here).
Whether an undo was logged is the saga machine's answer, and the run is walked through the
machine afterwards (``runners.history``), as Step Functions' is. A policy that decides in
Python cannot be written into a model: it is refused before anything is written.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr

from ..errors import InvalidPipelineError
from ..faults import InjectionLike, normalize_injection
from ..machine import Machine
from ..operations import RunStep
from ..outcome import Outcome
from ..policies import data_only
from ..rules import Kind
from ..saga import Saga, State, snapshot
from .history import Visit, Worker, do, undo, walk
from .owed import every_undo
from .wire import outcome_of, plan_of

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
HEADER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<bpmn:definitions xmlns:bpmn="{BPMN}"\n'
    '  xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI"\n'
    '  xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"\n'
    '  xmlns:di="http://www.omg.org/spec/DD/20100524/DI"\n'
    '  xmlns:zeebe="http://camunda.org/schema/zeebe/1.0"\n'
    '  xmlns:modeler="http://camunda.org/schema/modeler/1.0"\n'
    '  modeler:executionPlatform="Camunda Cloud" modeler:executionPlatformVersion="8.5.0"\n'
    '  id="rollback_lessons" targetNamespace="https://github.com/rollback-lessons">\n'
)
W, H, GAP = 120, 80, 60  # a task's box, and the room between two


class UnsupportedInBPMN(InvalidPipelineError):
    """The saga uses an option this BPMN form does not express."""


ENGINE = "BPMN"


def _id(prefix: str, n: int) -> str:
    return f"{prefix}_{n}"


@dataclass
class _Model:
    """BPMN elements and their diagram shapes, written out together."""

    elements: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    shapes: list[str] = field(default_factory=list)
    flows: int = 0

    def shape(self, ref: str, x: float, y: float, w: float, h: float, **extra: str) -> None:
        attrs = "".join(f" {k}={quoteattr(v)}" for k, v in extra.items())
        self.shapes.append(
            f'      <bpmndi:BPMNShape id="{ref}_di" bpmnElement="{ref}"{attrs}>'
            f'<dc:Bounds x="{x:g}" y="{y:g}" width="{w:g}" height="{h:g}"/></bpmndi:BPMNShape>'
        )

    def edge(self, ref: str, points: list[tuple[float, float]]) -> None:
        waypoints = "".join(f'<di:waypoint x="{x:g}" y="{y:g}"/>' for x, y in points)
        self.shapes.append(
            f'      <bpmndi:BPMNEdge id="{ref}_di" bpmnElement="{ref}">{waypoints}'
            "</bpmndi:BPMNEdge>"
        )

    def flow(self, source: str, target: str, points: list[tuple[float, float]],
             condition: str | None = None, name: str | None = None,
             ref: str | None = None) -> str:  # fmt: skip
        """A sequence flow and its edge; ``ref`` names it (a gateway's default flow)."""
        if ref is None:
            self.flows += 1
            ref = _id("flow", self.flows)
        label = f" name={quoteattr(name)}" if name else ""
        body = (
            f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression" '
            f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">{_esc(condition)}'
            "</bpmn:conditionExpression>"
            if condition
            else ""
        )
        self.elements.append(
            f'    <bpmn:sequenceFlow id="{ref}" sourceRef="{source}" targetRef="{target}"{label}>'
            f"{body}</bpmn:sequenceFlow>"
        )
        self.edge(ref, points)
        return ref


def _esc(text: str | None) -> str:
    return (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_bpmn(saga: Saga) -> str:
    """The saga as BPMN 2.0 XML with compensation events, deployable to Camunda 8 as is
    (see the module's docstring for what the order of compensation is there)."""
    data_only(saga.policy, ENGINE)
    m = _Model()
    steps = saga.steps
    y, top = 200, 60
    m.elements.append('    <bpmn:startEvent id="start" name="start"/>')
    m.shape("start", 40, y + H / 2 - 18, 36, 36)
    previous, px = "start", 76
    for n, step in enumerate(steps):
        x = 140 + n * (W + GAP)
        task = _id("do", n)
        m.elements.append(
            f'    <bpmn:serviceTask id="{task}" name={quoteattr("Do " + step.name)}>'
            f"<bpmn:extensionElements><zeebe:taskDefinition type={quoteattr(step.name)}/>"
            "</bpmn:extensionElements></bpmn:serviceTask>"
        )
        m.shape(task, x, y, W, H)
        m.flow(previous, task, [(px, y + H / 2), (x, y + H / 2)])
        previous, px = task, x + W
        failed = _id("failed", n)
        m.elements.append(
            f'    <bpmn:boundaryEvent id="{failed}" name="failed" attachedToRef="{task}">'
            '<bpmn:errorEventDefinition errorRef="step_failed"/></bpmn:boundaryEvent>'
        )
        m.shape(failed, x + W / 2 - 18, y - 18, 36, 36)
        m.flow(failed, "compensate", [(x + W / 2, y - 18), (x + W / 2, top + 18), (
            140 + len(steps) * (W + GAP) - 18, top + 18)])  # fmt: skip
        if step.undo is None or step.kind == Kind.PIVOT:
            continue  # nothing undoes it: no handler
        boundary, handler = _id("compensation", n), _id("undo", n)
        m.elements.append(
            f'    <bpmn:boundaryEvent id="{boundary}" attachedToRef="{task}" cancelActivity="true">'
            "<bpmn:compensateEventDefinition/></bpmn:boundaryEvent>"
        )
        m.shape(boundary, x + W / 2 - 18, y + H - 18, 36, 36)
        m.elements.append(
            f'    <bpmn:serviceTask id="{handler}" name={quoteattr("Undo " + step.name)} '
            'isForCompensation="true"><bpmn:extensionElements>'
            f"<zeebe:taskDefinition type={quoteattr('undo-' + step.name)}/>"
            "</bpmn:extensionElements></bpmn:serviceTask>"
        )
        m.shape(handler, x, y + H + 70, W, H)
        m.artifacts.append(  # artifacts come after every flow element (the XSD's order)
            f'    <bpmn:association id="{_id("association", n)}" sourceRef="{boundary}" '
            f'targetRef="{handler}" associationDirection="One"/>'
        )
        m.edge(_id("association", n), [(x + W / 2, y + H + 18), (x + W / 2, y + H + 70)])
    end_x = 140 + len(steps) * (W + GAP)
    m.elements.append('    <bpmn:endEvent id="committed" name="committed"/>')
    m.shape("committed", end_x, y + H / 2 - 18, 36, 36)
    m.flow(previous, "committed", [(px, y + H / 2), (end_x, y + H / 2)])
    m.elements.append(
        '    <bpmn:intermediateThrowEvent id="compensate" name="compensate">'
        '<bpmn:compensateEventDefinition waitForCompletion="true"/>'
        "</bpmn:intermediateThrowEvent>"
    )
    m.shape("compensate", end_x, top, 36, 36)
    m.elements.append('    <bpmn:endEvent id="rolled_back" name="rolled back"/>')
    m.shape("rolled_back", end_x + 100, top, 36, 36)
    m.flow("compensate", "rolled_back", [(end_x + 36, top + 18), (end_x + 100, top + 18)])
    return _document(saga, m, '  <bpmn:error id="step_failed" name="step failed" '
                     'errorCode="StepFailed"/>\n')  # fmt: skip


def _document(saga: Saga, m: _Model, before: str = "", process: str = "saga") -> str:
    name = quoteattr(f"the {saga.name} saga")
    return (
        HEADER
        + before
        + f'  <bpmn:process id="{process}" name={name} isExecutable="true">\n'
        + "\n".join(m.elements + m.artifacts)
        + "\n  </bpmn:process>\n"
        + '  <bpmndi:BPMNDiagram id="diagram">\n'
        + f'    <bpmndi:BPMNPlane id="plane" bpmnElement="{process}">\n'
        + "\n".join(m.shapes)
        + "\n    </bpmndi:BPMNPlane>\n  </bpmndi:BPMNDiagram>\n</bpmn:definitions>\n"
    )


def to_bpmn_explicit(saga: Saga) -> str:
    """The explicit form: steps in a subprocess, a BPMN error on failure, and the undos
    chained newest first behind "was it logged?" gateways (runs on SpiffWorkflow)."""
    data_only(saga.policy, ENGINE)
    m = _Model()
    steps = saga.steps
    y = 120
    inner: list[str] = []
    outer = m.elements
    m.elements = inner
    m.elements.append('      <bpmn:startEvent id="steps_start"/>')
    m.shape("steps_start", 80, y + 22, 36, 36)
    previous, px = "steps_start", 116
    for n, step in enumerate(steps):
        x = 160 + n * (W + GAP + 40)
        task, gate, fail = _id("do", n), _id("ok", n), _id("fail", n)
        script = f"ok = do({step.name!r})"
        m.elements.append(
            f'      <bpmn:scriptTask id="{task}" name={quoteattr("Do " + step.name)} '
            f'scriptFormat="python"><bpmn:script>{_esc(script)}</bpmn:script>'
            "</bpmn:scriptTask>"
        )
        m.shape(task, x, y, W, H)
        ok = {"condition": "ok", "name": "ok"} if n else {}  # from the step before's gateway
        m.flow(previous, task, [(px, y + H / 2), (x, y + H / 2)], **ok)
        m.elements.append(
            f'      <bpmn:exclusiveGateway id="{gate}" name="ok?" default="{gate}_no"/>'
        )
        m.shape(gate, x + W + 20, y + H / 2 - 25, 50, 50)
        m.flow(task, gate, [(x + W, y + H / 2), (x + W + 20, y + H / 2)])
        m.elements.append(
            f'      <bpmn:endEvent id="{fail}" name="failed">'
            '<bpmn:errorEventDefinition errorRef="step_failed"/></bpmn:endEvent>'
        )
        m.shape(fail, x + W + 27, y + H + 40, 36, 36)
        m.flow(gate, fail, [(x + W + 45, y + H / 2 + 25), (x + W + 45, y + H + 40)],
               ref=f"{gate}_no")  # fmt: skip
        previous, px = gate, x + W + 70
    end_x = 160 + len(steps) * (W + GAP + 40)
    m.elements.append('      <bpmn:endEvent id="steps_done"/>')
    m.shape("steps_done", end_x, y + 22, 36, 36)
    m.flow(previous, "steps_done", [(px, y + H / 2), (end_x, y + H / 2)], condition="ok", name="ok")
    inner_xml = "\n".join(m.elements)
    m.elements = outer
    m.elements.append('    <bpmn:startEvent id="start"/>')
    m.shape("start", 20, y + 22, 36, 36)
    m.elements.append(
        f'    <bpmn:subProcess id="steps" name="steps">\n{inner_xml}\n    </bpmn:subProcess>'
    )
    m.shape("steps", 60, y - 40, end_x, H + 160, isExpanded="true")
    m.flow("start", "steps", [(56, y + 40), (60, y + 40)])
    m.elements.append('    <bpmn:endEvent id="committed" name="committed"/>')
    m.shape("committed", end_x + 100, y + 22, 36, 36)
    m.flow("steps", "committed", [(end_x + 60, y + 40), (end_x + 100, y + 40)])
    m.elements.append(
        '    <bpmn:boundaryEvent id="failed" name="a step failed" attachedToRef="steps">'
        '<bpmn:errorEventDefinition errorRef="step_failed"/></bpmn:boundaryEvent>'
    )
    m.shape("failed", 60 + end_x / 2, y + H + 102, 36, 36)
    undo_y = y + H + 220
    index = {s.name: n for n, s in enumerate(steps)}  # the undos in the machine's order:
    chain = [(index[name], saga[name]) for name in every_undo(saga.specs())]
    # what flows into the next gateway: (source, start point, the default flow's id or None)
    sources: list[tuple[str, tuple[float, float], str | None]] = [
        ("failed", (78 + end_x / 2, y + H + 138), None)
    ]

    def connect(target: str, to: tuple[float, float]) -> None:
        for source, point, ref in sources:
            if ref is None:
                m.flow(source, target, [point, to])
            else:  # a gateway's default flow: round under the undo it skips
                m.flow(source, target, [point, (point[0], undo_y + H + 30),
                                        (to[0], undo_y + H + 30), to], ref=ref)  # fmt: skip

    for k, (n, step) in enumerate(chain):
        x = 160 + k * (W + GAP + 40)
        gate, task = _id("logged", n), _id("undo", n)
        m.elements.append(
            f'    <bpmn:exclusiveGateway id="{gate}" name="logged?" default="{gate}_no"/>'
        )
        m.shape(gate, x, undo_y + H / 2 - 25, 50, 50)
        connect(gate, (x, undo_y + H / 2))
        m.elements.append(
            f'    <bpmn:scriptTask id="{task}" name={quoteattr("Undo " + step.name)} '
            f'scriptFormat="python"><bpmn:script>{_esc(f"undo({step.name!r})")}</bpmn:script>'
            "</bpmn:scriptTask>"
        )
        m.shape(task, x + 80, undo_y, W, H)
        m.flow(gate, task, [(x + 50, undo_y + H / 2), (x + 80, undo_y + H / 2)],
               condition=f"logged({step.name!r})", name="logged")  # fmt: skip
        sources = [
            (task, (x + W + 80, undo_y + H / 2), None),
            (gate, (x + 25, undo_y + H / 2 + 25), f"{gate}_no"),
        ]
    end_x2 = 160 + len(chain) * (W + GAP + 40)
    m.elements.append('    <bpmn:endEvent id="rolled_back" name="rolled back"/>')
    m.shape("rolled_back", end_x2, undo_y + H / 2 - 18, 36, 36)
    connect("rolled_back", (end_x2, undo_y + H / 2))
    return _document(saga, m, '  <bpmn:error id="step_failed" name="step failed" '
                     'errorCode="StepFailed"/>\n', process="saga_explicit")  # fmt: skip


# -- running the explicit form on SpiffWorkflow ---------------------------------------------


@dataclass
class _Host:
    """What the model's script tasks call: ``do`` and ``undo`` (the worker does the task
    and records it), ``logged`` (the undo log: a saga machine told how each step went)."""

    worker: Worker
    machine: Machine

    def do(self, step: str) -> bool:
        error = self.worker.task("action", step).error
        if self.machine.phase == "step" and self.machine.current == step:
            if error is None:
                self.machine.step_ok()
            else:
                self.machine.step_failed(error.to_exception())
        return error is None

    def logged(self, step: str) -> bool:
        return self.machine.logged(step)

    def undo(self, step: str) -> None:
        self.worker.task("undo", step)  # a failed undo: a dead letter, and on to the next


def run_explicit(saga: Saga, state: State | None = None, *,
                 inject: InjectionLike | None = None) -> Outcome:  # fmt: skip
    """Run the explicit BPMN form of ``saga`` on SpiffWorkflow (policy *continue*)."""
    from SpiffWorkflow.bpmn import BpmnWorkflow
    from SpiffWorkflow.bpmn.parser import BpmnParser
    from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment

    if data_only(saga.policy, ENGINE).name != "continue":
        raise UnsupportedInBPMN("the explicit BPMN form runs policy 'continue', undos newest first")
    retried = [s.name for s in saga.specs() if s.retry is not None]  # (a retriable step too)
    if retried:
        raise UnsupportedInBPMN(
            f"the explicit BPMN form runs each task once: it cannot retry {', '.join(retried)}"
        )
    faults = normalize_injection(inject, saga.names)
    run_id = f"{saga.name}-{uuid.uuid4().hex[:12]}"
    world: State = {} if state is None else state
    before = snapshot(world) if state is not None else None
    plan = plan_of(saga, run_id)
    machine = Machine(plan.undo_policy(), plan=plan.specs(), name=saga.name, run_id=run_id)
    if type(machine.start()) is not RunStep:
        raise RuntimeError("the machine does not start with a step")
    host = _Host(Worker(run_id, saga, world, faults), machine)
    parser = BpmnParser()
    parser.add_bpmn_str(to_bpmn_explicit(saga).encode())
    engine = PythonScriptEngine(
        environment=TaskDataEnvironment({"do": host.do, "undo": host.undo, "logged": host.logged})
    )
    workflow = BpmnWorkflow(
        parser.get_spec("saga_explicit"),
        parser.get_subprocess_specs("saga_explicit"),
        script_engine=engine,
    )
    workflow.do_engine_steps()
    if not workflow.is_completed():
        raise RuntimeError("the BPMN workflow did not complete")
    calls = host.worker.calls  # each script task ran its task once: one visit each
    found = [Visit(do(c.step) if c.call == "action" else undo(c.step), 1, c.error is None)
             for c in calls]  # fmt: skip
    return outcome_of(saga, walk(plan, found, calls), before=before, state=state)


class BpmnRunner:
    """The explicit form on SpiffWorkflow as a ``Runner``: the engine is a library, so there
    is nothing to start or stop; ``run`` is ``run_explicit``."""

    @classmethod
    def start(cls) -> BpmnRunner:
        return cls()

    def run(
        self, saga: Saga, state: State | None = None, *, inject: InjectionLike | None = None
    ) -> Outcome:
        return run_explicit(saga, state, inject=inject)

    def close(self) -> None:
        pass

    def __enter__(self) -> BpmnRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
