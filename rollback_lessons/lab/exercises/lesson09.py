"""Lesson 09 exercise: wire a state machine's Catch and Next edges yourself.

``check`` takes the learner's ``wire(steps)`` and first follows its edges in this process,
for sagas it draws (1 to 12 steps, names that sort differently from the order they run
in, each undo logged after its step) and every failure of each: a mistake is found in a
moment and named in that saga's own steps. Then it puts the edges into the Step Functions
state machine of a saga the lesson does not show, runs a failure of it on moto's
interpreter, and holds the run to the saga's own rules.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import partial
from typing import Any

from ...saga import Saga, Step
from . import Exercise, Incorrect, attempted, call, forall, function, generator, register

END = "Rolled back"
NAMES = ("reserve_room", "charge_card", "create_row", "book_slot", "send_receipt", "add_guest")


def _saga(names: tuple[str, ...]) -> Saga:
    """Each step puts its name on a stack; its undo takes it off, and refuses while a
    later step's effect is still on top (as a folder cannot go before its file)."""

    def do(name: str, state: dict[str, Any]) -> None:
        state["done"].append(name)

    def undo(name: str, state: dict[str, Any]) -> None:
        if not state["done"] or state["done"][-1] != name:
            raise RuntimeError(f"cannot undo {name} while {state['done'][-1:]} is on top")
        state["done"].pop()

    return Saga(
        [Step(n, partial(do, n), partial(undo, n), register="after") for n in names],
        name="exercise",
    )


@dataclass(frozen=True)
class World:
    steps: tuple[str, ...]

    def __str__(self) -> str:
        return f"for the saga {list(self.steps)}"


def worlds() -> list[World]:
    rng = generator("09.1")
    found = [World(("step1", "step2", "step3"))]  # the lesson's
    for _ in range(150):
        count = rng.choice((1, 2, 3, rng.randint(4, 12)))
        if rng.random() < 0.5:
            steps = tuple(f"step{i}" for i in range(1, count + 1))
        else:
            steps = tuple(rng.sample(NAMES, min(count, len(NAMES))))
            steps += tuple(f"step{i}" for i in range(len(steps) + 1, count + 1))
        found.append(World(steps))
    return found


def size(world: World) -> int:
    return len(world.steps)


def _edges(wire: Any, steps: tuple[str, ...]) -> dict[str, str]:
    """The learner's wiring for ``steps``, checked: each 'Do X' and each 'Undo X' that can
    run leads to an 'Undo ...' state of this saga or to 'Rolled back'."""
    where = f"for the saga {list(steps)}"
    wiring = call(wire, list(steps), name="wire", where=where)
    if not isinstance(wiring, dict):
        raise Incorrect(f"{where}, wire should return a dict, got {wiring!r}")
    states = {f"Undo {s}" for s in steps} | {END}
    for step in steps:
        if f"Do {step}" not in wiring:
            raise Incorrect(f"{where}, wire says nothing for 'Do {step}'")
    for step in steps[:-1]:  # the last step's undo never runs: it is never logged
        if f"Undo {step}" not in wiring:
            raise Incorrect(f"{where}, wire says nothing for 'Undo {step}'")
    for name, target in wiring.items():
        if not isinstance(name, str) or not name.startswith(("Do ", "Undo ")):
            raise Incorrect(f"{where}, wire gives {name!r}: the states are 'Do X' and 'Undo X'")
        if name.split(" ", 1)[1] not in steps:
            raise Incorrect(f"{where}, wire gives {name!r}, which is not a state of this saga")
        if not isinstance(target, str):
            raise Incorrect(
                f"{where}, {name!r} leads to {target!r}: each value must be the name of a "
                f"state, a string: an 'Undo ...' state of this saga or {END!r}"
            )
        if target.startswith("Do "):
            raise Incorrect(
                f"{where}, {name!r} leads to {target!r}: after a failure the saga goes to an "
                f"undo or to {END!r}, never back to a step"
            )
        if target not in states:
            raise Incorrect(
                f"{where}, {name!r} leads to {target!r}, which is not a state of this saga "
                f"(its states are 'Undo X' for each step X, and {END!r})"
            )
    return wiring


def _path(wiring: dict[str, str], failed: str, steps: tuple[str, ...]) -> list[str]:
    """The undos the machine runs when ``failed`` fails (a failing undo goes the same way)."""
    seen: list[str] = []
    here = wiring[f"Do {failed}"]
    while here != END:
        if here in seen:
            loop = " -> ".join([*seen[seen.index(here) :], here])
            raise Incorrect(
                f"for the saga {list(steps)}, when {failed} fails, the undos go round in a "
                f"circle: {loop}"
            )
        seen.append(here)
        if here not in wiring:  # only the last step's undo may be left out: it never runs
            break
        here = wiring[here]
    return [state.removeprefix("Undo ") for state in seen]


def _wrong_edge(
    wiring: dict[str, str], failed: str, ran: list[str], want: list[str], steps: tuple[str, ...]
) -> str:
    """The first edge on the path from 'Do failed' that leads elsewhere than the saga goes,
    and why (the edges before it were right)."""
    targets = [f"Undo {s}" for s in ran]
    wanted = [f"Undo {s}" for s in want]
    n = 0
    while n < len(targets) and n < len(wanted) and targets[n] == wanted[n]:
        n += 1
    source = f"Do {failed}" if n == 0 else f"Undo {want[n - 1]}"
    target = targets[n] if n < len(targets) else END
    should = wanted[n] if n < len(wanted) else END
    if n == 0:
        edge = f"the Catch of {source!r} leads to {target!r}"
        if target == f"Undo {failed}":
            return (
                f"{edge}: {failed} did nothing (its undo is logged after it succeeds), so its "
                "own undo must not run"
            )
        if should == END:
            return f"{edge}; nothing succeeded before {failed}, so it should lead to {END!r}"
        return f"{edge}; it should lead to {should!r}, the undo of the newest step that succeeded"
    done = want[n - 1]
    if target != END and steps.index(target.removeprefix("Undo ")) > steps.index(done):
        return (
            f"the Next of {source!r} leads forward, to {target!r} ({target.removeprefix('Undo ')} "
            f"ran after {done}); after {source!r} the saga goes to {should!r}: the undos run "
            "newest first"
        )
    return f"the Next of {source!r} leads to {target!r}; it should lead to {should!r}"


