"""A journal write that fails tells the same story after ``recover`` (attack19 F2), and in a
with-block going forward it is one typed line (attack19 S3)."""

from __future__ import annotations

import sqlite3

import pytest
from conftest import dead_pid, full_to_the_end

from rollback_lessons import RetryPolicy, Rollback, Saga, Status, Step, UndoPolicy, VirtualClock
from rollback_lessons.durable.journal import Journal, JournalError
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry, compensation


def failing_once(journal: Journal, n: int) -> list[int]:
    """The journal's ``n``-th write fails once (a full disk); the writes counted."""
    real, count = journal.write, [0]

    def write(statements, **kw):
        count[0] += 1
        if count[0] == n:
            raise sqlite3.OperationalError("database or disk is full")
        return real(statements, **kw)

    journal.write = write  # type: ignore[method-assign]
    return count


@pytest.mark.parametrize("n", [3, 5], ids=["its own write", "with the rollback's start"])
def test_a_refusal_whose_write_failed_is_not_run_after_recover(tmp_path, n):
    """attack19's F2: s0 fails before any effect (its action never called); the write that
    carries its refusal (with the rollback's start) fails. The run said rolled_back, yet
    recover then reported s0 leaked ("may have happened"), the saga rollback_incomplete.
    The refusal is written again, alone, as the run ends. (Written as it failed, before its
    observers hear of it, attack36 F7: if that write fails, it goes with the next.)"""
    registry = Registry()

    @compensation("f2_undo", registry)
    def undo(k, idempotency_key=None):
        raise AssertionError("nothing was done: nothing to undo")

    saga = Saga([Step("s0", lambda s: None, undo.bind(k="s0"))], name="f2")
    with Journal(str(tmp_path / "j.db")) as journal:
        failing_once(journal, n)
        outcome = saga.run({}, journal=journal, run_id="r", inject={"s0": "fail"})
        assert outcome.status is Status.ROLLED_BACK
        told = any("journal write failed" in note for note in outcome.notes)
        assert told == (n == 5)  # (the rollback's writes are said; one carried by the next not)
        assert {u.step: u.state for u in journal.undos("r")} == {"s0": "not_run"}
        journal.write([("UPDATE sagas SET owner_pid = ?, owner_started = NULL", (dead_pid(),))])
        recover(journal, registry)
        assert journal.saga("r").status == "rolled_back" and journal.leaked("r") == []


@pytest.mark.parametrize("n", [2, 4])
def test_a_with_blocks_write_failing_going_forward_is_one_typed_line(tmp_path, n):
    """attack19's S3: a with-block's journal write failing as a step starts raised the raw
    sqlite3.OperationalError out of ``rb.do`` (after a correct rollback). Now a
    JournalError in one line naming the event, the storage's error its cause."""
    registry, world = Registry(), {}

    @compensation("s3_undo", registry)
    def undo(k, idempotency_key=None):
        world.pop(k)

    with Journal(str(tmp_path / "j.db")) as journal:
        failing_once(journal, n)
        with pytest.raises(JournalError) as caught:
            with Rollback(journal=journal, run_id="r") as rb:
                for k in "abc":
                    rb.do(k, lambda k=k: world.__setitem__(k, 1), undo.bind(k=k))
    error = caught.value
    assert isinstance(error.__cause__, sqlite3.OperationalError)
    assert str(error).startswith("the journal could not be written at the step_start event of ")
    assert "database or disk is full" in str(error) and "\n" not in str(error)
    assert world == {}  # what was done before the failed write is undone


