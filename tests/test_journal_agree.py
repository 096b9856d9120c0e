"""A journal edited by hand whose rows contradict the events it wrote for their saga is
refused in one line (exit 2, ``JournalError``) before any undo runs (attack91 F1): each
value one the journal writes, in a combination it never writes. Without the check,
``recover`` said ``rolled_back`` (exit 0) with a step's charge standing, left a failed saga
``committed``, undid a committed one, or undid in an order the run never logged.

And the other side: every state a real crash leaves (the file after each write the run, or
a ``recover``, commits: a SIGKILL between two writes leaves one of them) is read as before,
never refused; so are the hand edits that leave nothing contradictory (events deleted)."""

from __future__ import annotations

import sqlite3

import pytest
from conftest import dead_pid, orphan

from rollback_lessons import Parallel, Rollback, Saga, Step
from rollback_lessons.cli import main
from rollback_lessons.durable.journal import Journal, JournalError
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry, compensation

registry = Registry()
LOG: list[str] = []


@compensation("agree.undo", registry)
def undo(step: str, idempotency_key: str | None = None) -> None:
    LOG.append(step)


def act(name: str, fail: bool = False):
    def run(_: object) -> None:
        if fail:
            raise RuntimeError(f"{name} refused")

    return run


def step(name: str, fail: bool = False, register: str = "after") -> Step:
    return Step(name, act(name, fail), undo.bind(step=name), register=register)


def _run(path, saga: Saga, cut_at_undo: int | None = None, **kw) -> None:
    """``saga`` journalled at ``path`` (run id "s"), its process 'dying' (a KeyboardInterrupt
    from an observer) at its ``cut_at_undo``-th undo event; its owner then made dead."""
    seen = []

    def cut(event) -> None:
        if event.kind == "undo":
            seen.append(event.step)
            if len(seen) == cut_at_undo:
                raise KeyboardInterrupt

    with Journal(path) as journal:
        if cut_at_undo is None:
            saga.run({}, journal=journal, run_id="s", **kw)
        else:
            with pytest.raises(KeyboardInterrupt):
                saga.run({}, journal=journal, run_id="s", on_event=cut, **kw)
    orphan(path, "s")
    LOG.clear()


def _edit(path, sql: str) -> None:
    con = sqlite3.connect(path)
    try:
        con.executescript(sql)
        con.commit()
    finally:
        con.close()


def _six(tmp_path):
    """attack91's edits.sh: six steps (s6 refuses), undos logged before and after their
    steps; cut after its first undo (s5's) was recorded done: s1-s4 pending."""
    path = tmp_path / "j.db"
    steps = [step(f"s{n}", register="before" if n % 2 else "after") for n in range(1, 6)]
    _run(path, Saga([*steps, step("s6", fail=True)]), cut_at_undo=2)
    with Journal(path) as journal:
        assert [(u.step, u.state) for u in journal.undos("s")] == [
            ("s1", "pending"), ("s2", "pending"), ("s3", "pending"), ("s4", "pending"),
            ("s5", "done"), ("s6", "not_run"),
        ]  # fmt: skip
    return path


