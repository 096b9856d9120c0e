"""What ``explore`` is given, checked before any run (attack202 F3: a bad policy name was
found once runs had begun, ``policies=[None]`` ran as the saga's default, ``restored=5``
failed after a run with a bare TypeError, ``max_faults=1.5`` with Python's own), and the
state it judges runs by (F2: a state that cannot be copied was judged by its stand-ins,
two equal strings: a refund that did nothing passed)."""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._checks import check_flag
from .calls import answering, check_observer
from .events import describe
from .policies import resolve_policy
from .saga import Saga
from .snapshots import Uncopied, snapshot

NOT_JUDGED = "not judged"
"""How the violation of a run whose state could not be copied begins."""


def check_input(
    saga: Any,
    state: Mapping[str, Any] | Callable[[], Any] | None,
    max_faults: Any,
    policies: Iterable[Any],
    restored: Any,
    orders: Any = False,
) -> tuple[tuple[Any, ...], Callable[..., Any]]:
    """One typed error for what ``explore`` cannot use, before anything runs; the policies
    as a tuple, taken once (attack219 F1: a generator was used up by this check, and the
    runs then saw none: "0 runs, 0 violate an invariant", a broken saga passed)."""
    if not isinstance(saga, Saga):
        raise TypeError(f"explore needs a Saga, got {type(saga).__name__}")
    if isinstance(max_faults, bool) or not hasattr(type(max_faults), "__index__"):
        raise TypeError(f"max_faults must be a whole number, got {max_faults!r}")
    check_flag(orders, "orders")  # (attack234 F3: "no" ran every order)
    if operator.index(max_faults) < 0:  # (one with __index__ only: attack238 F2)
        raise ValueError(f"max_faults must be 0 or more, got {max_faults}")
    if isinstance(policies, str | bytes | Mapping) or not isinstance(policies, Iterable):
        raise TypeError(f"policies must be a list of policy names, got {policies!r}")
    given = tuple(policies)
    if not given:  # (none: a check of nothing, passed: L1)
        raise ValueError(f"policies must name one policy or more, got {policies!r}")
    for policy in given:
        resolve_policy(policy)  # (UnknownPolicyError, naming the ones there are)
    if not callable(restored) or isinstance(restored, type) or not _takes_two(restored):
        raise TypeError(f"restored must be a function of (before, after), got {restored!r}")
    check_observer(restored, "restored")  # (attack234 F1: its coroutine read as True, passed)
    if isinstance(state, Mapping):
        try:
            snapshot(state)
        except Exception as exc:
            raise TypeError(uncopied(describe(exc))) from None
    return given, _judged(answering(restored, "restored"))  # (a coroutine: refused)


def _judged(restored: Callable[..., Any]) -> Callable[..., Any]:
    """``restored``, whose answer must be True or False (attack238 F4: a mock's, or "no",
    was read as restored by its truth, and a saga whose undos did nothing passed)."""

    def judge(before: Any, after: Any) -> Any:
        said = restored(before, after)
        kind = type(said)  # (numpy's bool_ too)
        if kind.__name__ in ("bool", "bool_") or (kind is int and said in (0, 1)):
            return said
        raise TypeError(
            f"restored returned {type(said).__name__} {repr(said)[:60]}, not True or False: "
            "it answers whether the world is as it was"
        )

    return judge


def _takes_two(restored: Callable[..., Any]) -> bool:
    """Whether ``restored`` can be called with (before, after) (attack219 F2: one taking
    one argument let the first run's steps happen, then raised Python's own TypeError);
    a callable whose signature Python cannot read is taken at its word."""
    try:
        inspect.signature(restored).bind(None, None)
    except TypeError:
        return False
    except ValueError:  # (no signature to read: some built-ins)
        return True
    return True


def uncopied(why: str) -> str:
    return (
        f"explore judges each run by copies of its state, and this state cannot be copied "
        f"({why}): give it a snapshot() method, or keep only data in it"
    )


def not_judged(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[str, ...]:
    """The violation of a run whose state before or after could not be copied (its values
    stand-ins: comparing them would judge nothing), else none."""
    if isinstance(before, Uncopied) or isinstance(after, Uncopied):
        return (f"{NOT_JUDGED}: {uncopied('its values shown by their type')}",)
    return ()
