"""Faults at every write and every instant (issue 25), the way SQLite tests itself by
failing its n-th I/O operation: for every n over a saga's whole run, rollback and first
``recover``, the n-th journal write fails (disk full), or a KeyboardInterrupt lands at the
n-th event; then ``recover`` runs again, and the world's own record is checked: every
effect undone once or reported, no undo of an effect that never happened, nothing undone
across a pivot that happened, a committed saga never undone, nothing left unfinished.

The sagas are lesson 07's shapes (three steps with undos logged before, after or mixed;
charge -> email (pivot) -> ship), on a world kept in memory so that ``make test`` runs every
n in seconds; ``make soak`` (HARNESS_STEPS) runs larger ones.
"""

import asyncio
import contextlib
import os
import sqlite3
from functools import partial

import pytest
from conftest import a_part, dead_pid

from rollback_lessons import Kind, Parallel, Saga, Status, Step, VirtualClock
from rollback_lessons.durable.journal import Journal, JournalError
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry, compensation
from rollback_lessons.faults import ACTION_FAULTS, Fault, action_error

registry = Registry()
WORLDS: dict[str, "World"] = {}


class World:
    """What happened, by the world's own record: effects, and each undo's calls."""

    def __init__(self, name, fails=None):
        self.name = name
        self.fails = fails or {}  # step -> an action fault, raised by the action itself
        self.called: list[str] = []  # each action called (its effect or not)
        self.effects: list[str] = []
        self.undone: list[str] = []  # each undo that changed something
        self.calls: list[str] = []  # each undo call, harmless or not
        WORLDS[name] = self

    def act(self, step, state):
        """The step's action: called (so its undo may run), then its effect, unless it
        fails before it (an injected fault raised here, not by the engine's wrapper, which
        never calls the action: the world would not know it was called)."""
        self.called.append(step)
        fault = self.fails.get(step)
        if fault == Fault.FAIL:
            raise action_error(step, Fault.FAIL)
        self.effects.append(step)
        if fault == Fault.FAIL_AFTER_EFFECT:
            raise action_error(step, Fault.FAIL_AFTER_EFFECT)


@compensation("harness.undo", registry)
def undo(world, step, idempotency_key=None):
    w = WORLDS[world]
    w.calls.append(step)
    if step in w.effects and step not in w.undone:  # idempotent: once per effect
        w.undone.append(step)


def three_steps(world, register, n=3):
    def when(i):
        if register == "mixed":
            return "before" if i % 2 else "after"
        return register

    return Saga(
        [
            Step(f"step{i}", partial(world.act, f"step{i}"),
                 undo.bind(world=world.name, step=f"step{i}"), register=when(i))
            for i in range(1, n + 1)
        ]
    )  # fmt: skip


def pivot_saga(world, register="before"):
    return Saga(
        [
            Step("charge", partial(world.act, "charge"),
                 undo.bind(world=world.name, step="charge"), register=register),
            Step("email", partial(world.act, "email"), kind=Kind.PIVOT),
            Step("ship", partial(world.act, "ship"), kind=Kind.RETRIABLE),
        ]
    )  # fmt: skip


STEPS = int(os.environ.get("HARNESS_STEPS", "3"))
SCENARIOS = [
    *[
        (f"{register}-{fault}", partial(three_steps, register=register, n=STEPS), inject)
        for register in ("before", "after", "mixed")
        for fault, inject in (
            ("commits", {}),
            ("last-fails", {f"step{STEPS}": "fail"}),
            ("timeout", {f"step{STEPS}": "fail_after_effect"}),
            ("dead-letter", {f"step{STEPS}": "fail", "step1": "undo_fails"}),
        )
    ],
    ("pivot-commits", pivot_saga, {}),
    ("pivot-charge-fails", pivot_saga, {"charge": "fail_after_effect"}),
    ("pivot-email-fails", pivot_saga, {"email": "fail"}),
    ("pivot-email-timeout", pivot_saga, {"email": "fail_after_effect"}),
    ("pivot-ship-fails", pivot_saga, {"ship": "fail"}),
    ("pivot-after", partial(pivot_saga, register="after"), {"ship": "fail"}),
    # the policy halts at step2's failed undo (attack22's M3: the halt recorded, its end not)
    (
        "halt-undo-fails",
        partial(three_steps, register="before", n=STEPS),
        {f"step{STEPS}": "fail", "step2": "undo_fails"},
    ),
]
POLICY = {"halt-undo-fails": "halt"}  # (the others: the default policy, continue)


