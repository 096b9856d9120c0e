"""Lesson 05 exercises: read a failed run's story from its log; decide who gets paged."""

from __future__ import annotations

import json
from typing import Any

from ...clock import VirtualClock
from ...events import Event
from ...outcome import Outcome, Status
from ...saga import Saga, Step
from ...worlds.examples import order_saga, order_state
from . import Exercise, Incorrect, attempted, function, register


def mystery_run():
    """A failed run whose log the learner reads (its outcome stays hidden in the lesson)."""
    return order_saga().run(
        order_state(),
        inject={"label": "fail", "reserve": "undo_fails_once"},
        policy="retry",
        clock=VirtualClock(),
    )


def mystery_log() -> str:
    return mystery_run().to_jsonl()


def _check_story(answer: Any) -> str:
    if not isinstance(answer, dict):
        raise Incorrect(f"answer with a dict, got {answer!r}")
    outcome = mystery_run()
    expected = {
        "failed_step": outcome.failed_step,
        "undone": list(outcome.compensated),
        "dead_letters": [d.step for d in outcome.dead_letters],
    }
    for key, value in expected.items():
        if key not in answer:
            raise Incorrect(f"the answer needs {key!r}")
        given = list(answer[key]) if isinstance(answer[key], list | tuple) else answer[key]
        if given != value:
            where = {
                "failed_step": "the step of the pipeline_failed event",
                "undone": "the undo_done events, in order",
                "dead_letters": "the undo_failed events whose then is dead_letter",
            }[key]
            raise Incorrect(f"{key}: {given!r} is not what the log says; look at {where}")
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
    wrong_answers=(
        'story = {"failed_step": "reserve", "undone": ["pay", "reserve"], "dead_letters": []}',
        'story = {"failed_step": "label", "undone": ["pay"], "dead_letters": ["reserve"]}',
        'story = {"failed_step": "label", "undone": ["reserve", "pay"], "dead_letters": []}',
        'story = {"failed_step": "label", "undone": ["pay", "reserve"]}',
        'story = "label failed"',
    ),
)


def _runs() -> list[tuple[str, list[Event]]]:
    """Runs that need a person and runs that do not, with ones the lesson never shows
    (retries that run out, a halt, a failure after the point of no return)."""
    saga = order_saga()
    cases = [
        ({}, "continue"),
        ({"label": "fail"}, "continue"),
        ({"label": "fail", "pay": "undo_fails"}, "continue"),
        ({"label": "fail", "pay": "undo_fails_once"}, "retry"),
        ({"label": "fail", "pay": "undo_fails"}, "retry"),
        ({"label": "fail", "reserve": "undo_fails"}, "halt"),
        ({"pay": "fail", "reserve": "undo_fails_once"}, "retry"),
    ]
    runs = [saga.run(order_state(), inject=i, policy=p, clock=VirtualClock()) for i, p in cases]
    after_pivot = Saga(
        [
            Step("charge", lambda s: s.update(paid=30), lambda s: s.update(paid=0)),
            Step("email", lambda s: s.update(sent=True), kind="pivot"),
            Step("receipt", lambda s: s.update(receipt=True), kind="retriable"),
        ],
        name="receipt",
    )
    runs.append(after_pivot.run({}, inject={"receipt": "fail"}, clock=VirtualClock()))
    return [(_ending(o), list(o.events)) for o in runs]


def _ending(outcome: Outcome) -> str:
    if outcome.status is Status.HALTED:
        return f"halted: {', '.join(outcome.pending)} left for a person"
    if outcome.status is Status.ROLLBACK_INCOMPLETE:
        dead = ", ".join(d.step for d in outcome.dead_letters)
        return f"rollback_incomplete: the undo of {dead} was given up on"
    return str(outcome.status)


def _check_pager(needs_a_person: Any) -> str:
    fn = function(needs_a_person, "needs_a_person")
    attempted(fn, Event(1, "committed", None, {}))
    for ending, events in _runs():
        paged = [e for e in events if fn(e)]
        needed = ending.startswith(("halted", "rollback_incomplete"))
        if paged and not needed:
            first = json.dumps(paged[0].as_dict())
            why = (
                "a retry was still coming, and it succeeded"
                if paged[0].details.get("then") == "retry"
                else "the rollback finished on its own"
            )
            raise Incorrect(f"you page for {first} in a run that ended {ending}: {why}")
        if needed and not paged:
            raise Incorrect(f"a run ended {ending}, and you never paged: someone has to finish it")
    return "you page for every run that leaves work for a person, and for no other."


q2 = Exercise(
    id="05.2",
    title="Who needs to be paged?",
    checker=_check_pager,
    answer_names=("needs_a_person",),
    hints=(
        "event.kind is the kind; event.details is a dict (undo_failed has 'then', "
        "rollback_done has 'status').",
        "then can be 'retry', 'dead_letter' or 'halt': only one of those is temporary.",
        "A run can also stop for a person without any undo failing: look for 'halted'.",
    ),
    solution_code=(
        "# exercise: 05.2\n"
        "def needs_a_person(event):\n"
        '    if event.kind == "undo_failed":\n'
        '        return event.details["then"] != "retry"\n'
        '    return event.kind == "halted"'
    ),
    wrong_answers=(
        'def needs_a_person(event):\n    return event.kind == "undo_failed"',
        'def needs_a_person(event):\n    return event.kind == "pipeline_failed"',
        "def needs_a_person(event):\n    return False",
        # forgets the forward halt after a pivot (a run the lesson does not show)
        "def needs_a_person(event):\n"
        '    return event.kind == "undo_failed" and event.details["then"] != "retry"',
    ),
    right_answers=(
        # by the end of the run instead of by each undo
        "def needs_a_person(event):\n"
        '    if event.kind == "rollback_done":\n'
        '        return event.details["status"] != "rolled_back"\n'
        '    return event.kind == "halted"',
        # both: a page when the undo is given up on, and again at the end
        "def needs_a_person(event):\n"
        '    given_up = event.kind == "undo_failed" and event.details.get("then") in '
        '("dead_letter", "halt")\n'
        '    incomplete = event.kind == "rollback_done" and event.details.get("status") in '
        '("rollback_incomplete", "halted")\n'
        '    return given_up or incomplete or event.kind == "halted"',
        # by the level the logger gives it
        "import logging\n"
        "from rollback_lessons.events import level_of\n\n"
        "def needs_a_person(event):\n"
        "    return level_of(event.kind, event.details) >= logging.ERROR",
    ),
)

register(q1, q2)
