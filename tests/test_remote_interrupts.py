"""A BaseException that is not an Exception (a Ctrl-C, ``sys.exit``, a library's own) raised
by a step's action or an undo run as a Temporal activity or a DBOS step (issue 25's
leftovers): told to the machine as ``saga.run`` tells it (a step cut short fails for good,
never retried, in doubt: leaked unless its undo was logged before it; an undo's ends the
rollback, halted, the rest pending), then re-raised by the process that started the run once
its outcome is read, with ``saga.run``'s notes. Before: Temporal called it a clean failure
(``rolled_back``, b not leaked) or a dead letter, and returned; DBOS raised it at once with
nothing undone."""

from __future__ import annotations

import pytest

from rollback_lessons import RetryPolicy, Saga, Step

pytestmark = pytest.mark.usefixtures("no_run_left_behind")


class LibraryStop(BaseException):
    """A library's own BaseException (not an Exception)."""


KINDS = [KeyboardInterrupt, SystemExit, LibraryStop]


def _saga(world: list[str], kind: type[BaseException], where: str, name: str) -> Saga:
    """a, b, c; ``where`` = "step": b's action raises ``kind`` (after its effect; b retried
    on anything, so a retry would show); "undo": c fails, and b's undo raises ``kind``."""

    def act(step):
        def action(state):
            world.append(f"do {step}")
            if step == "b" and where == "step":
                raise kind("cut")
            if step == "c" and where == "undo":
                raise ValueError("c refused")

        return action

    def undo(step):
        def undo_(state):
            if step == "b" and where == "undo":
                raise kind("cut")
            world.append(f"undo {step}")

        return undo_

    retry = RetryPolicy(max_attempts=3, initial_delay=0.01, retry_on=(BaseException,))
    return Saga(
        [Step(s, act(s), undo(s), retry=retry if s == "b" else None) for s in "abc"], name=name
    )


def _in_process(kind, where, **options):
    world: list[str] = []
    with pytest.raises(kind) as raised:
        _saga(world, kind, where, "local").run({}, **options)
    return world, raised.value.__notes__


def _same_story(kind, where, world, raised, **options) -> None:
    """The world as ``saga.run`` leaves it, the same exception type, saga.run's notes word
    for word (the interruption named by its type: the engines' machine said ``SystemExit('cut')``
    of its stand-in, attack24's L2)."""
    assert isinstance(raised, kind) and not isinstance(raised, Exception)
    local_world, local_notes = _in_process(kind, where, **options)
    assert world == local_world
    notes = raised.__notes__
    assert notes == local_notes
    if where == "step":  # (b cut short: in doubt, no undo logged before it)
        assert world.count("do b") == 1
        assert "rollback: not undone (no undo logged for it): b" in notes
    else:
        assert "undo a" not in world
        assert any("during the undo of b; not known to be undone: b, a" in n for n in notes)


# -- Temporal ---------------------------------------------------------------------------


def _on_temporal(on, saga, **options):
    async def scenario(runner):
        try:  # (caught here: a KeyboardInterrupt at a task's top leaves its event loop)
            return await runner.run(saga, {}, **options)
        except BaseException as exc:
            return exc

    return on(scenario)


CASES = [(kind, where) for where in ("step", "undo") for kind in KINDS]


@pytest.mark.parametrize(("kind", "where"), CASES, ids=lambda v: getattr(v, "__name__", v))
def test_a_base_exception_in_a_temporal_activity_tells_saga_runs_story(on_temporal, kind, where):
    world: list[str] = []
    raised = _on_temporal(on_temporal, _saga(world, kind, where, f"t-{where}"))
    _same_story(kind, where, world, raised)


def test_a_ctrl_c_in_a_temporal_branch_is_cut_short_too(on_temporal):
    """The graph form (a branch's activity) too."""
    world: list[str] = []
    saga = _saga(world, KeyboardInterrupt, "step", "t-graph")
    raised = _on_temporal(on_temporal, saga, undo_order="reverse_start")
    _same_story(KeyboardInterrupt, "step", world, raised, undo_order="reverse_start")


# -- DBOS -------------------------------------------------------------------------------


def _on_dbos(runner, saga, **options):
    try:
        return runner.run(saga, {}, **options)
    except BaseException as exc:
        return exc


@pytest.mark.parametrize(("kind", "where"), CASES, ids=lambda v: getattr(v, "__name__", v))
def test_a_base_exception_in_a_dbos_step_tells_saga_runs_story(dbos_runner, kind, where):
    world: list[str] = []
    raised = _on_dbos(dbos_runner, _saga(world, kind, where, f"d-{where}"))
    _same_story(kind, where, world, raised)


def test_a_dead_letter_before_a_sys_exit_is_noted_as_saga_run_notes_it(dbos_runner):
    """attack24's L2: the engines told the notes again, dropping a dead letter's error and
    attempts ("rollback: undo of c (dead letter)"); they are the machine's, as in process."""

    def make(name: str) -> Saga:
        def refuse(state):
            raise ConnectionError("flaky")

        def leave(state):
            raise SystemExit(3)

        none = lambda s: None  # noqa: E731
        steps = [Step("a", none, none), Step("b", none, leave), Step("c", none, refuse)]
        return Saga([*steps, Step("d", lambda s: 1 / 0)], name=name)

    with pytest.raises(SystemExit) as local:
        make("l2-local").run({}, policy="continue")
    raised = _on_dbos(dbos_runner, make("l2-dbos"), policy="continue")
    assert isinstance(raised, SystemExit)
    assert raised.__notes__ == local.value.__notes__
    assert raised.__notes__[0] == (
        "rollback: undo of c: ConnectionError('flaky') after 1 attempt (dead letter)"
    )


@pytest.mark.parametrize("at_once", [False, True])
def test_a_ctrl_c_in_a_dbos_branch_is_cut_short_too(dbos_runner, at_once):
    """The graph form, its branches one after the other or at once (child workflows)."""
    world: list[str] = []
    saga = _saga(world, KeyboardInterrupt, "step", f"d-graph-{at_once}")
    more = {"at_once": True} if at_once else {}
    raised = _on_dbos(dbos_runner, saga, undo_order="reverse_start", **more)
    _same_story(KeyboardInterrupt, "step", world, raised, undo_order="reverse_start")
