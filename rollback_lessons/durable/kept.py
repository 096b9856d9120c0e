"""The undo policy a journal keeps for ``recover``, so a resumed rollback obeys the policy
its run had (retry waits and retries, halt leaves the rest pending)."""

from __future__ import annotations

import builtins
import json
from dataclasses import asdict

from ..policies import UndoPolicy, UnsupportedPolicy, code_of
from ..runners.wire import PolicySpec, RetrySpec


class UnjournaledPolicy(UnsupportedPolicy):
    """An undo policy a journal cannot write down, so ``recover`` could not obey it after a
    crash: refused before the saga starts."""


def policy_data(policy: UndoPolicy) -> str:
    """``policy`` as the JSON a journal keeps (``wire.PolicySpec``), or UnjournaledPolicy:
    a policy of its own ``decide`` is code, and exception types other than Python's own
    would come back after a crash as stand-ins that match nothing raised here."""
    if (code := code_of(policy)) is not None:
        raise UnjournaledPolicy(
            f"a journal cannot keep the undo policy {type(policy).__name__}: it decides in "
            f"Python ({code}), so recover could not obey it after a crash. Use a "
            "policy of data (UndoPolicy(RetryPolicy(...), then=...)), or run without a journal"
        )
    spec = PolicySpec.of(policy)
    if spec.retry is not None:
        foreign = [
            n for n in spec.retry.retry_on + spec.retry.non_retryable
            if not isinstance(getattr(builtins, n, None), type)
        ]  # fmt: skip
        if foreign:
            raise UnjournaledPolicy(
                f"a journal cannot keep the undo policy's exception types {', '.join(foreign)}:"
                " recover could only match them by name; use Python's own exception types"
                " (OSError, TimeoutError, ...) in a journalled saga's undo policy"
            )
    return json.dumps(asdict(spec))


def policy_of(data: str | None) -> UndoPolicy | None:
    """``policy_data``'s inverse (None: a saga journalled before policies were kept)."""
    if data is None:
        return None
    found = json.loads(data)
    retry = RetrySpec(**found["retry"]) if found.get("retry") else None
    return PolicySpec(retry, found["then"]).policy("")
