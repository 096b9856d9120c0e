"""Lesson 12 exercises: declare the dependencies of a trip so that every undo order the
engine may pick is safe (12.1), and predict what a cancel at a given moment undoes (12.2).

12.1's worlds are trips the lesson does not show: 2 to 7 bookings with other names, some of
which use another's effect (a car delivered to a room, a tour met at the ferry), in chains
of any length. The check builds the learner's saga and asks the engine's own graph
(``saga.dependencies``, ``schedule.dependants``, ``schedule.concurrent``) whether every step
waits for what it uses, so no order the engine may pick undoes a used booking first, and
whether steps that use nothing of each other (two users of one booking too) still run at
once.

12.2's moments come from the real engine: random graphs (groups of chains, then more steps),
steps without an undo, a finishing order, a cancel asked after the k-th step ends, and some
of the steps still running then failing. The truth is what ``saga.run(cancel=...)`` undid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ...graph import Parallel
from ...saga import Saga, Step
from ...schedule import concurrent, dependants
from . import Exercise, Incorrect, call, forall, function, generator, names_list, register

NAMES = (
    "room", "car", "flight", "museum", "dinner", "train", "ferry", "tour", "visa", "guide",
)  # fmt: skip


def _nothing(state: Any) -> None:
    return None


def _steps(names: Sequence[str], undo: Sequence[bool] | None = None) -> list[Step]:
    with_undo = undo if undo is not None else [True] * len(names)
    return [
        Step(name, _nothing, _nothing if has else None, label=f"book the {name}")
        for name, has in zip(names, with_undo, strict=True)
    ]


# -- 12.1: declare what each booking uses --------------------------------------------------


@dataclass(frozen=True)
class Trip:
    names: tuple[str, ...]
    uses: tuple[tuple[str, str], ...]  # (user, used): the user's action uses the used effect

    def __str__(self) -> str:
        said = ", ".join(f"{a} uses {b}'s effect" for a, b in self.uses) or "nothing used"
        return f"for bookings {list(self.names)} ({said})"


def trips() -> list[Trip]:
    rng = generator("12.1")
    found = [Trip(("car", "room", "flight"), (("car", "room"),))]  # the lesson's
    for _ in range(120):
        names = rng.sample(NAMES, rng.randint(2, 7))
        order = names[:]
        rng.shuffle(order)
        uses: list[tuple[str, str]] = []
        chain: list[str] = []
        for name in order:  # cut the shuffled names into chains; each uses the one before
            if chain and rng.random() < 0.5:
                uses.append((name, chain[-1]))
                chain.append(name)
            else:
                chain = [name]
        found.append(Trip(tuple(names), tuple(uses)))
    rng = generator("12.1 trees")  # a booking two others use: a chain answer is not enough
    for _ in range(30):
        names = rng.sample(NAMES, rng.randint(3, 7))
        uses = [(names[1], names[0]), (names[2], names[0])]
        for i, name in enumerate(names[3:], 3):
            if rng.random() < 0.7:
                uses.append((name, rng.choice(names[:i])))
        found.append(Trip(tuple(rng.sample(names, len(names))), tuple(uses)))
    return found


def _trip_size(trip: Trip) -> tuple[int, int]:
    return (len(trip.names), len(trip.uses))


def _definition(answer: Any) -> list[Any]:
    if isinstance(answer, Step | Parallel):
        return [answer]
    if isinstance(answer, list | tuple) and all(isinstance(i, Step | Parallel) for i in answer):
        return list(answer)
    raise Incorrect(
        "declare should return the bookings as a saga's steps: a Parallel group (its "
        f"branches steps or lists of steps), a Step, or a list of them; got {answer!r}"
    )


def _related(trip: Trip) -> set[frozenset[str]]:
    """Pairs where one uses the other's effect, directly or through others (a user's user):
    those must wait; every other pair, two users of one booking too, can run at once."""
    used_by = dict(trip.uses)
    pairs: set[frozenset[str]] = set()
    for name in trip.names:
        seen, at = set(), name
        while at in used_by and at not in seen:
            seen.add(at)
            at = used_by[at]
            pairs.add(frozenset((name, at)))
    return pairs


def _check_declare(declare: Any) -> str:
    fn = function(declare, "declare(steps, uses)")

    def holds(trip: Trip) -> None:
        steps = _steps(trip.names)
        answer = call(fn, steps, dict(trip.uses), name="declare", where=str(trip))
        items = _definition(answer)
        try:
            saga = Saga([*items, Step("charge", _nothing)], name="trip")
        except Exception as exc:
            raise Incorrect(f"{trip}, your steps do not make a saga: {exc}") from None
        got = [s for s in saga.names if s != "charge"]
        missing = sorted(set(trip.names) - set(got))
        extra = sorted(set(got) - set(trip.names))
        if missing or extra:
            what = f"leaves out {missing}" if missing else f"adds {extra}"
            raise Incorrect(f"{trip}, your saga {what}: every booking given, once, no other")
        after = saga.dependencies
        below = dependants(after)
        for user, used in trip.uses:
            if user not in below[used]:
                raise Incorrect(
                    f"{trip}, your saga does not make {user} wait for {used}: the engine "
                    f"may then undo {used} before {user} (by dependency, or all at once), "
                    f"and {used}'s undo is refused while {user} uses it"
                )
        at_once = concurrent(after)
        related = _related(trip)
        for a in trip.names:
            for b in trip.names:
                if a < b and frozenset((a, b)) not in related and b not in at_once[a]:
                    first, then = (a, b) if b in below[a] else (b, a)
                    raise Incorrect(
                        f"{trip}, your saga makes {then} wait for {first}, though neither "
                        "uses the other's effect: they could run at once (and be undone in "
                        "either order)"
                    )

    tried = forall(trips(), holds, size=_trip_size)
    return (
        f"in {tried} trips, each booking waits for the booking it uses, so no undo order "
        "the engine may pick undoes a used booking first; the others still run at once."
    )


# -- 12.2: what a cancel undoes ------------------------------------------------------------


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
        made = dict(zip(names, _steps(names, [has for _, has in self.undo]), strict=True))

        def build(item: Any) -> Any:
            if isinstance(item, str):
                return made[item]
            return Parallel(*([made[n] for n in branch] for branch in item))

        return Saga([build(item) for item in self.definition], name="trip")

    def __str__(self) -> str:
        none = [n for n, has in self.undo if not has]
        without = f" (no undo: {', '.join(none)})" if none else ""
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


_CASES: list[Case] = []


def cases() -> list[Case]:
    """The moments, made once (each is two runs of the engine)."""
    if _CASES:
        return _CASES
    rng = generator("12.2")
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
        undo = tuple((n, rng.random() < 0.8) for n in used)
        completion = used[:]
        rng.shuffle(completion)
        fail = tuple(n for n in used if rng.random() < 0.3)
        raw.append(Case(definition, undo, tuple(completion), rng.randint(0, len(used) - 1), fail))
    made = [_moment(case) for case in raw]
    assert made[0] is not None  # (the lesson's own moment)
    _CASES.extend(case for case in made if case is not None)
    return _CASES


def _case_size(case: Case) -> tuple[int, int]:
    return (len(case.undo), len(case.moment.running))


def _check_cancel(undone_by_cancel: Any) -> str:
    fn = function(undone_by_cancel, "undone_by_cancel(saga, moment)")
    every = cases()
    names = sorted({n for case in every for n, _ in case.undo})

    def holds(case: Case) -> None:
        given = call(fn, case.saga(), case.moment, name="undone_by_cancel", where=str(case))
        if isinstance(given, set | frozenset | dict):  # which steps: any collection will do
            given = sorted(given)
        try:
            predicted = names_list(given, names, "undone_by_cancel should return step names")
        except Incorrect as wrong:
            raise Incorrect(f"{case}, {wrong}") from None
        if sorted(predicted) != sorted(case.truth) or len(set(predicted)) != len(predicted):
            missing = sorted(set(case.truth) - set(predicted))
            extra = sorted(set(predicted) - set(case.truth))
            m, no_undo = case.moment, {n for n, has in case.undo if not has}
            why = [
                f"{n} was running: it finished, then was undone"
                if n in m.running
                else f"{n} was undone too"
                for n in missing
            ]
            for n in extra:
                if n in m.will_fail:
                    why.append(f"{n} failed: it had no effect to undo")
                elif n in no_undo:
                    why.append(f"{n} has no undo")
                elif n not in {name for name, _ in case.undo}:
                    why.append(f"{n} is not a step of this saga")
                elif n not in m.done and n not in m.running:
                    why.append(f"{n} never started: nothing starts after a cancel")
                else:
                    why.append(f"{n} was not undone")
            raise Incorrect(
                f"{case}, you predicted {sorted(predicted)}, and the engine undid "
                f"{sorted(case.truth)}: {'; '.join(why) or 'each step is undone once'}"
            )

    tried = forall(every, holds, size=_case_size)
    return (
        f"right at {tried} moments: the running steps finish, nothing more starts, and "
        "everything done that has an undo is undone."
    )


SETUP = (
    "from rollback_lessons.lab.graphs import plan_table\n"
    "from rollback_lessons.worlds import travel\n"
    "from rollback_lessons.lab.exercises import lesson12\n"
    "from rollback_lessons import Parallel\n"
    "from rollback_lessons.lab.widgets import RollbackLab\n"
    "from rollback_lessons.runners.stepfunctions import StepFunctionsRunner\n"
    "from rollback_lessons.runners.temporal import TemporalRunner\n"
)
"""What lesson 12 has imported before its exercises (``Exercise.setup``)."""


q1 = Exercise(
    id="12.1",
    setup=SETUP,
    title="Declare what each booking uses",
    checker=_check_declare,
    answer_names=("declare",),
    hints=(
        "`uses` maps a booking's name to the name of the booking whose effect it uses: "
        "that one must be done first, so the user's undo runs before it.",
        "A branch of a Parallel group is a list of steps run in order: put a booking in "
        "the same branch, after the one it uses. Bookings that use nothing of each other "
        "go in different branches.",
        "Follow each chain from a booking that uses nothing: who uses it, who uses that... "
        "Two bookings using the same one go after it, in branches of their own.",
    ),
    solution_code=(
        "# exercise: 12.1\n"
        "def declare(steps, uses):\n"
        "    by_name = {step.name: step for step in steps}\n"
        "\n"
        "    def branch(step):  # the step, then (at once) the branches of those using it\n"
        "        users = [by_name[u] for u, used in uses.items() if used == step.name]\n"
        "        if len(users) <= 1:\n"
        "            return [step, *(branch(users[0]) if users else [])]\n"
        "        return [step, Parallel(*(branch(user) for user in users))]\n"
        "\n"
        "    return Parallel(*(branch(step) for step in steps if step.name not in uses))"
    ),
)

q2 = Exercise(
    id="12.2",
    setup=SETUP,
    title="Predict what a cancel undoes",
    checker=_check_cancel,
    answer_names=("undone_by_cancel",),
    hints=(
        "`moment.done` have finished, `moment.running` were started and have not: what "
        "does the engine do with a running step when it is cancelled?",
        "A running step is not cut off: it finishes. One that fails (`moment.will_fail`) "
        "is not undone here: its undo is logged after it, and it never succeeded.",
        "A step with no undo (`saga[name].undo is None`) is never undone; a step not yet "
        "started never starts.",
    ),
    solution_code=(
        "# exercise: 12.2\n"
        "def undone_by_cancel(saga, moment):\n"
        "    finished = [*moment.done, *(s for s in moment.running if s not in moment.will_fail)]\n"
        "    return [s for s in finished if saga[s].undo is not None]"
    ),
)

register(q1, q2)
