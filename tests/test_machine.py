"""The saga machine on its own: sans-IO, its transitions, the policy as data, what it says
to the writers of state machines; and a policy of one's own, run where Python decides and
refused, before anything runs, where a state machine is written beforehand."""

import json
import sys

import pytest
from conftest import HaltOnAnythingButTimeouts

from rollback_lessons import Kind, Retry, RetryPolicy, Saga, Status, Step, UndoPolicy
from rollback_lessons.errors import InvalidPipelineError
from rollback_lessons.machine import TRANSITIONS, Machine, MachineError, Phase
from rollback_lessons.operations import (
    PROCEED,
    RAISE,
    Ask,
    Finished,
    RunStep,
    RunUndo,
    StepSpec,
    Wait,
)
from rollback_lessons.policies import CONTINUE, HALT, RETRY, UnsupportedPolicy, resolve_policy
from rollback_lessons.runners import hosted
from rollback_lessons.runners.bpmn import run_explicit, to_bpmn, to_bpmn_explicit
from rollback_lessons.runners.history import walk
from rollback_lessons.runners.owed import every_undo, owed
from rollback_lessons.runners.stepfunctions import to_asl
from rollback_lessons.runners.wire import plan_of, record_data, record_of
from rollback_lessons.worlds.demo import xyz_saga, xyz_state


class Boom(Exception):
    pass


def test_the_machine_answers_operations_and_does_no_io():
    plan = [StepSpec("a", has_undo=True), StepSpec("b", has_undo=True, register="before")]
    m = Machine(RETRY, plan=plan)
    assert m.start() == RunStep("a", 1)
    assert m.step_ok() == RunStep("b", 1)
    assert type(m.step_failed(Boom())) is RunUndo  # b's undo was logged first: it runs
    assert m.phase is Phase.UNDO
    assert m.undo_failed(Boom()) == Wait(0.1)  # the policy's retry, as data
    assert m.resume() == RunUndo("b", 2, None)
    assert m.undo_ok() == RunUndo("a", 1, None)
    done = m.undo_ok()
    assert isinstance(done, Finished) and done.record.status is Status.ROLLED_BACK
    assert [row[0] for row in done.record.rows][-1] == "rollback_done"
    with pytest.raises(MachineError, match="cannot happen while the machine is done"):
        m.undo_ok()


@pytest.mark.parametrize("unwatched", [True, False])
def test_an_undo_handed_out_is_told_as_its_call_begins_never_if_it_never_does(unwatched):
    """``told_as_called`` (an engine hands each undo out, as a task): the undo's event is told
    by ``undo_begins``, not as the machine asks for it; a stop before its call tells none and
    says so ("before ... began"), the undo pending and not one that may run on. An observer's
    Ctrl-C at that event ends the rollback there (the undo never called)."""
    plan = [StepSpec("a", has_undo=True), StepSpec("b", has_undo=True), StepSpec("c")]
    told = []
    watch = None if unwatched else (lambda seq, kind, step, details: told.append((kind, step)))
    m = Machine(RETRY, plan=plan, watch=watch)
    m.told_as_called = True
    m.start(), m.step_ok(), m.step_ok()
    assert m.step_failed(Boom()) == RunUndo("b", 1, None)

    def kinds():
        return [(row[0], row[1]) for row in m.rows]

    assert ("undo", "b") not in kinds()
    assert m.undo_begins() is None and kinds()[-1] == ("undo", "b")
    assert m.undo_ok() == RunUndo("a", 1, None)  # (one at a time, also unwatched)
    assert kinds()[-1] == ("undo_done", "b")
    done = m.interrupted(KeyboardInterrupt())
    assert isinstance(done, Finished) and m.interrupted_undo is None
    assert ("undo", "a") not in kinds() and kinds()[-1] == ("rollback_done", None)
    assert m.pending == ["a"] and m.notes == [
        "rollback interrupted by KeyboardInterrupt before the undo of a began; not known to be "
        "undone: a"
    ]
    assert told == ([] if unwatched else kinds())

    def ctrl_c_at_undo(seq, kind, step, details):
        if kind == "undo":
            raise KeyboardInterrupt

    m = Machine(RETRY, plan=plan, watch=ctrl_c_at_undo)
    m.told_as_called = True
    m.start(), m.step_ok()
    assert m.step_failed(Boom()) == RunUndo("a", 1, None)
    ended = m.undo_begins()
    assert isinstance(ended, Finished) and m.pending == ["a"] and m.phase is Phase.DONE
    assert "at the undo event of a" in m.notes[-1]


