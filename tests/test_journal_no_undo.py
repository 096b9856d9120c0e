"""A step with no undo, journalled (attack14's F1 and F2): the journal keeps a record of every
step that starts, undo or not, so one that may have had its effect and has nothing to undo it
is reported leaked by ``recover`` and ``journal settle`` as by the run itself, never lost.

The property: over generated sagas (lists and parallel groups; steps with an undo logged
before or after, or with none; a step failing before or after its effect), the process
killed at every instant (each event, each journal write, inside each step's call after its
effect) or not at all, then ``recover`` run twice: each effect of a step with no undo whose
call did not return is reported leaked (the journal, recover's report, settle), and never
said ``rolled_back``; each effect with an undo is undone once or reported.
"""

import contextlib
import sqlite3
from functools import partial

import pytest
from conftest import as_killed, dead_pid, examples
from hypothesis import given, settings
from hypothesis import strategies as st

from rollback_lessons import InjectedTimeout, Saga, Status, Step, VirtualClock
from rollback_lessons.durable.journal import Journal, JournalError
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry, compensation
from rollback_lessons.durable.report import waiting_in
from rollback_lessons.durable.settle import NotWaiting
from rollback_lessons.graph import Parallel

registry = Registry()
WORLDS: dict[str, "World"] = {}


class Killed(KeyboardInterrupt):
    """The process died here (SIGKILL): nothing after it is written or done."""