class DiskFull(sqlite3.OperationalError):
    pass


class Faults:
    """Counts the journal's writes and the run's events; fails the chosen one."""

    def __init__(self, write_at=0, event_at=0, times=1):
        self.write_at, self.event_at, self.times = write_at, event_at, times
        self.writes = self.events = 0

    def wrap(self, journal):
        real = journal.write

        def write(statements, **kw):
            if statements:
                self.writes += 1
                if self.write_at and self.write_at <= self.writes < self.write_at + self.times:
                    raise DiskFull("database or disk is full")
            return real(statements, **kw)

        journal.write = write  # type: ignore[method-assign]

    def on_event(self, event):
        self.events += 1
        if self.events == self.event_at:
            raise KeyboardInterrupt


_DEAD = []


def _orphan(journal):
    """The saga's process died: its owner pid is a dead one (made once, kept)."""
    if not _DEAD:
        _DEAD.append(dead_pid())
    journal.write([("UPDATE sagas SET owner_pid = ?, owner_started = NULL", (_DEAD[0],))])


def trial(tmp_path, name, make, inject, faults, driver="list"):
    """One run under ``faults`` (``driver``: ``_drive``'s), its first recover (under the same
    faults), a second one; returns what went wrong (the world checked against the journal's
    last word)."""
    fails = {s: f for s, f in inject.items() if f in ACTION_FAULTS}  # (the world's own)
    inject = {s: f for s, f in inject.items() if s not in fails}
    world = World(f"{name}-{faults.write_at}-{faults.event_at}-{len(WORLDS)}", fails)
    path = tmp_path / f"{world.name}.db"
    journal = Journal(path)
    faults.wrap(journal)
    saga = make(world)
    outcome, raised = None, None
    try:
        outcome = _drive(
            saga, driver, inject=inject, journal=journal, run_id="s", on_event=faults.on_event,
            clock=VirtualClock(), policy=POLICY.get(name, "continue"),
        )  # fmt: skip
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # the journal's one error, saying nothing ran (attack16's F5)
        raised = exc
    journal.close()
    with Journal(path) as journal:
        left = bool(journal.sagas() and journal.unfinished())
        if left:  # (the process is gone: the test's own write, never failed)
            _orphan(journal)
        faults.wrap(journal)
        if left:
            with contextlib.suppress(JournalError, KeyboardInterrupt):
                recover(journal, registry)
        faults.write_at = faults.event_at = 0
        if journal.unfinished():
            recover(journal, registry)
        problems = check(world, journal, saga, outcome)
    said = isinstance(raised, JournalError) and "nothing ran" in str(raised)
    if raised is not None and not said:
        problems.append(f"saga.run raised {raised!r}, not the journal's error saying nothing ran")
    elif raised is not None and world.effects:
        problems.append(f"saga.run said nothing ran, yet {world.effects} did")
    return problems


