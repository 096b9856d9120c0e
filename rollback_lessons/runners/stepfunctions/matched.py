"""An error as Step Functions is told it, matched to the retry rule where it is raised.

A Retry's ``ErrorEquals`` names classes (``type_name``, and the subclasses known when the
state machine was written: ``asl.known_subclasses``), and Step Functions matches the one
name the worker sends; ``saga.run`` matches by ``isinstance``. ``asl.check_retry_types``
refuses names two classes share, but only among the classes that exist when the machine is
written (issue 25): a class made later (botocore's errorfactory makes one per client, a
class defined in the step) was retried by its name on Step Functions and not in process,
and a subclass made later was retried in process and not there (the list form then said
``HistoryDiverged``, the graph form waited for a retry that never came). So the worker asks
the real classes (the policy's, the error's) what ``saga.run`` would do, and sends a name,
and a lineage for the saga machine, that make Step Functions and the machine do the same."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from ...policies import RetryPolicy, type_name
from ...saga import Saga
from ...verdicts import after_effect, timed_out
from ..error_record import ErrorRecord, cut_text
from ..owed import AFTER_EFFECT_ERRORS
from ..wire import RetrySpec
from .asl import _retriers, error_name

OTHER = "another class named "
"""Before the name of an error that only shares a retry rule's name (not its class): no
``ErrorEquals`` names it, and no policy type matches it by name (``policies.named``)."""


CAUSE_LIMIT = 32_768
"""The longest cause ``SendTaskFailure`` carries (characters)."""


def cause_of(error: ErrorRecord) -> str:
    """The record as a task failure's cause: JSON that reads back whole
    (``ErrorRecord(**json.loads(cause))``) within ``CAUSE_LIMIT``, its long texts cut with
    the note every engine writes (``cut_text``), never cut mid-JSON (harden43's leftover)."""
    data = asdict(error)
    sent, keep = json.dumps(data), CAUSE_LIMIT
    while len(sent) > CAUSE_LIMIT and keep > 64:  # (its message and its repr: halves)
        keep //= 2
        cut = {k: cut_text(v, keep, "Step Functions", CAUSE_LIMIT)
               for k, v in data.items() if isinstance(v, str) and len(v) > keep}  # fmt: skip
        sent = json.dumps({**data, **cut})
    if len(sent) <= CAUSE_LIMIT:
        return sent
    whole = len(json.dumps(data))  # (a group of thousands: its ``held`` alone is too long)
    told = f"{error.describe()[:256]} [... cut: {whole} characters, Step Functions carries "
    return json.dumps({"type": error.type[:256], "message": f"{told}{CAUSE_LIMIT}]"})


class _Rule:
    """A retry policy, and its retriers as the state machine was written with them."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.retriers: list[dict[str, Any]] = _retriers(RetrySpec.of(policy))
        self.types = (*policy.retry_on, *policy.no_retry_on)

    def retried_there(self, name: str) -> bool:
        """Does Step Functions retry an error sent as ``name`` (its first retrier that
        names it, or names ``States.ALL``, has attempts)?"""
        for retrier in self.retriers:
            equals = retrier["ErrorEquals"]
            if "States.ALL" in equals or error_name(name) in equals:
                return bool(retrier["MaxAttempts"] > 0)
        return False

    def record(self, error: BaseException, step: str, run: str | None = None) -> ErrorRecord:
        made = ErrorRecord.of(error, step, run)
        if made.fault is not None or self.policy.max_attempts <= 1:
            return made  # (an injected fault is this package's own class; no retry: moot)
        names = {type_name(t): t for t in self.types}
        lineage = [n if n not in names or issubclass(type(error), names[n]) else OTHER + n
                   for n in made.lineage]  # fmt: skip
        lineage += [type_name(t) for t in self.types
                    if issubclass(type(error), t) and type_name(t) not in lineage]  # fmt: skip
        retried = self.policy.retries(error)
        if self.retried_there(lineage[0]) != retried:
            blocked = next((t for t in self.policy.no_retry_on if issubclass(type(error), t)), None)
            allowed = next((t for t in self.policy.retry_on if issubclass(type(error), t)), None)
            chosen = allowed if retried else blocked
            lineage.insert(0, type_name(chosen) if chosen is not None else OTHER + lineage[0])
        made.lineage = list(dict.fromkeys(lineage))
        return made


class Matching:
    """Each step's action retry rule and the undo policy's, for ``Worker.matched``."""

    def __init__(self, saga: Saga, undo_retry: RetryPolicy | None) -> None:
        self.rules = {s.name: _Rule(p) for s in saga.steps if (p := Saga._retry(s)) is not None}
        self.undo = _Rule(undo_retry) if undo_retry is not None else None

    def __call__(self, call: str, error: BaseException, step: str, run: str) -> ErrorRecord:
        rule = self.undo if call == "undo" else self.rules.get(step)
        made = ErrorRecord.of(error, step, run) if rule is None else rule.record(error, step, run)
        return made if call == "undo" else _late(made, error, rule)


def _late(made: ErrorRecord, error: BaseException, rule: _Rule | None) -> ErrorRecord:
    """A group holding an error in doubt (a timeout, nested too: ``verdicts.timed_out``) is
    sent by the name a failure after its effect is caught by (``owed.AFTER_EFFECT_ERRORS``:
    a pivot's Catch then routes it to a person, as the machine halts), unless a Retry would
    then treat it otherwise than the machine does (it keeps its own name then)."""
    if made.held is None or not (timed_out(error) or after_effect(error)):
        return made
    late = AFTER_EFFECT_ERRORS[0]
    if rule is not None and (rule.policy.retries(error) or rule.retried_there(late)):
        return made
    made.lineage = [late, *made.lineage]
    return made