def test_a_with_block_is_told_to_proceed_or_raise():
    m = Machine()
    assert m.begin("a", has_undo=True) == RunStep("a", 1)
    assert m.step_ok() is PROCEED
    m.begin("b")
    assert m.step_failed(Boom()) is RAISE
    assert type(m.fail(Boom())) is RunUndo


def test_every_input_is_in_the_transition_table():
    inputs = {"start", "begin", "register", "step_ok", "step_failed", "resume", "commit",
              "fail", "undo_ok", "undo_failed", "answer", "interrupted", "stop"}  # fmt: skip
    assert {name for takes in TRANSITIONS.values() for name in takes} == inputs
    assert all(hasattr(Machine, name) for name in inputs)


def test_named_policies_are_data_and_a_class_of_ones_own_is_code():
    assert resolve_policy("continue") is CONTINUE and resolve_policy("halt") is HALT
    assert (CONTINUE.retry, CONTINUE.then) == (None, "dead_letter")
    assert (HALT.retry, HALT.then) == (None, "halt")
    patient = UndoPolicy(RetryPolicy(max_attempts=4), then="halt")
    assert patient.name == "retry" and isinstance(Retry(), UndoPolicy)
    assert HaltOnAnythingButTimeouts().name == "HaltOnAnythingButTimeouts"


def test_the_writers_ask_the_machine_what_a_failure_leads_to():
    plan = [
        StepSpec("a", has_undo=True),
        StepSpec("b", has_undo=True, register="before"),
        StepSpec("email", Kind.PIVOT),
        StepSpec("notify", Kind.RETRIABLE, retry=RetryPolicy()),
    ]
    found = {o.step: (o.halts, o.undos) for o in owed(plan)}
    assert found == {
        "a": (False, ()),
        "b": (False, ("b", "a")),
        "email": (False, ("b", "a")),
        "notify": (True, ()),  # after the pivot: halted forward, nothing undone
    }
    assert every_undo(plan) == ("b", "a")


def test_a_record_crosses_an_engine_and_comes_back_the_same():
    outcome = xyz_saga().run(xyz_state(), inject={"step3": "fail", "step1": "undo_fails"})
    back = record_of(record_data(outcome))
    assert back.events == outcome.events and back.status is outcome.status
    # through JSON as Temporal's converter writes it (keys sorted): the story reads the same
    sorted_json = record_of(json.loads(json.dumps(record_data(outcome), sort_keys=True)))
    assert [str(e) for e in sorted_json.events] == [str(e) for e in outcome.events]
    assert [(d.step, repr(d.error)) for d in back.dead_letters] == [
        (d.step, repr(d.error)) for d in outcome.dead_letters
    ]


def test_a_records_kinds_keep_the_sagas_order_through_sorted_json():
    """attack287 F2: Temporal's Outcome.kinds came back in sorted-name order (its payload's
    keys sorted), definition order on every other engine."""
    saga = Saga([Step(n, lambda s: None, lambda s: None) for n in ("zeta", "alpha", "mid")])
    outcome = saga.run({})
    back = record_of(json.loads(json.dumps(record_data(outcome), sort_keys=True)))
    assert list(back.kinds) == list(outcome.kinds) == ["zeta", "alpha", "mid"]


def _saga(policy):
    return Saga(
        [
            Step("a", lambda s: s.update(a=1), lambda s: s.update(a=0)),
            Step("b", lambda s: s.update(b=1), lambda s: s.update(b=0)),
            Step("c", lambda s: s.update(c=1)),
        ],
        policy=policy,
    )