def check(world, journal, saga, outcome):
    problems = []
    effects, undone = set(world.effects), world.undone
    if len(undone) != len(set(undone)):
        problems.append(f"an effect undone twice: {undone}")
    if not set(undone) <= effects:
        problems.append(f"an undo of an effect that never happened: {undone}")
    if not set(world.calls) <= set(world.called):  # (one whose action was called may run:
        never = sorted(set(world.calls) - set(world.called))  # logged before it, idempotent)
        problems.append(f"an undo called for a step whose action was never called: {never}")
    if journal.unfinished():
        problems.append("left unfinished after recover")
    if not journal.sagas():  # the very first write failed: nothing ran, or it is reported
        return problems if outcome is None or not effects else [*problems, "no journal"]
    status = journal.saga("s").status
    states = {u.step: u.state for u in journal.undos("s")}
    halts = [
        e.step
        for e in journal.events("s")
        if e.kind == "undo_failed" and e.details["then"] == "halt"
    ]
    if halts and status != "halted":  # (recover tried the undo again, and went on)
        problems.append(f"the policy halted at the undo of {halts[0]}, yet {status}: {undone}")
    # an intent: the step started, its undo not logged: reported leaked (outcome, recover)
    reported = {s for s, state in states.items() if state in ("leaked", "dead", "intent")}
    if outcome is not None and outcome.status is Status.COMMITTED and undone:
        problems.append(f"a committed saga undone: {undone}")
    if outcome is not None and outcome.status is Status.COMMITTED and status != "committed":
        problems.append(f"committed in process, {status} in the journal")
    if status == "committed" and undone:
        problems.append(f"journal says committed, but undone: {undone}")
    kinds = {s.name: s.kind for s in saga.steps}
    pivots = [s for s in effects if kinds[s] == Kind.PIVOT]
    if pivots and undone:
        problems.append(f"undone across the pivot {pivots}: {undone}")
    compensable = {s for s in effects if kinds[s] == Kind.COMPENSABLE}
    if status in ("rolled_back", "rollback_incomplete") and compensable - set(undone) - reported:
        problems.append(f"{status}: not undone nor reported: {compensable - set(undone)}")
    if status == "rolled_back" and (reported or compensable - set(undone)):
        problems.append("rolled_back, but something was not undone")
    never = {s for s, state in states.items() if state in ("leaked", "intent")}
    never = (never | set(journal.leaked("s"))) - effects  # (a step with no undo: only there)
    if never:  # (attack19's F2: a refusal whose write failed, said leaked after recover)
        problems.append(f"reported leaked, yet it never had an effect: {sorted(never)}")
    false = {s for s, state in states.items() if state in ("leaked", "intent")} & set(undone)
    if false:  # (attack23's F6: "may have happened, no undo logged", yet its undo ran)
        problems.append(f"reported leaked, yet its logged undo ran: {sorted(false)}")
    return problems


def _count(tmp_path, make, inject, driver="list", name="count"):
    faults = Faults()
    assert trial(tmp_path, name, make, inject, faults, driver) == []
    return faults.writes, faults.events


