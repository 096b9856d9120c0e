"""A Ctrl-C (or sys.exit, or an error whose repr raises one) in the cancel function past the
irreversible step (attack36 F5, attack37 F1 and F2).

README: "a saga whose irreversible step started is never compensated across it", and "going
forward, a Ctrl-C anywhere (..., in the cancel function) fails the run there". Raised in the
cancel function asked as the pivot (or the step after it) returned, ``saga.run`` undid every
step before the email, which had been sent: the list driver told the machine a stop, which
rolls back across the pivot. Now, on every driver and with a journal, it fails the run there
as the same Ctrl-C in an observer of that step's done event does: halted for a person,
nothing undone, then re-raised.
"""

from __future__ import annotations

import asyncio
from functools import partial

import pytest

from rollback_lessons import Saga, Step, VirtualClock
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry
from rollback_lessons.rules import Kind

REGISTRY = Registry()
WORLD: list[str] = []
UNDO = REGISTRY.add(
    "past_pivot.undo", lambda name, idempotency_key=None: WORLD.append(f"undo {name}")
)


def _saga(journalled: bool, on_event=None) -> Saga:
    def act(name, state):
        WORLD.append(name)

    def undo(name):
        return UNDO.bind(name=name) if journalled else (lambda state: WORLD.append(f"undo {name}"))

    return Saga(
        [Step("s0", partial(act, "s0"), undo("s0")), Step("s1", partial(act, "s1"), undo("s1")),
         Step("email", partial(act, "email"), None, kind=Kind.PIVOT),
         Step("ship", partial(act, "ship"), None, kind=Kind.RETRIABLE)],
        on_event=on_event,
    )  # fmt: skip


def _run(saga: Saga, driver: str, **options):
    if driver == "arun":
        return asyncio.run(saga.arun({}, clock=VirtualClock(), **options))
    if driver == "completion":
        return saga.run({}, clock=VirtualClock(), completion=["s0"], **options)
    return saga.run({}, clock=VirtualClock(), **options)


def _raised(run) -> BaseException:
    try:
        run()
    except BaseException as exc:  # (what it raised, and its notes, are the story)
        return exc
    raise AssertionError("nothing was raised")


class Loud(Exception):
    """An error whose repr raises a Ctrl-C (attack37 F2): heard as that Ctrl-C."""

    def __repr__(self) -> str:
        raise KeyboardInterrupt


@pytest.mark.parametrize("journalled", [False, True], ids=["", "journal"])
@pytest.mark.parametrize("cut", [KeyboardInterrupt, SystemExit, Loud])
@pytest.mark.parametrize("when", ["email", "ship"])
@pytest.mark.parametrize("driver", ["run", "completion", "arun"])
def test_a_ctrl_c_in_the_cancel_function_past_the_pivot_undoes_nothing(
    tmp_path, driver, when, cut, journalled
):
    def cancel() -> bool:
        if WORLD and WORLD[-1] == when:
            raise cut()
        return False

    def told(event) -> None:  # (the same instant, in an observer of the step's done event)
        if event.kind == "step_done" and event.step == when:
            raise KeyboardInterrupt if cut is Loud else cut()

    WORLD.clear()
    expected = _raised(lambda: _run(_saga(False, told), driver))
    assert ["s0", "s1", "email", "ship"][: 3 + (when == "ship")] == WORLD
    WORLD.clear()
    options = {"journal": Journal(tmp_path / "j.db"), "run_id": "r"} if journalled else {}
    got = _raised(lambda: _run(_saga(journalled), driver, cancel=cancel, **options))
    assert type(got) is type(expected) is (KeyboardInterrupt if cut is Loud else cut)
    assert not any(w.startswith("undo") for w in WORLD), WORLD
    forward = ["rollback halted; forward ship (after the pivot: finish by hand)"]  # (F3)
    said = (
        ["rollback halted; left for a person: s1, s0", *forward]
        if when == "email"
        else [
            "rollback halted: every step was done (nothing left forward), its irreversible step "
            "too, but the run failed before its commit was recorded; undos not to run (its pivot "
            "happened): s1, s0"
        ]
    )  # (attack91 F3: cut once ship was done, every step was)
    assert got.__notes__ == expected.__notes__ == said
    if journalled:
        journal = options["journal"]
        assert journal.saga("r").status == "halted"
        assert recover(journal, REGISTRY).recovered == ()  # (nothing left to recover)
        assert not any(w.startswith("undo") for w in WORLD), WORLD
        journal.close()


