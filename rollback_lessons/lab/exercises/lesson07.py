"""Lesson 07 exercise: read a journal after a crash and predict what ``recover`` will run.

The check builds real journals with undos in every state, runs the real ``recover`` on
each, and compares the undos it called with the learner's prediction.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ...durable.journal import Journal
from ...durable.recovery import recover
from ...durable.registry import Registry, compensation
from . import Exercise, Incorrect, attempted, function, register

# The lesson's case (killed mid-rollback after undoing step 3) first, then others
_CASES: tuple[tuple[str, ...], ...] = (
    ("pending", "pending", "done"),
    ("pending", "pending", "pending"),
    ("done", "pending", "dead", "pending"),
    ("pending", "intent"),
    ("pending", "not_run", "pending", "done"),
    (),
)


def _journal_with(folder: Path, states: tuple[str, ...]) -> tuple[Journal, Registry, list[str]]:
    """A journal whose one saga's process died with undos in ``states`` (oldest first)."""
    registry, called = Registry(), []
    undo = compensation("exercise.undo", registry)(
        lambda step, idempotency_key=None: called.append(step)
    )
    journal = Journal(folder / "journal.db")
    run = journal.start("crashed", "saga-1")
    for i, state in enumerate(states, start=1):
        step = f"step{i}"
        position = run.register(
            step, undo.bind(step=step), "intent" if state == "intent" else "pending"
        )
        if state == "done":
            run.undo_done(position, 1)
        elif state == "dead":
            run.undo_dead(position, 1, "ConnectionError('503')")
        elif state == "not_run":
            run.abandon(position)
    run.flush()
    journal.write([("UPDATE sagas SET owner_host = 'elsewhere', claim_pid = NULL", ())])
    return journal, registry, called


def _check_prediction(recover_will_undo: Any) -> str:
    fn = function(recover_will_undo, "recover_will_undo")
    attempted(fn, [])
    for states in _CASES:
        with tempfile.TemporaryDirectory() as tmp:
            journal, registry, called = _journal_with(Path(tmp), states)
            with journal:
                undos = journal.undos("saga-1")
                predicted = fn(list(undos))
                recover(journal, registry, force=True)  # its process ran "elsewhere"
        shown = ", ".join(f"{u.step}={u.state}" for u in undos) or "no undos"
        if not isinstance(predicted, list | tuple) or list(predicted) != called:
            raise Incorrect(
                f"for a journal with {shown}, you predicted {predicted!r}, and recover "
                f"ran {called}: it runs the 'pending' undos only, newest first"
            )
    return "pending undos, newest first; done and dead ones are skipped, intents reported."


q1 = Exercise(
    id="07.1",
    title="Predict what recover will do",
    checker=_check_prediction,
    answer_names=("recover_will_undo",),
    hints=(
        "Each undo record has .step, .position and .state.",
        "Only undos whose state is 'pending' still need running; 'intent' means the undo "
        "was never logged, so recover reports the step instead of running anything.",
        "The records come oldest first; recover runs the newest first.",
    ),
    solution_code=(
        "# exercise: 07.1\n"
        "def recover_will_undo(undos):\n"
        '    return [u.step for u in reversed(undos) if u.state == "pending"]'
    ),
    wrong_answers=(
        'def recover_will_undo(undos):\n    return [u.step for u in undos if u.state == "pending"]',
        "def recover_will_undo(undos):\n    return [u.step for u in reversed(undos)]",
        "def recover_will_undo(undos):\n"
        '    return [u.step for u in reversed(undos) if u.state != "done"]',
        'def recover_will_undo(undos):\n    return ["step2", "step1"]',
    ),
    right_answers=(
        "def recover_will_undo(undos):\n"
        "    pending = sorted(undos, key=lambda u: u.position, reverse=True)\n"
        '    return [u.step for u in pending if u.state not in ("done", "dead", "intent", '
        '"not_run")]',
        "def recover_will_undo(undos):\n"
        "    steps = []\n"
        "    for u in undos:\n"
        '        if u.state == "pending":\n'
        "            steps.insert(0, u.step)\n"
        "    return tuple(steps)",
    ),
)

register(q1)