def test_a_policy_of_ones_own_halts_in_process():
    outcome = _saga(HaltOnAnythingButTimeouts()).run({}, inject={"c": "fail", "b": "undo_fails"})
    assert outcome.status is Status.HALTED and outcome.pending == ("b", "a")
    timeouts = _saga(HaltOnAnythingButTimeouts()).run({}, inject={"c": "fail_after_effect"})
    assert timeouts.status is Status.ROLLBACK_INCOMPLETE  # c leaked: no undo logged for it


def test_engines_that_write_the_saga_down_refuse_a_policy_of_ones_own_before_anything():
    saga, mine = _saga(HaltOnAnythingButTimeouts()), HaltOnAnythingButTimeouts()
    with pytest.raises(UnsupportedPolicy, match="Step Functions cannot run the undo policy"):
        to_asl(xyz_saga(), policy=mine)
    for write in (to_bpmn, to_bpmn_explicit, run_explicit):
        with pytest.raises(UnsupportedPolicy, match="BPMN cannot run the undo policy"):
            write(saga)
    with pytest.raises(UnsupportedPolicy, match="cannot have been part of it"):
        walk(plan_of(saga, "s1"), [], [])
    hosted.release("s1")  # (plan_of keeps a policy of one's own for the run's machine)
    assert issubclass(UnsupportedPolicy, InvalidPipelineError)  # bad input, before it runs


def test_a_person_may_be_asked_and_answer():
    m = Machine(HALT, plan=[StepSpec("a", has_undo=True), StepSpec("b")])
    m.start()
    m.step_ok()
    assert m.step_failed(Boom()) == RunUndo("a", 1, None)
    assert m.undo_failed(Boom()) == Ask(("a",))
    assert m.answer("retry") == RunUndo("a", 2, None)
    assert m.undo_failed(Boom()) == Ask(("a",))
    done = m.answer("fixed")
    assert done.record.status is Status.ROLLED_BACK
    assert done.record.events[-2].details == {"attempt": 2, "by_hand": True}


@pytest.mark.parametrize("where", ["first", "after a step"])
def test_a_gate_that_fails_after_its_effect_or_is_cut_short_leaves_nothing_behind(where):
    """A gate changes nothing (its kind says so): a failure "after its effect", or a Ctrl-C
    inside its call, leaks nothing and the run rolls back (newuser8: lesson 04's panel said
    ``rollback_incomplete``, "not undone: verify_card", with every state row unchanged)."""
    done: list[str] = []
    steps = [Step("book", lambda s: done.append("book"), lambda s: done.append("unbook"))]
    gate = Step("check", lambda s: None, kind="gate")
    saga = Saga([gate, *steps] if where == "first" else [*steps, gate])
    outcome = saga.run({}, inject={"check": "fail_after_effect"})
    assert outcome.status is Status.ROLLED_BACK and outcome.leaked == ()
    [failed] = [e for e in outcome.events if e.kind == "step_failed"]
    assert "after_effect" not in failed.details

    def interrupted(state):
        raise KeyboardInterrupt

    cut = Saga([*steps, Step("check", interrupted, kind="gate")])
    with pytest.raises(KeyboardInterrupt):
        cut.run({})
    assert done[-1] == "unbook"


