"""A journal whose writes fail for a moment keeps what they carried for the next write; a
Ctrl-C then cuts the run, and its last writes (the steps never called, the saga let go)
carry them too (attack266: they went without them, though the disk was back: an undo
logged here reported leaked by recover, a pivot done or refused left ``started``, a halt for
a person forgotten, recover running its undos)."""

from __future__ import annotations

import sqlite3

import pytest
from conftest import a_part, dead_pid

from rollback_lessons import Kind, RetryPolicy, Saga, Status, Step, UndoPolicy, VirtualClock
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry


def _cut_after_a_blip(path, case: str, fail_from: int, fail_n: int, cut_at: int):
    """Run the saga of ``case``: writes ``fail_from`` .. ``+fail_n`` fail ("disk I/O error"),
    a Ctrl-C from its observer at event ``cut_at``; then recover (its owner gone). The undos
    run here, the notes, recover's report and the undos it ran."""
    calls: list[str] = []
    failing: set[str] = {"b"} if case == "halt kept" else set()
    reg = Registry()

    def undo_call(who: str, idempotency_key=None) -> None:
        if who in failing:
            raise RuntimeError(f"undo {who} fails")
        calls.append(who)

    undo = reg.add("kept_then_cut_undo", undo_call)
    refused, happened = [1 if case == "pivot uncalled" else 0], []

    def act(name: str):
        def do(state: dict) -> None:
            if name == "p" and refused[0] < 1:
                refused[0] += 1
                raise ConnectionError("p refused, nothing sent")
            if name in ("x", "d"):
                raise RuntimeError(f"{name} refused")
            happened.append(name)

        return do

    retry = RetryPolicy(max_attempts=3, initial_delay=0.0)
    a, b = (Step(n, act(n), undo.bind(who=n)) for n in "ab")
    p = Step("p", act("p"), kind=Kind.PIVOT, retry=retry)
    c, d = (Step(n, act(n), kind=Kind.RETRIABLE, retry=retry) for n in "cd")
    steps = [a, b, Step("x", act("x"), undo.bind(who="x")), p, c] if case in (
        "undo kept", "halt kept") else [a, b, p, c] if case == "pivot uncalled" else [
        a, b, p, c, d]  # fmt: skip
    policy = UndoPolicy(RetryPolicy(max_attempts=1), then="halt") if case == "halt kept" else None
    count, writes = [0], [0]
    journal = Journal(path)
    real = journal.write

    def write(statements, **kw):
        writes[0] += 1
        if fail_from <= writes[0] < fail_from + fail_n:
            raise sqlite3.OperationalError("disk I/O error")
        return real(statements, **kw)

    def observe(event) -> None:
        count[0] += 1
        if count[0] == cut_at:
            raise KeyboardInterrupt

    journal.write = write  # type: ignore[method-assign]
    saga = Saga(steps, clock=VirtualClock(), policy=policy or "continue")
    try:
        saga.run({}, journal=journal, run_id="r1", on_event=observe)
    except KeyboardInterrupt as exc:
        cut = exc
    else:
        journal.close()
        return None  # (over before the cut)
    journal.close()
    ran, calls[:] = list(calls), []
    failing.clear()
    with Journal(path) as later:  # (another process's recover, its owner gone)
        later._con.execute("UPDATE sagas SET owner_pid = ?", (dead_pid(),))
        report = recover(later, reg)
    return ran, " ".join(getattr(cut, "__notes__", [])), report, calls, happened


def _windows():
    """Every window of failing writes (from, length) and cut (event) of a small sweep."""
    return [(f, n, k) for f in range(5, 15) for n in (1, 5) for k in range(7, 14)]


@pytest.mark.parametrize(
    "case", ["undo kept", "pivot done", "halt kept", "pivot refused", "pivot uncalled"]
)
def test_what_a_run_cut_after_a_blip_says_recover_does(tmp_path, case):
    """For every window and cut: an undo the note says the journal keeps, recover runs (or
    leaves to a person); a step recover reports leaked, a note names; a pivot that happened
    here recover never calls in doubt, nor undoes across; a halt for a person the run made,
    recover honours (unless a note says it could not be written)."""
    import re

    tried = 0
    for f, n, k in a_part(_windows(), 6, name=f"kept then cut {case}"):  # (all: make soak)
        path = tmp_path / f"j{f}-{n}-{k}.db"
        got = _cut_after_a_blip(path, case, f, n, k)
        if got is None:
            continue
        ran, notes, report, calls, happened = got
        tried += 1
        back = report.recovered[0] if report.recovered else None
        where = (case, f, n, k, notes, back)
        kept = re.search(r"not known to be undone: ([\w, ]*) \(the journal keeps them", notes)
        if kept and back is not None and back.status is not Status.HALTED:
            assert set(kept.group(1).split(", ")) <= {*calls, *ran}, where
        for step in back.leaked if back is not None else ():
            assert f"'{step}'" in notes and "report it leaked" in notes, where
        if "p" in happened and back is not None:  # (unless its done was never written)
            doubt = "may have happened" in back.reason
            assert not doubt or "started, though it happened here" in notes, where
            assert calls == [], where
        if "p" not in happened and kept and back is not None:  # (attack268 F1: p's start
            assert back.status is not Status.HALTED, where  # written, never called: halted)
        if "left for a person: b, a" in notes and "itself" not in notes:
            assert calls == [], where
    assert tried > 10
