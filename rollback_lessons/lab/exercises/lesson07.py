"""Lesson 07 exercise: read a journal after a crash and predict what ``recover`` will run.

The check builds real journals of sagas that crashed at every kind of moment (during their
steps, or part-way through their rollback, with dead letters, a step that failed before
doing anything, or a step cut short before its undo was logged), with 0 to 12 undos whose
names sort differently from the order they ran in; it runs the real ``recover`` on them
and compares the undos it called with the learner's prediction.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...durable.journal import Journal
from ...durable.records import UndoRecord
from ...durable.recovery import recover
from ...durable.registry import Registry, compensation
from . import Exercise, Incorrect, call, forall, function, generator, not_names, register

NAMES = ("reserve_room", "charge_card", "book_taxi", "add_row", "hold_seat", "create_event")


@dataclass(frozen=True)
class World:
    steps: tuple[str, ...]  # in the order they ran (and their undos were logged)
    states: tuple[str, ...]  # each undo's state in the journal

    def __str__(self) -> str:
        shown = ", ".join(f"{s}={st}" for s, st in zip(self.steps, self.states, strict=True))
        return f"for a journal with {shown or 'no undos'}"


def _crash(rng: Any, count: int) -> tuple[str, ...]:
    """The states of ``count`` undos of a saga that crashed: during its steps (all pending,
    the newest maybe an intent: its step started, its undo not logged yet), or part-way
    through its rollback (the failed step's undo maybe not_run, the newest others done or
    dead, newest first, the rest pending)."""
    if count == 0:
        return ()
    if rng.random() < 0.3:
        return ("pending",) * (count - 1) + (rng.choice(("pending", "intent")),)
    last = rng.choice(("not_run", None)) if count > 1 else None
    rest = count - 1 if last else count
    undone = rng.randint(0, rest)
    states = ["pending"] * (rest - undone) + [rng.choice(("done", "dead")) for _ in range(undone)]
    return tuple(states) + ((last,) if last else ())


def worlds() -> list[World]:
    rng = generator("07.1")
    found = [
        World(("step1", "step2", "step3"), ("pending", "pending", "done")),  # the lesson's
        World((), ()),
    ]
    for _ in range(160):
        count = rng.choice((1, 2, 3, rng.randint(4, 12)))
        if rng.random() < 0.5:
            steps = tuple(f"step{i}" for i in range(1, count + 1))
        else:
            steps = tuple(rng.sample(NAMES, min(count, len(NAMES))))
            steps += tuple(f"step{i}" for i in range(len(steps) + 1, count + 1))
        found.append(World(steps, _crash(rng, count)))
    return found


def size(world: World) -> tuple[int, ...]:
    return (len(world.steps), len(set(world.states)))


_TRUTH: dict[World, tuple[list[UndoRecord], list[str]]] = {}


def _journal_dir() -> str | None:
    """A folder in memory when there is one (each journal write is a durable commit)."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def what_recover_does(cases: list[World]) -> dict[World, tuple[list[UndoRecord], list[str]]]:
    """Each world as one crashed saga in a real journal: its undo records, and the steps
    whose undo the real ``recover`` runs, in order. Built once, then remembered."""
    new = [w for w in dict.fromkeys(cases) if w not in _TRUTH]
    if new:
        registry, called = Registry(), []
        undo = compensation("exercise.undo", registry)(
            lambda saga, step, idempotency_key=None: called.append((saga, step))
        )
        with tempfile.TemporaryDirectory(dir=_journal_dir()) as tmp:
            with Journal(Path(tmp) / "journal.db") as journal:
                for n, world in enumerate(new):
                    run = journal.start("crashed", f"saga-{n}")
                    for step, state in zip(world.steps, world.states, strict=True):
                        at = run.register(
                            step,
                            undo.bind(saga=f"saga-{n}", step=step),
                            "intent" if state == "intent" else "pending",
                        )
                        if state == "done":
                            run.undo_done(at, 1)
                        elif state == "dead":
                            run.undo_dead(at, 1, "ConnectionError('503')")
                        elif state == "not_run":
                            run.abandon(at)
                    run.flush()
                # the process that ran them is gone: it ran on another machine (its
                # own boot too: a host name alone is checked here, this live process)
                gone = "owner_host = 'elsewhere', owner_space = 'pid:[0] boot 0000-e15e-0000'"
                journal.write([(f"UPDATE sagas SET {gone}, claim_pid = NULL", ())])
                records = {n: journal.undos(f"saga-{n}") for n in range(len(new))}
                recover(journal, registry, force=True)
        for n, world in enumerate(new):
            ran = [step for saga, step in called if saga == f"saga-{n}"]
            _TRUTH[world] = (records[n], ran)
    return {w: _TRUTH[w] for w in cases}


