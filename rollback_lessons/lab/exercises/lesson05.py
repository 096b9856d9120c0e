"""Lesson 05 exercises: read a failed run's story from its log; decide who gets paged."""

from __future__ import annotations

import json
from typing import Any

from ...clock import VirtualClock
from ...events import Event
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


def _runs() -> list[list[Event]]:
    """Runs that cover every reason to page a person, and every reason not to."""
    saga = order_saga()
    cases = [
        ({}, "continue"),
        ({"label": "fail"}, "continue"),
        ({"label": "fail", "pay": "undo_fails"}, "continue"),
        ({"label": "fail", "pay": "undo_fails_once"}, "retry"),
        ({"label": "fail", "pay": "undo_fails"}, "retry"),
        ({"label": "fail", "reserve": "undo_fails"}, "halt"),
    ]
    return [
        list(saga.run(order_state(), inject=i, policy=p, clock=VirtualClock()).events)
        for i, p in cases
    ]


def should_page(event: Event) -> bool:
    return event.kind == "halted" or (
        event.kind == "undo_failed" and event.details.get("then") in ("dead_letter", "halt")
    )


def _check_pager(needs_a_person: Any) -> str:
    fn = function(needs_a_person, "needs_a_person")
    attempted(fn, Event(1, "committed", None, {}))
    for events in _runs():
        for event in events:
            got, want = bool(fn(event)), should_page(event)
            if got and not want:
                why = (
                    "a retry is still coming" if event.details.get("then") == "retry" else
                    "nothing is left for a person"
                )  # fmt: skip
                raise Incorrect(f"you page for {json.dumps(event.as_dict())}, but {why}")
            if want and not got:
                raise Incorrect(
                    f"you do not page for {json.dumps(event.as_dict())}: "
                    "an undo given up on leaves the world half-undone"
                )
    return "you page exactly when an undo is given up on, and never for a retry."


q2 = Exercise(
    id="05.2",
    title="Who needs to be paged?",
    checker=_check_pager,
    answer_names=("needs_a_person",),
    hints=(
        "event.kind is the kind; event.details is a dict (undo_failed has 'then').",
        "then can be 'retry', 'dead_letter' or 'halt': only one of those is temporary.",
    ),
    solution_code=(
        "# exercise: 05.2\n"
        "def needs_a_person(event):\n"
        '    return event.kind == "undo_failed" and event.details["then"] != "retry"'
    ),
    wrong_answers=(
        'def needs_a_person(event):\n    return event.kind == "undo_failed"',
        'def needs_a_person(event):\n    return event.kind == "pipeline_failed"',
        "def needs_a_person(event):\n    return False",
    ),
)

register(q1, q2)
