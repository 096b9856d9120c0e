"""The journal: durable records, recovery by registered name only, and refusals of bad input."""

import hashlib
import os
import sqlite3
import sys
import threading
from dataclasses import dataclass

import pytest
from conftest import examples, orphan
from hypothesis import given, settings
from hypothesis import strategies as st
from test_properties import Spec, check, expected, inject_of, policies, policy_of, specs

from rollback_lessons import Rollback, Saga, Status, Step, VirtualClock
from rollback_lessons.durable.journal import SCHEMA_VERSION, Journal, JournalError
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry, compensation, json_depth_limit
from rollback_lessons.worlds.crashlab import make_saga, world_report
from rollback_lessons.worlds.crashlab import registry as world_registry


@pytest.fixture
def paths(tmp_path):
    return tmp_path / "journal.db", str(tmp_path / "world.db")


def dump(path):
    con = sqlite3.connect(path)
    try:
        return [
            con.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
            for t in ("sagas", "events", "undos")
        ]
    finally:
        con.close()


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_run_is_written_through_and_matches_its_outcome(paths):
    jpath, world = paths
    with Journal(jpath) as journal:
        outcome = make_saga(world, "s1").run(
            {}, inject={"step3": "fail"}, journal=journal, run_id="s1"
        )
        assert outcome.run_id == "s1" and outcome.status is Status.ROLLED_BACK
        assert journal.events("s1") == list(outcome.events)
        [saga] = journal.sagas()
        assert (saga.status, saga.undos, saga.undone, saga.dead) == ("rolled_back", 3, 3, 0)
        assert [u.state for u in journal.undos("s1")] == ["done", "done", "done"]
        assert journal.undos("s1")[0].args == {"world": world, "saga": "s1", "step": "step1"}
        assert journal.unfinished() == []
        assert "s1    crashlab  rolled_back  3      3       0" in journal.table()


def test_rollback_with_a_journal_and_dead_letters(paths):
    jpath, world = paths
    from rollback_lessons.worlds.crashlab import apply_effect, undo_effect

    with Journal(jpath) as journal:
        with pytest.raises(ValueError):
            with Rollback(journal=journal, run_id="r1", inject={"a": "undo_fails"}) as rb:
                rb.do(
                    "a",
                    lambda: apply_effect(world, "r1", "a"),
                    undo_effect.bind(world=world, saga="r1", step="a"),
                )
                raise ValueError("boom")
        assert rb.outcome.status is Status.ROLLBACK_INCOMPLETE
        assert journal.saga("r1").status == "rollback_incomplete"
        [undo] = journal.undos("r1")
        assert (undo.state, undo.attempts) == ("dead", 1)
        assert "injected failure" in undo.error
        assert recover(journal, world_registry).recovered == ()  # a dead letter is for a person


def test_closures_are_refused_before_anything_runs(paths):
    jpath, _ = paths
    ran = []
    saga = Saga([Step("a", lambda s: ran.append("a"), lambda s: None)])
    with Journal(jpath) as journal:
        with pytest.raises(TypeError, match="must be a registered compensation"):
            saga.run({}, journal=journal)
        with Rollback(journal=journal) as rb:
            with pytest.raises(TypeError, match="must be a registered compensation"):
                rb.do("b", lambda: ran.append("b"), lambda: None)
    assert ran == []


def test_recovery_never_runs_a_name_the_registry_does_not_know(paths):
    jpath, _ = paths
    mine, empty = Registry(), Registry()
    called = []

    @compensation("secret.undo", mine)
    def undo(tag):
        called.append(tag)

    with Journal(jpath) as journal:
        run = journal.start("abandoned", "x1")
        run.register("a", undo.bind(tag="a"))  # then the process "dies"
        orphan(jpath, "x1")
        report = recover(journal, empty)
        assert called == []
        assert report.recovered == ()
        [skipped] = report.skipped
        assert "no compensation named 'secret.undo'" in skipped.reason
        # left unfinished, so the right registry can still finish it
        assert journal.undos("x1")[0].state == "pending"
        assert journal.saga("x1").status == "running"
        [done] = recover(journal, mine)
        assert (done.status, called) == ("rolled_back", ["a"])