@pytest.mark.parametrize("driver", ["run", "completion"])
def test_an_error_whose_repr_raises_a_ctrl_c_in_the_cancel_function_is_that_ctrl_c(driver):
    """attack37 F2: raised by the cancel function as s1 returned (no pivot), its repr's
    Ctrl-C came as the run failed: nothing undone, "interrupted during the rollback" though
    no undo had run. Now heard as a Ctrl-C in the function: s1 done, all undone, re-raised."""
    WORLD.clear()

    def cancel() -> bool:
        if WORLD and WORLD[-1] == "s1":
            raise Loud()
        return False

    def act(name: str, state: object) -> None:
        WORLD.append(name)

    def undo(name: str, state: object) -> None:
        WORLD.append(f"undo {name}")

    saga = Saga([Step(s, partial(act, s), partial(undo, s)) for s in ("s0", "s1", "s2")])
    got = _raised(lambda: _run(saga, driver, cancel=cancel))
    assert type(got) is KeyboardInterrupt
    assert WORLD[-2:] == ["undo s1", "undo s0"] and "s2" not in WORLD, WORLD


def test_a_task_cancelled_once_its_saga_committed_says_so():
    """attack37 F6: ``arun``'s task cancelled as the saga committed (its observer of the
    commit cancels it): CancelledError with a ``committed`` outcome and no word of why the
    cancel undid nothing. Its note says so now."""

    async def scenario() -> BaseException:
        task: asyncio.Task | None = None

        def told(event) -> None:
            if event.kind == "committed" and task is not None:
                task.cancel()

        saga = _saga(False, told)
        task = asyncio.ensure_future(saga.arun({}, clock=VirtualClock()))
        try:
            await task
        except asyncio.CancelledError as exc:
            return exc
        raise AssertionError("not cancelled")

    WORLD.clear()
    got = asyncio.run(scenario())
    assert got.outcome.status == "committed"  # type: ignore[attr-defined]
    assert got.__notes__ == [
        "rollback: the cancel was heard once the saga had committed: nothing to undo"
    ]


@pytest.mark.parametrize("journalled", [False, True])
def test_a_run_broken_while_its_pivot_waits_in_doubt_is_never_compensated_across(
    tmp_path, journalled
):
    """attack43 F5: the pivot timed out (it may have happened) and waits to retry; the run
    breaks meanwhile with no step's failure (a Ctrl-C in the cancel function here; asyncio.run's
    end in the attack): the pivot ends failed in doubt, and the run was rolled back across it,
    the step before it undone. Now it halts for a person, nothing undone, as a list's run."""
    import asyncio

    from rollback_lessons import RetryPolicy, Status

    done = WORLD
    done.clear()
    tried: list[int] = []

    def pivot(state: dict) -> None:
        tried.append(1)
        if len(tried) == 1:
            raise TimeoutError("no answer: it may have happened")

    def asked() -> bool:
        if tried:
            raise KeyboardInterrupt("Ctrl-C in the cancel function, in the pivot's wait")
        return False

    retry = RetryPolicy(max_attempts=3, initial_delay=1.0, retry_on=(TimeoutError,))
    saga = Saga([Step("a", lambda s: done.append("a"), lambda s: done.append("undo a")),
                 Step("p", pivot, kind=Kind.PIVOT, retry=retry),
                 Step("r", lambda s: None, kind=Kind.RETRIABLE)])  # fmt: skip
    options = {"journal": Journal(tmp_path / "j.db"), "run_id": "r"} if journalled else {}
    if journalled:  # (the journal needs a registered undo: the same one, by name)
        saga = Saga([Step("a", lambda s: done.append("a"), UNDO.bind(name="a")), *saga.steps[1:]])
    with pytest.raises(KeyboardInterrupt) as caught:
        asyncio.run(saga.arun({}, cancel=asked, clock=VirtualClock(), **options))
    assert done == ["a"] and "rollback halted; left for a person: a" in caught.value.__notes__
    if journalled:
        assert options["journal"].saga("r").status == Status.HALTED.value


def test_a_task_cancelled_as_its_pivot_runs_says_the_cancel_was_declined():
    """attack44 F3: the caller's task cancelled (a SIGTERM turned into ``task.cancel``, as
    the README advises) while the pivot ran: declined, the run went on and committed, and
    the CancelledError's note said the cancel "came once the saga had committed"."""
    import asyncio

    from rollback_lessons.schedule import PAST_PIVOT

    async def send(state: dict) -> None:
        await asyncio.sleep(0.2)

    saga = Saga([Step("a", lambda s: None, lambda s: None),
                 Step("p", lambda s: send(s), kind=Kind.PIVOT),
                 Step("c", lambda s: None, kind=Kind.RETRIABLE)])  # fmt: skip

    async def main() -> BaseException:
        task = asyncio.ensure_future(saga.arun({}))
        await asyncio.sleep(0.05)  # (the pivot runs)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError as exc:
            return exc
        raise AssertionError("not cancelled")

    said = asyncio.run(main())
    assert said.outcome.status.value == "committed"  # type: ignore[attr-defined]
    assert said.__notes__ == [f"rollback: {PAST_PIVOT}"]
