"""Retry timing, and what a failed undo leads to, as data (tenacity-style).

An ``UndoPolicy`` says what to retry and how (a ``RetryPolicy``), then what follows when
retrying is over: a dead letter or a halt. ``"continue"``, ``"retry"`` and ``"halt"`` are
named instances of it. Because it is data, it travels whole to every engine: the saga
machine (``machine.py``) asks it, the ASL and BPMN writers read its fields.

A policy class of your own overrides ``decide``: it runs wherever the decision can be made
in Python (in process, in a Temporal local activity, in DBOS's workflow). An engine that can
only read fields (a state machine written down beforehand) refuses it by name, before anything
runs (``UnsupportedPolicy``): a state machine can carry a data policy, never code."""

from __future__ import annotations

import builtins
import contextlib
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import MemberDescriptorType
from typing import Any, Literal, TypeGuard

from ._numbers import plain_number
from .errors import STAND_IN, InvalidPipelineError, RemoteError, UnknownPolicyError, goes_on
from .events import said

Decision = float | Literal["dead_letter", "halt"]
"""What to do after a failed undo attempt: a delay in seconds means retry after it."""

Then = Literal["dead_letter", "halt"]
THEN_CHOICES = ("dead_letter", "halt")


def matches(error: BaseException, types: tuple[type[BaseException], ...]) -> bool:
    """Is ``error`` one of ``types``? An error that happened on another engine is known by
    the names of its classes (``RemoteError.lineage``, ``type_name``), so it matches by
    name, as ``isinstance`` would: a library's own ``ConnectionError`` is not Python's. A
    policy's class an engine carried by name (a stand-in, ``STAND_IN``: one whose class this
    process did not keep, as after a relaunch) matches an error's classes by name too."""
    if issubclass(type(error), types):  # (by type: ``isinstance`` asks ``__class__``, which
        return True  # an error may make raise, or lie: ``errors.interrupts``)
    if issubclass(type(error), RemoteError):
        return any(named(t, error.lineage) for t in types)  # type: ignore[attr-defined]
    names = [t for t in types if getattr(t, STAND_IN, False)]
    return bool(names) and any(named(t, lineage(type(error))) for t in names)


def lineage(kind: type[BaseException]) -> list[str]:
    """A class's name and its ancestors' names, most specific first, each as every engine
    carries it (``type_name``: bare for Python's own, module.qualname otherwise)."""
    return [type_name(k) for k in kind.__mro__ if issubclass(k, BaseException)]


def type_name(kind: type) -> str:
    """An exception class's name as every engine carries it (an error's lineage, a retry
    policy's types): bare for Python's own (``ConnectionError``) and this engine's own
    (``errors``: ``InjectedFault``), ``module.qualname`` otherwise
    (``requests.exceptions.ConnectionError``), so that two classes of one name are never
    taken for each other (attack22 M1: retried on one engine, not on another)."""
    module = getattr(kind, "__module__", None)
    name = getattr(kind, "__qualname__", None) or kind.__name__
    return name if module in (None, "builtins", RemoteError.__module__) else f"{module}.{name}"


def builtin_error(name: str) -> bool:
    """Is ``name`` one of Python's own exception classes (bare, as ``type_name`` gives it)?"""
    found = getattr(builtins, name, None)
    return isinstance(found, type) and issubclass(found, BaseException)