class World:
    """What happened, by the world's own record (a process killed changes nothing more)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.effects: list[str] = []
        self.returned: set[str] = set()  # steps whose call returned without an error
        self.undone: list[str] = []
        self.dead = False
        self.kill_at = 0  # the instant (1, 2, ...) the process is killed at; 0: never
        self.instants = 0
        self.kill_in = ""  # or killed inside this step's call, after its effect
        WORLDS[name] = self

    def instant(self) -> None:
        """One more instant the process may be killed at."""
        if self.dead:
            raise Killed
        self.instants += 1
        if self.instants == self.kill_at:
            self.dead = True
            raise Killed

    def act(self, step: str, fault: str | None, state: object) -> None:
        if self.dead:
            raise Killed
        if fault == "before":
            raise ValueError(f"{step} refused")
        self.effects.append(step)
        if step == self.kill_in:
            self.dead = True
        self.instant()  # killed inside the call, its effect landed
        if fault == "after":
            raise InjectedTimeout(step, "fail_after_effect", f"{step} timed out after its effect")
        self.returned.add(step)

    def wrap(self, journal: Journal) -> None:
        real = journal.write

        def write(statements, **kw):  # type: ignore[no-untyped-def]
            if statements:
                self.instant()  # killed before this write lands
            return real(statements, **kw)

        journal.write = write  # type: ignore[method-assign]


@compensation("noundo.undo", registry)
def undo(world: str, step: str, idempotency_key: str | None = None) -> None:
    w = WORLDS[world]
    if w.dead:  # (a process killed runs nothing)
        raise Killed
    if step in w.effects and step not in w.undone:  # idempotent: once per effect
        w.undone.append(step)


# a step: (its undo: "before", "after" or None; its fault: None, "before" or "after")
STEP = st.tuples(
    st.sampled_from(["before", "after", None]), st.sampled_from([None, None, "before", "after"])
)


def build(world: World, shape: list[tuple[str | None, str | None]], parallel: bool) -> Saga:
    steps = []
    for i, (register, fault) in enumerate(shape):
        name = f"s{i}"
        action = partial(world.act, name, fault)
        if register is None:
            steps.append(Step(name, action, None))
        else:
            bound = undo.bind(world=world.name, step=name)
            steps.append(Step(name, action, bound, register=register))
    if parallel and len(steps) >= 3:  # the middle two in a parallel group
        return Saga([steps[0], Parallel(steps[1], steps[2]), *steps[3:]])
    return Saga(steps)


def trial(path, shape, parallel: bool, kill_at: int) -> tuple[World, list[str]]:
    world = World(f"w{len(WORLDS)}")
    world.kill_at = kill_at
    saga = build(world, shape, parallel)
    journal = Journal(path)
    world.wrap(journal)
    outcome = None
    with contextlib.suppress(Killed):
        outcome = saga.run(
            {}, journal=journal, run_id="s", on_event=lambda e: world.instant(),
            clock=VirtualClock(),
        )  # fmt: skip
    as_killed(journal)  # (a killed process closes nothing: its connection just goes)
    world.dead = False  # recover is another process, in the same world
    world.kill_at = 0
    with Journal(path) as journal:
        first = None
        if journal.unfinished():
            journal.write([("UPDATE sagas SET owner_pid = ?, owner_started = NULL", (dead_pid(),))])
            first = recover(journal, registry)
        report = recover(journal, registry)
        problems = check(world, journal, shape, outcome, report)
        if first is not None and first.recovered:  # its record names what stands (F3)
            (recovered,) = first.recovered
            has_undo = {f"s{i}" for i, (register, _) in enumerate(shape) if register is not None}
            stands = {s for s in world.returned if s not in has_undo} - set(recovered.leaked)
            rolled = recovered.status in (Status.ROLLED_BACK, Status.ROLLBACK_INCOMPLETE)
            if set(recovered.kept) != (stands if rolled else set()):
                problems.append(f"{recovered.status}: kept {recovered.kept}, stands {stands}")
            if not set(recovered.completed) >= stands:
                problems.append(f"completed {recovered.completed}, stands {stands}")
        return world, problems


def check(world, journal, shape, outcome, report) -> list[str]:
    problems = []
    if len(world.undone) != len(set(world.undone)):
        problems.append(f"an effect undone twice: {world.undone}")
    if journal.unfinished():
        problems.append("left unfinished after recover")
    if not journal.sagas():
        return problems
    saga = journal.saga("s")
    leaked = set(journal.leaked("s"))
    has_undo = {f"s{i}" for i, (register, _) in enumerate(shape) if register is not None}
    lost = {s for s in world.effects if s not in has_undo and s not in world.returned}
    if lost - leaked:
        problems.append(f"{saga.status}: not reported leaked: {sorted(lost - leaked)}")
    if outcome is not None and set(outcome.leaked) - leaked:
        problems.append(f"leaked in process, not in the journal: {outcome.leaked}")
    if leaked and saga.status in ("rolled_back", "committed", "cancelled"):
        problems.append(f"{saga.status} with a step leaked: {sorted(leaked)}")
    if leaked and "s" not in {w.saga_id for w in waiting_in(journal)}:
        problems.append("a saga with a step leaked is not named as waiting for a person")
    if leaked and report is not None and not report.waiting:
        problems.append("recover's report names no saga waiting")
    undoable = {s for s in world.effects if s in has_undo}
    if saga.status in ("rolled_back", "rollback_incomplete", "cancelled"):
        states = {u.step: u.state for u in journal.undos("s")}
        missing = {s for s in undoable - set(world.undone) if states.get(s) not in REPORTED}
        if missing:
            problems.append(f"{saga.status}: not undone nor reported: {sorted(missing)}")
    if saga.status == "committed" and world.undone:
        problems.append(f"committed, but undone: {world.undone}")
    return problems


REPORTED = ("dead", "leaked")  # (an undo logged after its step, which failed after its effect)
SHAPES = st.lists(STEP, min_size=1, max_size=4)


# 10 sagas in make test (each killed at every instant: 0.4 CPU s a saga), 100 in make soak
@settings(max_examples=examples(10))
@given(shape=SHAPES, parallel=st.booleans())
def test_a_step_with_no_undo_is_reported_leaked_whenever_the_process_is_killed(
    tmp_path_factory, shape, parallel
):
    tmp = tmp_path_factory.mktemp("noundo")
    world, problems = trial(tmp / "count.db", shape, parallel, kill_at=0)
    assert problems == []
    found = {}
    for n in range(1, world.instants + 1):
        _, problems = trial(tmp / f"k{n}.db", shape, parallel, kill_at=n)
        if problems:
            found[n] = problems
    assert found == {}


def _sagas(world: World, kind: str = "compensable") -> Saga:
    """s0, s1 with undos, then ``email`` with none (attack14's leaked_noundo2 and kill_noundo)."""
    steps = [
        Step(f"s{i}", partial(world.act, f"s{i}", None), undo.bind(world=world.name, step=f"s{i}"))
        for i in range(2)
    ]
    return Saga([*steps, Step("email", partial(world.act, "email", "after"), None, kind=kind)])


def test_a_step_with_no_undo_failing_after_its_effect_waits_for_a_person(tmp_path):
    """F1: in process ``rollback_incomplete leaked=('email',)``; the journal said so, yet
    recover named nothing (exit 0) and settle refused it as nothing left for a person."""
    world = World("f1")
    with Journal(tmp_path / "j.db") as journal:
        outcome = _sagas(world).run({}, journal=journal, run_id="r")
        assert outcome.status is Status.ROLLBACK_INCOMPLETE and outcome.leaked == ("email",)
        assert journal.leaked("r") == ["email"]
        report = recover(journal, registry)
        assert [(w.saga_id, w.leaked) for w in report.waiting] == [("r", ("email",))]
        settled = journal.settle("r", "the email was checked by hand")
        assert settled.status == "rollback_incomplete"
        assert recover(journal, registry).waiting == ()
    assert world.effects == ["s0", "s1", "email"] and sorted(world.undone) == ["s0", "s1"]


def test_a_step_with_no_undo_that_is_done_leaves_nothing_for_a_person(tmp_path):
    """A step with no undo that returned: its effect stands by design, as in process (not
    leaked): the saga ends ``rolled_back``, and settle refuses it."""
    world = World("done")
    saga = Saga(
        [
            Step("s0", partial(world.act, "s0", None), undo.bind(world=world.name, step="s0")),
            Step("note", partial(world.act, "note", None), None),
            Step("s2", partial(world.act, "s2", "before"), undo.bind(world=world.name, step="s2")),
        ]
    )
    with Journal(tmp_path / "j.db") as journal:
        outcome = saga.run({}, journal=journal, run_id="r")
        assert outcome.status is Status.ROLLED_BACK and outcome.leaked == ()
        assert journal.saga("r").status == "rolled_back" and journal.leaked("r") == []
        assert [(u.step, u.state) for u in journal.undos("r")] == [
            ("s0", "done"),
            ("s2", "not_run"),
        ]
        rows = journal._rows("SELECT step, compensation, state FROM undos WHERE step = 'note'")
        assert rows == [("note", "", "not_run")]  # its start, then: nothing to undo
        assert journal.saga("r").undos == 1  # (a step with no undo is not counted as one)
        assert recover(journal, registry).waiting == ()
        with pytest.raises(NotWaiting):
            journal.settle("r", "nothing to do")


@pytest.mark.parametrize("kind", ["compensable", "pivot"])
def test_a_kill_inside_a_step_with_no_undo_after_its_effect_is_leaked_not_lost(tmp_path, kind):
    """F2: SIGKILL in ``email`` (no undo) after its effect; recover said ``rolled_back``,
    exit 0, and the email was lost. Now it is leaked (a pivot: halted), named until settled."""
    world = World(f"f2-{kind}")
    world.kill_in = "email"
    journal = Journal(tmp_path / "j.db")
    world.wrap(journal)  # (killed: it writes nothing more)
    with contextlib.suppress(Killed):
        _sagas(world, kind).run({}, journal=journal, run_id="r", clock=VirtualClock())
    assert world.dead and world.effects == ["s0", "s1", "email"]
    world.dead, world.kill_in = False, ""
    as_killed(journal)
    with Journal(tmp_path / "j.db") as journal:
        journal.write([("UPDATE sagas SET owner_pid = ?, owner_started = NULL", (dead_pid(),))])
        first = recover(journal, registry)
        (recovered,) = first.recovered
        if kind == "pivot":
            assert recovered.status is Status.HALTED and world.undone == []
        else:
            assert recovered.status is Status.ROLLBACK_INCOMPLETE
            assert recovered.leaked == ("email",) and sorted(world.undone) == ["s0", "s1"]
            assert journal.saga("r").status == "rollback_incomplete"
        assert [w.saga_id for w in recover(journal, registry).waiting] == ["r"]
        journal.settle("r", "checked")
    assert "email" in world.effects


def test_a_kill_in_a_slow_gate_after_a_step_with_no_undo_that_returned_leaks_nothing(tmp_path):
    """A step with no undo that returned is written so at once (a gate after it writes
    nothing while it runs): killed in that gate, recover rolls back and reports no leak."""
    world = World("gate")

    def slow_gate(state):
        world.dead = True  # killed while it runs
        raise Killed

    saga = Saga(
        [
            Step("s0", partial(world.act, "s0", None), undo.bind(world=world.name, step="s0")),
            Step("note", partial(world.act, "note", None), None),
            Step("check", slow_gate, kind="gate"),
        ]
    )
    journal = Journal(tmp_path / "j.db")
    world.wrap(journal)
    with contextlib.suppress(Killed):
        saga.run({}, journal=journal, run_id="r", clock=VirtualClock())
    world.dead = False
    as_killed(journal)
    with Journal(tmp_path / "j.db") as journal:
        journal.write([("UPDATE sagas SET owner_pid = ?, owner_started = NULL", (dead_pid(),))])
        (recovered,) = recover(journal, registry).recovered
        assert (recovered.status, recovered.leaked) == (Status.ROLLED_BACK, ())
    assert world.undone == ["s0"]


def test_a_journal_of_schema_6_without_intents_for_steps_with_no_undo_is_read_as_before(tmp_path):
    """Older journals (no row for a step with no undo) are read as they were: a step with
    no undo they never recorded is not reported (nothing says it started)."""
    world = World("old")
    with Journal(tmp_path / "j.db") as journal:
        _sagas(world).run({}, journal=journal, run_id="r")
        journal.write([("DELETE FROM undos WHERE compensation = ''", ())])
        journal.write([("UPDATE sagas SET status = 'rolling_back'", ())])
        journal.write([("UPDATE sagas SET owner_pid = ?, owner_started = NULL", (dead_pid(),))])
        (recovered,) = recover(journal, registry).recovered
        assert recovered.leaked == () and recovered.status is Status.ROLLED_BACK


def test_a_step_with_no_undo_cut_by_sqlite_failing_its_intent_does_not_run(tmp_path):
    """Its intent cannot be written (disk full): the step does not run (nothing of it is
    unrecorded), the run fails there and rolls back what it did."""
    world = World("nointent")
    with Journal(tmp_path / "j.db") as journal:
        real = journal.write

        def write(statements, **kw):  # type: ignore[no-untyped-def]
            if any("'intent'" in sql and p[2] == "email" for sql, p in statements):
                raise sqlite3.OperationalError("database or disk is full")
            return real(statements, **kw)

        journal.write = write  # type: ignore[method-assign]
        saga = _sagas(world)
        with contextlib.suppress(sqlite3.Error, JournalError):
            saga.run({}, journal=journal, run_id="r")
    assert "email" not in world.effects


def _killed_in(tmp_path, world: World, saga: Saga, step: str):
    """Run ``saga`` journalled, the process killed inside ``step``'s call after its effect;
    then ``recover`` (its owner dead): the journal and the recovery."""
    world.kill_in = step
    journal = Journal(tmp_path / "j.db")
    world.wrap(journal)
    with contextlib.suppress(Killed):
        saga.run({}, journal=journal, run_id="r", clock=VirtualClock())
    assert world.dead and step in world.effects
    world.dead, world.kill_in = False, ""
    as_killed(journal)
    journal = Journal(tmp_path / "j.db")
    journal.write([("UPDATE sagas SET owner_pid = ?, owner_started = NULL", (dead_pid(),))])
    (recovered,) = recover(journal, registry).recovered
    return journal, recovered


def test_a_pivot_with_no_undo_killed_in_its_call_is_named_with_what_a_person_checks(tmp_path):
    """SIGKILL inside the pivot (no undo) after its effect: recover halts (never undoes
    across it) and names it as a step that may have had its effect (the intent row written
    before it runs: in process the run says ``leaked=('email',)`` too), and what a person
    checks, by the pivot rule. Before: ``halted``, ``leaked=()``, the journal naming nothing."""
    world = World("pivot-kill")
    journal, recovered = _killed_in(tmp_path, world, _sagas(world, "pivot"), "email")
    with journal:
        assert (recovered.status, recovered.leaked) == (Status.HALTED, ("email",))
        assert recovered.pending == ("s1", "s0") and world.undone == []
        assert "check whether 'email' happened" in recovered.reason
        assert "finish the steps after it forward by hand" in recovered.reason
        assert "run its pending undos by hand (s1, s0)" in recovered.reason
        assert recovered.reason in str(recovered)  # (the CLI's line)
        assert journal.leaked("r") == ["email"]
        (waiting,) = recover(journal, registry).waiting
        assert (waiting.saga_id, waiting.leaked) == ("r", ("email",))


def test_a_pivot_with_no_undo_failing_after_its_effect_is_leaked_in_the_journal_too(tmp_path):
    """In process, a pivot that times out after its effect halts with ``leaked=('email',)``;
    the journal said leaked nothing (no row for a pivot's start but its state)."""
    world = World("pivot-timeout")
    with Journal(tmp_path / "j.db") as journal:
        outcome = _sagas(world, "pivot").run({}, journal=journal, run_id="r")
        assert (outcome.status, outcome.leaked) == (Status.HALTED, ("email",))
        assert journal.saga("r").status == "halted" and journal.leaked("r") == ["email"]


def test_a_retriable_step_with_no_undo_killed_after_the_pivot_is_named(tmp_path):
    """Killed inside a retriable step (no undo) after the pivot returned: recover halts at
    the pivot (done) and names that step as one that may have had its effect, to finish
    forward by hand (never undone)."""
    world = World("after-pivot")
    saga = Saga(
        [
            Step("s0", partial(world.act, "s0", None), undo.bind(world=world.name, step="s0")),
            Step("email", partial(world.act, "email", None), None, kind="pivot"),
            Step("ship", partial(world.act, "ship", None), None, kind="retriable"),
        ]
    )
    journal, recovered = _killed_in(tmp_path, world, saga, "ship")
    with journal:
        assert (recovered.status, recovered.leaked) == (Status.HALTED, ("ship",))
        assert "ship started too and may have had its effect" in recovered.reason
        assert "finish the steps after it forward by hand" in recovered.reason
        assert "leave its undos pending (s0)" in recovered.reason
        assert journal.leaked("r") == ["ship"] and world.undone == []


def test_journal_show_counts_a_leaked_step_with_no_undo(tmp_path, capsys):
    """``journal show`` counted undos only: a step with no undo that leaked (the email,
    failed after its effect) was in no column, the saga's line reading as if nothing stood.
    Now a ``leaked`` column counts it (and a leaked step whose undo was to be logged after it)."""
    from rollback_lessons.cli import main

    world = World("show")
    with Journal(tmp_path / "j.db") as journal:
        _sagas(world).run({}, journal=journal, run_id="r")
        saga = journal.saga("r")
        assert (saga.undos, saga.undone, saga.dead, saga.leaked) == (2, 2, 0, 1)
    assert main(["journal", "show", str(tmp_path / "j.db")]) == 0
    header, line = capsys.readouterr().out.splitlines()[:2]
    assert header.split()[-2:] == ["letters", "leaked"]
    assert line.split()[-4:] == ["2", "2", "0", "1"]


@pytest.mark.parametrize(
    ("how", "leaked", "state", "status"),
    [
        ("raises", (), "not_run", "rolled_back"),  # taken at its word: nothing done
        ("after_effect", ("email",), "leaked", "rollback_incomplete"),  # its error says so
        ("cut", ("email",), "leaked", "rollback_incomplete"),  # a Ctrl-C in its call
    ],
)
def test_the_readme_on_a_step_with_no_undo_that_fails(tmp_path, how, leaked, state, status):
    """The README (Survive a crash, Records): a step with no undo "cut short in its call ...
    or whose error says it failed after its effect ... is leaked in the journal as in
    process ... nor one that raised any other error: ... recorded `not_run`, nothing
    leaked". The email here always has its effect before it fails: only the error tells."""
    world = World(f"readme-{how}")

    def email(state):
        world.effects.append("email")
        if how == "raises":
            raise ConnectionError("the mail server hung up after sending")
        if how == "after_effect":
            raise InjectedTimeout("email", "fail_after_effect", "email timed out after sending")
        raise KeyboardInterrupt

    steps = [Step("s0", partial(world.act, "s0", None), undo.bind(world=world.name, step="s0"))]
    saga = Saga([*steps, Step("email", email, None)])
    with Journal(tmp_path / "j.db") as journal:
        outcome = None
        with contextlib.suppress(KeyboardInterrupt):
            outcome = saga.run({}, journal=journal, run_id="r")
        if outcome is not None:
            assert (outcome.status, outcome.leaked) == (status, leaked)
        rows = journal._rows("SELECT step, state FROM undos WHERE compensation = ''")
        assert rows == [("email", state)]
        assert (journal.saga("r").status, tuple(journal.leaked("r"))) == (status, leaked)
        assert bool(recover(journal, registry).waiting) == bool(leaked)
    assert world.undone == ["s0"]


@pytest.mark.parametrize("is_async", [False, True], ids=["Rollback", "AsyncRollback"])
@pytest.mark.parametrize("register", ["after", "before", None], ids=["after", "before", "none"])
def test_a_caught_failure_after_its_effect_is_leaked_in_the_journal_of_a_committed_block(
    tmp_path, register, is_async
):
    """attack36 F4: a with-block caught a step's timeout after its effect and committed; its
    outcome said ``committed, leaked ['charge']``, the journal said committed with nothing
    leaked: ``journal show``, ``recover`` and ``settle`` named nothing for a person. Now the
    journal keeps what the outcome says, written with the commit."""
    import asyncio

    from rollback_lessons import AsyncRollback, Rollback

    world = World(f"caught-{register}-{is_async}")
    bound = undo.bind(world=world.name, step="charge") if register else None
    options = {"register": register} if register else {}
    journal = Journal(tmp_path / "j.db")
    with_undo = undo.bind(world=world.name, step="row")

    def block() -> object:
        with Rollback(journal=journal, run_id="r", inject={"charge": "fail_after_effect"}) as rb:
            rb.do("row", partial(world.act, "row", None, {}), with_undo)
            with contextlib.suppress(InjectedTimeout):
                rb.do("charge", partial(world.act, "charge", None, {}), bound, **options)
        return rb.outcome

    async def ablock() -> object:
        async with AsyncRollback(journal=journal, run_id="r",
                                 inject={"charge": "fail_after_effect"}) as rb:  # fmt: skip
            await rb.do("row", partial(world.act, "row", None, {}), with_undo)
            with contextlib.suppress(InjectedTimeout):
                await rb.do("charge", partial(world.act, "charge", None, {}), bound, **options)
        return rb.outcome

    outcome = asyncio.run(ablock()) if is_async else block()
    assert (outcome.status, outcome.leaked) == (Status.COMMITTED, ("charge",))  # type: ignore[attr-defined]
    assert journal.saga("r").status == "committed" and journal.leaked("r") == ["charge"]
    report = recover(journal, registry)
    assert [(w.saga_id, w.leaked) for w in report.waiting] == [("r", ("charge",))]
    assert journal.settle("r", "the charge was checked by hand").status == "committed"
    assert recover(journal, registry).waiting == ()
    assert world.undone == []  # (committed: nothing undone, the charge left for a person)
    journal.close()
