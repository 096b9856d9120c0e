"""The XML a BPMN model is written as (``runners.bpmn``): flow nodes that list their
incoming and outgoing flows, sequence flows, and the diagram's shapes and edges, written
out together."""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr


def ident(prefix: str, n: int) -> str:
    return f"{prefix}_{n}"


@dataclass
class Scope:
    """A process's (or a subprocess's) flow nodes and sequence flows."""

    nodes: list[Node] = field(default_factory=list)
    flows: list[str] = field(default_factory=list)


@dataclass
class Node:
    """A flow node; its incoming and outgoing flows are filled in as flows are drawn, and
    written out as children, as modelers do (bpmnlint reads them, not the flows' refs)."""

    tag: str
    id: str
    attrs: dict[str, str]
    head: str = ""  # extension elements: before the flows, in the schema's order
    tail: str = ""  # event definitions or a script: after them
    incoming: list[str] = field(default_factory=list)
    outgoing: list[str] = field(default_factory=list)
    content: Scope | None = None  # a subprocess's own nodes and flows


@dataclass
class Model:
    """BPMN elements and their diagram shapes, written out together."""

    scope: Scope = field(default_factory=Scope)
    artifacts: list[str] = field(default_factory=list)
    shapes: list[str] = field(default_factory=list)
    nodes: dict[str, Node] = field(default_factory=dict)
    flows: int = 0

    def node(self, tag: str, ref: str, name: str, bounds: tuple[float, float, float, float],
             *, head: str = "", tail: str = "", **attrs: str) -> Node:  # fmt: skip
        """A flow node in the current scope, and its shape."""
        made = Node(tag, ref, {"name": name, **attrs} if name else dict(attrs), head, tail)
        self.scope.nodes.append(made)
        self.nodes[ref] = made
        x, y, w, h = bounds
        self.shape(ref, x, y, w, h, **({"isExpanded": "true"} if tag == "subProcess" else {}))
        return made

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
        """A sequence flow in the current scope, and its edge; ``ref`` names it (a
        gateway's default flow)."""
        if ref is None:
            self.flows += 1
            ref = ident("flow", self.flows)
        label = f" name={quoteattr(name)}" if name else ""
        body = (
            f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression" '
            f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">{esc(condition)}'
            "</bpmn:conditionExpression>"
            if condition
            else ""
        )
        self.scope.flows.append(
            f'<bpmn:sequenceFlow id="{ref}" sourceRef="{source}" targetRef="{target}"{label}>'
            f"{body}</bpmn:sequenceFlow>"
        )
        self.nodes[source].outgoing.append(ref)
        self.nodes[target].incoming.append(ref)
        self.edge(ref, points)
        return ref

    def join(self, ref: str, sources: list[tuple[str, list[tuple[float, float]]]],
             at: tuple[float, float]) -> None:  # fmt: skip
        """Flows that go on to one node meet at an exclusive gateway first (a task or an
        event with two incoming flows would be a "fake join"); ``at``: its left corner."""
        self.node("exclusiveGateway", ref, "", (at[0], at[1] - 25, 50, 50))  # asks nothing
        for source, points in sources:
            self.flow(source, ref, points)


def render(scope: Scope, pad: str) -> list[str]:
    lines = []
    for n in scope.nodes:
        attrs = "".join(f" {k}={quoteattr(v)}" for k, v in n.attrs.items())
        flows = "".join(f"<bpmn:incoming>{r}</bpmn:incoming>" for r in n.incoming) + "".join(
            f"<bpmn:outgoing>{r}</bpmn:outgoing>" for r in n.outgoing
        )
        opening = f'{pad}<bpmn:{n.tag} id="{n.id}"{attrs}>{n.head}{flows}'
        if n.content is None:
            lines.append(f"{opening}{n.tail}</bpmn:{n.tag}>")
        else:
            lines += [opening, *render(n.content, pad + "  "), f"{pad}</bpmn:{n.tag}>"]
    return lines + [pad + f for f in scope.flows]


def esc(text: str | None) -> str:
    return (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