def _refused(path, said: str, capsys) -> None:
    """Refused in one line, before any undo: by ``recover``, the CLI, and ``journal show``."""
    with Journal(path) as journal, pytest.raises(JournalError) as caught:
        recover(journal, registry)
    text = str(caught.value)
    assert said in text and "rows and events that disagree" in text, text
    assert text.endswith("no undo was run. Restore it from a copy, or finish its sagas by hand")
    assert LOG == []
    capsys.readouterr()
    assert main(["recover", str(path), "--registry", __name__]) == 2
    assert main(["journal", "show", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(said in line for line in err), err
    assert LOG == []


SWAP = (  # s1's row at s3's position and s3's at s1's (the events logged s1 first)
    "UPDATE undos SET position = position + 100 WHERE step = 's1';"
    "UPDATE undos SET position = (SELECT position - 100 FROM undos WHERE step = 's1')"
    " WHERE step = 's3';"
    "UPDATE undos SET position = 3 WHERE step = 's1';"
)


@pytest.mark.parametrize(
    ("sql", "said"),
    [
        ("DELETE FROM undos WHERE step = 's2'",
         "saga 's' has no undo row for step 's2', whose undo_registered event it logged"),
        ("UPDATE undos SET state = 'done' WHERE step = 's2'",
         "saga 's' has the undo of 's2' done, though it logged no undo of it"),
        ("UPDATE undos SET state = 'not_run' WHERE step = 's2'",
         "saga 's' has the undo of 's2' not run, though it logged that step done and its undo"),
        ("UPDATE sagas SET status = 'committed'",
         "saga 's' is committed, though its events say it failed"),
        ("UPDATE sagas SET status = 'committed'; DELETE FROM events WHERE kind IN"
         " ('pipeline_failed', 'rollback_start', 'halted')",
         "saga 's' is committed, though it logged no commit"),
        (SWAP, "saga 's' has the undo row of 's2' out of the order its events logged"),
        ("UPDATE sagas SET status = 'rolled_back'",
         "saga 's' is rolled_back, though it logged no end of its rollback"),
        ("UPDATE sagas SET status = 'cancelled'",
         "saga 's' is cancelled, though it logged no end of its rollback"),
    ],
)  # fmt: skip
def test_a_list_sagas_rows_edited_against_its_events_are_refused(tmp_path, capsys, sql, said):
    """Without the check: s2's row deleted, set done or set not run, ``rolled_back; undone
    s4, s3, s1`` (exit 0), s2's charge standing; set committed, "recovered 0 sagas" (exit
    0), s1-s4 standing; positions swapped, undone s4, s2, s3, s1; set rolled_back or
    cancelled with no rollback_done event, s1-s4 never undone (attack96 F6). (Ended
    rolled_back, its rollback_done logged, an undo left pending, is a state a Ctrl-C can
    leave: read as it is, attack93 F2; a done
    undo set back pending is one too: its undo_done event is written before its row, and it
    runs again, as every undo may: attack93 F1.)"""
    path = _six(tmp_path)
    _edit(path, sql)
    _refused(path, said, capsys)


@pytest.mark.parametrize(
    "sql",
    [
        "",
        "DELETE FROM events",
        "DELETE FROM events WHERE step = 's3'",
        "DELETE FROM events WHERE kind IN ('pipeline_failed', 'rollback_start')",
        "UPDATE sagas SET status = 'running'",
    ],
)
def test_edits_that_leave_rows_and_events_agreeing_are_read_as_before(tmp_path, sql):
    """(attack91: each was read right, every undo left run; the check keeps it so.)"""
    path = _six(tmp_path)
    _edit(path, sql)
    with Journal(path) as journal:
        report = recover(journal, registry)
        assert [r.status for r in report.recovered] == ["rolled_back"]
    assert LOG == ["s4", "s3", "s2", "s1"]


def _cut_forward(tmp_path, monkeypatch):
    """attack93's fwd.py: three steps, the process killed as s3 runs (s1, s2 done, their
    undos logged; no commit, no failure logged): the file the last write left."""
    (tmp_path / "run").mkdir()

    def ran() -> None:
        with Journal(tmp_path / "run.db") as journal:
            saga = Saga([step("s1", register="before"), step("s2"), step("s3")])
            saga.run({}, journal=journal, run_id="s")

    running = []
    for at in filter(_started, _snapshots(monkeypatch, tmp_path / "run", ran)):
        with Journal(at) as journal:
            if journal.saga("s").status == "running" and len(journal.undos("s")) == 3:
                running.append(at)
    path = _dead(running[-1:])[0]
    with Journal(path) as journal:  # (s3's row: its intent, written as it started)
        assert [(u.step, u.state) for u in journal.undos("s")][:2] == [
            ("s1", "pending"), ("s2", "pending")]  # fmt: skip
    LOG.clear()
    return path


@pytest.mark.parametrize(
    ("sql", "said"),
    [
        ("UPDATE sagas SET status = 'committed'",
         "saga 's' is committed, though it logged no commit"),
        ("UPDATE sagas SET status = 'rollback_incomplete'",
         "saga 's' is rollback_incomplete, though its events never say it failed"),
        ("UPDATE sagas SET status = 'cancelled'; UPDATE undos SET state = 'not_run'",
         "saga 's' is cancelled, though its events never say it failed"),
        ("UPDATE sagas SET status = 'rolled_back'; UPDATE undos SET state = 'done'",
         "saga 's' has the undo of 's1' done, though it logged no undo of it"),
        ("UPDATE undos SET state = 'not_run' WHERE step = 's1'",
         "saga 's' has the undo of 's1' not run, though it logged that step done and its undo"),
    ],
)  # fmt: skip
def test_a_saga_cut_forward_edited_finished_or_its_undo_dropped_is_refused(
    tmp_path, monkeypatch, capsys, sql, said
):
    """attack93 F1 (fwdedit.sh): without the checks, "recovered 0 sagas" (exit 0), or s1
    never named, its charge standing: the journal writes a commit with its event, a failed
    saga's end after its failure's events, a step's undo not run only if it never ran (or
    has no undo)."""
    path = _cut_forward(tmp_path, monkeypatch)
    with Journal(path) as journal:  # (as the crash left it: recovered)
        assert journal.saga("s").status == "running"
    _edit(path, sql)
    _refused(path, said, capsys)


@pytest.mark.parametrize("status", ["running", "rolling_back"])
def test_a_committed_saga_set_unfinished_by_hand_is_refused_never_undone(tmp_path, capsys, status):
    """attack91's cedit.sh. Without the check: ``rolled_back; undone s2, s1`` (exit 0): a
    committed saga undone, its own ``committed`` event in the file."""
    path = tmp_path / "j.db"
    _run(path, Saga([step("s1"), step("s2"), Step("s3", act("s3"))]))
    _edit(path, f"UPDATE sagas SET status = '{status}'")
    _refused(path, f"saga 's' is {status}, though its events say it committed", capsys)


@pytest.mark.parametrize(
    ("sql", "said"),
    [
        ("DELETE FROM undos WHERE step = 'c1'",
         "saga 's' has no undo row for step 'c1', whose undo_registered event it logged"),
        ("UPDATE undos SET state = 'done' WHERE step = 'c1'",
         "saga 's' has the undo of 'c1' done, though it logged no undo of it"),
        ("UPDATE undos SET state = 'not_run' WHERE step = 'c1'",
         "saga 's' has the undo of 'c1' not run, though it logged that step done and its undo"),
    ],
)  # fmt: skip
def test_a_graph_sagas_rows_edited_against_its_events_are_refused(tmp_path, capsys, sql, said):
    """attack91's gedit.sh: a, then b | c1 -> c2 | e, then f, d refuses; cut at its first
    undo. Without the check: ``rolled_back; undone f, e, c2, b, a``, c1 standing (the graph
    column edited instead was refused: the check ran one way only)."""
    path = tmp_path / "j.db"
    saga = Saga(
        [step("a"), Parallel(step("b"), [step("c1"), step("c2")], step("e")), step("f"),
         step("d", fail=True)]
    )  # fmt: skip
    _run(path, saga, cut_at_undo=1)
    _edit(path, sql)
    _refused(path, said, capsys)


# -- every state a real crash leaves: never refused -----------------------------------------


def _snapshots(monkeypatch, tmp_path, run) -> list:
    """The journal after each write ``run()`` commits (a SIGKILL between two writes leaves
    the file as one of them), each a copy."""
    copies: list = []
    write = Journal.write

    def kept(journal, *args, **kw):
        try:
            write(journal, *args, **kw)
        finally:
            copy = tmp_path / f"at{len(copies)}.db"
            source, target = sqlite3.connect(journal.path), sqlite3.connect(copy)
            source.backup(target)
            target.execute("UPDATE sagas SET writer = NULL")
            target.execute("DELETE FROM meta WHERE key LIKE 'writer %'")  # (as after a crash
            target.commit()  # with its -wal: its writers' marks go; a copy keeps them: refused)
            source.close()
            target.close()
            copies.append(copy)

    monkeypatch.setattr(Journal, "write", kept)
    run()
    monkeypatch.setattr(Journal, "write", write)
    return copies


def _sagas():
    return {
        "list": lambda: Saga(
            [*(step(f"s{n}", register=r) for n, r in enumerate(("before", "after") * 2)),
             Step("bare", act("bare")), step("last", fail=True)]
        ),
        "commit": lambda: Saga([step("a", register="before"), step("b"), Step("c", act("c"))]),
        "pivot": lambda: Saga(
            [step("a"), Step("email", act("email"), kind="pivot"),
             Step("ship", act("ship", fail=True), kind="retriable")]
        ),
        "graph": lambda: Saga(
            [step("a"), Parallel(step("b"), [step("c1"), step("c2", register="before")],
             step("e")), step("f"), step("d", fail=True)]
        ),
    }  # fmt: skip


@pytest.mark.parametrize("name", list(_sagas()))
def test_every_state_a_crash_leaves_is_read_and_recovered_never_refused(
    tmp_path, monkeypatch, name
):
    """Each file a SIGKILL can leave, between any two writes of the run, then of the
    ``recover`` of the first state its rollback wrote: the check passes, and ``recover``
    finishes it (none refused as rows and events that disagree)."""
    make = _sagas()[name]

    def ran() -> None:
        with Journal(tmp_path / "run.db") as journal:
            make().run({}, journal=journal, run_id="s")

    (tmp_path / "run").mkdir()
    copies = _snapshots(monkeypatch, tmp_path / "run", ran)
    assert len(copies) > 3
    rollback = []
    copies = _dead([at for at in copies if _started(at)])
    for at in copies:
        with Journal(at) as journal:
            assert journal.quick_check("integrity_check") == "ok", at
            status = journal.saga("s").status
        if status == "rolling_back" and not rollback:
            rollback.append(at)
    for at in [*copies, *_recovered(monkeypatch, tmp_path, rollback)]:
        with Journal(at) as journal:
            recover(journal, registry)  # (refused: a JournalError)
            assert journal.saga("s").status not in ("running", "rolling_back")


def _dead(paths: list) -> list:
    """``paths``, each saga's owner made one process that ended (``orphan``, spawned once)."""
    pid = dead_pid()
    for path in paths:
        _edit(path, f"UPDATE sagas SET owner_pid = {pid}, owner_started = NULL")
    return paths


def _started(path) -> bool:
    """Does the file hold the saga yet (its first writes: the schema, the saga's row)?"""
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT COUNT(*) FROM sagas").fetchone()[0] == 1
    finally:
        con.close()


def _recovered(monkeypatch, tmp_path, rollback) -> list:
    """The files a recover of the first rolling_back state leaves after each of its writes."""
    if not rollback:
        return []
    (tmp_path / "rec").mkdir()
    source = tmp_path / "rec.db"
    source.write_bytes(rollback[0].read_bytes())

    def ran() -> None:
        with Journal(source) as journal:
            recover(journal, registry, batch=1)

    return _snapshots(monkeypatch, tmp_path / "rec", ran)


def test_a_rollback_block_cut_at_each_write_is_never_refused(tmp_path, monkeypatch):
    """(``Rollback``'s writes as ``saga.run``'s.)"""
    (tmp_path / "run").mkdir()

    def ran() -> None:
        with Journal(tmp_path / "b.db") as journal, pytest.raises(ValueError):
            with Rollback(journal=journal, run_id="s") as rb:
                for n, r in (("a", "before"), ("b", "after"), ("c", "before")):
                    rb.do(n, lambda: None, undo.bind(step=n), register=r)
                raise ValueError("block failed")

    for at in _dead(list(filter(_started, _snapshots(monkeypatch, tmp_path / "run", ran)))):
        with Journal(at) as journal:
            assert journal.quick_check("integrity_check") == "ok", at
            recover(journal, registry)


def test_a_recover_cut_as_an_undo_returned_leaves_its_done_read_not_refused(tmp_path, monkeypatch):
    """``recover`` writes an undo's done as its call returns, before the machine's
    ``undo_done`` event (a Ctrl-C there writes the done alone, its ``undo`` event with it):
    a done row with an ``undo`` event and no ``undo_done`` is a real instant, never refused."""
    from rollback_lessons.machine import Machine

    path = _six(tmp_path)
    ok = Machine.undo_ok

    def cut(machine):
        monkeypatch.setattr(Machine, "undo_ok", ok)
        raise KeyboardInterrupt

    monkeypatch.setattr(Machine, "undo_ok", cut)
    with Journal(path) as journal, pytest.raises(KeyboardInterrupt):
        recover(journal, registry)
    assert LOG == ["s4"]
    with Journal(path) as journal:
        assert journal.undos("s")[3].state == "done"
        kinds = [(e.kind, e.step) for e in journal.events("s")]
        assert ("undo", "s4") in kinds and ("undo_done", "s4") not in kinds
        assert journal.quick_check("integrity_check") == "ok"
        recover(journal, registry)
        assert journal.saga("s").status == "rolled_back"
    assert LOG == ["s4", "s3", "s2", "s1"]


def test_a_finished_saga_with_an_undo_left_pending_as_a_ctrl_c_leaves_it_is_not_refused(
    tmp_path, capsys
):
    """attack93 F2: a Ctrl-C as a step whose undo is logged before it starts, landing in the
    journal's write (its row and its undo_registered event written, the step never run): the
    write that withdraws its undo is cut, and the saga ends rolled_back, that undo row still
    pending (the attacker's journal, made here by that one difference). Refused as damaged,
    the whole file was: another saga in it, killed mid-run, never recovered."""
    path = tmp_path / "j.db"
    saga = Saga([step("s1", register="before"), step("s2", register="before"),
                 step("s3", register="before", fail=True)])  # fmt: skip
    _run(path, saga)
    _edit(path, "UPDATE undos SET state = 'pending' WHERE step = 's3'")
    with Journal(path) as journal:
        assert journal.saga("s").status == "rolled_back"
        assert recover(journal, registry).recovered == ()
    assert main(["journal", "show", str(path)]) == 0 and LOG == []
    capsys.readouterr()