def test_a_disk_full_to_the_end_says_which_undos_recover_will_call_again(tmp_path):
    """attack28's F3: every write fails from the n-th on, to the process's end (a disk full
    until then). In process the block is rolled back (its undos ran), but the journal
    still shows them pending, and ``recover`` calls them again, with the same key. The
    outcome's note now names exactly those undos (and only them), for every n."""
    registry, calls = Registry(), []

    @compensation("f3_undo", registry)
    def undo(k, idempotency_key=None):
        calls.append((k, idempotency_key))

    told_again = 0
    for n in range(1, 12):
        calls.clear()
        with Journal(str(tmp_path / f"j{n}.db")) as journal:
            real, count = journal.write, [0]

            def write(statements, real=real, count=count, n=n, **kw):
                count[0] += 1
                if count[0] >= n:
                    raise sqlite3.OperationalError("database or disk is full")
                return real(statements, **kw)

            journal.write = write  # type: ignore[method-assign]
            rb = None
            with pytest.raises((JournalError, ValueError)):
                rb = Rollback(journal=journal, run_id="r")  # (n=1: refused, nothing ran)
                with rb:
                    for k in "ab":
                        rb.do(k, lambda: None, undo.bind(k=k))
                    raise ValueError("the block fails")
            journal.write = real  # type: ignore[method-assign]
            full_to_the_end(journal)  # (until the process ends)
            if rb is None:
                continue
            in_process = list(calls)
            notes = [note for note in rb.outcome.notes if "recover will call it again" in note]
            journal.write([("UPDATE sagas SET owner_pid = ?, owner_started = NULL", (dead_pid(),))])
            recover(journal, registry)
        again = [k for k, key in calls[len(in_process) :] if (k, key) in in_process]
        if again:
            told_again += 1
            assert len(notes) == 1, (n, rb.outcome.notes)
            assert f"the undo of {', '.join(map(repr, again))} pending though it ran" in notes[0]
        else:
            assert notes == [], (n, notes)
    assert told_again > 0  # (some n left a done undo pending: the case is tested)


@pytest.mark.parametrize("then", ["full to the end", "room again"])
def test_a_ctrl_c_after_a_disk_filled_names_the_undos_recover_will_call_again(tmp_path, then):
    """attack44 F8: the disk full from a step's done on, then a Ctrl-C in the rollback (an
    observer of an undo's done): the undos that ran here, their done unwritten, were named
    in no note, and recover called them again (with their key). With room again before the
    process ended, its next write writes them (attack276 F1: dropped for good)."""
    registry, calls = Registry(), []

    @compensation("f8_undo", registry)
    def undo(k, idempotency_key=None):
        calls.append(k)

    full = [False]

    def observe(event) -> None:
        if event.kind == "step_done" and event.step == "b":
            full[0] = True
        if event.kind == "undo_done" and event.step == "b":
            raise KeyboardInterrupt

    steps = [Step(k, lambda s: None, undo.bind(k=k)) for k in "ab"]
    saga = Saga([*steps, Step("c", lambda s: None)], on_event=observe)
    with Journal(str(tmp_path / "j.db")) as journal:
        real = journal.write

        def write(statements, **kw):
            if full[0]:
                raise sqlite3.OperationalError("database or disk is full")
            return real(statements, **kw)

        journal.write = write  # type: ignore[method-assign]
        with pytest.raises(KeyboardInterrupt) as caught:
            saga.run({}, inject={"c": "fail"}, journal=journal, run_id="r")
        journal.write = real  # type: ignore[method-assign]
        if then == "full to the end":
            full_to_the_end(journal)
        journal.write([("UPDATE sagas SET owner_pid = ?, owner_started = NULL", (dead_pid(),))])
        said = (
            "the undo of 'b' ran here, though the journal could not record it: recover will",
            "the undo of 'b' pending though it ran: recover will call it again",
        )  # (read
        notes = caught.value.__notes__  # from the journal: its writes unwritten, attack266)
        assert any(one in note for one in said for note in notes), notes
        assert any("unless this journal writes it first" in note for note in notes), notes
        recover(journal, registry)
    again = ["b"] if then == "full to the end" else []  # (b again, with its key, as said)
    assert calls == ["b", *again, "a"]


