"""The saga in BPMN 2.0: the compensation form (for Camunda 8) checked against the BPMN 2.0
schema and read back by a BPMN library; the explicit form run on SpiffWorkflow, a real BPMN
engine, and compared field by field with saga.run for every single fault."""

import xml.etree.ElementTree as ET

import pytest
from conftest import lesson_worlds, same_outcome, single_faults
from SpiffWorkflow.bpmn.parser import BpmnParser, BpmnValidator

from rollback_lessons import Kind, Saga, Step, VirtualClock
from rollback_lessons.runners.bpmn import (
    UnsupportedInBPMN,
    run_explicit,
    to_bpmn,
    to_bpmn_explicit,
)
from rollback_lessons.worlds import examples
from rollback_lessons.worlds.demo import xyz_saga, xyz_state

WORLDS = lesson_worlds()
NS = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
    "zeebe": "http://camunda.org/schema/zeebe/1.0",
}


def test_every_single_fault_of_the_lesson_sagas_ends_the_same_on_spiffworkflow():
    checked, seen = 0, set()
    for name, inject in single_faults():
        make_saga, make_state = WORLDS[name]
        local = make_saga().run(make_state(), inject=inject, clock=VirtualClock())
        remote = run_explicit(make_saga(), make_state(), inject=inject)
        same_outcome(local, remote)
        seen.add(str(remote.status))
        checked += 1
    assert checked > 40 and {"committed", "rolled_back", "rollback_incomplete"} <= seen


def read_back(xml: str) -> BpmnParser:
    """Through SpiffWorkflow's parser with its BPMN 2.0 schema validator."""
    parser = BpmnParser(validator=BpmnValidator())
    parser.add_bpmn_str(xml.encode())
    return parser


@pytest.mark.parametrize("world", sorted(WORLDS))
def test_the_compensation_form_is_valid_bpmn_with_one_handler_per_compensable_step(world):
    saga = WORLDS[world][0]()
    xml = to_bpmn(saga)
    assert read_back(xml).get_process_ids() == ["saga"]  # schema-valid, and read as a process
    root = ET.fromstring(xml)
    process = root.find("bpmn:process", NS)
    tasks = {t.get("id"): t for t in process.findall("bpmn:serviceTask", NS)}
    steps = [t for t in tasks.values() if t.get("isForCompensation") != "true"]
    handlers = {t.get("id"): t for t in tasks.values() if t.get("isForCompensation") == "true"}
    assert [t.get("name") for t in steps] == [f"Do {s.name}" for s in saga.steps]
    compensable = [s.name for s in saga.steps if s.undo is not None and s.kind != Kind.PIVOT]
    boundaries = [
        b for b in process.findall("bpmn:boundaryEvent", NS)
        if b.find("bpmn:compensateEventDefinition", NS) is not None
    ]  # fmt: skip
    assert len(boundaries) == len(handlers) == len(compensable)
    links = {
        a.get("sourceRef"): a.get("targetRef") for a in process.findall("bpmn:association", NS)
    }
    for boundary in boundaries:
        step = tasks[boundary.get("attachedToRef")].get("name").removeprefix("Do ")
        assert handlers[links[boundary.get("id")]].get("name") == f"Undo {step}"
    # each step fails into the one compensation throw event
    errors = [b for b in process.findall("bpmn:boundaryEvent", NS)
              if b.find("bpmn:errorEventDefinition", NS) is not None]  # fmt: skip
    assert len(errors) == len(saga.steps)
    assert (
        process.find("bpmn:intermediateThrowEvent/bpmn:compensateEventDefinition", NS) is not None
    )
    # deployable to Camunda 8: a job type on every service task
    for task in tasks.values():
        assert task.find("bpmn:extensionElements/zeebe:taskDefinition", NS).get("type")
    # a diagram: a shape for every node, an edge for every flow and association
    drawn = {e.get("bpmnElement") for e in root.iter() if e.get("bpmnElement")}
    for element in process:
        assert element.get("id") in drawn, element.get("id")


def test_a_pivot_has_no_compensation_handler():
    saga = Saga([
        Step("charge", lambda s: None, lambda s: None),
        Step("email", lambda s: None, kind=Kind.PIVOT),
    ])  # fmt: skip
    xml = to_bpmn(saga)
    names = [t.get("name") for t in ET.fromstring(xml).iter(f"{{{NS['bpmn']}}}serviceTask")]
    assert sorted(names) == ["Do charge", "Do email", "Undo charge"]  # no "Undo email"


def test_the_explicit_form_is_valid_bpmn_and_chains_the_undos_newest_first():
    saga = examples.folder_saga()
    xml = to_bpmn_explicit(saga)
    read_back(xml)
    undo_tasks = [t.get("name") for t in ET.fromstring(xml).iter(f"{{{NS['bpmn']}}}scriptTask")
                  if t.get("name").startswith("Undo")]  # fmt: skip
    assert undo_tasks == [f"Undo {s.name}" for s in reversed(saga.steps) if s.undo is not None]


def test_options_the_explicit_form_cannot_express_are_refused_before_it_runs():
    state = xyz_state()
    with pytest.raises(UnsupportedInBPMN):
        run_explicit(xyz_saga().__class__(xyz_saga().steps, policy="halt"), state)
    assert state == xyz_state()
