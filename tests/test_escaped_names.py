"""A class's name as an engine carries it (issue 25, harden50): a retry policy's classes
escaped as an error's record escapes them (a ``__module__`` with a lone surrogate, as
``os.fsdecode`` makes), so that the policy still matches the error; and a class name cut to
the bound of a message (a 2.5 MB ``__qualname__``), so that the record still travels.

Before: on Temporal a record with a lone surrogate was escaped (its very exception dropped)
and the policy's names were not: a step retried in process failed for good there
(``rolled_back`` where ``saga.run`` committed); a class name over the payload limit lost the
error (``ServerError('Failure exceeds size limit.')`` instead of it)."""

from __future__ import annotations

from conftest import same_outcome

from rollback_lessons import RetryPolicy, Saga, Step
from rollback_lessons.clock import VirtualClock
from rollback_lessons.policies import matches
from rollback_lessons.runners.error_record import ErrorRecord
from rollback_lessons.runners.temporal.activities import MESSAGE_LIMIT, fitted
from rollback_lessons.runners.wire import RetrySpec

Late = type("Late", (TimeoutError,), {"__module__": "m\udcff"})
Big = type("Big", (ValueError,), {"__qualname__": "B" * 2_500_000, "__module__": "mod"})


def _retried(name: str) -> Saga:
    """a fails once with ``Late`` and is retried on it (then done)."""
    tries: list[int] = []

    def a(state):
        tries.append(1)
        if len(tries) == 1:
            raise Late("late")

    policy = RetryPolicy(max_attempts=3, initial_delay=0.01, retry_on=(Late,))
    return Saga([Step("a", a, lambda s: None, retry=policy), Step("b", lambda s: None)], name=name)


def test_a_policys_class_names_are_escaped_as_an_errors_record_and_still_match():
    spec = RetrySpec.of(RetryPolicy(retry_on=(Late,)))
    [name] = spec.retry_on
    name.encode("utf-8")  # (raises on a lone surrogate)
    sent = fitted(ErrorRecord.of(Late("late"), "a")).to_exception()
    assert name == sent.lineage[0] == "m\\udcff.Late"  # type: ignore[attr-defined]
    assert matches(sent, spec.policy().retry_on)  # (the stand-in class, by name)
    assert matches(sent, (Late,))  # (the very class, kept: by name as carried)


def test_a_retry_on_a_class_of_a_module_with_a_lone_surrogate_is_retried_on_temporal(on_temporal):
    local = _retried("local").run({}, clock=VirtualClock())
    assert local.status == "committed"

    async def run(runner):
        return await runner.run(_retried("surrogate-run"), {})

    async def started(runner):
        return await (await runner.start_saga(_retried("surrogate-start"), {})).outcome()

    same_outcome(local, on_temporal(run))
    same_outcome(local, on_temporal(started))


def test_a_class_name_is_cut_to_a_messages_bound_the_names_a_group_holds_too():
    group = ExceptionGroup("both", [Big("no"), ValueError("v")])
    for record in (ErrorRecord.of(Big("no"), "b"), ErrorRecord.of(group, "b")):
        sent = fitted(record)
        names = [*sent.lineage, *(n for h in sent.held or () for n in h["lineage"])]
        assert max(map(len, names)) <= MESSAGE_LIMIT
        assert any(n.startswith("mod.BBB") and "[... cut: 2500004 characters" in n for n in names)


def test_an_error_of_a_class_named_over_the_payload_limit_is_told_as_in_process(on_temporal):
    def saga(name: str) -> Saga:
        def b(state):
            raise Big("no")

        return Saga([Step("a", lambda s: None, lambda s: None), Step("b", b)], name=name)

    local = saga("local").run({}, clock=VirtualClock())

    async def run(runner):
        return await runner.run(saga("big-name"), {})

    same_outcome(local, on_temporal(run))


def test_a_record_nested_10000_deep_is_escaped_cut_and_read_without_recursion():
    """A record read as data may hold groups nested far deeper than ``ErrorRecord.of`` makes
    (``verdicts.DEEPEST``): escaping it, cutting its names and making its stand-in walk it
    without recursion (before: RecursionError)."""
    deepest = {**vars(ErrorRecord.of(Late("late"))), "live": None}
    held = [deepest]
    for _ in range(10_000):
        held = [
            {**vars(ErrorRecord("ExceptionGroup", "", lineage=["ExceptionGroup"])), "held": held}
        ]
    record = ErrorRecord("ExceptionGroup", "g", lineage=["ExceptionGroup"], held=held)
    sent, error = fitted(record), record.to_exception()  # (no timing asserted: a CI's load)
    inner, depth = sent.held, 0
    while inner[0]["held"]:
        inner, depth = inner[0]["held"], depth + 1
    assert depth == 10_000 and inner[0]["lineage"][0] == "m\\udcff.Late"
    for _ in range(10_001):
        error = error.held[0]  # type: ignore[attr-defined]
    assert error.lineage[0] == "m\udcff.Late"  # type: ignore[attr-defined]