@pytest.mark.parametrize("shape", ["undos", "kept", "pivot", "halt", "refused"])
def test_a_step_the_journal_could_not_record_is_named_in_the_note(tmp_path, shape):
    """attack36 F2: a disk full from the n-th write on; the run undid every step, but a
    step whose undo's own row no write carried is reported leaked by recover ("no undo
    logged"), and the run's note never named it. attack38 F2: nor a step with no undo that
    returned, a pivot or a step after it. Now the note names each, for every n."""
    from rollback_lessons.rules import Kind

    registry = Registry()
    undone: list[str] = []

    @compensation("f2_named", registry)
    def undo(k, idempotency_key=None):
        undone.append(k)

    steps = [Step(f"s{i}", lambda s: None, undo.bind(k=f"s{i}")) for i in range(2)]
    if shape in ("undos", "halt"):
        steps += [Step("s2", lambda s: None, undo.bind(k="s2")), Step("s3", lambda s: None)]
    elif shape == "kept":
        steps += [Step("k", lambda s: None), Step("s3", lambda s: None)]
    elif shape == "refused":  # (a pivot that refuses cleanly, the rollback halted: attack44)
        steps += [Step("p", lambda s: None, kind=Kind.PIVOT),
                  Step("r", lambda s: None, kind=Kind.RETRIABLE)]  # fmt: skip
    else:
        steps += [Step("k", lambda s: None), Step("p", lambda s: None, kind=Kind.PIVOT),
                  Step("r", lambda s: None, kind=Kind.RETRIABLE)]  # fmt: skip
    saga = Saga(steps, name="f2", policy="halt" if shape in ("halt", "refused") else "continue")
    pivots = halts = 0
    for n in range(2, 16):
        with Journal(str(tmp_path / f"{n}.db")) as journal:
            real, count = journal.write, [0]

            def write(statements, real=real, count=count, n=n, **kw):
                count[0] += 1
                if count[0] >= n:
                    raise sqlite3.OperationalError("disk I/O error")
                return real(statements, **kw)

            journal.write = write  # type: ignore[method-assign]
            inject = {"s3": "fail"} if shape != "pivot" else {"r": "fail"}
            inject = {"p": "fail"} if shape == "refused" else inject
            inject |= {"s1": "undo_fails"} if shape in ("halt", "refused") else {}  # (F9)
            outcome = saga.run({}, journal=journal, run_id="r", inject=inject,
                               clock=VirtualClock())  # fmt: skip
            journal.write = real  # type: ignore[method-assign]
            full_to_the_end(journal)  # (until the process ends)
            journal.write([("UPDATE sagas SET owner_pid = ?, owner_started = NULL", (dead_pid(),))])
            undone.clear()
            report = recover(journal, registry)
            for step in journal.leaked("r"):  # (undone here, or not run: never leaked here)
                assert step not in outcome.leaked, (n, step)
                said = "not run" if step not in outcome.completed else "done here"
                said = "undone here" if step in outcome.compensated else said
                assert any(f"'{step}'" in n and said in n for n in outcome.notes), (n, step, said)
            halted = [r.status for r in report.recovered] == [Status.HALTED]
            pivots += _said_comes_true(outcome.notes, journal.leaked("r"), undone, n, halted)
            halts += any("will run the undo of" in note for note in outcome.notes)
    assert (pivots > 0) == (shape in ("pivot", "refused"))  # (one the journal shows begun)
    assert (halts > 0) == (shape in ("halt", "refused"))  # (a halt it could not write: said)


def _said_comes_true(notes, leaked: list[str], called: list[str], n: int, halted: bool) -> bool:
    """attack42 F6: what the note predicts recover does, it does: each step it says recover
    will report leaked is reported leaked, each undo it says recover will call is called
    (the note named steps whose records the journal held, and said so of one twice)."""
    import re

    seen = False
    for note in notes:
        for part in note.split("; "):
            named = re.findall(r"'([^']+)'", part.split(":")[0])
            if "recover will report it leaked" in part:
                assert set(named) <= set(leaked), (n, part, leaked)
            if "recover will call it again" in part:
                assert set(named) <= set(called), (n, part, called)
            if "will run the undo of" in part:  # (a halt it could not write: attack43 F9)
                assert set(re.findall(r"'([^']+)'", part)) <= set(called), (n, part, called)
            if "recover will leave the saga for a person" in part:  # (a pivot it shows begun)
                assert halted and not called, (n, part, called)
                seen = True
    return seen


