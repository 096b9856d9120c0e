"""Undos by name: a compensation plus JSON arguments can be written down and run later.

A closure cannot survive a crash; a name and its arguments can. The journal and the
Temporal runner only ever resolve names from a registry, never import or unpickle code.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..calls import is_async
from ..errors import InvalidPipelineError
from ..rules import NamedUndo


class UnknownCompensationError(InvalidPipelineError, LookupError):
    """A compensation name that the registry does not know."""


class Registry:
    """Maps compensation names to functions; nothing outside it is ever called by name."""

    def __init__(self) -> None:
        self._fns: dict[str, Callable[..., Any]] = {}

    def add(self, name: str, fn: Callable[..., Any]) -> Compensation:
        if not isinstance(name, str) or not name:
            raise TypeError(f"a compensation name must be a non-empty str, got {name!r}")
        if not callable(fn):
            raise TypeError(f"compensation {name!r} must be callable, got {fn!r}")
        if name in self._fns and self._fns[name] is not fn:
            raise InvalidPipelineError(f"compensation {name!r} is already registered")
        self._fns[name] = fn
        return Compensation(name, fn, self)

    def resolve(self, name: str) -> Callable[..., Any]:
        try:
            return self._fns[name]
        except KeyError:
            raise UnknownCompensationError(
                f"no compensation named {name!r} is registered"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._fns

    def names(self) -> list[str]:
        return sorted(self._fns)


default_registry = Registry()


@dataclass(frozen=True)
class Compensation:
    """A registered undo; ``bind(**args)`` fixes its arguments for one step."""

    name: str
    fn: Callable[..., Any] = field(repr=False)
    registry: Registry = field(repr=False, compare=False)

    def bind(self, **args: Any) -> BoundUndo:
        return BoundUndo(self.name, args, self.registry)

    def __call__(self, **args: Any) -> Any:
        return self.fn(**args)


@dataclass(frozen=True)
class BoundUndo(NamedUndo):
    """A compensation name with JSON arguments: callable now, storable for later."""

    name: str
    args: Mapping[str, Any]
    registry: Registry = field(default=default_registry, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            text = json.dumps(self.args, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"arguments of compensation {self.name!r} must be JSON-serialisable: {exc}"
            ) from None
        if _too_deep(text):  # (SQLite's json_valid, the reader's check, refuses it: F6)
            raise TypeError(
                f"arguments of compensation {self.name!r} are nested deeper than SQLite's "
                f"JSON depth limit ({json_depth_limit()} levels), which the journal's reader "
                "checks: the journal could not give them back (flatten them)"
            )
        back = json.loads(text)
        if not _same(back, self.args):  # what recover reads must be what ran in process
            raise TypeError(
                f"arguments of compensation {self.name!r} would not survive the journal: "
                f"JSON gives back {back!r} for {dict(self.args)!r} (use str keys, lists, "
                "and plain numbers, text, booleans and None)"
            )
        # Kept as JSON gave them back, a copy: a list the caller changes after ``bind`` (a
        # step filling it) must not reach the undo in process when the journal, which wrote
        # it as bound, gives recover the old one (attack22 M2): the same arguments everywhere.
        object.__setattr__(self, "args", back)
        fn = self.registry.resolve(self.name)  # unknown names fail now, not in a rollback
        if "idempotency_key" in self.args:
            raise TypeError(
                f"compensation {self.name!r} cannot be bound an idempotency_key: the engine "
                "passes its own, the same in process and after a crash"
            )
        refused = unfit(fn, self.args)
        if refused:  # refused now, not as a dead letter during a rollback
            raise TypeError(
                f"compensation {self.name!r} cannot be called with {dict(self.args)!r}: {refused}"
            )

    def __call__(self, idempotency_key: str | None = None) -> Any:
        """Run the compensation; ``idempotency_key`` reaches it if it takes one."""
        return call_compensation(self.registry.resolve(self.name), self.args, idempotency_key)

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "args": self.args}, sort_keys=True)

    def awaits(self) -> bool:
        return self.name in self.registry and is_async(self.registry.resolve(self.name))


def _too_deep(text: str) -> bool:
    """Would the journal's reader (``values``: SQLite's ``json_valid``) refuse ``text``,
    JSON nested past SQLite's depth limit (attack84 F6)? Asked of SQLite only when the
    text has brackets enough to be that deep (the limit is 1000 or 2000, by version)."""
    if text.count("[") + text.count("{") < 1000:
        return False
    import sqlite3  # (here: the engine imports no sqlite3 until a journal is used)

    with contextlib.closing(sqlite3.connect(":memory:")) as con:
        return not con.execute("SELECT json_valid(?)", (text,)).fetchone()[0]


@functools.cache
def json_depth_limit() -> int:
    """The deepest nesting this SQLite's ``json_valid`` accepts (probed once)."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(":memory:")) as con:
        low, high = 1, 100_000  # (json_valid of ``low`` levels is 1; of ``high``, 0)
        while high - low > 1:
            mid = (low + high) // 2
            if con.execute("SELECT json_valid(?)", ("[" * mid + "]" * mid,)).fetchone()[0]:
                low = mid
            else:
                high = mid
    return low


