"""Saga, the declarative form: run() returns an Outcome instead of raising."""

import pytest

from rollback_lessons import (
    DuplicateStepError,
    InjectedFault,
    InvalidPipelineError,
    Kind,
    RetryPolicy,
    Saga,
    Status,
    Step,
    UnknownFaultError,
    UnknownStepError,
    UnsafeOrderError,
    compensation,
)
from rollback_lessons.durable.registry import Registry
from rollback_lessons.worlds.demo import xyz_saga, xyz_state


def set_(key, value):
    return lambda s: s.__setitem__(key, value)


def test_seed_parity_saga():
    def step3(state):
        raise RuntimeError("step 3 failed")

    saga = Saga(
        [
            Step("step1", set_("x", 1), set_("x", 0)),
            Step("step2", set_("y", 2), set_("y", 0)),
            Step("step3", step3, set_("z", 0)),
        ]
    )
    state = {"x": 0, "y": 0, "z": 0}
    outcome = saga.run(state)
    assert state == {"x": 0, "y": 0, "z": 0}
    assert outcome.state_after == {"x": 0, "y": 0, "z": 0}
    assert outcome.compensated == ("step2", "step1")
    assert outcome.completed == ("step1", "step2")
    assert outcome.status is Status.ROLLED_BACK
    assert str(outcome.error) == "step 3 failed"
    with pytest.raises(RuntimeError, match="step 3 failed") as info:
        outcome.raise_for_status()
    assert info.value is outcome.error


def test_commit_and_snapshots_are_copies():
    state = xyz_state()
    outcome = xyz_saga().run(state)
    assert outcome.ok and outcome.status is Status.COMMITTED
    assert outcome.state_before == {"x": 0, "y": 0, "z": 0}
    assert outcome.state_after == {"x": 1, "y": 2, "z": 3}
    assert outcome.changed() == ["x", "y", "z"]
    state["x"] = 99
    assert outcome.state_after["x"] == 1
    assert outcome.raise_for_status() is outcome


def test_fail_after_effect_register_after_leaks_register_before_undoes():
    saga = xyz_saga()
    leaked = saga.run(xyz_state(), inject={"step3": "fail_after_effect"})
    assert leaked.status is Status.ROLLBACK_INCOMPLETE
    assert leaked.state_after == {"x": 0, "y": 0, "z": 3}
    assert leaked.leaked == ("step3",)
    covered = saga.run(xyz_state(), inject={"step3": "fail_after_effect"}, register="before")
    assert covered.status is Status.ROLLED_BACK
    assert covered.state_after == {"x": 0, "y": 0, "z": 0}
    assert covered.compensated == ("step3", "step2", "step1")


def test_forward_order_is_available_to_show_why_reverse_is_right():
    outcome = xyz_saga().run(xyz_state(), inject={"step3": "fail"}, undo_order="forward")
    assert outcome.compensated == ("step1", "step2")


def test_forward_undo_order_breaks_dependent_steps():
    def make_dir(s):
        s["dirs"].add("d")

    def rm_dir(s):
        if any(f.startswith("d/") for f in s["files"]):
            raise OSError("directory not empty")
        s["dirs"].discard("d")

    saga = Saga(
        [
            Step("mkdir", make_dir, rm_dir),
            Step("write", lambda s: s["files"].add("d/f"), lambda s: s["files"].discard("d/f")),
            Step("publish", lambda s: None),
        ]
    )
    reverse = saga.run({"dirs": set(), "files": set()}, inject={"publish": "fail"})
    assert reverse.status is Status.ROLLED_BACK
    forward = saga.run(
        {"dirs": set(), "files": set()}, inject={"publish": "fail"}, undo_order="forward"
    )
    assert forward.status is Status.ROLLBACK_INCOMPLETE
    assert forward.dead_letters[0].step == "mkdir"
    assert forward.state_after == {"dirs": {"d"}, "files": set()}


def test_pivot_last_is_safe_and_a_compensable_after_a_pivot_is_refused():
    gate = Step("verify", lambda s: None)
    reserve = Step("reserve", set_("room", "held"), set_("room", None))
    email = Step("email", lambda s: s.setdefault("sent", []).append("ok"), kind="pivot")
    charge = Step("charge", set_("paid", True), set_("paid", False))
    assert Saga([gate, reserve, charge, email]).check_order().ok
    with pytest.raises(UnsafeOrderError) as info:
        Saga([gate, reserve, email, charge])
    text = str(info.value)
    assert "'email' is irreversible but runs before 'charge'" in text
    assert "undoes reserve but 'email' stays done" in text
    assert "If it fails" in text and "Move 'email' after it, or make 'charge' retriable." in text