@pytest.mark.parametrize("n", [2, 4])
def test_a_with_blocks_step_whose_start_was_not_written_is_not_run_not_leaked(tmp_path, n):
    """attack38 F5: the write of a step's start failed once in a with-block: the block
    reported that step leaked, ``rollback_incomplete``, though its action was never called
    (``saga.run`` said ``rolled_back``, and so did the journal). It was not run."""
    registry, world = Registry(), {}

    @compensation("f5_undo", registry)
    def undo(k, idempotency_key=None):
        world.pop(k, None)

    with Journal(str(tmp_path / "j.db")) as journal:
        failing_once(journal, n)
        with pytest.raises(JournalError):
            with Rollback(journal=journal, run_id="r") as rb:
                for k in "abc":
                    rb.do(k, lambda k=k: world.__setitem__(k, 1), undo.bind(k=k))
        outcome = rb.outcome
        assert outcome is not None and outcome.leaked == () and world == {}
        assert outcome.status is Status.ROLLED_BACK
        assert any("was not run: its start could not be told" in note for note in outcome.notes)
        assert journal.saga("r").status == "rolled_back" and journal.leaked("r") == []


@pytest.mark.parametrize("at", ["step_start", "undo_registered"])
def test_a_journal_closed_under_a_running_saga_names_what_recover_will_find(tmp_path, at):
    """attack259 F1: a journal closed mid-saga (a service's shutdown, a daemon thread's run
    going on), unreadable to the run: its note said every undo done here was never recorded
    ("recover will report it leaked"), though the journal held them pending: recover ran
    them again, unannounced. The note tells each as the journal holds it: closed as d began,
    d's return is unwritten (leaked); closed once it returned, every undo is called again."""
    calls: list[str] = []
    reg = Registry()
    undo = reg.add("story_undo", lambda step, idempotency_key=None: calls.append(step))
    path = tmp_path / "j.db"
    journal = Journal(path)

    def closing(event) -> None:
        if event.kind.value == at and event.step == "d":
            journal.close()

    def refused(state: dict) -> None:
        raise ValueError("e refused")

    steps = [*(Step(n, lambda s: None, undo.bind(step=n)) for n in "abcd"), Step("e", refused)]
    outcome = Saga(steps).run({}, journal=journal, run_id="r1", on_event=closing)
    assert outcome.status is Status.ROLLED_BACK and calls == ["d", "c", "b", "a"]
    [note] = [n for n in outcome.notes if "attempts" in n]
    again = "'c', 'b', 'a'" if at == "step_start" else "'d', 'c', 'b', 'a'"
    assert f"the undo of {again} pending though it ran: recover will call it again" in note
    lost = "'d' undone here, though the journal never recorded its undo"
    assert (lost in note) == (at == "step_start"), note
    calls.clear()
    with Journal(path) as later:  # (as another process's recover, its owner gone)
        later._con.execute("UPDATE sagas SET owner_pid = ?", (dead_pid(),))
        [back] = recover(later, reg).recovered
    assert calls == (["c", "b", "a"] if at == "step_start" else ["d", "c", "b", "a"])
    assert back.leaked == (("d",) if at == "step_start" else ())