@pytest.mark.parametrize(("name", "make", "inject"), SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_a_failed_write_at_every_n(tmp_path, name, make, inject):
    writes, _ = _count(tmp_path, make, inject, name=name)
    found = {}
    for n in range(1, writes + 2):
        problems = trial(tmp_path, name, make, inject, Faults(write_at=n))
        if problems:
            found[n] = problems
    assert found == {}


@pytest.mark.parametrize(("name", "make", "inject"), SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_a_keyboard_interrupt_at_every_event(tmp_path, name, make, inject):
    _, events = _count(tmp_path, make, inject, name=name)
    found = {}
    for n in range(1, events + 2):
        problems = trial(tmp_path, name, make, inject, Faults(event_at=n))
        if problems:
            found[n] = problems
    assert found == {}


LAST_BATCH_REFUSED = ("pivot-ship-fails", "pivot-after")  # (ship refused, never called)
TRANSIENT = [  # (3 in a row at such a run's last batch are all its tries: a disk full to the
    (scenario, times)  # end, documented, leaves ship's intent, reported leaked: the safe side)
    for scenario in SCENARIOS
    for times in (2, 3)
    if times < 3 or scenario[0] not in LAST_BATCH_REFUSED
]


@pytest.mark.parametrize(
    ("name", "make", "inject", "times"),
    [(*s, t) for s, t in a_part(TRANSIENT, 6, name="transient-disk-full")],
    ids=lambda v: v if isinstance(v, str | int) else "",
)
def test_a_disk_full_for_a_moment_at_every_n_leaves_a_true_journal(
    tmp_path, name, make, inject, times
):
    """attack23's F6: the n-th write fails ``times`` times in a row, then the disk is free.
    The rollback stopped writing after its first failed write, so ``recover`` reran every
    undo and reported a step whose registration was lost leaked, "it may have happened",
    exit 1, for a saga undone whole in process. Its writes are kept for the next now."""
    writes, _ = _count(tmp_path, make, inject, name=name)
    found = {}
    for n in range(1, writes + 2):
        problems = trial(tmp_path, name, make, inject, Faults(write_at=n, times=times))
        if problems:
            found[n] = problems
    assert found == {}


def test_the_harness_finds_a_false_state(tmp_path, monkeypatch):
    """The harness can fail: a journal that forgets the pivot makes recover compensate
    across it, and the harness says so."""
    from rollback_lessons import _guards
    from rollback_lessons.durable import records

    def dies(run, error):  # the Ctrl-C ends the process there: the saga is left to recover
        raise error

    monkeypatch.setattr(records.JournalRun, "pivot", lambda self, step, state: None)
    monkeypatch.setattr(_guards, "forward_broke", dies)
    problems = trial(tmp_path, "forgets", pivot_saga, {}, Faults(event_at=6))
    assert any("across the pivot" in p for p in problems), problems


def _failing(journal, when):
    real = journal.write

    def write(statements, **kw):
        if when(statements):
            raise DiskFull("database or disk is full")
        return real(statements, **kw)

    journal.write = write  # type: ignore[method-assign]


def _commits(statements):
    return any(sql.startswith("UPDATE sagas SET status = 'committed'") for sql, _ in statements)


def test_disk_full_at_the_commit_is_retried_then_the_saga_is_not_committed(tmp_path):
    """The defects: all steps done, ``saga.run`` raised ``database or disk is full`` and the
    saga stayed ``running``; then, returned ``committed`` with a note while the journal said
    ``running``, so a later ``recover`` undid a saga its process had called committed. A
    saga is committed only once its journal says so."""
    from rollback_lessons.errors import CommitNotRecorded

    world = World("commit-once")
    with Journal(tmp_path / "j.db") as journal:
        failed = []
        _failing(journal, lambda st: _commits(st) and not failed and not failed.append(1))
        outcome = three_steps(world, "after").run({}, journal=journal, run_id="s")
        assert outcome.status is Status.COMMITTED and world.undone == []
        assert any("the commit was written at attempt 2" in n for n in outcome.notes)
        assert journal.saga("s").status == "committed" and journal.unfinished() == []
        assert [e.kind for e in journal.events("s")][-1] == "committed"
    for name, register in (("commit-never", "after"), ("commit-never-before", "before")):
        world = World(name)
        with Journal(tmp_path / f"{name}.db") as journal:
            _failing(journal, _commits)
            outcome = three_steps(world, register).run({}, journal=journal, run_id="s")
            assert outcome.status is Status.ROLLED_BACK and isinstance(
                outcome.error, CommitNotRecorded
            )
            assert "could not record the commit (3 attempts" in str(outcome.error)
            assert str(outcome.error).endswith(
                "is not committed and is rolled back (recover "
                "undoes again what this process could not record)"
            )
            assert sorted(world.undone) == ["step1", "step2", "step3"]
            assert journal.saga("s").status == "rolled_back"
            assert "committed" not in [e.kind for e in journal.events("s")]
            assert [e.kind for e in journal.events("s")] == [e.kind for e in outcome.events]


def test_a_commit_not_recorded_past_the_pivot_says_it_is_halted_not_rolled_back(tmp_path):
    """attack44 F4: past its pivot the saga whose commit could not be written is halted for a
    person, nothing undone; its error said it "is rolled back"."""
    from rollback_lessons import Kind, Saga, Step
    from rollback_lessons.errors import CommitNotRecorded

    world = World("commit-pivot")
    steps = [three_steps(world, "after").steps[0], Step("p", lambda s: None, kind=Kind.PIVOT)]
    with Journal(tmp_path / "j.db") as journal:
        _failing(journal, _commits)
        outcome = Saga(steps).run({}, journal=journal, run_id="s")
    assert outcome.status is Status.HALTED and isinstance(outcome.error, CommitNotRecorded)
    assert "is halted for a person (its irreversible step happened" in str(outcome.error)
    assert world.undone == []


def test_a_commit_the_journal_cannot_record_is_never_undone_by_recover_later(tmp_path):
    """The attack: another connection holds the write lock past the journal's timeout
    while the last step finishes; the process returned ``committed``, and a later
    ``recover`` (a cron job) undid the saga. Now the process rolls it back itself, and the
    journal, once writable, agrees: recover finds nothing to do."""
    world = World("commit-locked")
    path = tmp_path / "j.db"
    holder = []

    def ship(state):
        world.act("ship", state)
        con = sqlite3.connect(path, isolation_level=None)
        con.execute("BEGIN IMMEDIATE")  # an operator's sqlite3 shell, a transaction open
        holder.append(con)

    saga = Saga(
        [
            Step("charge", partial(world.act, "charge"),
                 undo.bind(world=world.name, step="charge")),
            Step("ship", ship, undo.bind(world=world.name, step="ship"), register="before"),
        ]
    )  # fmt: skip
    with Journal(path, timeout=0.05) as journal:
        outcome = saga.run({}, journal=journal, run_id="s")
    holder[0].execute("ROLLBACK")  # (the shell's transaction held past the close's wait:
    holder[0].execute("UPDATE sagas SET writer = NULL")
    holder[0].execute("DELETE FROM meta WHERE key LIKE 'writer %'")  # the journal's mark
    holder[0].close()  # stayed; the shell closes last, and says the file is whole, as asked)
    assert outcome.status is Status.ROLLED_BACK and "could not record" in str(outcome.error)
    assert any("journal write failed" in n for n in outcome.notes)  # (the rollback's too)
    assert sorted(world.undone) == ["charge", "ship"]
    with Journal(path) as journal:
        assert journal.saga("s").status != "committed"
        _orphan(journal)
        recover(journal, registry)
        assert journal.saga("s").status == "rolled_back" and journal.unfinished() == []
    assert sorted(world.undone) == ["charge", "ship"]  # (again, by key: harmless)


def test_a_with_block_whose_commit_cannot_be_recorded_raises_and_rolls_back(tmp_path):
    from rollback_lessons import Rollback
    from rollback_lessons.errors import CommitNotRecorded

    world = World("commit-block")
    with Journal(tmp_path / "j.db") as journal:
        _failing(journal, _commits)
        rb = Rollback(journal=journal, run_id="s")
        with pytest.raises(CommitNotRecorded), rb:
            rb.do("a", partial(world.act, "a", {}), undo.bind(world=world.name, step="a"))
        assert rb.outcome.status is Status.ROLLED_BACK and world.undone == ["a"]
        assert journal.saga("s").status == "rolled_back"


def test_a_failed_write_after_the_pivot_never_compensates_across_it(tmp_path):
    """The defect: the email sent, the pivot's record failed, and the charge was refunded."""
    world = World("pivot-write")
    with Journal(tmp_path / "j.db") as journal:
        _failing(journal, lambda st: any("pivot_state" in sql and p[1] == "done" for sql, p in st))
        outcome = pivot_saga(world).run({}, journal=journal, run_id="s")
        assert world.effects == ["charge", "email"] and world.undone == []
        halted = [e.details["reason"] for e in outcome.events if e.kind == "halted"]
        assert outcome.status is Status.HALTED and "'email' happened" in halted[0]
        assert outcome.pending == ("charge",)


def _ends(statements):
    return any(sql.startswith("UPDATE sagas SET status = ?, error = ?") for sql, _ in statements)


def _drive(saga, driver, **kw):
    if driver == "arun":
        return asyncio.run(saga.arun({}, **kw))
    completion = list(saga.names) if driver == "completion" else None
    return saga.run({}, completion=completion, **kw)


@pytest.mark.parametrize("driver", ["list", "completion", "arun"])
def test_the_runs_last_batch_is_tried_again_so_a_step_never_called_is_never_leaked(
    tmp_path, driver
):
    """attack20's N3: ship (after the pivot) failed before its action was called; the run's
    last batch (ship's events and ``not_run``, the halt, the status) failed once and was
    not tried again, so recover reported ship leaked: "it may have happened", for a
    shipment never attempted. Tried as often as a commit now, on every driver. (A disk full
    from the run's end on: ship's refusal was written as it failed, before its observers
    heard of it, attack36 F7: not leaked either.)"""
    for name, fails in (("once", 1), ("always", 99)):
        world = World(f"last-batch-{driver}-{name}")
        with Journal(tmp_path / f"{world.name}.db") as journal:
            failed: list[int] = []

            def when(st, failed=failed, fails=fails):
                return _ends(st) and len(failed) < fails and not failed.append(1)

            _failing(journal, when)
            outcome = _drive(pivot_saga(world), driver, inject={"ship": "fail"}, journal=journal,
                             run_id="s", clock=VirtualClock())  # fmt: skip
            assert outcome.status is Status.HALTED and world.effects == ["charge", "email"]
            row = journal.saga("s")
            if name == "once":
                assert journal.leaked("s") == [] and len(failed) == 1
                assert row.status == "halted" and journal.unfinished() == []
                assert any("the run's end was written at attempt 2" in n for n in outcome.notes)
            else:
                assert len(failed) == 3 and row.status == "running"
                assert any("3 attempts); the journal still shows" in n for n in outcome.notes)
                _orphan(journal)
                recover(journal, registry)
                assert journal.leaked("s") == []  # (written as it failed: not run)
            assert world.undone == []


@pytest.mark.parametrize("driver", ["list", "completion", "arun"])
def test_a_ctrl_c_in_the_last_batchs_tries_still_writes_a_step_never_called_not_run(
    tmp_path, driver
):
    """attack21's E2 (its Ctrl-C half): ship failed before its action was called; the run's
    last batch failed (a full disk) and a Ctrl-C came at its next try: the batch is left to
    recover, as a Ctrl-C leaves a run, but ship's intent was left with it, so recover
    reported ship leaked, "it may have happened". It is written not run alone now, as it
    is after a Ctrl-C during the run. (A disk full to the end still leaves it: the safe
    side.)"""
    for tries in (1, 2, 3):
        world = World(f"last-batch-ki-{driver}-{tries}")
        with Journal(tmp_path / f"{world.name}.db") as journal:
            failed: list[int] = []
            real = journal.write

            def write(statements, failed=failed, tries=tries, real=real, **kw):
                if _ends(statements) and len(failed) < tries:
                    failed.append(1)
                    raise KeyboardInterrupt if len(failed) == tries else DiskFull("full")
                return real(statements, **kw)

            journal.write = write  # type: ignore[method-assign]
            with pytest.raises(KeyboardInterrupt):
                _drive(pivot_saga(world), driver, inject={"ship": "fail"}, journal=journal,
                       run_id="s", clock=VirtualClock())  # fmt: skip
            assert len(failed) == tries and journal.unfinished()
            _orphan(journal)
            recover(journal, registry)
            assert journal.leaked("s") == [] and journal.unfinished() == []
            assert world.effects == ["charge", "email"] and world.undone == []


def group_saga(world):
    """s0, then s1 and s2 at once (a timing launches both before either is called); each
    undo logged once its step returned, so each step is an intent while it may run."""

    def step(name):
        return Step(name, partial(world.act, name), undo.bind(world=world.name, step=name),
                    register="after")  # fmt: skip

    return Saga([step("s0"), Parallel(step("s1"), step("s2"))])


@pytest.mark.parametrize("driver", ["list", "completion", "arun"])
def test_two_failed_writes_in_a_row_never_name_a_step_never_called_leaked(tmp_path, driver):
    """attack21's E1: with ``completion=``, s1 and s2 launched at once; s2's start could not
    be written, so the run failed before s1's turn, and the rollback's first write failed
    too (two transient failures in a row). The run's end then writes only the steps never
    run, and s1, launched, was not one of them: recover reported it leaked, "it may have
    happened", though its action was never called. The machine is told now that it never
    ran (``GraphMachine.not_called``). Every pair of writes in a row, on every driver."""
    for inject in ({}, {"s2": "fail"}):
        writes, _ = _count(tmp_path, group_saga, inject, driver)
        found = {}
        for n in range(1, writes + 1):
            problems = trial(tmp_path, "group", group_saga, inject, Faults(n, times=2), driver)
            if problems:
                found[n] = problems
        assert found == {}, inject
    if driver == "completion":  # the outcome says so
        world = World("group-note")
        with Journal(tmp_path / "note.db") as journal:
            faults = Faults(5, times=2)  # s2's start, then the rollback's first write
            faults.wrap(journal)
            outcome = _drive(group_saga(world), driver, journal=journal, run_id="s")
        assert world.effects == ["s0"] and outcome.status is Status.ROLLED_BACK
        assert "s1 was not run: the run failed before its turn" in outcome.notes


def group_before_saga(world):
    """s0, then s1 and s2 at once, their undos logged before them: a timing launches both
    before either is called, so a fault as one starts leaves the other never called."""

    def step(name, register):
        return Step(name, partial(world.act, name), undo.bind(world=world.name, step=name),
                    register=register)  # fmt: skip

    return Saga([step("s0", "after"), Parallel(step("s1", "before"), step("s2", "before"))])


GROUP_BEFORE = [
    (driver, inject, mode)
    for driver in ("completion", "arun")
    for inject in ({}, {"s2": "fail"})
    for mode in ("write", "event")
]


@pytest.mark.parametrize(("driver", "inject", "mode"), a_part(GROUP_BEFORE, 2, name="group-before"))
def test_a_launched_step_never_called_has_its_logged_undo_withdrawn(tmp_path, driver, inject, mode):
    """attack23's F1 in a group: s1 and s2 launched at once, their undos logged before them;
    a write failed (or a Ctrl-C came) as s2 started, before s1's action was called: s1 was
    said not run, yet its undo was kept and run. Withdrawn now, on every n."""
    writes, events = _count(tmp_path, group_before_saga, inject, driver)
    found = {}
    for n in range(1, (writes if mode == "write" else events) + 2):
        faults = Faults(write_at=n) if mode == "write" else Faults(event_at=n)
        problems = trial(tmp_path, "group-before", group_before_saga, inject, faults, driver)
        if problems:
            found[n] = problems
    assert found == {}


def test_a_full_disk_at_the_first_write_is_one_line_nothing_ran(tmp_path, monkeypatch, capsys):
    """attack16's F5: the write that takes the run's id (the first, ``sync=False``) failed
    on a full disk, and saga.run raised a raw sqlite3.OperationalError (the harness above
    let any sqlite3 error through, so missed it); crashlab died with a traceback. Now it is
    the journal's error saying nothing ran, and crashlab says so in one line, exit 2."""
    from rollback_lessons.durable.journal import Journal as JournalClass
    from rollback_lessons.worlds import crashlab

    real = JournalClass.write

    def full_at_the_take(self, statements, **kw):
        takes = any(sql.startswith("INSERT INTO sagas") for sql, _ in statements)
        if takes and kw.get("sync") is False:
            raise DiskFull("database or disk is full")
        return real(self, statements, **kw)

    monkeypatch.setattr(JournalClass, "write", full_at_the_take)
    ran = []
    with Journal(tmp_path / "j.db") as journal:
        with pytest.raises(JournalError, match="nothing ran"):
            Saga([Step("a", lambda s: ran.append("a"))]).run({}, journal=journal, run_id="first")
        assert ran == [] and journal.sagas() == []
    code = crashlab.main(["--journal", str(tmp_path / "lab.db"), "--world", str(tmp_path / "w.db")])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.startswith("crashlab: saga ") and err.endswith(": nothing ran\n"), err
    assert err.count("\n") == 1


# -- a step whose undo is logged before it, its action never called (attack23's F1) --------

DRIVERS5 = ["block", "ablock", "list", "arun", "completion"]


def _room_charge(world, driver, **kw):
    """room, then charge (its undo logged before it) on ``driver``: the outcome and what
    was raised. The with-blocks' steps are the saga's."""
    room = (lambda *_: world.act("room", {}), undo.bind(world=world.name, step="room"))
    charge = (lambda *_: world.act("charge", {}), undo.bind(world=world.name, step="charge"))
    kw.setdefault("clock", VirtualClock())
    raised = None
    if driver in ("block", "ablock"):
        from rollback_lessons import AsyncRollback, Rollback

        if driver == "block":
            rb = Rollback(run_id="s", **kw)
            with contextlib.suppress(BaseException), rb:
                rb.do("room", *room)
                rb.do("charge", *charge, register="before")
        else:
            rb = AsyncRollback(run_id="s", **kw)

            async def block():
                async with rb:
                    await rb.do("room", *room)
                    await rb.do("charge", *charge, register="before")

            with contextlib.suppress(BaseException):
                asyncio.run(block())
        return rb.outcome, raised
    saga = Saga([Step("room", *room), Step("charge", *charge, register="before")])
    try:
        return _drive(saga, driver, run_id="s", **kw), raised
    except BaseException as exc:
        return getattr(exc, "outcome", None), exc


def _charge_undo_written_once(journal):
    """The write that carries charge's undo (logged before it) fails once: a disk full for
    a moment (the undo is kept for the next write)."""
    failed: list[int] = []

    def when(statements):
        charge = any("INSERT INTO undos" in sql and "charge" in p for sql, p in statements)
        return charge and not failed and not failed.append(1)

    _failing(journal, when)


def _ctrl_c_at(kind, step, then=None):
    seen = []

    def on_event(event):
        at = (event.kind.value, event.step)
        if at in ((kind, step), then) and at not in seen:  # (each once)
            seen.append(at)
            raise KeyboardInterrupt

    return on_event


@pytest.mark.parametrize("driver", DRIVERS5)
@pytest.mark.parametrize("fault", ["disk-full", "ctrl-c", "sys-exit"])
def test_a_step_whose_logged_undo_could_not_be_told_is_not_run_nor_undone(tmp_path, driver, fault):
    """attack23's F1: charge's undo, logged before its action, could not be written (a full
    disk) or a Ctrl-C (a SystemExit) came at its ``undo_registered`` event: the action was
    never called, yet the rollback ran its undo (a refund of a charge never made) and the
    outcome listed it compensated, on all five drivers. Its undo is withdrawn now, and the
    journal's row (written, or kept for the next write) says not run."""
    world = World(f"f1-{driver}-{fault}")
    with Journal(tmp_path / "j.db") as journal:
        on_event = None
        if fault == "disk-full":
            _charge_undo_written_once(journal)
        else:
            on_event = _ctrl_c_at("undo_registered", "charge")
            if fault == "sys-exit":

                def on_event(event, ki=on_event):  # (the same instant, a SystemExit)
                    try:
                        ki(event)
                    except KeyboardInterrupt:
                        raise SystemExit(0) from None

        outcome, _ = _room_charge(world, driver, journal=journal, on_event=on_event)
        assert world.called == ["room"] and world.calls == ["room"], world.calls
        if outcome is not None:  # (a with-block that raised has none)
            assert outcome.status is Status.ROLLED_BACK and outcome.compensated == ("room",)
            assert outcome.completed == ("room",) and "charge" not in outcome.pending
        states = {u.step: u.state for u in journal.undos("s")}
        assert states.get("charge", "not_run") == "not_run", states
        assert journal.saga("s").status == "rolled_back" and journal.unfinished() == []


@pytest.mark.parametrize("driver", DRIVERS5)
@pytest.mark.parametrize("fault", ["disk-full", "ctrl-c"])
def test_a_withdrawn_undo_is_not_run_by_recover_after_a_second_ctrl_c(tmp_path, driver, fault):
    """The same instant, then a second Ctrl-C cuts the rollback before room's undo: the
    saga is left to ``recover``, which undoes room and must not run charge's undo (its row
    written pending, by the write that failed, kept for the next, or before the Ctrl-C)."""
    world = World(f"f1-recover-{driver}-{fault}")
    with Journal(tmp_path / "j.db") as journal:
        if fault == "disk-full":
            _charge_undo_written_once(journal)
            on_event = _ctrl_c_at("undo", "room")
        else:
            on_event = _ctrl_c_at("undo_registered", "charge", then=("undo", "room"))
        _room_charge(world, driver, journal=journal, on_event=on_event)
        assert world.calls == [], world.calls
        assert journal.unfinished(), "the rollback was cut: left to recover"
        _orphan(journal)
        recover(journal, registry)
        assert world.calls == ["room"] and world.undone == ["room"]
        assert journal.saga("s").status == "rolled_back"
        assert {u.step: u.state for u in journal.undos("s")}.get("charge") in (None, "not_run")


def test_a_crash_after_a_before_undo_is_written_leaves_it_for_recover(tmp_path):
    """Only the process knew the call never began: when it writes nothing more after the
    undo's write (as if it died there: its action may have begun, for all ``recover``
    knows), recover runs that undo, by key (undos are idempotent), as the lessons teach."""
    world = World("f1-crash")
    with Journal(tmp_path / "j.db") as journal:
        real = journal.write

        def write(statements, **kw):
            real(statements, **kw)
            if any("INSERT INTO undos" in sql and "charge" in p for sql, p in statements):
                journal.write = lambda *a, **k: None  # the process is gone: nothing more
                raise SystemExit

        journal.write = write  # type: ignore[method-assign]
        _room_charge(world, "list", journal=journal)
    with Journal(tmp_path / "j.db") as journal:
        assert {u.step: u.state for u in journal.undos("s")}["charge"] == "pending"
        _orphan(journal)
        recover(journal, registry)
        assert journal.saga("s").status == "rolled_back"
    assert world.called == ["room"] and world.calls.count("charge") == 1
    assert world.undone == ["room"]  # (room's undo, in process then by recover: by key)