def test_an_unsafe_order_names_the_failing_step_whose_undo_is_logged_before_it():
    """Its own undo runs too when it fails (lesson 04's charge): the message says so."""
    reserve = Step("reserve", set_("room", "held"), set_("room", None))
    email = Step("email", lambda s: None, kind="pivot")
    charge = Step("charge", set_("paid", True), set_("paid", False), register="before")
    ship = Step("ship", set_("shipped", True), set_("shipped", False))
    one = str(Saga([reserve, email, charge], allow_unsafe_order=True).check_order())
    assert "If it fails, the rollback undoes reserve (and charge, its undo logged before it)" in one
    outcome = Saga([reserve, email, charge], allow_unsafe_order=True).run(
        {}, inject={"charge": "fail"}
    )
    assert outcome.compensated == ("charge", "reserve")  # what the message says
    two = str(Saga([reserve, email, charge, ship], allow_unsafe_order=True).check_order())
    assert "If one of them fails" in two and "Move 'email' after them" in two
    assert "(and the failing step if its undo is logged before it (charge))" in two


def test_check_order_also_says_each_problem_with_a_fix_that_only_reorders():
    reserve = Step("reserve", set_("room", "held"), set_("room", None))
    email = Step("email", lambda s: None, kind="pivot")
    points = Step("points", lambda s: None, kind="retriable")
    check = Saga([reserve, points, email], allow_unsafe_order=True).check_order()
    assert len(check.problems) == len(check.reorder) == 1
    # the fix names the later step, never the step already retriable (a reader's confusion)
    assert check.problems[0].endswith("Move 'points' after it, or make 'email' retriable.")
    assert check.reorder[0] == check.problems[0].replace(", or make 'email' retriable.", ".")
    assert Saga([reserve, email, points]).check_order().reorder == ()


def test_an_unsafe_order_when_allowed_reports_the_email_as_not_undone():
    reserve = Step("reserve", set_("room", "held"), set_("room", None))
    email = Step("email", lambda s: s.setdefault("sent", []).append("ok"), kind="pivot")
    charge = Step("charge", set_("paid", True), set_("paid", False))
    saga = Saga([reserve, email, charge], allow_unsafe_order=True)
    assert not saga.check_order().ok
    outcome = saga.run({}, inject={"charge": "fail"})
    assert outcome.status is Status.ROLLBACK_INCOMPLETE
    assert outcome.compensated == ("reserve",)
    assert outcome.leaked == ("email",)
    assert outcome.state_after == {"room": None, "sent": ["ok"]}


def test_failure_after_the_pivot_halts_forward_without_undoing(clock):
    calls = []

    def notify(state):
        calls.append(1)
        raise ConnectionError("webhook down")

    saga = Saga(
        [
            Step("reserve", set_("room", "held"), set_("room", None)),
            Step("email", set_("sent", True), kind=Kind.PIVOT),
            Step("notify", notify, kind="retriable", retry=RetryPolicy(max_attempts=3)),
        ]
    )
    outcome = saga.run({}, clock=clock)
    assert len(calls) == 3
    assert outcome.status is Status.HALTED
    assert outcome.pending == ("notify",)
    assert outcome.compensated == ()
    assert outcome.state_after == {"room": "held", "sent": True}


def test_undo_retries_are_counted_in_the_dead_letter(clock):
    outcome = xyz_saga().run(
        xyz_state(), inject={"step3": "fail", "step1": "undo_fails"}, policy="retry", clock=clock
    )
    assert outcome.status is Status.ROLLBACK_INCOMPLETE
    [dead] = outcome.dead_letters
    assert (dead.step, dead.attempts) == ("step1", 3)
    assert outcome.state_after == {"x": 1, "y": 0, "z": 0}
    assert clock.sleeps == [0.1, 0.2]
    assert "rollback: undo of step1" in outcome.error.__notes__[0]


def test_multiple_faults_on_one_step():
    outcome = xyz_saga().run(
        xyz_state(), inject={"step2": ("fail_after_effect", "undo_fails")}, register="before"
    )
    assert outcome.dead_letters[0].step == "step2"
    assert outcome.compensated == ("step1",)


@pytest.mark.parametrize(
    ("inject", "error", "words"),
    [
        ({"step9": "fail"}, UnknownStepError, "the steps are: step1, step2, step3"),
        ({"step1": "crash"}, UnknownFaultError, "undo_fails_once"),
        ({"step1": ("fail", "fail_after_effect")}, InvalidPipelineError, "at most one"),
    ],
)
def test_bad_injections_are_refused_before_anything_runs(inject, error, words):
    state = xyz_state()
    with pytest.raises(error, match=words):
        xyz_saga().run(state, inject=inject)
    assert state == xyz_state()


def test_bad_definitions():
    with pytest.raises(DuplicateStepError, match="repeated: a"):
        Saga([Step("a", lambda s: None), Step("a", lambda s: None)])
    with pytest.raises(TypeError, match="action of step 'a' must be callable"):
        Step("a", None)
    with pytest.raises(InvalidPipelineError, match="unknown kind 'pivto'"):
        Step("a", lambda s: None, kind="pivto")
    with pytest.raises(InvalidPipelineError, match="has no undo"):
        Step("a", lambda s: None, lambda s: None, kind="pivot")
    with pytest.raises(InvalidPipelineError, match="register must be"):
        xyz_saga().run(xyz_state(), register="later")
    with pytest.raises(InvalidPipelineError, match="undo_order"):
        xyz_saga().run(xyz_state(), undo_order="sideways")
    with pytest.raises(TypeError, match="state must be a mutable mapping"):
        xyz_saga().run([1, 2])
    with pytest.raises(InvalidPipelineError, match="at least one step"):
        Saga([])


