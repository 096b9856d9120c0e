"""Parallel groups (issue 27): a saga that is a graph, run in order (``saga.run``) or at
once (``await saga.arun``), with the same rules; the three undo orders; faults per branch;
``check_order`` for pivots inside and after groups."""

import asyncio

import pytest

from rollback_lessons import InvalidPipelineError, Parallel, Saga, Status, Step, UnsafeOrderError
from rollback_lessons.machine import MachineError
from rollback_lessons.operations import StepSpec
from rollback_lessons.policies import CONTINUE
from rollback_lessons.schedule import GraphMachine, Ready


def booking(log, fail=None, kinds=None):
    """a, then room | car -> car2 | flight, then charge: each step sets its key, each undo
    pops it (and says so in ``log``)."""
    kinds = kinds or {}

    def step(name):
        def action(state):
            if name == fail:
                raise RuntimeError(f"{name} failed")
            state[name] = True

        def undo(state):
            log.append(name)
            state.pop(name, None)

        kind = kinds.get(name, "compensable")
        return Step(name, action, undo if kind == "compensable" else None, kind=kind)

    return Saga(
        [
            step("a"),
            Parallel(step("room"), [step("car"), step("car2")], step("flight")),
            step("charge"),
        ]
    )


def events(outcome):
    return [(e.kind, e.step) for e in outcome.events]


def test_a_group_is_a_graph_of_dependencies():
    saga = booking([])
    assert saga.names == ("a", "room", "car", "car2", "flight", "charge")
    assert saga.after == {
        "a": (),
        "room": ("a",),
        "car": ("a",),
        "car2": ("car",),
        "flight": ("a",),
        "charge": ("room", "car2", "flight"),
    }
    assert Saga([Step("x", lambda s: None)]).after is None  # a list stays a list


def test_bad_groups_are_refused_before_anything_runs():
    with pytest.raises(InvalidPipelineError, match="at least one branch"):
        Parallel()
    with pytest.raises(InvalidPipelineError, match="empty"):
        Parallel([])
    with pytest.raises(TypeError, match="Step objects or Parallel groups"):
        Parallel("room")
    x = Step("x", lambda s: None)
    with pytest.raises(InvalidPipelineError, match="unique"):
        Saga([Parallel(x, [x])])


def test_a_list_inside_a_branch_is_refused_by_name_not_by_repr():
    """learn80 F8: a branch is a list of steps, so "a branch holds Step objects, got [a list
    of Steps]" read as a contradiction, with each step's full repr; the nesting is said."""
    a, b, c = (Step(n, lambda s: None) for n in ("dinner", "flight", "ferry"))
    with pytest.raises(TypeError) as refused:
        Parallel([a, [b, c]])
    said = str(refused.value)
    assert said.startswith("a list inside a Parallel branch, [flight, ferry], in [dinner, [")
    assert "Step(" not in said and "function" not in said


def test_run_does_the_branches_in_order_and_commits():
    outcome = booking([]).run({})
    assert outcome.status is Status.COMMITTED
    assert outcome.completed == ("a", "room", "car", "car2", "flight", "charge")
    assert outcome.state_after == dict.fromkeys(outcome.completed, True)


def test_a_failing_branch_step_stops_the_group_and_everything_done_is_undone():
    log = []
    outcome = booking(log, fail="car2").run({})
    assert outcome.status is Status.ROLLED_BACK and outcome.failed_step == "car2"
    assert outcome.completed == ("a", "room", "car")  # flight never started
    assert log == ["car", "room", "a"] and outcome.state_after == {}


def test_faults_are_injected_per_branch_step():
    log = []
    outcome = booking(log).run({}, inject={"flight": "fail_after_effect", "car": "undo_fails"})
    assert outcome.status is Status.ROLLBACK_INCOMPLETE
    assert outcome.leaked == ("flight",)  # its effect happened; no undo was logged for it
    assert [d.step for d in outcome.dead_letters] == ["car"]
    assert log == ["car2", "room", "a"]


