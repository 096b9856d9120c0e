"""Lesson 03 exercises: choose a policy per situation; tune a retry to be patient but brief."""

from __future__ import annotations

from typing import Any

from ...clock import VirtualClock
from ...policies import decides_in_code, resolve_policy
from ...saga import Saga, State, Step
from ...worlds.examples import order_state
from . import Exercise, Incorrect, register

SCENARIOS = {
    "refund": "The payment provider's refund endpoint answers 503 now and then; "
    "a second try usually works.",
    "temp_file": "Deleting a scratch file failed; a nightly job sweeps scratch files anyway.",
    "ledger": "Reversing a ledger entry failed, and nobody knows whether the entry is "
    "half-written; the entries undone after it assume it is gone.",
}
EXPECTED = {"refund": "retry", "temp_file": "continue", "ledger": "halt"}
WHY = {
    "refund": "the failure is transient: retrying with backoff will most likely undo it",
    "temp_file": "it is harmless to leave: record a dead letter and undo the rest",
    "ledger": "the later undos depend on it and its state is unknown: stop and hand it to "
    "a person before anything else is changed",
}


def _check_policies(choices: Any) -> str:
    if not isinstance(choices, dict):
        raise Incorrect(f"answer with a dict of scenario to policy, got {choices!r}")
    missing = [k for k in EXPECTED if k not in choices]
    if missing:
        raise Incorrect(f"choose a policy for: {', '.join(missing)}")
    for key, policy in choices.items():
        if policy not in ("continue", "retry", "halt"):
            raise Incorrect(f"{key}: {policy!r} is not one of continue, retry, halt")
    wrong = [k for k in EXPECTED if choices[k] != EXPECTED[k]]
    if wrong:
        k = wrong[0]
        raise Incorrect(f"{k}: not {choices[k]!r}. {WHY[k][0].upper()}{WHY[k][1:]}.")
    return "retry the transient failure, continue past the harmless one, halt on the unknown."


q1 = Exercise(
    id="03.1",
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
    wrong_answers=(
        'choices = {"refund": "continue", "temp_file": "continue", "ledger": "continue"}',
        'choices = {"refund": "retry", "temp_file": "halt", "ledger": "continue"}',
        'choices = {"refund": "retry"}',
        'choices = {"refund": "again", "temp_file": "continue", "ledger": "halt"}',
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


def _check_retry(policy: Any) -> str:
    try:
        policy = resolve_policy(policy)
    except (ValueError, TypeError) as exc:
        raise Incorrect(str(exc)) from None
    if policy.retry is None and not decides_in_code(policy):  # (any policy that retries)
        raise Incorrect(f"{policy.name!r} does not try the undo again: use Retry(RetryPolicy(...))")
    clock = VirtualClock()
    outcome = flaky_saga().run(order_state(), inject={"label": "fail"}, policy=policy, clock=clock)
    if outcome.dead_letters:
        attempts = outcome.dead_letters[0].attempts
        raise Incorrect(
            f"the refund was given up after {attempts} attempt(s); it needs 3 (it fails twice)"
        )
    if any(wait <= 0 for wait in clock.sleeps):
        raise Incorrect(
            f"it worked, but the waits were {clock.sleeps}: a retry with no wait hits a service "
            "that just answered 503 again at once; give it a small initial_delay (backoff)"
        )
    waited = sum(clock.sleeps)
    if waited > 1.0:
        raise Incorrect(
            f"it worked, but waited {waited:g} s in total ({clock.sleeps}); keep it within 1 s"
        )
    return f"refunded on attempt 3 after waiting {waited:g} s in total."


q2 = Exercise(
    id="03.2",
    title="Tune a retry",
    checker=_check_retry,
    answer_names=("policy",),
    setup="from rollback_lessons import Retry, RetryPolicy",
    hints=(
        "The refund fails twice, so it needs at least three attempts.",
        "The waits are initial_delay, then initial_delay * multiplier, ...: add them up.",
    ),
    solution_code=(
        "# exercise: 03.2\n"
        "policy = Retry(RetryPolicy(max_attempts=3, initial_delay=0.2, multiplier=2))"
    ),
    wrong_answers=(
        "policy = Retry(RetryPolicy(max_attempts=2))",
        "policy = Retry(RetryPolicy(max_attempts=3, initial_delay=1))",
        'policy = "continue"',
        'policy = "sometimes"',
        "policy = Retry(RetryPolicy(max_attempts=3, initial_delay=0))",  # no backoff at all
    ),
    right_answers=(
        "policy = Retry(retry=RetryPolicy(initial_delay=0.1, multiplier=3, max_attempts=4))",
        "policy = Retry(RetryPolicy(5, 0.05, 2.0, 0.2))",
        "retry = RetryPolicy(max_attempts=3, initial_delay=0.3, multiplier=1)\n"
        'policy = Retry(retry, then="halt")',
    ),
)

register(q1, q2)