def test_recovery_leaves_a_saga_whose_compensation_cannot_take_its_arguments_unfinished(paths):
    """attack84 F5: a deploy renamed the compensation's parameter; recover must treat that
    registry as the wrong one (unknown names' path), not spend the undos as dead letters."""
    jpath, _ = paths
    before, deployed = Registry(), Registry()
    called = []

    @compensation("unbook", before)
    def unbook(item, idempotency_key=None):
        called.append((item, idempotency_key))

    @compensation("unbook", deployed)
    def unbook_v2(booking, idempotency_key=None):
        called.append(("v2", booking))

    with Journal(jpath) as journal:
        run = journal.start("booked", "x5")
        run.register("a", unbook.bind(item="a"))  # then the process "dies"
        orphan(jpath, "x5")
        report = recover(journal, deployed)
        assert called == [] and report.recovered == ()
        [skipped] = report.skipped
        assert "compensation 'unbook' cannot be called with the arguments the journal kept" in (
            skipped.reason
        )
        assert "'booking'" in skipped.reason and "\n" not in skipped.reason
        assert journal.undos("x5")[0].state == "pending"
        assert journal.saga("x5").status == "running"
        [done] = recover(journal, before)
        assert (done.status, called) == ("rolled_back", [("a", "x5:a")])


@dataclass
class Unbooker:
    """A configured client as a compensation: a dataclass instance, so unhashable."""

    calls: list

    def __call__(self, item, idempotency_key=None):
        self.calls.append((item, idempotency_key))


def test_an_unhashable_compensation_binds_runs_and_is_recovered(paths):
    """attack84 F8: takes_key's cache raised ``unhashable type`` in bind, and recover made
    every pending undo a dead letter though the compensation works."""
    jpath, _ = paths
    calls: list = []
    registry = Registry()
    unbook = registry.add("unbook", Unbooker(calls))
    with pytest.raises(TypeError, match="cannot be called with"):
        unbook.bind(booking="a")  # (its parameters are still checked)

    def fail(state):
        raise RuntimeError("b failed")

    saga = Saga([Step("a", lambda s: None, unbook.bind(item="a")), Step("b", fail)])
    with Journal(jpath) as journal:
        assert saga.run({}, journal=journal, run_id="r1").status is Status.ROLLED_BACK
        assert calls == [("a", "r1:a")]
        run = journal.start("booked", "x8")
        run.register("a", unbook.bind(item="b"))
        orphan(jpath, "x8")
        [done] = recover(journal, registry)
        assert (done.status, calls[1:]) == ("rolled_back", [("b", "x8:a")])


def test_bind_refuses_arguments_nested_past_the_readers_json_depth(paths, request):
    """attack84 F6: bind took what the journal's reader (SQLite's json_valid) refuses, and
    the whole file was then called damaged. The deepest the reader takes still works."""
    jpath, _ = paths
    limit = json_depth_limit()
    old = sys.getrecursionlimit()
    request.addfinalizer(lambda: sys.setrecursionlimit(old))
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 4 * limit + 1000))  # (as a program
    # walking trees does: Python's json then goes as deep as asked)
    registry = Registry()
    calls = []
    unbook = registry.add("unbook", lambda item: calls.append(item))

    def nested(levels):  # (a list ``levels`` deep)
        value: list = []
        for _ in range(levels - 1):
            value = [value]
        return value

    with pytest.raises(TypeError, match=rf"JSON depth limit \({limit} levels\)"):
        unbook.bind(item=nested(limit))  # (one more inside the arguments' object)
    deepest = unbook.bind(item=nested(limit - 1))
    with Journal(jpath) as journal:
        run = journal.start("deep", "x6")
        run.register("a", deepest)
        orphan(jpath, "x6")
        [done] = recover(journal, registry)
        assert done.status == "rolled_back" and calls == [nested(limit - 1)]


