"""Exercise 12.2's moments, and the bookings both of lesson 12's exercises hand out.

A booking's step books (``state[name] = "booked"``) and its undo cancels it; a step with
no undo is a lookup: it reads and changes nothing, as lesson 02 says a step with
``undo=None`` is. 12.1 compares a learner's steps with these by what they do. In 12.2 a
lookup is named ``check_visa`` or just ``visa``, and some bookings are named like lookups
(``check_in``): only ``undo is None`` tells one (learn81 F1: not its name, nor its label).

The moments come from the real engine: random graphs (groups of chains, then more steps),
lookups, a finishing order, a cancel asked after the k-th step ends, and some of the steps
still running then failing. The truth is what ``saga.run(cancel=...)`` undid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...graph import Parallel
from ...saga import Saga, Step
from . import generator

NAMES = (
    "room", "car", "flight", "museum", "dinner", "train", "ferry", "tour", "visa", "guide",
)  # fmt: skip
BOOKED = "booked"
LOOKUP = "check_"
"""The prefix of some lookups' names (a step with no undo): ``check_visa`` checks the visa."""
LIKE_LOOKUPS = {"check_in": "check in early", "checked_bag": "check a bag in"}
"""Bookings (each with its undo) named, and labelled, like lookups."""


def _effects(name: str) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    def book(state: Any) -> None:
        state[name] = BOOKED

    def cancel(state: Any) -> None:
        state.pop(name, None)

    return book, cancel


def _look(name: str) -> Callable[[Any], Any]:
    def look(state: Any) -> Any:
        return state.get(name)

    return look


def bookings(names: Sequence[str], undo: Sequence[bool] | None = None) -> list[Step]:
    """A step per name: a booking with its undo, or (``undo`` False) a lookup with none."""
    with_undo = undo if undo is not None else [True] * len(names)
    made = []
    for name, has in zip(names, with_undo, strict=True):
        if has:
            book, cancel = _effects(name)
            label = LIKE_LOOKUPS.get(name, f"book the {name}")
            made.append(Step(name, book, cancel, label=label))
        elif name.startswith(LOOKUP):
            made.append(Step(name, _look(name), None, label=f"check the {name[len(LOOKUP) :]}"))
        else:
            made.append(Step(name, _look(name), None, label=f"look up the {name}"))
    return made


@dataclass(frozen=True)
class Moment:
    """Where the run was when the cancel came (what the learner is given)."""

    done: tuple[str, ...]
    running: tuple[str, ...]
    will_fail: tuple[str, ...] = ()

    def __str__(self) -> str:
        fail = f", of which {list(self.will_fail)} will fail" if self.will_fail else ""
        return f"done {list(self.done)}, running {list(self.running)}{fail}"


@dataclass(frozen=True)
class Case:
    definition: tuple[Any, ...]  # the shape: chains of names, in groups
    undo: tuple[tuple[str, bool], ...]
    completion: tuple[str, ...]
    cancel_after: int
    fail: tuple[str, ...] = ()
    truth: tuple[str, ...] = field(default=(), compare=False)
    moment: Moment = field(default=Moment((), ()), compare=False)

    def saga(self) -> Saga:
        names = [n for n, _ in self.undo]
        made = dict(zip(names, bookings(names, [has for _, has in self.undo]), strict=True))

        def build(item: Any) -> Any:
            if isinstance(item, str):
                return made[item]
            return Parallel(*([made[n] for n in branch] for branch in item))

        return Saga([build(item) for item in self.definition], name="trip")

    def __str__(self) -> str:
        none = [n for n, has in self.undo if not has]
        what = "a lookup that changes" if len(none) == 1 else "lookups that change"
        without = f" (no undo: {', '.join(none)}, {what} nothing)" if none else ""
        shown = ", ".join(_shown(item) for item in self.definition)
        return f"for the saga [{shown}]{without}, cancelled when {self.moment}"


def _shown(item: Any) -> str:
    if isinstance(item, str):
        return item
    branches = (b[0] if len(b) == 1 else "[" + ", ".join(b) + "]" for b in item)
    return "Parallel(" + ", ".join(branches) + ")"


