"""Lesson 05 exercises: read a failed run's story from its log; decide who gets paged.

05.2 runs the learner's ``needs_a_person`` over the events of runs it draws: sagas of 1 to 5
steps (some with an email and a step retried forward after it), a step failing or none,
undos failing for good or once, under continue, retry (then a dead letter or a halt) and
halt. A run that ends halted or rollback_incomplete needs a page; any other run, none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ...clock import VirtualClock
from ...events import Event
from ...outcome import Outcome, Status
from ...policies import Retry
from ...saga import Saga, Step
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
    "failed_step": "the step of the pipeline_failed event",
    "undone": "the undo_done events, in order",
    "dead_letters": "the undo_failed events whose then is dead_letter",
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
            said: Any = choose(value, steps, key) if isinstance(value, str) else value
        else:
            said = names_list(value, steps, key)
        if said != expected[key]:
            raise Incorrect(f"{key}: {value!r} is not what the log says; look at {WHERE[key]}")
    return "you read the whole story from the log alone."


q1 = Exercise(
    id="05.1",
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
UNDO_FAULTS = {"undo_fails": "fails for good", "undo_fails_once": "fails once, then works"}


@dataclass(frozen=True)
class World:
    steps: tuple[str, ...]  # compensable steps, in order
    pivot: bool  # an email (irreversible) and a step retried forward after it follow them
    fails: str | None  # the step that fails (or None)
    undo_faults: tuple[tuple[str, str], ...]  # (step, undo fault)
    policy: str

    @property
    def names(self) -> tuple[str, ...]:
        return self.steps + (("email", "ship") if self.pivot else ())

    def saga(self) -> Saga:
        steps = [Step(n, lambda s: None, lambda s: None) for n in self.steps]
        if self.pivot:
            steps.append(Step("email", lambda s: None, kind="pivot"))
            steps.append(Step("ship", lambda s: None, kind="retriable"))
        return Saga(steps, name="order")

    def run(self) -> Outcome:
        inject: dict[str, list[str]] = {step: [fault] for step, fault in self.undo_faults}
        if self.fails is not None:
            inject.setdefault(self.fails, []).insert(0, "fail")
        policy: Any = self.policy
        if self.policy == "retry, then halt":
            policy = Retry(then="halt")
        return self.saga().run({}, inject=inject, policy=policy, clock=VirtualClock())

    def __str__(self) -> str:
        text = f"in a run of {', '.join(self.names)} under policy {self.policy}"
        if self.fails is None:
            return text + " where nothing fails"
        text += f" where {self.fails} fails"
        if self.fails == "ship":
            text += " on every attempt (it is retried forward, after the email)"
        for step, fault in self.undo_faults:
            text += f" and the undo of {step} {UNDO_FAULTS[fault]}"
        return text


def worlds() -> list[World]:
    rng = generator("05.2")
    found = []
    for _ in range(400):
        steps = tuple(rng.sample(NAMES, rng.randint(1, 4)))
        pivot = rng.random() < 0.3
        names = steps + (("email", "ship") if pivot else ())
        fails = rng.choice((None, *names))
        done = steps[: steps.index(fails)] if fails in steps else steps if fails else ()
        undo_faults = tuple(
            (step, rng.choice(list(UNDO_FAULTS))) for step in done if rng.random() < 0.4
        )
        if fails in (None, "ship"):
            undo_faults = ()  # no undo runs
        found.append(World(steps, pivot, fails, undo_faults, rng.choice(POLICIES)))
    return found


def size(world: World) -> tuple[int, ...]:
    return (len(world.names), len(world.undo_faults), POLICIES.index(world.policy))


def _ending(outcome: Outcome) -> str:
    if outcome.status is Status.HALTED:
        return f"halted, with {', '.join(outcome.pending)} left for a person"
    if outcome.status is Status.ROLLBACK_INCOMPLETE:
        dead = ", ".join(d.step for d in outcome.dead_letters)
        return f"rollback_incomplete: the undo of {dead} was given up on"
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
                if fn(event):
                    paged.append(event)
            except Exception as exc:
                raise Incorrect(
                    f"{world}, for the event {_shown(event)}, {raised(exc, 'needs_a_person')}"
                ) from None
        needed = outcome.status in (Status.HALTED, Status.ROLLBACK_INCOMPLETE)
        ending = _ending(outcome)
        if paged and not needed:
            first = _shown(paged[0])
            why = (
                "a retry was still coming, and it worked"
                if paged[0].details.get("then") == "retry"
                else "the run finished on its own"
            )
            raise Incorrect(f"{world}, you paged for {first}; the run ended {ending}: {why}")
        if needed and not paged:
            raise Incorrect(
                f"{world}, the run ended {ending}, and you never paged: someone has to finish it"
            )

    runs = forall(worlds(), holds, size=size)
    return f"in {runs} runs, you page for every run that leaves work for a person, and no other."


q2 = Exercise(
    id="05.2",
    title="Who needs to be paged?",
    checker=_check_pager,
    answer_names=("needs_a_person",),
    hints=(
        "event.kind is the kind; event.details is a dict (undo_failed has 'then', "
        "rollback_done has 'status').",
        "then can be 'retry', 'dead_letter' or 'halt': only one of those is temporary.",
        "A run can also stop for a person without any undo failing: a step after the "
        "email that keeps failing. Look for the event that says so.",
    ),
    solution_code=(
        "# exercise: 05.2\n"
        "def needs_a_person(event):\n"
        '    if event.kind == "undo_failed":\n'
        '        return event.details["then"] != "retry"\n'
        '    return event.kind == "halted"'
    ),
)

register(q1, q2)
