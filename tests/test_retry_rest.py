"""A step that refused with nothing done and waits to retry rests: killed in its wait or in
an observer of its ``step_retry`` event, recover finds it not run (attack40 F2: it was
reported leaked, the saga ``rollback_incomplete``, for a person, while a Ctrl-C at the same
instant left nothing leaked). Its next attempt is written back before it begins, so a kill
in that attempt still leaves it leaked; one attempt that had its effect is never forgotten."""

from __future__ import annotations

import contextlib

import pytest
from test_journal_no_undo import Killed, World, undo
from test_journal_returned import _recovered

from rollback_lessons import Kind, Parallel, RetryPolicy, Saga, Status, Step, VirtualClock
from rollback_lessons.durable.journal import Journal
from rollback_lessons.errors import InjectedTimeout, JournalError

RETRY = RetryPolicy(max_attempts=3, initial_delay=1.0)


class KillIn(VirtualClock):
    """A clock whose ``n``-th wait kills the process (``world.dead``: it writes nothing more)."""

    def __init__(self, world: World, n: int) -> None:
        super().__init__()
        self.world, self.n = world, n

    def sleep(self, seconds: float) -> None:
        self.n -= 1
        if self.n == 0:
            self.world.dead = True
            raise Killed
        super().sleep(seconds)


def _tried(world: World, step: str, plan: list[str]):
    """``step``'s attempts, one per letter of ``plan``: "r" refuses (nothing done), "e" has
    its effect then times out, "k" has its effect and the process is killed in the call."""
    tries: list[int] = []

    def action(state: dict) -> None:
        how = plan[len(tries)]
        tries.append(1)
        if how == "r":
            raise ValueError(f"{step} refused")
        world.effects.append(step)
        if how == "k":
            world.dead = True
            raise Killed
        raise InjectedTimeout(step, "fail_after_effect", f"{step} timed out after its effect")

    return action


def _run(tmp_path, world: World, saga: Saga, clock: VirtualClock, **run) -> tuple:
    journal = Journal(tmp_path / "j.db")
    world.wrap(journal)  # (killed: it writes nothing more)
    with contextlib.suppress(Killed):
        saga.run({}, journal=journal, run_id="r", clock=clock, **run)
    recovered, states, _ = _recovered(tmp_path, world, journal)
    return recovered, states


def _saga(world: World, plan: list[str], register: str | None, parallel: bool, kind=None):
    did = undo.bind(world=world.name, step="s0")
    s0 = Step("s0", lambda state: world.effects.append("s0"), did)
    bound = undo.bind(world=world.name, step="s1") if register else None
    s1 = Step("s1", _tried(world, "s1", plan), bound, register=register or "after", retry=RETRY,
              kind=kind or Kind.COMPENSABLE)  # fmt: skip
    s2 = Step("s2", lambda state: None, undo.bind(world=world.name, step="s2"))
    return Saga([s0, Parallel(s1, s2)] if parallel else [s0, s1])


@pytest.mark.parametrize("parallel", [False, True], ids=["list", "group"])
@pytest.mark.parametrize("register", ["after", None], ids=["undo-after", "no-undo"])
@pytest.mark.parametrize("plan", [["r"], ["r", "r"]], ids=["once", "twice"])
def test_killed_in_the_wait_after_a_clean_refusal_nothing_is_leaked(
    tmp_path, parallel, register, plan
):
    world = World(f"rest-{parallel}-{register}-{len(plan)}")
    saga = _saga(world, [*plan, "r"], register, parallel)
    recovered, states = _run(tmp_path, world, saga, KillIn(world, len(plan)))
    assert recovered.status is Status.ROLLED_BACK and recovered.leaked == ()
    assert "s1" not in world.effects and "s0" in world.undone
    assert states.get("s1", "not_run") == "not_run"  # (a step with no undo has no row here)


