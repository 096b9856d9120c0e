"""Lesson 03 exercises: choose a policy per situation; tune a retry to be patient but brief."""

from __future__ import annotations

from typing import Any

from ..._words import counted
from ...clock import VirtualClock
from ...policies import RetryPolicy, UndoPolicy, decides_in_code, resolve_policy
from ...saga import Saga, State, Step
from ...worlds.examples import order_state
from . import Exercise, Incorrect, canonical, choose, forall, register
from .patience import WALK, noted, worst, worst_decided

SCENARIOS = {
    "refund": "The payment provider's refund endpoint answers 503 now and then; "
    "a second try usually works.",
    "temp_file": "Deleting a scratch file failed; a nightly job sweeps scratch files anyway.",
    "ledger": "Reversing a ledger entry failed, and nobody knows whether the entry is "
    "half-written; the entries undone after it assume it is gone.",
}
EXPECTED = {"refund": "retry", "temp_file": "continue", "ledger": "halt"}
POLICIES = ("continue", "retry", "halt")
WHY = {
    "refund": "the failure is transient: retrying with backoff will most likely undo it",
    "temp_file": "it is harmless to leave: record a dead letter and undo the rest",
    "ledger": "the later undos depend on it and its state is unknown: stop and hand it to "
    "a person before anything else is changed",
}


def _check_policies(choices: Any) -> str:
    if not isinstance(choices, dict):
        raise Incorrect(f"answer with a dict of scenario to policy, got {choices!r}")
    by_key = {canonical(k): k for k in EXPECTED}
    given: dict[str, Any] = {}
    for key, value in choices.items():
        scenario = by_key.get(canonical(key))
        if scenario is None:
            raise Incorrect(f"{key!r} is not a scenario; the scenarios are: {', '.join(EXPECTED)}")
        given[scenario] = value
    missing = [k for k in EXPECTED if k not in given]
    if missing:
        raise Incorrect(f"choose a policy for: {', '.join(missing)}")
    chosen = {k: choose(v, POLICIES, k) for k, v in given.items()}
    for k in EXPECTED:
        if chosen[k] != EXPECTED[k]:
            raise Incorrect(f"{k}: not {chosen[k]!r}. {WHY[k][0].upper()}{WHY[k][1:]}.")
    return "retry the transient failure, continue past the harmless one, halt on the unknown."


LESSON_IMPORTS = (
    "from rollback_lessons import VirtualClock\n"
    "from rollback_lessons.outcome import compare_table\n"
    "from rollback_lessons.worlds.examples import order_saga, order_state\n"
    "from rollback_lessons.worlds.examples import folder_saga, folder_state\n"
    "from rollback_lessons import Retry, RetryPolicy\n"
    "from rollback_lessons.lab.widgets import RollbackLab\n"
    "from IPython.display import Image\n"
    "from rollback_lessons.lab import viz\n"
    "from rollback_lessons.lab.exercises import ____, lesson03\n"
)
"""What lesson 03 has imported before its exercises (``Exercise.setup``: a test
compares it with the notebook)."""


q1 = Exercise(
    id="03.1",
    setup=LESSON_IMPORTS,
    title="Choose a policy for each failed undo",
    checker=_check_policies,
    answer_names=("choices",),
    hints=(
        "Ask of each: would trying again help? Is it harmless to leave? "
        "Do later undos depend on it?",
        "halt is for when going on could make things worse.",
    ),
    solution_code=(
        '# exercise: 03.1\nchoices = {"refund": "retry", "temp_file": "continue", "ledger": "halt"}'
    ),
)


def flaky_saga(failures: int = 2) -> Saga:
    """The refund (undo of pay) fails ``failures`` times, then works."""
    calls = {"n": 0}

    def refund(state: State) -> None:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise ConnectionError("503 Service Unavailable")
        state["paid"] = 0

    return Saga(
        [
            Step("pay", lambda s: s.update(paid=30), refund, label="take 30"),
            Step("label", lambda s: s.update(label="LBL-1"), lambda s: s.update(label=None)),
        ],
        name="flaky",
    )


FAILURES = (0, 1, 2)
"""How many times the refund fails before it works: the lesson's twice, and fewer."""


