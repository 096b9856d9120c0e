"""Lesson 05 exercises: read a failed run's story from its log; decide who gets paged.

05.2 runs the learner's ``needs_a_person`` over the events of runs it draws: sagas of 1 to 4
compensable steps (some logging their undo before they run), with an email after them and
a step retried forward after it, or the email first (an unsafe order), or none; a step
failing before or after its effect, the forward step failing for a while or for good;
undos failing once, twice or for good; under continue, retry (then a dead letter or a
halt) and halt. A run that ends halted or rollback_incomplete (an undo given up on, or an
effect nothing undid) needs a page; any other run, none: lesson 05 logs exactly those
endings at ERROR, "what a person must act on".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from typing import Any

from ...clock import VirtualClock
from ...events import Event
from ...outcome import Outcome, Status
from ...policies import Retry
from ...saga import Saga, State, Step
from ...worlds.examples import order_saga, order_state
from . import (
    Exercise,
    Incorrect,
    attempted,
    canonical,
    choose,
    forall,
    function,
    generator,
    names_list,
    raised,
    register,
)


def mystery_run() -> Outcome:
    """A failed run whose log the learner reads (its outcome stays hidden in the lesson)."""
    return order_saga().run(
        order_state(),
        inject={"label": "fail", "reserve": "undo_fails_once"},
        policy="retry",
        clock=VirtualClock(),
    )


def mystery_log() -> str:
    return mystery_run().to_jsonl()


FIELDS = ("failed_step", "undone", "dead_letters")
WHERE = {
    "failed_step": "find the event that says the pipeline stopped, and its step (a failed "
    "undo is not a failed step)",
    "undone": "which undos finished, in the order they finished? An undo that failed and "
    "was tried again may still have finished",
    "dead_letters": "which undos were given up on for good, rather than tried again?",
}


def _check_story(answer: Any) -> str:
    if not isinstance(answer, dict):
        raise Incorrect(f"answer with a dict, got {answer!r}")
    given = {canonical(k): v for k, v in answer.items()}
    outcome = mystery_run()
    steps = list(outcome.steps)
    expected = {
        "failed_step": outcome.failed_step,
        "undone": list(outcome.compensated),
        "dead_letters": [d.step for d in outcome.dead_letters],
    }
    for key in FIELDS:
        if canonical(key) not in given:
            raise Incorrect(f"the answer needs {key!r}")
        value = given[canonical(key)]
        if key == "failed_step":
            if isinstance(value, list | tuple) and len(value) == 1:
                value = value[0]  # a list of the one step is the step
            if isinstance(value, list | tuple):
                raise Incorrect(
                    f"failed_step: {value!r} is a list; one step failed: give its name, a string"
                )
            said: Any = choose(value, steps, key) if isinstance(value, str) else value
        else:
            said = names_list(value, steps, key)
        if said != expected[key]:
            raise Incorrect(f"{key}: {value!r} is not what the log says; {WHERE[key]}")
    return "you read the whole story from the log alone."


LESSON_IMPORTS = (
    "from rollback_lessons import VirtualClock\n"
    "from rollback_lessons.worlds.examples import order_saga, order_state\n"
    "from IPython.display import HTML\n"
    "from rollback_lessons.events import events_html\n"
    "import io\n"
    "import logging\n"
    "from rollback_lessons.worlds.examples import SAFE_BOOKING_ORDER, booking_saga, booking_state\n"
    "from rollback_lessons.lab.widgets import RollbackLab\n"
    "from IPython.display import Image\n"
    "from rollback_lessons.lab import viz\n"
    "from rollback_lessons.lab.exercises import ____, lesson05\n"
)
"""What lesson 05 has imported before its exercises (``Exercise.setup``: a test
compares it with the notebook)."""


q1 = Exercise(
    id="05.1",
    setup=LESSON_IMPORTS,
    title="Read a failed run from its log",
    checker=_check_story,
    answer_names=("story",),
    hints=(
        "json.loads each line; look at the 'kind' of each event.",
        "An undo that failed and was given up has then=dead_letter in its undo_failed event.",
        "then=retry means another attempt follows: did it end in an undo_done?",
    ),
    solution_code=(
        "# exercise: 05.1\n"
        'story = {"failed_step": "label", "undone": ["pay", "reserve"], "dead_letters": []}'
    ),
)


NAMES = ("reserve", "pay", "label", "insure", "pack", "book_van")
POLICIES = ("continue", "retry", "retry, then halt", "halt")
FOREVER = 99  # an undo that fails this many times fails for good
TIMES = {1: "fails once, then works", 2: "fails twice, then works", FOREVER: "fails for good"}
EMAIL = ("none", "last", "first")  # no email; the email after the compensable steps and a
# step retried forward after it (lesson 04's safe order); the email first (an unsafe order)


@dataclass(frozen=True)
class World:
    steps: tuple[
        tuple[str, str], ...
    ]  # compensable steps in order: (name, when its undo is logged)
    email: str  # one of EMAIL
    fails: str | None  # the step that fails (or None)
    how: str  # "fail" (before its effect) or "fail_after_effect"
    ship_down: int  # how many calls of ship (retried forward after the email) fail
    undo_faults: tuple[tuple[str, int], ...]  # (step, how many times its undo fails)
    policy: str

    @property
    def names(self) -> tuple[str, ...]:
        steps = tuple(name for name, _ in self.steps)
        if self.email == "first":
            return ("email", *steps)
        return steps + (("email", "ship") if self.email == "last" else ())

    def saga(self) -> Saga:
        def undo(name: str, state: State) -> None:
            if state["undo_down"].get(name, 0) > 0:
                state["undo_down"][name] -= 1
                raise ConnectionError(f"undo of {name}: 503 Service Unavailable")

        def ship(state: State) -> None:
            if state["ship_down"] > 0:
                state["ship_down"] -= 1
                raise ConnectionError("shipping service: 503 Service Unavailable")

        register = dict(self.steps)
        steps = []
        for name in self.names:
            if name == "email":
                steps.append(Step("email", lambda s: None, kind="pivot"))
            elif name == "ship":
                steps.append(Step("ship", ship, kind="retriable"))
            else:
                steps.append(
                    Step(
                        name,
                        lambda s: None,
                        partial(undo, name),
                        register="before" if register[name] == "before" else "after",
                    )
                )
        return Saga(steps, name="order", allow_unsafe_order=self.email == "first")

    def run(self) -> Outcome:
        inject = {self.fails: self.how} if self.fails is not None else {}
        policy: Any = self.policy
        if self.policy == "retry, then halt":
            policy = Retry(then="halt")
        state = {"undo_down": dict(self.undo_faults), "ship_down": self.ship_down}
        return self.saga().run(state, inject=inject, policy=policy, clock=VirtualClock())

    def __str__(self) -> str:
        shown = [
            f"{name} (its undo logged before it runs)" if register == "before" else name
            for name, register in self.steps
        ]
        if self.email == "first":
            shown = ["email", *shown]
        elif self.email == "last":
            shown += ["email", "ship"]
        text = f"in a run of {', '.join(shown)}"
        if self.email == "first":
            text += " (an unsafe order: the email goes first)"
        text += f", under policy {self.policy}"
        if self.fails is not None:
            text += f", where {self.fails} fails"
            text += " after its effect" if self.how == "fail_after_effect" else ""
        elif self.ship_down:
            text += ", where ship (retried forward after the email) fails " + (
                "on every attempt"
                if self.ship_down >= FOREVER
                else "once, then works"
                if self.ship_down == 1
                else f"{self.ship_down} times, then works"
            )
        else:
            text += ", where nothing fails"
        for step, times in self.undo_faults:
            text += f", and the undo of {step} {TIMES[times]}"
        return text


def worlds() -> list[World]:
    """Sagas of 1 to 4 compensable steps, some logging their undo before they run; an
    email after them (and a step retried forward after it), or first (an unsafe order), or
    none; a step failing before or after its effect, or none, or the forward step failing
    for a while or for good; undos failing once, twice or for good; every policy."""
    rng = generator("05.2")
    found = []
    for _ in range(400):
        names = rng.sample(NAMES, rng.randint(1, 4))
        steps = tuple((n, rng.choice(("after", "after", "before"))) for n in names)
        email = rng.choice(("none", "none", "last", "last", "first"))
        world = World(steps, email, None, "fail", 0, (), rng.choice(POLICIES))
        fails = rng.choice((None, *world.names))
        if fails == "ship":
            fails, ship_down = None, rng.choice((1, 2, FOREVER))
        else:
            ship_down = 0
        how = rng.choice(("fail", "fail_after_effect"))
        if fails is None:
            done: tuple[str, ...] = ()  # nothing is rolled back, so no undo runs
        else:
            at = world.names.index(fails)
            done = tuple(n for n in names if world.names.index(n) < at)
            done += (fails,) if dict(steps).get(fails) == "before" else ()
        undo_faults = tuple((step, rng.choice(tuple(TIMES))) for step in done if rng.random() < 0.4)
        found.append(World(steps, email, fails, how, ship_down, undo_faults, world.policy))
    return found


def size(world: World) -> tuple[int, ...]:
    return (
        len(world.names),
        len(world.undo_faults),
        POLICIES.index(world.policy),
        world.fails is not None and world.how == "fail_after_effect",
    )


def _ending(outcome: Outcome) -> str:
    if outcome.status is Status.HALTED:
        return f"halted, with {', '.join(outcome.pending)} left for a person"
    if outcome.status is Status.ROLLBACK_INCOMPLETE:
        left = [f"the undo of {d.step} was given up on" for d in outcome.dead_letters]
        left += [
            "the email stays sent"
            if step == "email"
            else f"{step}'s effect was never undone "
            "(its undo was not in the log when it failed after its effect)"
            for step in outcome.leaked
        ]
        return f"rollback_incomplete: {'; '.join(left)}"
    return str(outcome.status)


def _shown(event: Event) -> str:
    """The event as the log shows it, without its run id and times."""
    return json.dumps({"kind": event.kind, "step": event.step, **event.details})


def _check_pager(needs_a_person: Any) -> str:
    fn = function(needs_a_person, "needs_a_person(event)")
    attempted(fn, Event(1, "committed", None, {}))

    def holds(world: World) -> None:
        outcome = world.run()
        paged = []
        for event in outcome.events:
            try:
                answer = fn(event)
            except Exception as exc:
                raise Incorrect(
                    f"{world}, for the event {_shown(event)}, {raised(exc, 'needs_a_person')}"
                ) from None
            if not isinstance(answer, bool):
                raise Incorrect(
                    f"{world}, for the event {_shown(event)}, needs_a_person returned "
                    f"{answer!r}: it should return True or False"
                )
            if answer:
                paged.append(event)
        needed = outcome.status in (Status.HALTED, Status.ROLLBACK_INCOMPLETE)
        ending = _ending(outcome)
        if paged and not needed:
            first = paged[0]
            why = "the run finished on its own, with nothing left for a person"
            if first.kind == "undo_failed" and first.details.get("then") == "retry":
                why = "a retry of the undo was still coming, and the rollback completed"
            elif first.kind == "step_retry":
                why = "the step was retried forward, and it worked"
            elif first.kind == "step_failed" and first.details.get("after_effect"):
                why = "its undo was logged before it ran, so the rollback undid its effect"
            raise Incorrect(
                f"{world}, you paged for {_shown(first)}; the run ended {ending}: {why}"
            )
        if needed and not paged:
            raise Incorrect(
                f"{world}, the run ended {ending}, and you never paged: someone has to finish it"
            )

    runs = forall(worlds(), holds, size=size)
    return f"in {runs} runs, you page for every run that leaves work for a person, and no other."


q2 = Exercise(
    id="05.2",
    setup=LESSON_IMPORTS,
    title="Who needs to be paged?",
    stops="the program reading the events stops there, as at a Ctrl-C",
    checker=_check_pager,
    answer_names=("needs_a_person",),
    hints=(
        "event.kind is the kind; event.details is a dict (undo_failed has 'then', "
        "rollback_done has 'status').",
        "An undo that failed may still work on a retry, and a run can end incomplete with "
        "no undo failing at all (an effect whose undo was never logged, lesson 04): which "
        "event says how the whole rollback ended?",
        "A run can also stop for a person with no rollback at all: a step after the email "
        "that keeps failing. Look for the event that says so.",
    ),
    solution_code=(
        "# exercise: 05.2\n"
        "def needs_a_person(event):\n"
        '    if event.kind == "rollback_done":\n'
        '        return event.details["status"] != "rolled_back"\n'
        '    return event.kind == "halted"'
    ),
)

register(q1, q2)