def test_what_a_run_stopped_midway_leaves_in_effect_is_the_machines_answer():
    """``Machine.in_effect`` (attack25 F1): done and not undone; and what may have happened
    (failed after its effect, or its undo logged before it: owed) and is not undone."""
    plan = [StepSpec("a", has_undo=True), StepSpec("b", has_undo=True, register="before"),
            StepSpec("c", has_undo=True)]  # fmt: skip
    m = Machine(CONTINUE, plan=plan)
    m.start()
    assert m.in_effect() == ((), ())
    m.step_ok()
    assert m.in_effect() == (("a",), ("b",))  # b runs: its undo is owed however it ends
    assert m.step_failed(TimeoutError("after charging")) == RunUndo("b", 1, None)
    assert m.in_effect() == (("a",), ("b",))
    m.undo_ok()
    assert m.in_effect() == (("a",), ())
    m.undo_ok()
    assert m.in_effect() == ((), ())
    m = Machine(CONTINUE, plan=[StepSpec("a", has_undo=True), StepSpec("b", has_undo=True)])
    m.start()
    m.step_ok()
    m.step_failed(Boom("refused"))  # a clean failure, its undo logged after it: nothing owed
    assert m.in_effect() == (("a",), ())
    m = Machine(CONTINUE, plan=[StepSpec("a", has_undo=True), StepSpec("b", has_undo=True)])
    m.start()
    m.step_ok()
    from rollback_lessons.errors import InjectedTimeout
    from rollback_lessons.faults import Fault

    m.step_failed(InjectedTimeout("b", Fault.FAIL_AFTER_EFFECT, "after its effect"))  # leaked
    assert m.in_effect() == (("a",), ("b",))


def test_the_worker_names_what_its_calls_leave_in_effect_by_the_machine():
    """``Worker.in_effect`` replays its calls into a machine (the list form): a step asked
    for and never called is withdrawn (its undo logged before it is not owed)."""
    from rollback_lessons.runners.history import Call, Worker
    from rollback_lessons.runners.wire import ErrorRecord

    saga = Saga([Step("a", lambda s: None, lambda s: None),
                 Step("b", lambda s: None, lambda s: None, register="before"),
                 Step("c", lambda s: None, lambda s: None, register="before")])  # fmt: skip
    plan = plan_of(saga, "r")
    late = ErrorRecord.of(TimeoutError("after charging"), "b")
    worker = Worker("r", saga, {}, {}, plan=plan)
    worker.calls = [Call("action", "a", 1)]
    assert worker.in_effect() == "done, not undone: a"  # (c, b never called)
    worker.calls.append(Call("action", "b", 1, late))
    assert worker.in_effect() == "done, not undone: a; may have happened, not undone: b"
    worker.calls.append(Call("undo", "b", 1))
    assert worker.in_effect() == "done, not undone: a"
    worker.calls.append(Call("undo", "a", 1))
    assert worker.in_effect() == "nothing done is left in effect"


@pytest.mark.parametrize("graph", [False, True], ids=["list", "graph"])
def test_an_attempt_that_never_began_is_not_cut_short(graph):
    """``not_run``: an engine says the attempt it was asked for never began (DBOS's stop as a
    step begins, harden41). A later attempt: the step waits to retry again, so a stop there
    fails it cleanly, nothing leaked (attack27 F5); a first: the step was not run, its undo
    logged before it withdrawn, the cause's words in the note."""
    from rollback_lessons.operations import StepSpec
    from rollback_lessons.schedule import GraphMachine

    retry = RetryPolicy(max_attempts=3, initial_delay=1.0)
    plan = [StepSpec("a", has_undo=True, register="before"), StepSpec("b", retry=retry)]
    if graph:
        m = GraphMachine(CONTINUE, plan=plan, after={"a": (), "b": ("a",)})
        m.launch("a")
        m.step_done("a")
        m.launch("b")
        assert type(m.step_error("b", ValueError("no"))).__name__ == "Wait"
        assert m.step_resume("b") == ("b", 2)
        m.not_run("b", "the engine's stop came as it began")
        assert m.where["b"] == "waiting" and m.attempts["b"] == 1
        m.step_cut("b", KeyboardInterrupt())
    else:
        m = Machine(CONTINUE, plan=plan)
        m.start()
        m.step_ok()
        assert type(m.step_failed(ValueError("no"))).__name__ == "Wait"
        assert m.resume() == ("b", 2)
        m.not_run("b", "the engine's stop came as it began")
        assert (m.phase, m.attempt) == (Phase.STEP_WAIT, 1)
        m.interrupted(KeyboardInterrupt())
    assert m.leaked == [] or m.leaked == ()
    first = Machine(CONTINUE, plan=plan)
    assert first.start() == ("a", 1) and first.logged("a")
    first.not_run("a", "the engine's stop came as it began")
    assert not first.logged("a") and first.withdrawn == ["a"] and first.phase is Phase.FORWARD
    assert first.notes == ["a was not run: the engine's stop came as it began"]