def _check_retry(policy: Any) -> str:
    if isinstance(policy, str):
        policy = choose(policy, POLICIES, "policy")
    if isinstance(policy, RetryPolicy):
        raise Incorrect(
            "a RetryPolicy says how to retry; the undo policy that uses it is "
            "Retry(RetryPolicy(...))"
        )
    try:
        policy = resolve_policy(policy)
    except (ValueError, TypeError) as exc:
        raise Incorrect(str(exc)) from None
    if policy.retry is None and not decides_in_code(policy):  # (any policy that retries)
        raise Incorrect(f"{policy.name!r} does not try the undo again: use Retry(RetryPolicy(...))")
    waits: dict[int, list[float]] = {}

    def holds(failures: int) -> None:
        clock = VirtualClock()
        outcome = flaky_saga(failures).run(
            order_state(), inject={"label": "fail"}, policy=policy, clock=clock
        )
        times = "once" if failures == 1 else f"{failures} times"
        if (
            (outcome.dead_letters or outcome.pending)
            and policy.retry is not None
            and not policy.retry.retries(ConnectionError("503"))
        ):
            raise Incorrect(
                "your RetryPolicy does not retry a ConnectionError (a 503): look at its "
                "retry_on and no_retry_on"
            )
        if outcome.dead_letters or outcome.pending:
            undos = [e for e in outcome.events if e.kind == "undo" and e.step == "pay"]
            attempts = max((e.details["attempt"] for e in undos), default=0)
            then = "left as a dead letter" if outcome.dead_letters else "and the rollback halted"
            raise Incorrect(
                f"when the refund fails {times} with a 503, it was given up after "
                f"{counted(attempts, 'attempt')}, {then}; it needs {failures + 1}"
                f"{noted(outcome)}"
            )
        if any(wait <= 0 for wait in clock.sleeps):
            raise Incorrect(
                f"when the refund fails {times}, it worked, but the waits were {clock.sleeps}: "
                "a retry with no wait hits a service that just answered 503 again at once; "
                "wait a moment before each new attempt: a wait above 0 (initial_delay, capped by "
                "max_delay)"
            )
        if sum(clock.sleeps) > BUDGET + 1e-9:  # more than float rounding over 1 s
            raise Incorrect(
                f"when the refund fails {times}, it worked, but waited "
                f"{sum(clock.sleeps):.12g} s in total ({clock.sleeps}); keep it within 1 s"
            )
        waits[failures] = clock.sleeps

    forall(FAILURES, holds, size=lambda failures: -failures)  # the lesson's case first
    _check_worst(policy)
    return f"refunded on attempt 3 after waiting {sum(waits[2]):g} s in total."


BUDGET = 1.0  # seconds of waits, in all, the refund may take
DOWN = ConnectionError("503 Service Unavailable")  # what flaky_saga's refund raises


def _check_worst(policy: UndoPolicy) -> None:
    """The bound is on the policy: a refund that keeps failing waits 1 s at most. Its
    fields, its own RetryPolicy or its own ``decide``: one walk, one cap (``patience``)."""
    if policy.retry is not None and not decides_in_code(policy):
        found = worst(policy.retry, [DOWN], BUDGET)
    else:
        found = worst_decided(policy, [DOWN], BUDGET)
    if not found.stopped:
        within = "within 1 s" if found.waited > BUDGET + 1e-9 else f"in {WALK} waits"
        raise Incorrect(
            f"if the refund keeps failing, your policy was still retrying it after "
            f"{len(found.waits)} waits {found.shown()}, {found.waited:.12g} s in all, and "
            f"never stopped {within}: keep the waits within 1 s whatever the refund does, "
            "then give up (a dead letter or a halt)"
        )
    if found.waited > BUDGET + 1e-9:
        raise Incorrect(
            f"if the refund keeps failing, your policy tries it {found.attempts} "
            f"times and waits {found.waited:.12g} s in all, more than 1 s: keep the waits "
            "within 1 s whatever the refund does (fewer attempts, or shorter waits)"
        )


q2 = Exercise(
    id="03.2",
    setup=LESSON_IMPORTS,
    title="Tune a retry",
    checker=_check_retry,
    answer_names=("policy",),
    hints=(
        "The refund fails twice, so it needs at least three attempts.",
        "The waits are initial_delay, then initial_delay * multiplier, ...: add them up.",
        "Getting it refunded is a number of attempts; within 1 s is the waits added up: "
        "which of RetryPolicy's numbers sets each, and which one keeps a wait from being 0?",
    ),
    solution_code=(
        "# exercise: 03.2\n"
        "policy = Retry(RetryPolicy(max_attempts=3, initial_delay=0.2, multiplier=2))"
    ),
)

register(q1, q2)