@pytest.mark.parametrize("case", ["halted", "across a pivot"])
def test_a_journal_closed_under_a_halt_or_a_pivot_says_what_recover_will_do(tmp_path, case):
    """attack261: a journal closed under a running saga, unreadable to its run. F1: the undo
    policy halted for a person (b's undo failed); the note said nothing of the halt it could
    not write, and recover ran b's and a's undos itself. F2: closed as the pivot began; it
    refused with nothing done and the run compensated across it; the note said recover would
    call b and a again, but recover left the saga to a person told to run them by hand."""
    calls, failed = [], []
    reg = Registry()

    def undo_call(step: str, idempotency_key=None) -> None:
        if step == "b" and case == "halted" and not failed:
            failed.append(step)
            raise RuntimeError("b's undo refused")
        calls.append(step)

    undo = reg.add("story_undo2", undo_call)
    path = tmp_path / "j.db"
    journal = Journal(path)
    closing_at = ("step_failed", "d") if case == "halted" else ("step_start", "c")

    def closing(event) -> None:
        if (event.kind.value, event.step) == closing_at:
            journal.close()

    def refused(state: dict) -> None:
        raise ValueError("refused")

    steps = [Step(n, lambda s: None, undo.bind(step=n)) for n in "ab"]
    if case == "halted":
        steps += [Step("c", lambda s: None, undo.bind(step="c")), Step("d", refused)]
    else:
        steps.append(Step("c", refused, kind="pivot"))
    outcome = Saga(steps, policy="halt").run({}, journal=journal, run_id="r1", on_event=closing)
    [note] = [n for n in outcome.notes if "attempts" in n]
    calls.clear()
    with Journal(path) as later:  # (as another process's recover, its owner gone)
        later._con.execute("UPDATE sagas SET owner_pid = ?", (dead_pid(),))
        [back] = recover(later, reg).recovered
    if case == "halted":
        assert outcome.status is Status.HALTED and outcome.pending == ("b", "a")
        assert "will run the undo of 'b', 'a' itself" in note, note
        assert calls == ["c", "b", "a"] and back.status is Status.ROLLED_BACK
    else:
        assert outcome.status is Status.ROLLED_BACK and "recover will call it" not in note
        assert "the undo of 'b', 'a' ran here: do not run it again" in note, note
        assert calls == [] and back.status is Status.HALTED


def _closed_at(path, mode: str, n: int, away: bool = False):
    """A saga a, b, p (a pivot unless ``mode`` says none: refused once, retried), c (which
    fails unless ``mode`` is "pivot retried"), its journal closed at its ``n``-th event
    (``away``: its files moved away too, the run cannot read them; back for recover); then
    recover (its owner gone). Its outcome (None past its last event), the undos run here
    and by recover, and recover's report. "undo retried": no pivot, b's undo fails its
    first call, retried (attack263 F1, F2); "no undo": no pivot, b has no undo (F3)."""
    calls: list[str] = []
    tries, count, failed = [0], [0], []
    reg = Registry()

    def undo_call(who: str, idempotency_key=None) -> None:
        if mode == "undo retried" and who == "b" and not failed:
            failed.append(who)
            raise RuntimeError("b's undo fails once")
        calls.append(who)

    undo = reg.add("story_undo3", undo_call)
    journal = Journal(path)
    files = [path.with_name(path.name + end) for end in ("", "-wal", "-shm")]

    def closing(event) -> None:
        count[0] += 1
        if count[0] == n:
            journal.close()
            for f in files if away else []:
                f.exists() and f.rename(f.with_name(f.name + ".away"))

    def act(name: str):
        def do(state: dict) -> None:
            if name == "p":
                tries[0] += 1
                if tries[0] == 1:
                    raise ValueError("refused, nothing done")
            if name == "c" and mode != "pivot retried":
                raise ValueError("c fails")

        return do

    retry = RetryPolicy(max_attempts=2, initial_delay=0.0)
    policy = UndoPolicy(retry, then="halt") if mode == "undo retried" else "continue"
    b = Step("b", act("b")) if mode == "no undo" else Step("b", act("b"), undo.bind(who="b"))
    if mode in ("no pivot", "undo retried", "no undo"):
        p = Step("p", act("p"), undo.bind(who="p"), retry=retry)
        c = Step("c", act("c"), undo.bind(who="c"))
    elif mode == "unsafe order":  # (c compensable after the pivot: the run rolls back across
        p, c = (
            Step("p", act("p"), kind="pivot", retry=retry),
            Step("c", act("c"), undo.bind(who="c")),
        )
    else:
        p, c = Step("p", act("p"), kind="pivot", retry=retry), Step("c", act("c"), kind="retriable")
    steps = [Step("a", act("a"), undo.bind(who="a")), b, p, c]
    unsafe = mode == "unsafe order"  # it as c fails; a write failing, it halts: attack264 F1)
    outcome = Saga(steps, clock=VirtualClock(), policy=policy, allow_unsafe_order=unsafe).run(
        {}, journal=journal, run_id="r1", on_event=closing
    )
    for f in files if away else []:
        f.with_name(f.name + ".away").exists() and f.with_name(f.name + ".away").rename(f)
    if count[0] < n:
        journal.close()
        return None, [], [], None
    ran, calls[:] = list(calls), []
    with Journal(path) as later:  # (as another process's recover, its owner gone)
        later._con.execute("UPDATE sagas SET owner_pid = ?", (dead_pid(),))
        report = recover(later, reg)
    return outcome, ran, calls, report


