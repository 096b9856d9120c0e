"""Lesson 12 exercises: declare the dependencies of a trip so that every undo order the
engine may pick is safe (12.1), and predict what a cancel at a given moment undoes (12.2).

12.1's worlds are trips the lesson does not show: 2 to 7 bookings with other names, some of
which use another's effect (a car delivered to a room, a tour met at the ferry), in chains
of any length. The check builds the learner's saga and asks the engine's own graph
(``saga.dependencies``, ``schedule.dependants``, ``schedule.concurrent``) whether every step
waits for what it uses, so no order the engine may pick undoes a used booking first, and
whether steps that use nothing of each other (two users of one booking too) still run at
once. Each step placed must be the one given, or do the same (a copy, or one rebuilt from
its parts): its action books, its undo cancels; a shape alone proves nothing.

12.2's moments, and the bookings both exercises hand out, are made in ``moments``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from typing import Any

from ...graph import Parallel, shown
from ...saga import Saga, Step
from ...schedule import concurrent, dependants
from . import Exercise, Incorrect, call, forall, function, generator, names_list, register
from .moments import BOOKED, NAMES, Case, bookings, cases


def _nothing(state: Any) -> None:
    return None


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
        f"branches steps or lists of steps), a Step, or a list of them; got {shown(answer)}"
    )


_KEPT = ("kind", "register", "retry", "undo_timeout", "semantic")
"""What a step's copy keeps beside its action and undo (its label may change)."""


def _changed(given: Step, got: Step, trip: Trip) -> str:
    """What the learner's step ``got`` lost of the given one: '' when it is the given step,
    a copy, or one rebuilt from its parts, or one whose action and undo do the same."""
    if got is given:
        return ""
    lost = [
        f"its {f} {getattr(given, f)!r} (yours: {getattr(got, f)!r})"
        for f in _KEPT
        if getattr(got, f) != getattr(given, f)
    ]
    where = f"{trip}, your {got.name} step"
    state: dict[str, Any] = {}
    if got.action is not given.action:
        call(got.action, state, name=f"{got.name}'s action", where=where)
        if state != {got.name: BOOKED}:
            booked = {got.name: BOOKED}
            lost.append(f"its action (on an empty state it left {state}, not {booked})")
    if got.undo is None:
        lost.append("its undo (undo=None: nothing would cancel the booking)")
    elif got.undo is not given.undo:
        state = {got.name: BOOKED}
        call(got.undo, state, name=f"{got.name}'s undo", where=where)  # type: ignore[arg-type]
        if state:
            lost.append(f"its undo (after it, the state is {state}: the booking stays)")
    return "; ".join(lost)


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
        steps = bookings(trip.names)
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
        for step in steps:
            lost = _changed(step, saga[step.name], trip)
            if lost:
                raise Incorrect(
                    f"{trip}, your {step.name} is not the step given: it lost {lost}. "
                    "Place the steps you are given (each books, and its undo cancels), not "
                    "new ones"
                )
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


def _case_size(case: Case) -> tuple[int, int]:
    return (len(case.undo), len(case.moment.running))


def _check_cancel(undone_by_cancel: Any) -> str:
    fn = function(undone_by_cancel, "undone_by_cancel(saga, moment)")
    every = cases()

    def holds(case: Case) -> None:
        given = call(fn, case.saga(), case.moment, name="undone_by_cancel", where=str(case))
        if isinstance(given, Set | Mapping):  # which steps: any collection will do
            given = sorted(given, key=str)
        elif isinstance(given, Iterable) and not isinstance(given, str | bytes):
            given = list(given)  # (a generator is read once)
        if any(isinstance(item, Step) for item in (given if isinstance(given, list) else [given])):
            raise Incorrect(
                f"{case}, undone_by_cancel should return step names, such as "
                f"{case.undo[0][0]!r}, not Step objects (a step's name is step.name)"
            )
        names = sorted(n for n, _ in case.undo)
        try:
            what = "undone_by_cancel should return names of this saga's steps"
            predicted = names_list(given, names, what)
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
                elif n not in m.done and n not in m.running:
                    why.append(f"{n} never started: nothing starts after a cancel")
                else:
                    why.append(f"{n} was not undone")
            said = (  # (learn220 F1: a forgotten return was told "you predicted []")
                "undone_by_cancel returned None (read as none: is a `return` missing?)"
                if given is None
                else f"you predicted {sorted(predicted)}"
            )
            raise Incorrect(
                f"{case}, {said}, and the engine undid "
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
    stops="the program building the saga stops there, as at a Ctrl-C",
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
    stops="the program asking for your prediction stops there, as at a Ctrl-C",
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