def gated(log, order, fail=None):
    """room, car and flight at once; each waits for its turn in ``order`` to finish."""
    turn = {"n": 0}

    def step(name):
        async def act(state):
            while order[turn["n"]] != name:
                await asyncio.sleep(0)
            turn["n"] += 1
            if name == fail:
                raise RuntimeError(f"{name} failed")
            state[name] = True

        return Step(name, lambda s: act(s), lambda s: (log.append(name), s.pop(name)))

    return Saga([Parallel(step("room"), step("car"), step("flight")), step("charge")])


def test_arun_starts_the_branches_at_once():
    outcome = asyncio.run(gated([], ["flight", "room", "car", "charge"]).arun({}))
    assert outcome.status is Status.COMMITTED
    kinds = events(outcome)
    assert kinds[:3] == [("step_start", s) for s in ("room", "car", "flight")]
    done = [step for kind, step in kinds if kind == "step_done"]
    assert done == ["flight", "room", "car", "charge"]


def test_arun_awaits_the_running_siblings_of_a_failed_step_then_undoes_them():
    log = []
    outcome = asyncio.run(gated(log, ["car", "room", "flight"], fail="room").arun({}))
    assert outcome.status is Status.ROLLED_BACK and outcome.failed_step == "room"
    assert outcome.completed == ("car", "flight")  # flight finished after room failed
    kinds = events(outcome)
    assert kinds.index(("step_failed", "room")) < kinds.index(("step_done", "flight"))
    assert kinds.index(("step_done", "flight")) < kinds.index(("pipeline_failed", "room"))
    assert log == ["flight", "car"] and outcome.state_after == {}


@pytest.mark.parametrize(
    ("order", "undone"),
    [
        ("reverse", ["flight", "room", "car"]),  # reverse completion
        ("reverse_start", ["flight", "car", "room"]),
        ("by_dependency", ["flight", "car", "room"]),  # reverse definition among independents
        ("forward", ["car", "room", "flight"]),
    ],
)
def test_the_undo_order_is_declared(order, undone):
    log = []
    saga = gated(log, ["car", "room", "flight", "charge"], fail="charge")
    outcome = asyncio.run(saga.arun({}, undo_order=order))
    assert log == undone and list(outcome.compensated) == undone
    assert ("rollback_start", None) in events(outcome)
    start = next(e for e in outcome.events if e.kind == "rollback_start")
    assert start.details["order"] == order


def test_by_dependency_undoes_every_dependant_first():
    log = []
    saga = booking(log, fail="charge")
    outcome = saga.run({}, undo_order="by_dependency")
    assert log == ["flight", "car2", "car", "room", "a"]
    assert outcome.status is Status.ROLLED_BACK
    with pytest.raises(InvalidPipelineError, match="undo_order must be one of"):
        saga.run({}, undo_order="sideways")


def test_a_list_runs_the_same_in_run_and_arun():
    log = []
    saga = Saga([Step(n, lambda s: None, lambda s, n=n: log.append(n)) for n in "abc"])
    for inject in ({}, {"c": "fail"}, {"b": "fail_after_effect", "a": "undo_fails"}):
        ran = saga.run({}, inject=inject)
        aran = asyncio.run(saga.arun({}, inject=inject))
        assert events(ran) == events(aran) and ran.status is aran.status


def test_a_pivot_inside_a_group_is_refused_and_explained():
    with pytest.raises(UnsafeOrderError) as info:
        booking([], kinds={"flight": "pivot"})
    message = str(info.value)
    assert "'flight' is irreversible but runs in a parallel group at the same time as" in message
    assert "'room', 'car', 'car2'" in message and "and before 'charge'" in message
    assert "Move 'flight' out of the group" in message


