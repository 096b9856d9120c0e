"""``recover`` halting a pivot saga names the steps to finish forward (attack79 F2).

A retriable step after the pivot began and failed for good, the process killed before the
run wrote its ``halted`` event: ``recover`` halted the saga, but its line (and the halted
event it writes, hence every later ``recover`` line) said "finish the steps after it forward
by hand" naming none, though its own ``Recovery.forward`` held the step. README (Pivots):
"every later recover line names them (``forward ... (after the pivot: finish by hand)``)".
"""

import pytest
from conftest import as_killed, dead_pid

from rollback_lessons import Saga, Status, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry
from rollback_lessons.graph import Parallel

registry = Registry()
UNDONE: list[str] = []


def _undo(step: str, idempotency_key: str | None = None) -> None:
    UNDONE.append(step)


undo = registry.add("fwd79.undo", _undo)


class Killed(BaseException):
    """The process dying at a journal write (nothing after it runs)."""


def _step(name: str, kind: str = "compensable") -> Step:
    if kind != "compensable":
        return Step(name, lambda state: None, None, kind=kind)
    return Step(name, lambda state: None, undo.bind(step=name))


def _saga(shape: str) -> Saga:
    """c, (a graph: Parallel(b, d)), the pivot p, then r retriable."""
    first = [_step("c")] + ([Parallel(_step("b"), _step("d"))] if shape == "graph" else [])
    return Saga([*first, _step("p", "pivot"), _step("r", "retriable")], name="trip")


def _killed_after_r_failed(tmp_path, monkeypatch, shape: str) -> Journal:
    """Run the saga, r failing for good; the process dies right after the journal write
    holding r's ``step_failed`` (before the run's ``halted`` event); its owner dead."""
    path, dead = tmp_path / "j.db", []
    real = Journal.write

    def write(self, statements, **kw):  # type: ignore[no-untyped-def]
        if dead:  # (a dead process writes nothing more)
            raise Killed
        done = real(self, statements, **kw)
        if any(e.kind == "step_failed" and e.step == "r" for e in self.events("t1")):
            dead.append(True)
            raise Killed
        return done

    monkeypatch.setattr(Journal, "write", write)
    journal = Journal(path)
    with pytest.raises(Killed):
        _saga(shape).run({}, journal=journal, run_id="t1", inject={"r": "fail"})
    monkeypatch.setattr(Journal, "write", real)
    as_killed(journal)
    journal = Journal(path)
    journal.write([("UPDATE sagas SET owner_pid = ?, owner_started = NULL", (dead_pid(),))])
    return journal


@pytest.mark.parametrize("shape", ["list", "graph"])
def test_recover_halting_past_the_pivot_names_the_step_to_finish_forward(
    tmp_path, monkeypatch, shape
):
    UNDONE.clear()
    journal = _killed_after_r_failed(tmp_path, monkeypatch, shape)
    with journal:
        kinds = [e.kind for e in journal.events("t1")]
        assert "step_failed" in kinds and "halted" not in kinds  # (the run wrote none)
        (recovered,) = recover(journal, registry).recovered
        assert recovered.status is Status.HALTED and UNDONE == []
        said = "forward r (after the pivot: finish by hand)"
        assert said in str(recovered)  # the CLI's line
        (halted,) = [e for e in journal.events("t1") if e.kind == "halted"]
        assert said in halted.details["reason"]  # the event every later line reads
        (waiting,) = recover(journal, registry).waiting
        assert said in str(waiting)
        assert str(waiting).count("forward r") == 1  # (said once)


@pytest.mark.parametrize("shape", ["list", "graph"])
def test_a_list_killed_right_after_its_pivot_says_the_later_steps_are_in_its_code(
    tmp_path, monkeypatch, shape
):
    """attack83 F2: a list killed once its pivot was done (r never begun) said "finish the
    steps after it forward by hand" naming none, the journal knowing none of them; a graph
    names r (its shape is kept)."""
    path, real, killed = tmp_path / "j.db", Journal.write, []

    def write(self, statements, **kw):  # type: ignore[no-untyped-def]
        if killed:  # (dead: it writes nothing more, its halted event naming r neither)
            raise Killed
        done = real(self, statements, **kw)
        if any(e.kind == "step_done" and e.step == "p" for e in self.events("t2")):
            killed.append(True)
            raise Killed
        return done

    monkeypatch.setattr(Journal, "write", write)
    with pytest.raises(Killed):
        _saga(shape).run({}, journal=Journal(path), run_id="t2")
    monkeypatch.setattr(Journal, "write", real)
    with Journal(path) as journal:
        journal.write([("UPDATE sagas SET owner_pid = ?, owner_started = NULL", (dead_pid(),))])
        (recovered,) = recover(journal, registry).recovered
        said = str(recovered)
    assert recovered.status is Status.HALTED
    if shape == "graph":
        assert said.endswith("; forward r (if the pivot happened: finish by hand)"), said
    else:
        assert said.endswith(
            "; forward: the steps that come after it in the saga's code (a list's steps are "
            "journalled only as they begin)"
        ), said
