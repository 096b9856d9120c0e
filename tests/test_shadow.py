"""What a run's own committed writes left in its journal (``durable.shadow``), which its
notes read when the file cannot be read back (attack263), is what the journal shows: at
every event of random sagas, with the batches kept whole and folded."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollback_lessons import Kind, RetryPolicy, Saga, Step, UndoPolicy, VirtualClock
from rollback_lessons.durable import shadow
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry

REG = Registry()
FAILS: set[str] = set()


def _undo(who: str, idempotency_key: str | None = None) -> None:
    if who in FAILS:
        FAILS.discard(who)  # (fails once)
        raise RuntimeError(f"undo {who} fails once")


UNDO = REG.add("shadow_undo", _undo)

shapes = st.lists(
    st.tuples(st.sampled_from(["undo", "no undo", "before", "retried"]), st.booleans()),
    min_size=1,
    max_size=5,
)  # (each step's kind, and whether its undo fails once)


def _saga(shape: list[tuple[str, bool]], pivot: int, fail_at: int, policy: str) -> Saga:
    """The steps of ``shape``, then (``pivot`` 1, 2) a pivot refused once and retried, and
    (2) a retriable step after it; step ``fail_at`` fails."""
    tries: dict[str, int] = {}

    def act(name: str, last: bool, retried: bool):
        def do(state: dict) -> None:
            tries[name] = tries.get(name, 0) + 1
            if retried and tries[name] == 1:
                raise ValueError("refused once")
            if last:
                raise ValueError("fails")

        return do

    retry = RetryPolicy(max_attempts=2, initial_delay=0.0)
    steps = []
    for i, (kind, _) in enumerate(shape):
        name, last, again = f"s{i}", i == fail_at, kind == "retried"
        if kind == "no undo":
            steps.append(Step(name, act(name, last, False)))
        else:
            register = "before" if kind == "before" else "after"
            steps.append(Step(name, act(name, last, again), UNDO.bind(who=name),
                              register=register, retry=retry))  # fmt: skip
    if pivot:
        steps.append(Step("p", act("p", len(shape) == fail_at, True), kind=Kind.PIVOT, retry=retry))
    if pivot == 2:
        steps.append(Step("r", act("r", False, True), kind=Kind.RETRIABLE, retry=retry))
    undo = UndoPolicy(RetryPolicy(max_attempts=2, initial_delay=0.0), then=policy)
    return Saga(steps, clock=VirtualClock(), policy=undo)


@pytest.mark.parametrize("fold", [1, 3, shadow.Shadow.FOLD])
@settings(max_examples=25, deadline=None)
@given(
    shape=shapes,
    pivot=st.integers(0, 2),
    fail_at=st.integers(0, 7),
    policy=st.sampled_from(["halt", "dead_letter"]),
)
def test_what_a_run_kept_is_what_its_journal_shows(tmp_path_factory, fold, shape, pivot,
                                                   fail_at, policy):  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shadow.Shadow, "FOLD", fold)
        saga = _saga(shape, pivot, fail_at, policy)
        _compared(patch, tmp_path_factory.mktemp("shadow") / "j.db", saga, shape)


def _compared(patch: pytest.MonkeyPatch, path, saga: Saga, shape) -> None:
    FAILS.clear()
    FAILS.update(f"s{i}" for i, (_, fails) in enumerate(shape) if fails)
    runs: list = []
    compared: list = []
    with Journal(path) as journal:
        start = journal.start

        def started(*args, **kwargs):
            runs.append(start(*args, **kwargs))
            return runs[-1]

        patch.setattr(journal, "start", started)

        def compare(event) -> None:  # (an observer's error is only printed: kept)
            run = runs[0]
            try:
                record, rows = run.shown()
                shown = (record.pivot_state, rows)
            except KeyError:  # (its row not written yet: the first write carries it)
                shown = (None, {})
            kept = run.kept_shown()
            compared.append(kept == shown or (event, kept, shown))

        saga.run({}, journal=journal, on_event=compare)
        compare("at the end")
    assert [c for c in compared if c is not True] == []
    assert len(compared) > len(shape)