@pytest.mark.parametrize("seconds", [1e308 * 1.5, sys.float_info.max, 10**20])
def test_every_undo_timeout_a_step_takes_is_one_the_journal_reads(paths, seconds):
    """attack84 F7: Step took undo_timeout=1.7e308 (finite) and the journal wrote it, then
    its own reader called the file damaged (> 1e308); an infinite one is still refused."""
    jpath, _ = paths
    calls = []
    registry = Registry()
    unbook = registry.add("unbook", lambda item: calls.append(item))
    Step("a", lambda s: None, unbook.bind(item="a"), undo_timeout=seconds)  # (taken)
    with Journal(jpath) as journal:
        run = journal.start("slow", "x7")
        run.register("a", unbook.bind(item="a"), timeout=seconds)
        orphan(jpath, "x7")
        [done] = recover(journal, registry)
        assert done.status == "rolled_back" and calls == ["a"]
        run = journal.start("forged", "x9")
        run.register("a", unbook.bind(item="b"), timeout=seconds)
    con = sqlite3.connect(jpath)
    con.execute("UPDATE undos SET timeout = 9e999 WHERE saga_id = 'x9'")  # (infinity)
    con.commit()
    con.close()
    orphan(jpath, "x9")
    with Journal(jpath) as journal, pytest.raises(JournalError, match="an undo's timeout is inf"):
        recover(journal, registry)


def test_recover_finishes_a_mid_rollback_saga_skipping_done_undos_and_twice_is_a_no_op(paths):
    jpath, _world = paths
    calls = []

    registry = Registry()

    @compensation("note.undo", registry)
    def note(step, idempotency_key=None):
        calls.append((step, idempotency_key))

    with Journal(jpath) as journal:
        run = journal.start("half", "h1")
        for step in ("a", "b", "c"):
            run.register(step, note.bind(step=step))
        run.status("rolling_back")
        run.undo_done(3, 1)  # c was undone before the crash
        orphan(jpath, "h1")
        [report] = recover(journal, registry)
        assert report.undone == ("b", "a")
        assert calls == [("b", "h1:b"), ("a", "h1:a")]  # the idempotency key reaches the undo
        assert journal.saga("h1").status == "rolled_back"
        kinds = [e.kind for e in journal.events("h1")]
        assert kinds == [
            "rollback_start",
            "undo",
            "undo_done",
            "undo",
            "undo_done",
            "rollback_done",
        ]
        before = dump(jpath)
        assert recover(journal, registry, force=True).recovered == ()
        assert calls == [("b", "h1:b"), ("a", "h1:a")]
        assert dump(jpath) == before


def test_a_saga_whose_process_is_alive_is_left_alone(paths):
    jpath, _ = paths
    registry = Registry()
    undo = compensation("noop", registry)(lambda: None)
    with Journal(jpath) as journal:
        journal.start("mine", "m1").register("a", undo.bind())
        for force in (False, True):  # this very process owns it: even --force leaves it
            report = recover(journal, registry, force=force)
            assert report.recovered == ()
            [skipped] = report.skipped
            assert f"its process {os.getpid()} is still running" in skipped.reason
        assert journal.saga("m1").status == "running"
        orphan(jpath, "m1")
        assert len(recover(journal, registry)) == 1


@pytest.mark.parametrize("kind", ["not sqlite", "foreign sqlite", "newer schema", "corrupt"])
def test_files_that_are_not_our_journal_are_refused_and_left_untouched(tmp_path, kind):
    path = tmp_path / "file.db"
    if kind == "not sqlite":
        path.write_bytes(b"just some text, not a database\n" * 10)
    elif kind == "foreign sqlite":
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE photos (id INTEGER)")
        con.commit()
        con.close()
    else:
        Journal(path).close()
        if kind == "newer schema":
            con = sqlite3.connect(path)
            con.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),)
            )
            con.commit()
            con.close()
        else:
            data = bytearray(path.read_bytes())
            data[:16] = b"garbage garbage!"
            path.write_bytes(bytes(data))
    before = digest(path)
    words = {
        "not sqlite": "not a readable journal",
        "foreign sqlite": "not a rollback-lessons journal",
        "newer schema": "Upgrade rollback-lessons",
        "corrupt": "not a readable journal",
    }[kind]
    with pytest.raises(JournalError, match=words):
        Journal(path)
    assert digest(path) == before
    assert not (tmp_path / "file.db-wal").exists() or kind in ("newer schema", "corrupt")