def escape(text: str) -> str:
    """``text`` with each lone surrogate written as its escape (``\\udcff``): UTF-8 then, as
    every engine carries a text (an error's record, a policy's class names)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def named(kind: type, lineage: Sequence[str]) -> bool:
    """Does ``lineage`` (an error's class names, most specific first) name ``kind``? By
    ``type_name``, as carried (``escape``d: a ``__module__`` with a lone surrogate is sent
    escaped, by the error's record and by the policy alike). Names written before they were
    qualified (a journal, a workflow history or a policy kept then: every name bare) are
    read as before, by the bare name: a kept bare name that is not Python's own matches a
    class of that name; a lineage of bare names with one that is not Python's own (so
    written then) matches by ``__name__``."""
    name, lineage = escape(type_name(kind)), [escape(n) for n in lineage]
    if name in lineage:
        return True
    if "." not in name:  # a bare name that is not Python's own: kept before (a stand-in)
        return not builtin_error(name) and any(n.rpartition(".")[2] == name for n in lineage)
    old = all("." not in n for n in lineage) and not all(map(builtin_error, lineage))
    return old and kind.__name__ in lineage


def _finite(value: object) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value) and math.isfinite(float(value))
    except Exception:  # an int too big for a float (10**400), a __float__ that raises: no
        return False  # finite number of seconds


def check_step_retry(
    retry: object, step: str, undo_limit: str = "Step(..., undo_timeout=seconds)"
) -> None:
    """A step's own retry: a RetryPolicy with no ``timeout`` (it times undos; an action,
    once called, cannot be stopped: it was ignored there, attack47 L7). ``undo_limit``: how
    the step's caller limits its undo instead, said whole (learn82 F3: the message ended on
    a bare "undo_timeout=")."""
    if not isinstance(retry, RetryPolicy):
        raise TypeError(f"retry of step {step!r} must be a RetryPolicy, got {retry!r}")
    if retry.timeout is not None:
        raise InvalidPipelineError(
            f"retry of step {step!r} has timeout={retry.timeout!r}, which times undos only (an "
            f"action, once called, cannot be stopped); a limit on its undo is set by "
            f"{undo_limit}"
        )


class Said(str):
    """A decide answer the machine must not compare (its ``__eq__`` may raise), as text."""

    def __repr__(self) -> str:
        return str(self)


def decided(policy: UndoPolicy, attempt: int, error: BaseException) -> object:
    """``policy.decide``'s answer as the machine reads it: 'dead_letter', 'halt', a delay,
    or anything else as its (short) repr, the machine then halting for a person; a
    ``decide`` that raises is told so, not as the undo's interruption (attack48 L2)."""
    return _read(policy.decide, attempt, error)


def step_wait(
    retry: RetryPolicy | None, attempt: int, error: BaseException, step: str, notes: Sequence[str]
) -> tuple[float | None, Sequence[str]]:
    """The wait before a step's next attempt (None: not retried), read from its retry's
    ``next_delay`` as an undo policy's ``decide`` is (``decided``): an answer that is no
    finite wait >= 0, or a ``next_delay`` that raises, never reaches a clock; the step is
    not retried, and ``notes`` gain why (``undecided``)."""
    answer = _read(retry.next_delay, attempt, error) if retry is not None else None
    if goes_on(error) is not None:  # (attack90 F10, attack98 F2: tried again, or undone
        said = (  # before it landed, unsaid)
            f"step {step!r} handed back work this run cannot wait for: it may still run, "
            "its effect landing after any undo (never tried again); check it by hand"
        )
        return None, [*notes, said]
    if answer is None or is_delay(answer):
        return answer, notes
    said = undecided(f"the retry policy of step {step}", answer, "None")
    return None, [*notes, f"{said}; {step} was not retried (it failed for good)"]


def undecided(whose: str, answer: object, stops: str) -> str:
    """Why the machine does not follow a policy's answer (``whose``: the policy, in
    words; ``stops``: the answers other than a wait it takes): one wording for an undo
    policy's ``decide`` and a step's retry."""
    return f"{whose} decided {answer!r}, which is none of: a finite delay (seconds >= 0), {stops}"


def undo_refused(policy: UndoPolicy, answer: object) -> str:
    """The note for an undo policy's answer the machine cannot follow: it halts."""
    said = undecided(f"the undo policy {policy.name}", answer, "'dead_letter', 'halt'")
    return f"{said}; the rollback halted for a person"


def _read(ask: Callable[[int, BaseException], object], *args: Any) -> object:
    """A policy's answer (``decide``'s, ``next_delay``'s): None, 'dead_letter' or 'halt' (as
    text: a StrEnum's too), a wait (``is_delay``, as a float or an int), or anything else as
    its short repr; one that raises is told as 'nothing (it raised ...)'."""
    try:
        answer = ask(*args)
        if answer is None or is_delay(answer):  # (a float's subclass, numpy's: a float, 304 F5)
            return answer if type(answer) in (int, float, type(None)) else float(answer)  # type: ignore[arg-type]
        if isinstance(answer, str) and str.__str__(answer) in ("dead_letter", "halt"):
            return str.__str__(answer)  # (a StrEnum too: its text; any other its short repr)
        text = repr(str.__str__(answer) if isinstance(answer, str) else answer)
    except Exception as exc:  # (its message as ``events.said`` reads it: one that raises, F4)
        text = f"nothing (it raised {type(exc).__name__}: {said(exc)})"
    return Said(text if len(text) <= 80 else f"{text[:75]}...")