@pytest.mark.parametrize(
    ("mode", "away"),
    [
        ("pivot retried", False),
        ("pivot refused then c fails", False),
        ("no pivot", False),
        ("undo retried", False),
        ("undo retried", True),
        ("no undo", True),
        ("unsafe order", False),
        ("unsafe order", True),
    ],
)
def test_a_journal_closed_at_any_event_leaves_a_note_recover_keeps(tmp_path, mode, away):
    """attack262: a journal closed at each event n of a saga a, b, pivot p (refused once,
    retried), c: the note told the pivot from what the run knew (started, when the journal
    showed none or 'refused'), and "there are none" to finish forward of a c done here that
    recover asks for. The note now reads the journal afresh. At every n: what it says recover
    will call again, recover calls (and nothing else of what ran here); a saga it says is
    left for a person, recover leaves, calling nothing; what it says recover will report
    leaked, recover reports, and what recover reports leaked, the run said (attack263: a
    journal read failing as an undo waited to retry cut the rollback, "the journal keeps
    them for recover" of an undo it never logged, recover reporting b and c leaked; a step
    with no undo done here, the file unreadable, unsaid; attack264 F1: in an order
    ``check_order`` refuses, a pivot the journal shows done: "recover will call it again" of
    undos run here, recover leaving the saga for a person; a write failing at c's start
    rolled back across the pivot)."""
    import re

    def said(pattern: str, note: str) -> set[str]:
        found = re.search(pattern, note)
        return set(re.findall(r"'(\w)'", found.group(1))) if found else set()

    n = 1
    while True:
        outcome, ran, calls, report = _closed_at(tmp_path / f"j{n}.db", mode, n, away)
        if outcome is None:
            break
        note = " ".join(outcome.notes)
        back = report.recovered[0] if report.recovered else None
        again = said(r"undo of ([^:]*) pending though it ran: recover will call it again", note)
        assert again == set(calls) & set(ran), (n, note, calls)
        if "recover will leave the saga for a person" in note:
            assert calls == [] and back is not None and back.status is Status.HALTED, (n, note)
        leaked = set()
        clauses = r"; ([^;]*) (?:undone here|not run|done here)[^;]*report it leaked"
        for clause in re.findall(clauses, note):
            leaked |= set(re.findall(r"'(\w)'", clause))
        assert back is None or leaked == set(back.leaked) - set(outcome.leaked), (n, note, back)
        assert "the journal keeps them" not in note or back is not None, (n, note)
        pivot_done = mode == "unsafe order" and "p" in outcome.completed
        if pivot_done and isinstance(outcome.error, JournalError):  # (a write after it)
            assert ran == [] and outcome.status is Status.HALTED, (n, note)
        n += 1
    assert n > 10