def test_threads_share_one_journal_without_losing_or_duplicating_records(paths):
    jpath, world = paths
    with Journal(jpath) as journal:

        def worker(t):
            for n in range(15):
                saga_id = f"t{t}-{n}"
                inject = {"step3": "fail"} if n % 3 == 0 else {}
                make_saga(world, saga_id).run({}, inject=inject, journal=journal, run_id=saga_id)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sagas = journal.sagas()
        assert {s.id: s.status for s in sagas} == {  # (each as its injection says: ci47's
            f"t{t}-{n}": "rolled_back" if n % 3 == 0 else "committed"  # world, opened by four
            for t in range(4)  # threads at once, failed one's first step)
            for n in range(15)
        }
        reference = [e.kind for e in make_saga(world + ".ref", "ref").run({}).events]
        for saga in sagas:
            events = journal.events(saga.id)
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            if saga.status == "committed":
                assert [e.kind for e in events] == reference
        assert journal.integrity_check() == "ok"
    effects = world_report(world)["effects"]
    assert len(effects) == 60 * 3 - 20  # the 20 failing sagas never wrote step3
    assert sum(undone for _, _, undone in effects) == 20 * 2


# -- the engine's failure-injection promises still hold with a journal attached -----------

WORLDS = {}
prop_registry = Registry()


@compensation("prop.undo", prop_registry)
def prop_undo(world, name):
    WORLDS[world].undo(name)()


@settings(max_examples=examples(60), deadline=None)
@given(pipeline=st.lists(specs, min_size=1, max_size=8), policy=policies)
def test_injection_cases_hold_with_a_journal(tmp_path_factory, pipeline, policy):
    from test_properties import World

    names = [f"s{i}" for i in range(len(pipeline))]
    world = World()
    key = str(id(world))
    WORLDS[key] = world
    saga = Saga(
        [
            Step(
                n, world.action(n, spec), prop_undo.bind(world=key, name=n), register=spec.register
            )
            for n, spec in zip(names, pipeline, strict=True)
        ]
    )
    with Journal(tmp_path_factory.mktemp("j") / "j.db") as journal:
        outcome = saga.run({}, inject=inject_of(names, pipeline), policy=policy_of(policy),
                           clock=VirtualClock(), journal=journal)  # fmt: skip
        check(names, pipeline, policy, world, outcome, outcome.error)
        record = journal.saga(outcome.run_id)
        assert record.status == str(outcome.status)
        assert record.undone == len(outcome.compensated)
        assert record.dead == len(outcome.dead_letters)
        assert journal.events(outcome.run_id) == list(outcome.events)
    del WORLDS[key]


def test_model_helpers_are_shared():
    assert expected(["a"], [Spec(None, None, "after")], "continue") is None


def test_a_saga_id_is_used_once(paths):
    jpath, world = paths
    with Journal(jpath) as journal:
        make_saga(world, "same").run({}, journal=journal, run_id="same")
        ran = []
        saga = Saga([Step("a", lambda s: ran.append(1))])
        with pytest.raises(JournalError, match="already in"):
            saga.run({}, journal=journal, run_id="same")
        assert ran == []


_twice = Registry()


@compensation("twice.undo", _twice)
def _twice_undo(step, idempotency_key=None):
    pass  # (never called: each test's saga commits, or is refused before it runs)


