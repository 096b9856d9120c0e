"""The saga in BPMN 2.0: the compensation form (for Camunda 8) checked against the BPMN 2.0
schema, read back by a BPMN library, and followed the way the BPMN spec and Camunda run it
(what it undoes after each failure is what saga.run undoes); the explicit form run on
SpiffWorkflow, a real BPMN engine, and compared field by field with saga.run for every
single fault; every file the package writes linted by Camunda Modeler's own rules
(bpmnlint's recommended rules and Camunda 8's, on Node)."""

import json
import subprocess
import xml.etree.ElementTree as ET
from functools import partial
from pathlib import Path

import pytest
from conftest import HaltOnAnythingButTimeouts, lesson_worlds, same_outcome, single_faults
from heard import hear, heard_as_in_process
from outside_validators import node_script
from SpiffWorkflow.bpmn.parser import BpmnParser, BpmnValidator
from trips import _act, _step, _undo, big_error_saga

from rollback_lessons import Kind, Parallel, Retry, RetryPolicy, Saga, Step, VirtualClock
from rollback_lessons.errors import InvalidPipelineError
from rollback_lessons.runners.bpmn import (
    BpmnRunner,
    UnsupportedInBPMN,
    run_explicit,
    to_bpmn,
    to_bpmn_explicit,
)
from rollback_lessons.runners.bpmn.graph import ORDER_TEXT
from rollback_lessons.worlds import examples, services, travel
from rollback_lessons.worlds.demo import xyz_saga, xyz_state
from rollback_lessons.worlds.mailserver import MailServer

WORLDS = lesson_worlds()
NS = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
    "zeebe": "http://camunda.org/schema/zeebe/1.0",
}
B = "{" + NS["bpmn"] + "}"


def nothing(state):
    return None