@pytest.mark.parametrize("parallel", [False, True], ids=["list", "group"])
def test_killed_in_a_step_retry_observer_nothing_is_leaked(tmp_path, parallel):
    world = World(f"rest-obs-{parallel}")

    def watch(event) -> None:
        if event.kind == "step_retry":
            world.dead = True
            raise Killed

    saga = _saga(world, ["r", "r"], "after", parallel)
    recovered, _ = _run(tmp_path, world, saga, VirtualClock(), on_event=watch)
    assert recovered.status is Status.ROLLED_BACK and recovered.leaked == ()


@pytest.mark.parametrize("parallel", [False, True], ids=["list", "group"])
@pytest.mark.parametrize("register", ["after", None], ids=["undo-after", "no-undo"])
def test_killed_in_the_attempt_after_a_refusal_it_is_leaked(tmp_path, parallel, register):
    """Its intent was written back before that attempt began."""
    world = World(f"rest-k-{parallel}-{register}")
    saga = _saga(world, ["r", "k"], register, parallel)
    recovered, states = _run(tmp_path, world, saga, VirtualClock())
    assert recovered.leaked == ("s1",) and recovered.status is Status.ROLLBACK_INCOMPLETE
    assert "s1" in world.effects and "s1" not in world.undone
    assert states.get("s1", "leaked") == "leaked"


def test_an_attempt_that_had_its_effect_is_not_forgotten_by_a_later_refusal(tmp_path):
    world = World("rest-eff")
    saga = _saga(world, ["e", "r", "r"], "after", False)
    recovered, _ = _run(tmp_path, world, saga, KillIn(world, 2))
    assert recovered.leaked == ("s1",) and "s1" in world.effects


def test_a_pivot_that_refused_and_waits_is_rolled_back_across(tmp_path):
    """README: "One whose pivot refused before any effect (recorded `refused`) is rolled
    back, as in process" (a Ctrl-C in that wait rolls back): killed there, it was halted."""
    world = World("rest-pivot")
    saga = _saga(world, ["r", "r"], None, False, kind=Kind.PIVOT)
    recovered, _ = _run(tmp_path, world, saga, KillIn(world, 1))
    assert recovered.status is Status.ROLLED_BACK and world.undone == ["s0"]


def test_the_next_attempt_is_not_made_if_it_cannot_be_written(tmp_path):
    """The write that says it begins fails (a disk full for a moment): the attempt is not
    made, the step fails with the journal's error, and the journal says it never ran."""
    World("rest-full")  # (the undos' world)
    made: list[str] = []
    s0 = Step("s0", lambda state: None, undo.bind(world="rest-full", step="s0"))
    tries: list[int] = []

    def s1(state: dict) -> None:
        tries.append(1)
        if len(tries) == 1:
            raise ValueError("refused")
        made.append("s1")

    saga = Saga([s0, Step("s1", s1, undo.bind(world="rest-full", step="s1"), retry=RETRY)])
    journal = Journal(tmp_path / "j.db")
    real, failed = journal.write, []

    def write(statements, **kw):  # type: ignore[no-untyped-def]
        again = any("state = ?" in sql and p[0] == "intent" for sql, p in statements)
        if again and not failed:
            failed.append(1)
            raise __import__("sqlite3").OperationalError("database or disk is full")
        return real(statements, **kw)

    journal.write = write  # type: ignore[method-assign]
    outcome = saga.run({}, journal=journal, run_id="r", clock=VirtualClock())
    assert failed and made == [] and len(tries) == 1
    assert outcome.status is Status.ROLLED_BACK and outcome.leaked == ()
    # one typed line, the storage's error its cause (attack42 F2: the raw sqlite3 error)
    assert type(outcome.error) is JournalError and "disk is full" in str(outcome.error)
    assert "next attempt of s1" in str(outcome.error)
    assert type(outcome.error.__cause__).__name__ == "OperationalError"
    with Journal(tmp_path / "j.db") as after:
        assert {u.step: u.state for u in after.undos("r")} == {"s0": "done", "s1": "not_run"}