def test_a_pivot_after_the_group_is_safe_and_one_before_it_is_not():
    def saga(*items):
        return Saga(list(items), allow_unsafe_order=True)

    x, y = (Step(n, lambda s: None, lambda s: None) for n in "xy")
    email = Step("email", lambda s: None, kind="pivot")
    after = saga(Parallel(x, y), email)
    assert after.check_order().ok
    before = saga(email, Parallel(x, y)).check_order()
    assert not before.ok
    assert "'email' is irreversible but runs before 'x', 'y', which can still fail" in str(before)
    retried = Step("notify", lambda s: None, kind="retriable")
    logged = Step("log", lambda s: None, kind="retriable")
    assert saga(x, email, Parallel(retried, logged)).check_order().ok


def test_runners_refuse_a_graph_before_anything_runs():
    from rollback_lessons.runners.wire import plan_of

    with pytest.raises(InvalidPipelineError, match="parallel groups"):
        plan_of(booking([]), "r1")


def test_the_machine_refuses_what_cannot_happen():
    plan = [StepSpec("a", has_undo=True), StepSpec("b", has_undo=True)]
    m = GraphMachine(CONTINUE, plan=plan, after={"a": (), "b": ("a",)})
    assert m.start() == Ready(("a",))
    with pytest.raises(MachineError, match="may not start now"):
        m.launch("b")
    m.launch("a")
    with pytest.raises(MachineError, match="not started"):
        m.step_done("b")
    assert m.step_done("a") == Ready(("b",))


@pytest.mark.parametrize("order", ["reverse", "reverse_start", "by_dependency"])
def test_on_a_list_every_order_but_forward_is_newest_first(order):
    log = []
    saga = Saga([Step(n, lambda s: None, lambda s, n=n: log.append(n)) for n in "abc"])
    outcome = saga.run({}, inject={"c": "fail"}, undo_order=order)
    assert log == ["b", "a"] and outcome.status is Status.ROLLED_BACK


def test_a_completion_naming_a_step_twice_is_refused_before_any_step():
    """A sixth attacker's find: ``completion=["c", "b", "c"]`` was accepted and the last
    mention counted, so b finished before c, named first. Each step finishes once: a name
    twice is refused (saga.run's check, which every runner calls) before anything runs."""
    from rollback_lessons.runners.temporal.runner import plan_for
    from rollback_lessons.worlds import travel

    saga, world = travel.booking(), travel.state()
    for run in (
        lambda: saga.run(world, completion=["room", "car", "room"]),
        lambda: plan_for(saga, completion=["room", "car", "room"]),
    ):
        with pytest.raises(InvalidPipelineError, match="'room' more than once"):
            run()
    assert world == travel.state()


def test_completion_asks_where_arun_does_two_ends_in_one_turn_told_unasked():
    """attack39 F2, attack47 F4: ``completion=`` asks the cancel where ``arun`` does (as
    each step returns, not again after its end), so two branches ending in one turn (gps
    failing at once, flight done) are told with no look between them in both. A token
    turned True by flight's done observer: ``rolled_back`` in both, the same events."""

    async def done(state):
        return None

    def refuse(state):
        raise ConnectionRefusedError("gps refused")

    def saga(is_async):
        act = (lambda s: done(s)) if is_async else (lambda s: None)
        st = lambda n, a=act: Step(n, a, lambda state: None)  # noqa: E731
        return Saga(
            [st("a"), Parallel(st("room"), [st("car"), st("gps", refuse)], st("flight")), st("z")]
        )

    def probe():
        seen, heard = [], []

        def watch(event):
            seen.append((event.kind, event.step))
            if (event.kind, event.step) == ("step_done", "flight"):
                heard.append(True)

        return watch, (lambda: bool(heard)), seen

    watch, cancel, seen = probe()
    played = saga(False).run(
        {}, on_event=watch, cancel=cancel, completion=["room", "car", "flight", "gps"]
    )
    watch2, cancel2, seen2 = probe()
    ran = asyncio.run(saga(True).arun({}, on_event=watch2, cancel=cancel2))
    assert (played.status, ran.status) == (Status.ROLLED_BACK, Status.ROLLED_BACK)
    assert seen == seen2