def _same(back: Any, value: Any) -> bool:
    """Is ``back`` (read from JSON) exactly ``value``: same types, not only equal?"""
    if isinstance(value, Mapping):
        return (
            type(back) is dict
            and list(back) == list(value)
            and all(type(k) is str and _same(back[k], value[k]) for k in value)
        )
    if isinstance(value, list):
        return type(back) is list and len(back) == len(value) and all(map(_same, back, value))
    return type(back) is type(value) and back == value


def takes_key(fn: Callable[..., Any]) -> bool:
    """Does the compensation accept ``idempotency_key`` (or any keyword)?"""
    try:
        return _takes_key_cached(fn)
    except Exception:  # (an unhashable callable, a dataclass instance: attack84 F8; the
        return _takes_key(fn)  # cache's own TypeError, never the compensation's)


def _takes_key(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    # (a list, not a generator any() leaves: a Ctrl-C as one is closed is dropped by Python)
    return any([p.name == "idempotency_key" or p.kind is p.VAR_KEYWORD for p in params])


_takes_key_cached = functools.lru_cache(maxsize=256)(_takes_key)


def unfit(fn: Callable[..., Any], args: Mapping[str, Any]) -> str | None:
    """Why ``fn`` cannot be called with ``args`` (and the engine's idempotency key, if it
    takes one), as ``inspect.signature(fn).bind`` says; None if it can (or has no
    signature to ask, as a builtin: its call is the check). ``bind`` refuses on it, and
    ``recover`` leaves a saga unfinished on it, as for a name the registry does not know
    (attack84 F5); so on what is not callable, or whose signature raises (attack271 F2: the
    call failed, a dead letter of an undo never run, the saga ended for good)."""
    if not callable(fn):
        return f"the registry gave an object of type {type(fn).__name__}, not a function"
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # (none to ask: a builtin's)
        return None
    except Exception as exc:
        return f"its signature cannot be read: {type(exc).__name__}"
    key = {"idempotency_key": "key"} if takes_key(fn) else {}  # (the engine's own)
    try:
        signature.bind(**args, **key)
    except TypeError as exc:
        return str(exc)
    return None


def call_compensation(
    fn: Callable[..., Any], args: Mapping[str, Any], idempotency_key: str | None
) -> Any:
    """Call a registered undo with its JSON arguments, plus the key when it accepts one."""
    if idempotency_key is not None and takes_key(fn):
        return fn(**args, idempotency_key=idempotency_key)
    return fn(**args)


def compensation(
    name: str, registry: Registry | None = None
) -> Callable[[Callable[..., Any]], Compensation]:
    """Register a function as a named undo: ``@compensation("refund_charge")``."""

    def decorate(fn: Callable[..., Any]) -> Compensation:
        return (registry or default_registry).add(name, fn)

    return decorate