def _check_world(wire: Any, world: World) -> None:
    wiring = _edges(wire, world.steps)
    for n, failed in enumerate(world.steps):
        ran = _path(wiring, failed, world.steps)
        want = list(reversed(world.steps[:n]))
        if ran != want:
            raise Incorrect(
                f"{world}, when {failed} fails, your edges run the undos of {ran or 'nothing'}; "
                f"the saga undoes {want or 'nothing'}: "
                f"{_wrong_edge(wiring, failed, ran, want, world.steps)}"
            )


# The saga run on Step Functions (moto), one the lesson does not show: its last step
# fails and its first undo too, so the run takes a step's Catch, an undo's Next and an
# undo's Catch. One execution: each takes about a second there (and the first in a
# process pays a few seconds for importing moto's interpreter); every failure of sagas of
# up to 12 steps is followed above, in this process, first.
ON_MOTO = (
    (
        ("reserve_room", "charge_card", "book_slot"),
        {"book_slot": "fail", "reserve_room": "undo_fails"},
    ),
)


def _wired(asl: dict[str, Any], wiring: dict[str, str]) -> dict[str, Any]:
    """The machine with the learner's edges: each step's Catch, each undo's Next (and its
    Catch: a failing undo is a dead letter, and the rollback goes on the same way)."""
    machine = copy.deepcopy(asl)
    for name, state in machine["States"].items():
        if name.startswith("Do "):
            state["Catch"][0]["Next"] = wiring[name]
        elif name.startswith("Undo ") and name in wiring:
            state["Next"] = state["Catch"][0]["Next"] = wiring[name]
    return machine


def _check_wire(wire: Any) -> str:
    from ...runners.history import HistoryDiverged
    from ...runners.stepfunctions import StepFunctionsRunner, to_asl

    fn = function(wire, "wire(steps)")
    attempted(fn, ["a", "b"])
    tried = forall(worlds(), partial(_check_world, fn), size=size)
    with StepFunctionsRunner.start() as runner:
        for steps, faults in ON_MOTO:
            saga = _saga(steps)
            asl = _wired(to_asl(saga), _edges(fn, steps))
            expected = _saga(steps).run({"done": []}, inject=faults)
            where = f"on Step Functions, for the saga {list(steps)} with {faults}"
            try:
                got = runner.execute(_saga(steps), {"done": []}, inject=faults, asl=asl).outcome
            except HistoryDiverged as exc:
                raise Incorrect(f"{where}: {exc}") from None
            if (got.status, got.compensated, got.state_after) != (
                expected.status, expected.compensated, expected.state_after,
            ):  # fmt: skip
                raise Incorrect(
                    f"{where}, the machine undid {list(got.compensated)} and left "
                    f"{got.state_after}; the saga undoes {list(expected.compensated)}"
                )
    return (
        f"your edges roll back every failure of {tried} sagas of 1 to 12 steps, and one of "
        "them on Step Functions, each undo in the saga's order."
    )


LESSON_IMPORTS = (
    "import json\n"
    "import tempfile\n"
    "from pathlib import Path\n"
    "from IPython.display import Image\n"
    "from rollback_lessons.lab.engines import draw_asl, draw_bpmn, to_png\n"
    "from rollback_lessons.runners.stepfunctions import StepFunctionsRunner, to_asl\n"
    "from rollback_lessons.worlds.services import booking_saga, new_world\n"
    "from rollback_lessons.worlds.mailserver import MailServer\n"
    "from rollback_lessons.outcome import compare_table\n"
    "from rollback_lessons.runners.temporal import TemporalRunner\n"
    "from rollback_lessons.runners.bpmn import to_bpmn\n"
    "from rollback_lessons.worlds.examples import folder_saga, folder_state\n"
    "from rollback_lessons.runners.bpmn import run_explicit, to_bpmn_explicit\n"
    "import rollback_lessons.lab\n"  # (a cell above imports it: run too early, it says so)
    "from rollback_lessons.lab.exercises import lesson09\n"
)
"""What lesson 09 has imported before its exercises (``Exercise.setup``: a test
compares it with the notebook)."""


q1 = Exercise(
    id="09.1",
    setup=LESSON_IMPORTS,
    title="Wire the state machine",
    checker=_check_wire,
    answer_names=("wire",),
    hints=(
        "Each undo here is logged after its step succeeds: when 'Do X' fails, X did "
        "nothing. Which undo is the newest one in the log then?",
        "The undos are chained newest first: after 'Undo X' comes the undo of the step "
        "that ran just before X; after the first step's undo, the saga is rolled back.",
        "A step's Catch and an undo's Next answer the same question: what is left to undo "
        "now? That depends only on which steps have succeeded so far.",
    ),
    solution_code=(
        "# exercise: 09.1\n"
        "def wire(steps):\n"
        "    wiring = {}\n"
        '    before = "Rolled back"\n'
        "    for step in steps:\n"
        '        wiring[f"Do {step}"] = before\n'
        '        wiring[f"Undo {step}"] = before\n'
        '        before = f"Undo {step}"\n'
        "    return wiring"
    ),
)

register(q1)