def is_delay(value: object) -> TypeGuard[float]:
    """A wait a policy may decide: finite seconds >= 0 (an infinite one is no wait)."""
    return _finite(value) and float(value) >= 0  # type: ignore[arg-type]


def check_seconds(value: object, what: str, *, zero: bool = False) -> Any:
    """A duration: a finite number of seconds > 0 (``zero``: >= 0), as the plain number it
    holds (numpy's, a Decimal: attack107 F8), which is returned. NaN, infinities, -0.0 and
    booleans are refused here, not found failing half-way through a run."""
    number = value
    with contextlib.suppress(Exception):
        number = plain_number(value)
    seconds = float(number) if _finite(number) else math.nan  # type: ignore[arg-type]
    if not (seconds > 0 or (zero and seconds == 0)) or math.copysign(1.0, seconds) < 0:
        bound = ">= 0" if zero else "> 0"  # (the value given, not its conversion: F8)
        raise InvalidPipelineError(
            f"{what} must be a finite number of seconds {bound}, got {value!r}"
        )
    return number


_SUMMED = 10_000  # waits RetryPolicy.worst_wait adds one by one; past them, a closed form


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with a cap, for actions and for undos.

    ``retry_on`` lists the exception types worth another attempt; ``no_retry_on``
    wins over it, for errors that a retry cannot fix (a declined card).
    """

    max_attempts: int = 3
    initial_delay: float = 0.1
    multiplier: float = 2.0
    max_delay: float = 10.0
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    no_retry_on: tuple[type[BaseException], ...] = ()
    timeout: float | None = None
    """Seconds one undo attempt may take before it counts as failed (None: no limit)."""

    def __post_init__(self) -> None:
        given = {n: getattr(self, n) for n in ("max_attempts", "multiplier")}
        for name in ("max_attempts", "initial_delay", "multiplier", "max_delay", "timeout"):
            value = getattr(self, name)  # (a number's subclass, numpy's, a Decimal: read as
            if value is not None and type(value) not in (int, float):  # the plain number it
                with contextlib.suppress(Exception):  # holds, as an engine carries it, then
                    number = (
                        check_seconds(value, name, zero=True)
                        if name not in given
                        else (plain_number(value))
                    )  # checked, said as given: attack105 F5, F6,
                    object.__setattr__(self, name, number)  # attack106 F10, 107 F8, 109 F7)
        if self.timeout is not None:
            check_seconds(self.timeout, "timeout")
        if type(self.max_attempts) is not int or self.max_attempts < 1:
            raise InvalidPipelineError(
                f"max_attempts must be an int >= 1, got {given['max_attempts']!r}"
            )
        check_seconds(self.initial_delay, "initial_delay", zero=True)
        check_seconds(self.max_delay, "max_delay", zero=True)
        if not _finite(self.multiplier) or self.multiplier < 1:
            raise InvalidPipelineError(
                f"multiplier must be a finite number >= 1, got {given['multiplier']!r}"
            )
        for label in ("retry_on", "no_retry_on"):
            types = getattr(self, label)
            if not isinstance(types, tuple) or not all(
                isinstance(t, type) and issubclass(t, BaseException) for t in types
            ):
                raise TypeError(f"{label} must be a tuple of exception types, got {types!r}")
            if type(types) is not tuple:  # (read as its items, once, by every engine)
                object.__setattr__(self, label, tuple(types))

    def delay(self, attempt: int) -> float:
        """The wait before attempt ``attempt + 1``."""
        try:
            return min(self.initial_delay * self.multiplier ** (attempt - 1), self.max_delay)
        except OverflowError:  # (a long run of attempts: the cap long reached)
            return self.max_delay

    def worst_wait(self) -> float:
        """Seconds waited in all when every attempt fails with an error it retries: the
        bound a caller's patience is checked against (an outage that never ends)."""
        total, attempt = 0.0, 1
        while attempt < self.max_attempts:
            delay, left = self.delay(attempt), self.max_attempts - attempt
            if delay == self.delay(attempt + 1):  # the cap, or no growth: the rest the same
                return total + delay * left
            if attempt > _SUMMED:  # still growing, slowly: the rest in closed form
                rate = math.log(self.multiplier)  # (in logs: no overflow on the way)
                below = min(left, math.ceil((math.log(self.max_delay) - math.log(delay)) / rate))
                grown = delay * math.expm1(below * rate) / (self.multiplier - 1)  # ``below``
                # waits under the cap, delay * (m**below - 1) / (m - 1): none cut (attack202 F1)
                return total + grown + self.max_delay * (left - below)
            total += delay
            attempt += 1
        return total

    def next_delay(self, attempt: int, error: BaseException) -> float | None:
        """The wait before another attempt, or None when there should be none."""
        if attempt >= self.max_attempts or not self.retries(error):
            return None
        return self.delay(attempt)

    def retries(self, error: BaseException) -> bool:
        return matches(error, self.retry_on) and not matches(error, self.no_retry_on)