def _shape(rng: Any, names: list[str]) -> tuple[Any, ...]:
    """A group of 2-3 branches (chains of 1-2 steps), then 0-2 more steps, sometimes a
    step before the group."""
    out: list[Any] = []
    if rng.random() < 0.3:
        out.append(names.pop())
    branches = []
    for _ in range(rng.randint(2, 3)):
        if names:
            branches.append(tuple(names.pop() for _ in range(min(len(names), rng.randint(1, 2)))))
    out.append(tuple(branches))
    out.extend(names.pop() for _ in range(min(len(names), rng.randint(0, 2))))
    return tuple(out)


def _play(case: Case, inject: dict[str, str]) -> tuple[Moment | None, Any]:
    """Run the real engine with a cancel asked once ``case.cancel_after`` steps have ended:
    where the run was then, and its outcome."""
    seen: list[tuple[str, str]] = []  # (kind, step) of the events about a step
    at: list[Moment] = []

    def asked() -> bool:
        ended = [s for k, s in seen if k in ("step_done", "step_failed")]
        if len(ended) >= case.cancel_after and not at:
            started = [s for k, s in seen if k == "step_start"]
            at.append(Moment(tuple(ended), tuple(s for s in started if s not in ended)))
        return bool(at)

    def watch(event: Any) -> None:
        if event.step is not None:
            seen.append((str(event.kind), event.step))

    outcome = case.saga().run(
        {}, completion=list(case.completion), cancel=asked, on_event=watch, inject=inject
    )
    return (at[0] if at else None), outcome


def _moment(case: Case) -> Case | None:
    """Where the run was at the cancel; then, with the steps still running that will fail
    (they end after the cancel), what the engine undid. None where those failures move the
    cancel (the token is asked as a step returns: one that fails returns no answer to ask
    after), so the moment a learner is told is the one the run had."""
    moment, _ = _play(case, {})
    if moment is None:
        return None
    fail = tuple(s for s in moment.running if s in case.fail)
    again, outcome = _play(case, dict.fromkeys(fail, "fail"))
    if again != moment:  # (or never asked again: the failure ended the run first)
        return None
    return Case(
        case.definition, case.undo, case.completion, case.cancel_after, fail,
        tuple(outcome.compensated), Moment(moment.done, moment.running, fail),
    )  # fmt: skip


def _names_of(item: Any) -> list[str]:
    if isinstance(item, str):
        return [item]
    return [n for branch in item for n in branch]


def _renamed(item: Any, named: dict[str, str]) -> Any:
    if isinstance(item, str):
        return named[item]
    return tuple(tuple(named[n] for n in branch) for branch in item)


def _named(rng: Any, used: list[str], has: dict[str, bool]) -> dict[str, str]:
    """Each step's name: a lookup's ``check_<x>`` or plain ``<x>``, as any booking's; and
    sometimes a booking named like a lookup, so no name tells whether a step has an undo."""
    named = {n: n if has[n] or rng.random() < 0.5 else LOOKUP + n for n in used}
    for like in LIKE_LOOKUPS:
        bookings = [n for n in used if has[n] and named[n] == n]
        if bookings and rng.random() < 0.3:
            named[rng.choice(bookings)] = like
    return named


_CASES: list[Case] = []


def cases() -> list[Case]:
    """The moments, made once (each is two runs of the engine)."""
    if _CASES:
        return _CASES
    rng = generator("12.2")
    naming = generator("12.2 names")  # (drawn apart: the moments stay those drawn before)
    lesson = Case(
        ((("car",), ("room",), ("flight",)), "charge"),
        (("car", True), ("room", True), ("flight", True), ("charge", True)),
        ("room", "flight", "car", "charge"),
        2,
    )
    raw = [lesson]
    for _ in range(90):
        names = rng.sample(NAMES, rng.randint(3, 7))
        definition = _shape(rng, names[:])
        used = [n for item in definition for n in _names_of(item)]
        has = {n: rng.random() < 0.8 for n in used}
        completion = used[:]
        rng.shuffle(completion)
        fail = [n for n in used if rng.random() < 0.3]
        after = rng.randint(0, len(used) - 1)
        named = _named(naming, used, has)
        raw.append(
            Case(
                tuple(_renamed(item, named) for item in definition),
                tuple((named[n], has[n]) for n in used),
                tuple(named[n] for n in completion),
                after,
                tuple(named[n] for n in fail),
            )
        )
    made = [_moment(case) for case in raw]
    assert made[0] is not None  # (the lesson's own moment)
    _CASES.extend(case for case in made if case is not None)
    return _CASES