@pytest.mark.parametrize("register", ["before", "after"])
@pytest.mark.parametrize("at", [1, 2, 3, 4])
def test_two_runs_of_one_id_at_once_one_is_refused_before_it_runs(tmp_path, register, at):
    """Two processes start a saga under one run_id at once (attack13 N2): y starts while x
    is at its ``at``-th event. Whichever comes second is refused with the typed error
    before any of its steps runs; it is never a run that fails its first journal write
    (an IntegrityError, a rollback, and a note saying the journal shows it unfinished)."""
    path = tmp_path / "j.db"
    ran: list[str] = []
    results: dict[str, object] = {}

    def saga(tag):
        return Saga(
            [Step(f"{tag}{i}", lambda s, t=f"{tag}{i}": ran.append(t),
                  _twice_undo.bind(step=f"{tag}{i}"), register=register)
             for i in range(2)]
        )  # fmt: skip

    def run(tag, on_event=None):
        with Journal(path) as journal:  # its own connection, as another process has
            try:
                results[tag] = saga(tag).run({}, journal=journal, run_id="same", on_event=on_event)
            except JournalError as exc:
                results[tag] = exc

    seen = []

    def y_starts_now(event):
        seen.append(event)
        if len(seen) == at:
            run("y")

    run("x", y_starts_now)
    refused = [t for t, r in results.items() if isinstance(r, JournalError)]
    assert len(refused) == 1, results
    assert "ids must be unique" in str(results[refused[0]])
    assert not [s for s in ran if s.startswith(refused[0])]  # nothing of it ran
    (winner,) = set(results) - set(refused)
    outcome = results[winner]
    assert outcome.status is Status.COMMITTED, outcome
    assert outcome.notes == ()
    with Journal(path) as journal:
        assert journal.saga("same").status == "committed"
        assert [u.step for u in journal.undos("same")] == [f"{winner}0", f"{winner}1"]


def test_a_with_block_under_a_taken_id_is_refused_before_it_runs(tmp_path):
    """The with-block's run takes its id as the saga's does: another run that started under
    it before this one's first write refuses it at once, not at that write."""
    path = tmp_path / "j.db"
    with Journal(path) as x, Journal(path) as y:
        with Rollback(journal=x, run_id="same") as rb:
            with pytest.raises(JournalError, match="ids must be unique"):
                Rollback(journal=y, run_id="same")
            rb.register("a", _twice_undo.bind(step="a"))
        assert rb.outcome.status is Status.COMMITTED
        assert x.saga("same").status == "committed"


def test_a_saga_refused_for_its_undos_leaves_its_id_free(tmp_path):
    """A journalled saga refused before it runs (an undo that is not a registered
    compensation) writes nothing: its run_id may be used again."""
    with Journal(tmp_path / "j.db") as journal:
        bad = Saga([Step("a", lambda s: None, lambda s: None)])
        with pytest.raises(TypeError, match="registered compensation"):
            bad.run({}, journal=journal, run_id="r")
        assert journal.sagas() == []
        good = Saga([Step("a", lambda s: None, _twice_undo.bind(step="a"))])
        assert good.run({}, journal=journal, run_id="r").status is Status.COMMITTED


def test_recovery_in_batches_finishes_every_saga(tmp_path):
    """Batches that start in the middle of a saga still leave every saga ended."""
    registry = Registry()
    undo = compensation("batch.undo", registry)(lambda n, idempotency_key=None: None)
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        for n in range(9):
            journal.start("b", f"s{n}").register("a", undo.bind(n=n))
            orphan(path, f"s{n}")
        report = recover(journal, registry, batch=3)  # a write every 3 undos: 3 sagas
        assert len(report) == 9
        assert journal.unfinished() == []
        assert {s.status for s in journal.sagas()} == {"rolled_back"}


def test_a_journal_another_process_is_still_creating_is_not_refused(tmp_path):
    """Between one process creating the file and committing its schema, another may open
    it: an SQLite file with no tables yet is new, not foreign (and show refuses it)."""
    path = tmp_path / "j.db"
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")  # the file exists, with no tables yet
    con.close()
    with pytest.raises(JournalError, match="not a rollback-lessons journal"):
        Journal(path, create=False)
    with Journal(path) as journal:
        journal.start("x", "s1").flush()
        assert [s.id for s in journal.sagas()] == ["s1"]