def test_registered_compensation_with_json_arguments():
    registry = Registry()
    refunds = []

    @compensation("refund_charge", registry)
    def refund(charge_id):
        refunds.append(charge_id)

    saga = Saga(
        [
            Step("charge", lambda s: None, refund.bind(charge_id="ch_1"), register="before"),
            Step("ship", lambda s: None),
        ]
    )
    outcome = saga.run({}, inject={"ship": "fail"})
    assert refunds == ["ch_1"]
    assert outcome.compensated == ("charge",)
    with pytest.raises(TypeError, match="JSON-serialisable"):
        refund.bind(charge_id=object())
    assert (
        refund.bind(charge_id="ch_1").to_json()
        == '{"args": {"charge_id": "ch_1"}, "name": "refund_charge"}'
    )


def test_outcome_text_and_html():
    outcome = xyz_saga().run(xyz_state(), inject={"step2": "fail", "step1": "undo_fails"})
    assert str(outcome) == (
        "rollback_incomplete: step2 failed with InjectedFault('step2: injected failure before"
        " its effect')\n"
        "  completed     step1\n"
        "  undone        -\n"
        "  dead letters  step1: InjectedFault('undo of step1: injected failure') after 1 attempt\n"
        "  state before  {'x': 0, 'y': 0, 'z': 0}\n"
        "  state after   {'x': 1, 'y': 0, 'z': 0}"
    )
    html = outcome._repr_html_()
    assert "rollback_incomplete" in html and "dead letter" in html
    assert '<tr style="background:#F0E442"><td>x</td><td>0</td><td>1</td></tr>' in html
    assert "<td>step3</td><td>compensable</td><td>not run</td>" in html


def test_injected_fault_is_the_error_and_steps_after_never_run():
    ran = []
    saga = Saga([Step(n, lambda s, n=n: ran.append(n), lambda s: None) for n in "abcd"])
    outcome = saga.run(inject={"b": "fail"})
    assert ran == ["a"]
    assert isinstance(outcome.error, InjectedFault) and outcome.error.step == "b"
    assert outcome.state_before is None


def test_the_fault_space_lists_every_single_fault_and_each_one_runs():
    from rollback_lessons.faults import fault_space

    saga = Saga(
        [
            Step("a", lambda s: s.update(a=1), lambda s: s.update(a=0)),
            Step("check", lambda s: None),  # no undo: only its action can fail
        ]
    )
    space = fault_space((s.name, s.undo is not None) for s in saga.steps)
    assert space == [
        ("a", "fail"),
        ("a", "fail_after_effect"),
        ("a", "undo_fails"),
        ("a", "undo_fails_once"),
        ("check", "fail"),
        ("check", "fail_after_effect"),
    ]
    for step, fault in space:
        saga.run({"a": 0}, inject={step: fault})  # every point is a valid injection


def test_a_gate_is_its_own_kind_changes_nothing_and_is_never_compensable():
    from rollback_lessons.worlds.examples import booking_saga, booking_state

    saga = booking_saga()
    assert saga["verify_card"].kind == "gate"
    outcome = saga.run(booking_state(), inject={"charge_card": "fail"})
    assert outcome.kinds["verify_card"] == "gate"
    assert outcome.state_after == outcome.state_before  # rolled back: nothing left behind
    assert "verify_card" not in outcome.compensated and "verify_card" not in outcome.leaked
    with pytest.raises(InvalidPipelineError, match="is a gate: it changes nothing"):
        Step("check", lambda s: None, lambda s: None, kind="gate")
    failed_gate = saga.run(booking_state(), inject={"verify_card": "fail"})
    assert failed_gate.status is Status.ROLLED_BACK and failed_gate.completed == ()


def test_a_retriable_step_is_retried_forward_before_it_halts(clock):
    flaky = {"left": 2}

    def notify(state):
        if flaky["left"]:
            flaky["left"] -= 1
            raise ConnectionError("mail relay busy")
        state["notified"] = True

    saga = Saga(
        [
            Step("email", lambda s: s.update(sent=True), kind="pivot"),
            Step("notify", notify, kind="retriable"),
        ]
    )
    outcome = saga.run({}, clock=clock)
    assert outcome.status is Status.COMMITTED and outcome.state_after["notified"]
    assert [e.details["delay"] for e in outcome.events if e.kind == "step_retry"] == [0.5, 1.0]
    assert clock.now == 1.5
    halted = saga.run({}, inject={"notify": "fail"}, clock=clock)
    assert halted.status is Status.HALTED and halted.pending == ("notify",)
    assert sum(e.kind == "step_retry" for e in halted.events) == 2  # 3 attempts, then a person