def _check_prediction(recover_will_undo: Any) -> str:
    fn = function(recover_will_undo, "recover_will_undo(undos)")
    call(fn, [], name="recover_will_undo", where="for a journal with no undos")
    cases = worlds()
    truth = what_recover_does(cases)

    def holds(world: World) -> None:
        records, ran = truth[world]
        given = [dataclasses.replace(u, args=dict(u.args)) for u in records]
        predicted = call(fn, given, name="recover_will_undo", where=str(world))
        if isinstance(predicted, list | tuple) and any(
            isinstance(u, UndoRecord) for u in predicted
        ):  # (as 04.1 tells Step objects: learn82 F2)
            shown = ", ".join(
                f"UndoRecord(step={u.step!r}, ...)" if isinstance(u, UndoRecord) else repr(u)
                for u in predicted
            )
            names = [u.step if isinstance(u, UndoRecord) else u for u in predicted]
            verdict = (
                "those are the undos recover runs, in its order"
                if names == ran
                else f"recover ran {ran}: it runs the 'pending' undos only, newest first"
            )
            raise Incorrect(
                f"{world} (oldest first), you predicted undo records, [{shown}], not step "
                f"names: {verdict}; return the steps' names (record.step), a list of strings"
            )
        if (slip := not_names(predicted, "the steps' names (record.step)")) is not None:
            raise Incorrect(f"{world} (oldest first), your recover_will_undo {slip}")
        if list(predicted) != ran:
            raise Incorrect(
                f"{world} (oldest first), you predicted {predicted!r}, and recover ran "
                f"{ran}: it runs the 'pending' undos only, newest first"
            )

    forall(cases, holds, size=size)
    return "pending undos, newest first; done and dead ones are skipped, intents reported."


LESSON_IMPORTS = (
    "import inspect\n"
    "from rollback_lessons.worlds import crashlab\n"
    "import tempfile\n"
    "from pathlib import Path\n"
    "from rollback_lessons.durable.journal import Journal\n"
    "from rollback_lessons.durable.recovery import recover\n"
    "from rollback_lessons.worlds.crashlab import effects_table, registry, spawn\n"
    "from rollback_lessons.worlds.crashlab import compare_worlds, crash_on_dbos\n"
    "import shutil\n"
    "import rollback_lessons.lab\n"  # (a cell above imports it: run too early, it says so)
    "from rollback_lessons.lab.exercises import lesson07\n"
)
"""What lesson 07 has imported before its exercises (``Exercise.setup``: a test
compares it with the notebook)."""


q1 = Exercise(
    id="07.1",
    setup=LESSON_IMPORTS,
    title="Predict what recover will do",
    stops="the program asking your prediction stops there, as at a Ctrl-C",
    checker=_check_prediction,
    answer_names=("recover_will_undo",),
    hints=(
        "Each undo record has .step, .position and .state.",
        "A record's state says how far its undo got before the crash: which states leave "
        "an undo that recover still has to run?",
        "A rollback undoes in one order and the journal lists its records in another: "
        "which does recover follow, whatever the steps are called?",
    ),
    solution_code=(
        "# exercise: 07.1\n"
        "def recover_will_undo(undos):\n"
        '    return [u.step for u in reversed(undos) if u.state == "pending"]'
    ),
)

register(q1)