@dataclass(frozen=True)
class UndoPolicy:
    """What a failed undo attempt leads to: retried as ``retry`` says (None: one attempt),
    then ``then``: a dead letter (go on with the other undos) or a halt (stop, and leave
    what is left to a person).

    ``UndoPolicy(RetryPolicy(max_attempts=4), then="halt")`` is a policy; so are the named
    ones, ``Continue()``, ``Retry(...)`` and ``Halt()``. Subclass it and override ``decide``
    only for a rule fields cannot say; see the module's docstring for where that runs.
    """

    retry: RetryPolicy | None = None
    then: Then = "dead_letter"

    def __post_init__(self) -> None:
        if self.then not in THEN_CHOICES:
            raise InvalidPipelineError(f"then must be 'dead_letter' or 'halt', got {self.then!r}")
        if type(self.then) is not str:  # (a str's subclass: the choice it equals, as data)
            object.__setattr__(self, "then", next(c for c in THEN_CHOICES if self.then == c))
        if self.retry is not None and not isinstance(self.retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, got {self.retry!r}")

    @property
    def name(self) -> str:
        """How events and tables call it: continue, retry, halt, or a class's own name."""
        if decides_in_code(self):
            return type(self).__name__
        if self.retry is not None:
            return "retry"
        return "halt" if self.then == "halt" else "continue"

    @property
    def max_attempts(self) -> int:
        return self.retry.max_attempts if self.retry is not None else 1

    @property
    def timeout(self) -> float | None:
        """How long one undo attempt may take (a hung undo then fails like any other)."""
        return self.retry.timeout if self.retry is not None else None

    def decide(self, attempt: int, error: BaseException) -> Decision:
        """After attempt ``attempt`` failed with ``error``: a delay (retry after it), or
        ``"dead_letter"`` or ``"halt"``."""
        delay = self.retry.next_delay(attempt, error) if self.retry is not None else None
        return self.then if delay is None else delay


@dataclass(frozen=True)
class Continue(UndoPolicy):
    """Record a dead letter and go on undoing the rest (the default)."""

    retry: RetryPolicy | None = field(default=None, init=False)
    then: Then = field(default="dead_letter", init=False)
    name = "continue"  # type: ignore[assignment]


@dataclass(frozen=True)
class Retry(UndoPolicy):
    """Retry the undo with backoff; when attempts run out, dead-letter it (or halt)."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)  # type: ignore[assignment]
    then: Then = "dead_letter"
    name = "retry"  # type: ignore[assignment]


@dataclass(frozen=True)
class Halt(UndoPolicy):
    """Stop compensating and hand what is left to a person."""

    retry: RetryPolicy | None = field(default=None, init=False)
    then: Then = field(default="halt", init=False)
    name = "halt"  # type: ignore[assignment]


CONTINUE, RETRY, HALT = Continue(), Retry(), Halt()
POLICIES: dict[str, UndoPolicy] = {"continue": CONTINUE, "retry": RETRY, "halt": HALT}
"""The named policies (each an ``UndoPolicy``); ``resolve_policy`` looks names up here."""

PolicyLike = str | UndoPolicy


def resolve_policy(policy: PolicyLike) -> UndoPolicy:
    """Turn ``"continue" | "retry" | "halt"`` (or a policy object) into a policy object."""
    if isinstance(policy, UndoPolicy):
        return policy
    if isinstance(policy, str) and policy in POLICIES:
        return POLICIES[policy]
    raise UnknownPolicyError(
        f"unknown undo policy {policy!r}; choose one of: {', '.join(POLICIES)}"
    )


def decides_in_code(policy: UndoPolicy) -> bool:
    """Does this policy decide in Python (its own ``decide``), beyond what its fields say?"""
    return own_part(policy, UndoPolicy, ("decide",)) is not None


def code_of(policy: UndoPolicy | RetryPolicy | None) -> str | None:
    """What of ``policy`` decides in Python, beyond its fields (its own ``decide``, or a
    RetryPolicy's own ``next_delay``, ``retries`` or ``delay``: attack102 F2), in words;
    None for a policy of data only. An engine that carries it as data would obey its fields
    instead (attack100 F13: retried three times where ``saga.run`` did not retry)."""
    if policy is None:
        return None
    if isinstance(policy, UndoPolicy):
        own = own_part(policy, UndoPolicy, ("decide", "max_attempts", "timeout", "then"))
        return f"its own {own}" if own is not None else code_of(policy.retry)
    own = own_part(policy, RetryPolicy, ("next_delay", "retries", "delay", *_RETRY_FIELDS))
    if own is not None:
        return f"its {type(policy).__name__}'s own {own}"
    kinds = (*policy.retry_on, *policy.no_retry_on)  # (``matches`` asks issubclass)
    matched = [t for t in kinds if type(t).__subclasscheck__ is not type.__subclasscheck__]
    return f"the issubclass of {matched[0].__name__}'s metaclass" if matched else None


_RETRY_FIELDS = ("max_attempts", "initial_delay", "multiplier", "max_delay", "retry_on",
                 "no_retry_on", "timeout")  # fmt: skip


def own_part(policy: object, base: type, members: tuple[str, ...]) -> str | None:
    """The first of ``members`` (``base``'s methods, properties and fields) that ``policy``
    decides itself: in its own ``__getattribute__``, as its class's own function or property,
    or as a callable held in the instance (a dataclass field, an attribute set on it), none
    of which the class alone shows (attack103 F3: taken as data, obeyed by its fields)."""
    cls = type(policy)
    if cls.__getattribute__ is not base.__getattribute__:
        return "__getattribute__"
    held = getattr(policy, "__dict__", {})
    for name in members:
        mine, theirs = [inspect.getattr_static(c, name, None) for c in (cls, base)]
        if isinstance(mine, MemberDescriptorType):  # (a slot: what it holds, attack104 F7)
            mine = theirs = getattr(policy, name, None)
            if callable(mine) and not isinstance(mine, type):
                return name
        if mine is not theirs and (callable(mine) or hasattr(type(mine), "__get__")):
            return name  # (a function, a property, a partial, a callable: attack104 F4)
        if callable(held.get(name)) and not isinstance(held.get(name), type | tuple):
            return name
    return None


class UnsupportedPolicy(InvalidPipelineError):
    """The engine can only carry a policy as data, and this one decides in Python code."""


def data_only(policy: PolicyLike, engine: str) -> UndoPolicy:
    """``policy`` as data for an engine that writes it down beforehand; a policy that
    decides in code is refused by name, before anything runs (never silently downgraded)."""
    chosen = resolve_policy(policy)
    if (code := code_of(chosen)) is not None:
        raise UnsupportedPolicy(
            f"{engine} cannot run the undo policy {type(chosen).__name__}: it decides in Python "
            f"({code}), and its {'process model' if engine == 'BPMN' else 'state machine'} is"
            " written before the saga runs. Use a "
            "policy of data (UndoPolicy(RetryPolicy(...), then=...)), or run it in process, "
            "on Temporal or on DBOS, which decide in Python"
        )
    return chosen
