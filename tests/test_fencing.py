"""Fenced claims (issue 25): ``recover`` claims a saga and reads its undos in one
transaction, and every later write by a claimant checks its claim (a generation bumped by
every take-over). Two recovers and an owner, in any interleaving, run no undo the journal
already shows done, run nothing once taken over, and lose none.

The interleavings are drawn by hypothesis: at every call (an action or an undo) of any
actor, another recover may start (on another "host", with ``force``: it takes over
everything) or the caller may die there; a final recover finishes what is left."""

import contextvars
import os
import sqlite3
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollback_lessons import Saga, Step
from rollback_lessons.durable import exclusive, owner
from rollback_lessons.durable.journal import Journal, JournalTakenOver
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry, compensation


class Die(BaseException):
    """The actor's process dies here: it writes and calls nothing more."""


class Scene:
    def __init__(self, path, decisions):
        self.path, self.decisions = path, list(decisions)
        self.stack: list[str] = []
        self.dead: set[str] = set()
        self.gens: dict[str, int] = {"owner": 0}
        self.started: set[int] = set()
        self.done: set[int] = set()  # effects that happened
        self.applied: set[int] = set()  # undos that took effect
        self.problems: list[str] = []
        self.recovers = 0
        self.reports = []

    def identity(self, actor):
        owner._ME = (os.getpid(), f"host-{actor}", 1.0, owner.process_space())

    def journal(self, actor):
        journal = Journal(self.path)
        real_write, real_claim = journal.write, journal.claim

        def write(statements, **kw):
            if actor in self.dead:
                raise Die
            return real_write(statements, **kw)

        def claim(decide):
            claimed, skipped = real_claim(decide)
            for c in claimed:
                self.gens[actor] = c.gen
            return claimed, skipped

        journal.write, journal.claim = write, claim  # type: ignore[method-assign]
        return journal

    def hook(self):
        actor = self.stack[-1]
        if actor in self.dead:
            raise Die
        decision = self.decisions.pop(0) if self.decisions else 0
        if decision == 2:
            self.dead.add(actor)
            raise Die
        if decision == 1 and self.recovers < 2:
            self.recovers += 1
            self.run_recover(f"r{self.recovers}")

    def run_recover(self, actor):
        self.stack.append(actor)
        self.identity(actor)
        journal = self.journal(actor)
        try:  # (in a context of its own: another process's recover, never a nested one)
            run = contextvars.Context().run
            self.reports.append(run(recover, journal, self.registry, force=True))
        except (Die, JournalTakenOver):
            pass
        finally:
            journal.close()
            self.stack.pop()
            self.identity(self.stack[-1] if self.stack else "final")

    def state(self, n):
        con = sqlite3.connect(self.path)
        try:
            undo = con.execute("SELECT state FROM undos WHERE step = ?", (f"s{n}",)).fetchone()
            gen = con.execute("SELECT claim_gen FROM sagas").fetchone()
        finally:
            con.close()
        return (undo[0] if undo else None), gen[0]

    def undo_called(self, n):
        actor = self.stack[-1]
        if actor in self.dead:
            raise Die
        undo_state, gen = self.state(n)
        if undo_state == "done":
            self.problems.append(f"{actor} re-ran s{n}, already recorded done")
        if gen != self.gens.get(actor):
            self.problems.append(f"{actor} ran s{n} after being taken over")
        self.hook()
        self.applied.add(n)


def _scene(tmp_path, n_steps, register, fail_at, decisions):
    path = tmp_path / f"j{os.urandom(4).hex()}.db"
    scene = Scene(path, decisions)
    registry = scene.registry = Registry()

    @compensation("undo", registry)
    def undo(n, idempotency_key=None):
        scene.undo_called(n)

    def action(n):
        def act(state):
            scene.started.add(n)
            scene.hook()
            if n == fail_at:
                raise RuntimeError("boom")
            scene.done.add(n)

        return act

    saga = Saga(
        [Step(f"s{n}", action(n), undo.bind(n=n), register=register) for n in range(n_steps)]
    )
    scene.stack.append("owner")
    scene.identity("owner")
    journal = scene.journal("owner")
    try:
        saga.run({}, journal=journal, run_id="s")
    except Die:
        pass
    finally:
        journal.close()
        scene.stack.pop()
    scene.dead.add("owner")
    scene.decisions = []
    scene.run_recover("final")
    return scene


@pytest.fixture(autouse=True)
def _one_process_many_actors(monkeypatch):
    lock = threading.RLock()  # (the actors' recovers, one process: never wait for each other)
    monkeypatch.setattr(exclusive, "_one_at_a_time", lambda journal: lock)
    yield
    owner._ME = None