def _cut_at_append(step: str):  # type: ignore[no-untyped-def]
    """A Ctrl-C as ``step_ok`` appended ``step`` to the steps done (a C call's return,
    where CPython hears one), before it recorded anything else."""

    def hook(frame, event, arg):  # type: ignore[no-untyped-def]
        at = event == "c_return" and arg.__name__ == "append" and frame.f_code.co_name
        if at == "step_ok" and frame.f_locals["self"].current == step:
            sys.setprofile(None)
            raise KeyboardInterrupt

    return hook


def test_a_step_returned_is_told_done_once_whole_even_after_a_cut_step_ok():
    plan = [StepSpec("a", has_undo=True), StepSpec("b", has_undo=True), StepSpec("c")]
    m = Machine(plan=plan)
    m.start()
    m.step_ok()
    sys.setprofile(_cut_at_append("b"))
    try:
        with pytest.raises(KeyboardInterrupt):
            m.step_ok()
    finally:
        sys.setprofile(None)
    assert m.completed == ["a", "b"] and m.phase is Phase.STEP  # cut mid-way
    assert m.step_returned() is True
    assert m.step_returned() is False  # told twice: once
    assert m.completed == ["a", "b"] and [e.step for e in m.log] == ["a", "b"]
    assert [(r[0], r[1]) for r in m.rows if r[1] == "b"] == [
        ("step_start", "b"), ("step_done", "b"), ("undo_registered", "b")]  # fmt: skip
    assert m.fail(KeyboardInterrupt()) == RunUndo("b", 1, None)  # undone, not leaked
    assert m.undo_ok() == RunUndo("a", 1, None)
    done = m.undo_ok()
    assert isinstance(done, Finished) and done.record.status is Status.ROLLED_BACK


def test_a_pivot_returned_after_a_cut_step_ok_is_irreversible_once():
    m = Machine(plan=[StepSpec("a", has_undo=True), StepSpec("p", Kind.PIVOT)])
    m.start()
    m.step_ok()
    m.completed.append("p")  # what a step_ok cut before it left the step leaves
    m.irreversible = [*m.irreversible, "p"]
    assert m.step_returned() is True
    assert m.completed == ["a", "p"] and list(m.irreversible) == ["p"] and m.pivot_done
    assert m.phase is Phase.FORWARD and m.step_returned() is False
    n = Machine(plan=[StepSpec("a", has_undo=True), StepSpec("b")])  # told whole first
    n.start()
    n.step_ok()
    n.step_ok(go_on=False)
    assert n.step_returned() is False and n.completed == ["a", "b"]


@pytest.mark.parametrize("cut", [False, True])
def test_a_sibling_cut_short_while_the_others_finish_is_said_in_doubt_never_failed(cut):
    """attack172 F1: a group's sibling whose call was cut short (its end never heard: a
    worker gone) was noted "also failed, while the running steps finished", beside a note
    that it was in doubt. Cut short, it is said so; one whose call raised, failed."""
    from rollback_lessons.operations import StepSpec
    from rollback_lessons.schedule import GraphMachine

    plan = [StepSpec("b", has_undo=True), StepSpec("e", has_undo=True)]
    m = GraphMachine(CONTINUE, plan=plan, after={"b": (), "e": ()})
    m.launch("b")
    m.launch("e")
    m.step_error("b", ValueError("no seats"))
    error = TimeoutError("activity Heartbeat timeout")
    m.step_cut("e", error) if cut else m.step_error("e", error)
    how = "was also cut short (in doubt)" if cut else "also failed"
    assert f"e {how}, while the running steps finished: TimeoutError(" in m.notes[0]
    assert ("e" in m.record().leaked) is cut