def more_sagas() -> dict:
    """Sagas beyond the five lesson worlds that the BPMN forms must get right: lesson 06's
    booking (the charge's undo logged before it, the email a pivot), its email-first twin
    (a correction email: a semantic undo, an unsafe order), lesson 04's booking with a step
    retried forward after the pivot, and odd names."""
    return {
        "services": (services.booking_saga, None),
        "email first": (lambda: services.booking_saga(email_first=True), None),
        "award points": (
            lambda: examples.booking_saga([*examples.SAFE_BOOKING_ORDER, "award_points"]),
            examples.booking_state,
        ),
        "one step": (lambda: Saga([Step("only", nothing, nothing)], name="one"), dict),
        "odd names": (
            lambda: Saga(
                [
                    Step('a "quoted" <step> & more', nothing, nothing, register="before"),
                    Step("back\\slash", nothing, nothing),
                ],
                name="odd",
            ),
            dict,
        ),
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


def test_a_charge_that_times_out_after_charging_is_refunded_on_spiffworkflow_too():
    """The undo logged *before* its step ("before"), run by a BPMN engine: as in process,
    the card charged by a call that then timed out is refunded."""
    saga = examples.booking_saga()
    assert saga["charge_card"].register == "before"
    inject = {"charge_card": "fail_after_effect"}
    local = saga.run(examples.booking_state(), inject=inject)
    remote = run_explicit(saga, examples.booking_state(), inject=inject)
    same_outcome(local, remote)
    assert remote.status == "rolled_back" and "charge_card" in remote.compensated
    assert remote.state_after["refunds"] == remote.state_after["charges"] == {"booking-1": 120}


def read_back(xml: str) -> BpmnParser:
    """Through SpiffWorkflow's parser with its BPMN 2.0 schema validator."""
    parser = BpmnParser(validator=BpmnValidator())
    parser.add_bpmn_str(xml.encode())
    return parser


ALL = {**WORLDS, **more_sagas()}


@pytest.mark.parametrize("world", sorted(ALL))
def test_the_compensation_form_is_valid_bpmn_with_one_handler_per_compensable_step(world):
    saga = ALL[world][0]()
    xml = to_bpmn(saga)
    assert read_back(xml).get_process_ids() == ["saga"]  # schema-valid, and read as a process
    root = ET.fromstring(xml)
    process = root.find("bpmn:process", NS)
    tasks = {t.get("id"): t for t in process.findall("bpmn:serviceTask", NS)}
    steps = [t for t in tasks.values() if t.get("name").startswith("Do ")]
    handlers = {t.get("id"): t for t in tasks.values() if t.get("isForCompensation") == "true"}
    assert [t.get("name") for t in steps] == [f"Do {s.name}" for s in saga.steps]
    compensable = [s.name for s in saga.steps if s.undo is not None]
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


def what_bpmn_undoes(
    xml: str, failing: str, completed: list[str], fault: str = "fail"
) -> set[str] | None:
    """Follow the compensation form as the BPMN spec and Camunda 8 run it, when the task
    ``Do <failing>`` fails (``fault``) after the ``completed`` steps: the worker throws the
    BPMN error StepInDoubt for a failure after the effect where the task catches it (a
    pivot: its path ends at a person, None), StepFailed otherwise; its error boundary event's path
    runs (the undo tasks on it), up to the compensation throw event, which invokes the
    handler of every *completed* activity ("the compensation handlers of active or
    terminated activities are not invoked"). None: the step has no error path, so Camunda
    retries its job and then raises an incident for a person (the saga halts)."""
    root = ET.fromstring(xml)
    nodes = {e.get("id"): e for e in root.iter() if e.get("id")}
    by_name = {e.get("name"): e.get("id") for e in root.iter(f"{B}serviceTask")
               if e.get("isForCompensation") != "true"}  # fmt: skip
    flows = {}
    for flow in root.iter(f"{B}sequenceFlow"):
        flows.setdefault(flow.get("sourceRef"), []).append(flow.get("targetRef"))
    handler_of = {a.get("sourceRef"): a.get("targetRef") for a in root.iter(f"{B}association")}

    def boundary(task: str, definition: str, error: str | None = None) -> str | None:
        return next((b.get("id") for b in root.iter(f"{B}boundaryEvent")
                     if b.get("attachedToRef") == task
                     and b.find(f"{B}{definition}") is not None
                     and error in (None, b.find(f"{B}{definition}").get("errorRef"))),
                    None)  # fmt: skip

    task = by_name[f"Do {failing}"]
    doubt = boundary(task, "errorEventDefinition", "step_in_doubt")
    if fault == "fail_after_effect" and doubt is not None:
        [end] = flows[doubt]  # straight to an end: nothing compensated, a person decides
        assert nodes[end].tag == f"{B}endEvent" and end not in flows
        return None
    here = boundary(task, "errorEventDefinition", "step_failed")
    if here is None:
        return None
    ran: set[str] = set()
    while nodes[here].find(f"{B}compensateEventDefinition") is None:  # on to the throw event
        [here] = flows[here]  # one way on: no gateway on a failure's path forks
        if nodes[here].tag == f"{B}serviceTask":
            ran.add(nodes[here].get("name").removeprefix("Undo "))
    for step in completed:
        compensation = boundary(by_name[f"Do {step}"], "compensateEventDefinition")
        if compensation is not None:
            ran.add(nodes[handler_of[compensation]].get("name").removeprefix("Undo "))
    return ran


@pytest.fixture(scope="module")
def mail():
    with MailServer() as server:
        yield server


@pytest.mark.parametrize("world", sorted(ALL))
def test_the_compensation_form_undoes_what_saga_run_undoes_after_every_step_failure(world, mail):
    make_saga, make_state = ALL[world]
    saga = make_saga()
    xml = to_bpmn(saga)
    for step in saga.names:
        for fault in ("fail", "fail_after_effect"):
            state = make_state() if make_state else services.new_world(mail.host, mail.port)
            local = saga.run(state, inject={step: fault}, clock=VirtualClock())
            bpmn = what_bpmn_undoes(xml, step, list(local.completed), fault)
            tried = {*local.compensated, *(d.step for d in local.dead_letters)}
            if local.status == "halted":  # after the pivot, or at it: a person
                assert bpmn is None and not tried, (step, fault)
            else:
                assert bpmn == tried, (step, fault)


def test_a_pivot_has_no_compensation_handler_and_later_steps_no_way_back():
    saga = Saga([
        Step("charge", lambda s: None, lambda s: None),
        Step("email", lambda s: None, kind=Kind.PIVOT),
        Step("points", lambda s: None, kind=Kind.RETRIABLE),
    ])  # fmt: skip
    xml = to_bpmn(saga)
    root = ET.fromstring(xml)
    names = [t.get("name") for t in root.iter(f"{B}serviceTask")]
    assert sorted(names) == ["Do charge", "Do email", "Do points", "Undo charge"]
    points = next(t for t in root.iter(f"{B}serviceTask") if t.get("name") == "Do points")
    attached = [b.get("name") for b in root.iter(f"{B}boundaryEvent")
                if b.get("attachedToRef") == points.get("id")]  # fmt: skip
    assert attached == []  # no error path: job retries, then an incident for a person
    retries = points.find("bpmn:extensionElements/zeebe:taskDefinition", NS).get("retries")
    assert retries == "3"  # the rules' forward retry: 3 attempts


def test_the_explicit_form_is_valid_bpmn_and_chains_the_undos_newest_first():
    saga = examples.folder_saga()
    xml = to_bpmn_explicit(saga)
    read_back(xml)
    undo_tasks = [t.get("name") for t in ET.fromstring(xml).iter(f"{B}scriptTask")
                  if t.get("name").startswith("Undo")]  # fmt: skip
    assert undo_tasks == [f"Undo {s.name}" for s in reversed(saga.steps) if s.undo is not None]


def test_the_explicit_form_runs_odd_step_names():
    make_saga, make_state = more_sagas()["odd names"]
    for inject in ({}, {"back\\slash": "fail"}, {'a "quoted" <step> & more': "fail_after_effect"}):
        same_outcome(make_saga().run(make_state(), inject=inject),
                     run_explicit(make_saga(), make_state(), inject=inject))  # fmt: skip


def test_options_the_explicit_form_cannot_express_are_refused_before_it_runs():
    state = xyz_state()
    with pytest.raises(UnsupportedInBPMN):
        run_explicit(xyz_saga().__class__(xyz_saga().steps, policy="halt"), state)
    assert state == xyz_state()


# -- the users' own tools: Camunda Modeler's lint rules -------------------------------------


def linter() -> list[str]:
    """The command that lints BPMN files, or a skip (a failure in CI) saying what is missing."""
    return node_script("lint_bpmn.cjs")


def every_bpmn_the_package_writes() -> dict[str, str]:
    found = {}
    for world, (make_saga, _) in sorted(ALL.items()):
        for policy in ("continue", "retry", "halt"):
            saga = make_saga()
            saga = Saga(saga.steps, name=saga.name, policy=policy, allow_unsafe_order=True)
            found[f"{world}, {policy}.bpmn"] = to_bpmn(saga)
            found[f"{world}, {policy}.explicit.bpmn"] = to_bpmn_explicit(saga)
    for name, make in (("trip", trip), ("travel", travel.booking),
                       ("travel declared", lambda: travel.booking(declared=True))):  # fmt: skip
        found[f"{name} (a graph).bpmn"] = to_bpmn(make())
        found[f"{name} (a graph).explicit.bpmn"] = to_bpmn_explicit(make())
    return found


def test_camunda_modelers_lint_rules_find_nothing_in_any_bpmn_the_package_writes(tmp_path):
    command = linter()
    files = []
    for name, xml in every_bpmn_the_package_writes().items():
        files.append(tmp_path / name)
        files[-1].write_text(xml)
    done = subprocess.run([*command, *map(str, files)], capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    problems = {
        Path(file).name: [f"{p['rule']} ({p.get('category')}) {p.get('id')}: {p['message']}"
                          for p in found]
        for file, found in json.loads(done.stdout).items() if found
    }  # fmt: skip
    assert problems == {}
    assert len(json.loads(done.stdout)) == len(files) >= 60


def test_the_lint_sees_what_camunda_modeler_would_flag(tmp_path):
    """The check can fail: a task with no job type, an unnamed event, a flow node that does
    not list its flows are each reported."""
    command = linter()
    xml = to_bpmn(xyz_saga())
    broken = (
        xml.replace('<zeebe:taskDefinition type="do-step1" retries="1"/>', "")
        .replace('name="rolled back"', "")
        .replace("<bpmn:incoming>flow_1</bpmn:incoming>", "")
    )
    assert broken.count("<bpmn:incoming>") == xml.count("<bpmn:incoming>") - 1
    path = tmp_path / "broken.bpmn"
    path.write_text(broken)
    done = subprocess.run([*command, str(path)], capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip
    rules = {p["rule"] for p in json.loads(done.stdout)[str(path)]}
    assert {"camunda-compat/implementation", "label-required", "no-implicit-start"} <= rules


# -- parallel groups: parallel gateways; the undo order, the saga machine's -----------------


def trip():
    """a, then room, car-then-gps (then x and y at once) and flight at once, the charge, and
    the email (a pivot)."""
    inner = Parallel(_step("x"), _step("y"))
    return Saga([_step("a"), Parallel(_step("room"), [_step("car"), _step("gps"), inner],
                                      _step("flight")),
                 _step("charge"), Step("email", partial(_act, "email"), kind=Kind.PIVOT)],
                name="trip")  # fmt: skip


def test_a_group_is_a_parallel_gateway_and_the_document_says_camunda_8_has_no_order():
    for order in ("reverse", "by_dependency"):
        xml = to_bpmn(trip(), undo_order=order)
        assert read_back(xml).get_process_ids() == ["saga"]
        process = ET.fromstring(xml).find("bpmn:process", NS)
        gateways = process.findall("bpmn:parallelGateway", NS)
        assert len(gateways) == 4  # two groups: a split and a join each
        split = next(g for g in gateways if g.get("name") == "group 1: at once")
        assert len(split.findall("bpmn:outgoing", NS)) == 3
        text = process.find("bpmn:documentation", NS).text
        assert "all compensation handlers at once, without any specific order" in text
        assert ORDER_TEXT[order] in text
        handlers = [t for t in process.findall("bpmn:serviceTask", NS)
                    if t.get("isForCompensation") == "true"]  # fmt: skip
        assert len(handlers) == len([s for s in trip().steps if s.undo is not None])
    explicit = to_bpmn_explicit(trip())
    read_back(explicit)
    root = ET.fromstring(explicit)
    assert len(list(root.iter(f"{B}parallelGateway"))) == 4
    # the undo order is not in the model: every undo goes back to What next
    assert [t.get("name") for t in root.iter(f"{B}scriptTask")
            if t.get("name") == "What next"] == ["What next"]  # fmt: skip


@pytest.mark.parametrize("order", ["reverse", "reverse_start", "by_dependency", "forward"])
def test_a_graph_on_spiffworkflow_ends_as_in_process_in_every_undo_order(order):
    saga = trip()
    cases = [{}, *({s: f} for s in saga.names for f in ("fail", "fail_after_effect")),
             {"charge": "fail", "room": "undo_fails"},
             {"y": "fail", "car": "undo_fails"}]  # fmt: skip
    seen = set()
    for inject in cases:
        local = trip().run({}, inject=inject, undo_order=order, clock=VirtualClock())
        remote = run_explicit(trip(), {}, inject=inject, undo_order=order)
        same_outcome(local, remote)
        seen.add(str(remote.status))
    assert seen == {"committed", "rolled_back", "rollback_incomplete", "halted"}


def test_lesson_12s_booking_on_spiffworkflow_undoes_in_the_declared_order():
    for order in travel.ORDERS:
        options = {"inject": {"charge": "fail"}, "undo_order": order}
        local = travel.booking().run(travel.state(), **options)
        same_outcome(local, run_explicit(travel.booking(), travel.state(), **options))


@pytest.mark.parametrize("order", ["reverse", "by_dependency"])
def test_the_graph_form_runs_each_undo_policy_as_in_process(order):
    """Retries are the undo jobs' retries (the machine's backoff between them), a halt is an
    incident on the undo's task: the saga ends halted, the rest pending for a person, as
    ``saga.run`` leaves it (Camunda's job worker would fail the job for good)."""
    retry = RetryPolicy(max_attempts=2, initial_delay=0.01)
    policies = ("halt", Retry(retry), Retry(retry, then="halt"))
    cases = [{"charge": "fail", "room": "undo_fails"}, {"charge": "fail", "car": "undo_fails_once"},
             {"y": "fail", "car": "undo_fails"}, {"car": "fail_after_effect"}, {}]  # fmt: skip
    seen = set()
    for policy in policies:
        for inject in cases:
            options = {"inject": inject, "policy": policy, "undo_order": order}
            local = trip().run({}, clock=VirtualClock(), **options)
            remote = run_explicit(trip(), {}, **options)
            same_outcome(local, remote)
            seen.add((str(policy)[:5], str(remote.status)))
    assert ("halt", "halted") in seen and ("Retry", "rolled_back") in seen
    halted = run_explicit(trip(), {}, inject={"charge": "fail", "room": "undo_fails"},
                          policy="halt")  # fmt: skip
    assert halted.pending == ("room", "a")
    assert halted.compensated == ("flight", "y", "x", "gps", "car")


def test_a_person_resolves_the_incident_of_a_halted_undo():
    """``answers``: at the incident, a person retries the job (the undo runs again and
    succeeds), or says it was fixed by hand; either way the rollback goes on to its end."""
    retried = run_explicit(trip(), {}, inject={"charge": "fail", "car": "undo_fails_once"},
                           policy="halt", answers=["retry"])  # fmt: skip
    assert retried.status.value == "rolled_back" and "car" in retried.compensated
    assert [e.kind for e in retried.events].count("undo_failed") == 1
    fixed = run_explicit(trip(), {}, inject={"charge": "fail", "car": "undo_fails"},
                         policy="halt", answers=["fixed", "leave"])  # fmt: skip
    assert fixed.status.value == "rolled_back" and "car" in fixed.compensated
    with pytest.raises(InvalidPipelineError, match="not one of"):
        run_explicit(trip(), {}, policy="halt", answers=["shrug"])
    for unordered in ("retry", {"fixed", "leave"}, {"fixed": 1}):  # (attack224 F1: "'r'";
        with pytest.raises(TypeError, match="answers must be a list of a person's answers"):
            run_explicit(trip(), {}, policy="halt", answers=unordered)  # attack234 F2: a set's
            # order its hash seed's, a dict's keys)
    once = run_explicit(trip(), {}, inject={"charge": "fail", "car": "undo_fails_once"},
                        policy="halt", answers=(a for a in ["retry"]))  # fmt: skip
    assert once.status.value == "rolled_back" and "car" in once.compensated


def test_the_graph_form_retries_a_step_by_its_own_policy():
    """A step's retry policy is its job's retries: a flaky booking tried again after the
    backoff, as in process; one failing every attempt fails for good, then the rollback."""

    def flaky(name, tries):
        def act(state):
            tries[name] = tries.get(name, 0) + 1
            if tries[name] < 2:
                raise ConnectionError(f"{name}: no answer")
            state[name] = "done"

        return act

    def saga(tries):
        quick = RetryPolicy(max_attempts=2, initial_delay=0.01)
        room = Step("room", flaky("room", tries), partial(_undo, "room"), retry=quick)
        return Saga([_step("a"), Parallel(room, _step("car")), _step("charge")], name="trip")

    for inject in ({}, {"room": "fail"}, {"charge": "fail"}):
        local = saga({}).run({}, inject=inject, clock=VirtualClock())
        remote = run_explicit(saga({}), {}, inject=inject)
        same_outcome(local, remote)
        assert "step_retry" in [e.kind for e in remote.events]
    root = ET.fromstring(to_bpmn_explicit(saga({})))
    jobs = {t.get("name"): t.find("bpmn:extensionElements/zeebe:taskDefinition", NS)
            for t in root.iter(f"{B}scriptTask")}  # fmt: skip
    assert jobs["Do room"].get("retries") == "2" and jobs["Do car"].get("retries") == "1"


def test_what_the_graph_form_cannot_express_is_refused_before_it_runs():
    state = {}
    for saga, options in ((trip(), {"policy": HaltOnAnythingButTimeouts()}),
                          (trip(), {"undo_order": "sideways"}),
                          (trip(), {"completion": ["room", "a"]}),
                          (Saga([_step("a"), _step("b")]), {"policy": "halt"})):  # fmt: skip
        with pytest.raises(InvalidPipelineError):
            run_explicit(saga, state, **options)
    assert state == {}


@pytest.mark.parametrize("undo_order", ["reverse", "reverse_start"])  # the list form, the graph's
def test_on_event_and_the_logger_hear_every_event_as_in_process_on_spiffworkflow(undo_order):
    """Each event once, in the outcome's order, the same fields as ``saga.run`` tells them;
    an error whose repr raises said alike (attack25's F6: they heard nothing; F8)."""
    heard_as_in_process(
        lambda saga: run_explicit(saga, {}, undo_order=undo_order), undo_order=undo_order
    )


@pytest.mark.parametrize("ki_at", [1, 2, 4, 6, 9, 12])
def test_a_ctrl_c_in_on_event_is_taken_as_saga_run_takes_it_on_the_graph_form(ki_at):
    """The graph form tells each event live: a Ctrl-C in the callback fails the run there
    going forward (what was done undone), cuts the rollback short in it (the rest pending),
    then is raised with saga.run's notes: the same world, events and notes."""
    graph = "reverse_start"
    heard_as_in_process(
        lambda saga: run_explicit(saga, {}, undo_order=graph), ki_at, undo_order=graph
    )


def test_a_ctrl_c_in_on_event_told_after_the_list_form_ran_is_raised_with_a_note():
    """The list form's machine replays the engine's run: its events are told once it is over;
    a Ctrl-C in the callback stops the telling and is raised, saying the run was over."""
    got = hear(lambda saga: run_explicit(saga, {}), ki_at=3)
    assert isinstance(got["got"], KeyboardInterrupt)
    assert got["got"].__notes__ == ["it came as the events of a run over were told (rolled_back)"]
    assert got["world"] == ["do a", "do b", "do c", "undo b", "undo a"]
    assert len(got["heard"]) == 3


def test_an_error_of_megabytes_ends_as_in_process_in_bpmn():
    """Beside Temporal's and Step Functions' (which cut what they carry): BPMN carries no
    error out of this process, the record is the one ``saga.run`` makes."""
    local = big_error_saga().run({}, clock=VirtualClock())
    same_outcome(local, BpmnRunner.start().run(big_error_saga(), {}))