@settings(
    max_examples=int(os.environ.get("FENCING_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    n_steps=st.integers(1, 4),
    register=st.sampled_from(["before", "after"]),
    fail_at=st.integers(0, 4),
    decisions=st.lists(st.sampled_from([0, 0, 1, 2]), max_size=12),
)
def test_two_recovers_and_an_owner_in_any_interleaving(
    tmp_path, n_steps, register, fail_at, decisions
):
    scene = _scene(tmp_path, n_steps, register, fail_at, decisions)
    assert scene.problems == []
    with Journal(scene.path) as journal:
        assert journal.unfinished() == []
        saga = journal.saga("s")
        leaked = {int(u.step[1:]) for u in journal.undos("s") if u.state == "leaked"}
    if saga.status == "committed":
        assert scene.applied == set()  # a committed saga is never undone
    else:
        # an undo logged before its step may run for a step that started (harmlessly)
        assert scene.applied <= (scene.started if register == "before" else scene.done)
        assert scene.done - scene.applied <= leaked, (saga, scene.done, scene.applied)


def test_a_recover_taken_over_by_force_stops_with_one_line(tmp_path):
    """The defect: ``--force`` took over a live recover on another host; the old one wrote
    again (the undo ran twice) and then died of a UNIQUE constraint. Now it stops after
    the undo it was running: no other undo, no write, one clear error."""
    path = tmp_path / "j.db"
    scene = Scene(path, [])
    registry = scene.registry = Registry()
    calls = []

    @compensation("undo", registry)
    def undo(n, idempotency_key=None):
        calls.append((scene.stack[-1], n))
        if scene.stack[-1] == "old":
            scene.run_recover("new")  # --force on another host, while "old" runs s2

    scene.identity("owner")  # a saga whose owner (on another host) left three undos
    with Journal(path) as journal:
        jrun = journal.start("saga", "s")
        for n in range(3):
            jrun.register(f"s{n}", undo.bind(n=n))
    scene.stack.append("old")
    scene.identity("old")
    with Journal(path) as journal:
        with pytest.raises(JournalTakenOver, match=r"taken over by process .* on host-new"):
            recover(journal, registry, force=True)
    assert calls == [("old", 2), ("new", 2), ("new", 1), ("new", 0)]  # old ran no other
    with Journal(path) as journal:
        assert journal.saga("s").status == "rolled_back"
        assert {u.state for u in journal.undos("s")} == {"done"}


def test_a_claim_taken_over_while_another_saga_is_recovered_is_still_noticed(tmp_path):
    """Recover A holds sagas x and y; while it undoes x, recover B (whose registry knows
    only y's undo) takes y over and finishes it. A finishes x, then finds y is no longer
    its own: it stops there, and y's undo ran once."""
    path = tmp_path / "j.db"
    scene = Scene(path, [])
    full, only_y = Registry(), Registry()
    calls = []

    def undo_x(idempotency_key=None):
        calls.append((scene.stack[-1], "x"))
        scene.registry = only_y
        scene.run_recover("b")

    def undo_y(idempotency_key=None):
        calls.append((scene.stack[-1], "y"))

    x = compensation("fx", full)(undo_x)
    y = compensation("fy", full)(undo_y)
    compensation("fy", only_y)(undo_y)
    scene.identity("owner")
    with Journal(path) as journal:
        journal.start("saga", "x").register("x", x.bind())
        journal.start("saga", "y").register("y", y.bind())
    scene.stack.append("a")
    scene.identity("a")
    with Journal(path) as journal:
        with pytest.raises(JournalTakenOver, match="saga 'y' was taken over") as stopped:
            recover(journal, full, force=True)
    # (attack14 N-c: what it finished before it stopped is told too, the CLI prints it)
    assert [(r.saga_id, str(r.status)) for r in stopped.value.recovered] == [("x", "rolled_back")]
    assert calls == [("a", "x"), ("b", "y")]
    with Journal(path) as journal:
        assert {s.id: s.status for s in journal.sagas()} == {"x": "rolled_back", "y": "rolled_back"}


def test_the_cli_prints_what_a_recover_taken_over_finished_before_its_one_line(
    tmp_path, monkeypatch, capsys
):
    """attack14 N-c: a recover taken over midway said only "saga 'c1' was taken over ...",
    not that it had finished c0 (the journal had it right)."""
    from rollback_lessons import Status
    from rollback_lessons.cli import main
    from rollback_lessons.durable import recovery
    from rollback_lessons.durable.report import Recovery

    finished = Recovery(Status.ROLLED_BACK, ("a",), ("a",), ("a",), name="saga", run_id="c0")

    def taken_over(journal, registry=None, **kw):
        error = JournalTakenOver("saga 'c1' was taken over by process 1 on host-b (recover)")
        error.recovered = (finished,)
        raise error

    monkeypatch.setattr(recovery, "recover", taken_over)
    with Journal(tmp_path / "j.db"):
        pass
    monkeypatch.setattr("rollback_lessons.cli.load_registry", lambda name: None)
    assert main(["recover", str(tmp_path / "j.db"), "--registry", "any"]) == 2
    out, err = capsys.readouterr()
    assert out == "c0 (saga): rolled_back; undone a; dead letters -\n"
    assert err.startswith("rollback-lessons: saga 'c1' was taken over") and err.count("\n") == 1
