"""How long a retry policy keeps at a failure that never ends: the bound 03.2 and 10.3 check.

The bound is on what the policy does, not on what its fields say: a subclass may override
``next_delay``, ``delay`` or ``retries`` and retry for ever whatever ``max_attempts`` is
(learn74 F1). So its own ``next_delay`` is walked, on no clock at all, until it says stop
(None) or its waits pass the budget; the walk is capped, so that no answer can hang a check.
A plain ``RetryPolicy`` is measured by ``worst_wait``, which is exact for any number of
attempts. An undo policy that decides in code (its own ``decide``) is walked the same way,
its answers read as the machine reads them (``decided``): one walk, one cap, whatever the
shape of the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ...outcome import Outcome
from ...policies import RetryPolicy, UndoPolicy, decided, is_delay

WALK = 10_000  # waits walked before a policy that has not stopped is taken to retry forever
_OWN = ("next_delay", "delay", "retries", "worst_wait")


@dataclass(frozen=True)
class Worst:
    """What a policy does when every attempt fails with ``error``."""

    error: BaseException | None  # (None: a plain policy, the same for every error it retries)
    attempts: int
    waited: float
    stopped: bool  # it said stop; otherwise it was still retrying when the walk ended
    waits: tuple[float, ...] = ()

    def shown(self) -> str:
        """The waits so far, the first few of a long run: for a message."""
        head = ", ".join(f"{w:g}" for w in self.waits[:5])
        more = f", ... ({len(self.waits)} waits)" if len(self.waits) > 5 else ""
        return f"[{head}{more}]"


def plain(policy: RetryPolicy) -> bool:
    """Does ``policy`` retry as its fields say (none of RetryPolicy's rules overridden)?"""
    return all(getattr(type(policy), name) is getattr(RetryPolicy, name) for name in _OWN)


def worst(policy: RetryPolicy, errors: Iterable[BaseException], budget: float) -> Worst:
    """The first way ``policy`` goes past ``budget`` seconds of waits when every attempt
    fails with one of ``errors`` (each retried alone), or else the longest of its runs."""
    if plain(policy):
        return Worst(None, policy.max_attempts, policy.worst_wait(), stopped=True)
    return _worst_walked(policy.next_delay, errors, budget)


def worst_decided(policy: UndoPolicy, errors: Iterable[BaseException], budget: float) -> Worst:
    """``worst`` for an undo policy that decides in code: its ``decide`` walked as the
    machine reads it (a delay is a retry; "dead_letter", "halt" or anything else stops)."""
    return _worst_walked(lambda attempt, error: decided(policy, attempt, error), errors, budget)


def noted(outcome: Outcome) -> str:
    """Why a policy gave up when its answer was no wait (the engine's note: "... decided
    ..."), to end a check's feedback with: 03.2's and 10.3's say it in the same words."""
    said = [note for note in outcome.notes if " decided " in note]
    return f"; the engine noted: {said[0]}" if said else ""


Next = Callable[[int, BaseException], object]
"""After attempt n failed with an error: the wait before the next one, or anything else."""


def _worst_walked(next_wait: Next, errors: Iterable[BaseException], budget: float) -> Worst:
    longest = Worst(None, 1, 0.0, stopped=True)
    for error in errors:
        found = _walk(next_wait, error, budget)
        if not found.stopped or found.waited > budget + 1e-9:
            return found
        longest = max(longest, found, key=lambda w: w.waited)
    return longest


def _walk(next_wait: Next, error: BaseException, budget: float) -> Worst:
    waits: list[float] = []
    waited = 0.0  # (kept as it goes: summing the list each turn was 50 million additions)
    while len(waits) < WALK and waited <= budget + 1e-9:
        delay = next_wait(len(waits) + 1, error)
        if delay is None or not is_delay(delay):  # (not a wait: the run's checks say why)
            return Worst(error, len(waits) + 1, waited, True, tuple(waits))
        waits.append(float(delay))
        waited += waits[-1]
    return Worst(error, len(waits) + 1, waited, False, tuple(waits))
