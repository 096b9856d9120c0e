"""Lesson 09 exercise: wire a state machine's Catch and Next edges yourself.

``check`` takes the learner's ``wire(steps)``, puts its edges into the Step Functions state
machine of sagas the lesson does not show (two, three and four steps, each undo logged
after its step), runs every failure of each on moto's interpreter, and holds each run to
the saga's own rules: the undos that ran, their order, and the world afterwards.
"""

from __future__ import annotations

import copy
from functools import partial
from typing import Any

from ...saga import Saga, Step
from . import Exercise, Incorrect, attempted, function, register

END = "Rolled back"
SAGAS = (
    ("reserve_room", "charge_card"),
    ("step1", "step2", "step3"),  # lesson 01's saga, the one the lesson draws
    ("create_row", "book_slot", "charge_card", "send_receipt"),
)


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


def _wired(asl: dict[str, Any], wiring: dict[str, Any], steps: tuple[str, ...]) -> dict[str, Any]:
    """The machine with the learner's edges: each step's Catch, each undo's Next (and its
    Catch: a failing undo is a dead letter, and the rollback goes on the same way)."""
    machine = copy.deepcopy(asl)
    states = machine["States"]
    for step in steps:
        if f"Do {step}" not in wiring:
            raise Incorrect(f"wire({list(steps)}) says nothing for 'Do {step}'")
    for name, state in states.items():
        if name.startswith(("Do ", "Undo ")):
            target = wiring.get(name)
            if target is None:
                raise Incorrect(f"wire({list(steps)}) says nothing for {name!r}")
            if target != END and not (isinstance(target, str) and target.startswith("Undo ")):
                raise Incorrect(
                    f"{name!r} leads to {target!r}: after a failure the saga goes to an undo "
                    f"or to {END!r}, never back to a step"
                )
            if target not in states:
                raise Incorrect(f"{name!r} leads to {target!r}, which is not a state here")
            if name.startswith("Do "):
                state["Catch"][0]["Next"] = target
            else:
                state["Next"] = state["Catch"][0]["Next"] = target
    for name in states:
        seen = [name]
        while seen[-1].startswith("Undo "):
            seen.append(states[seen[-1]]["Next"])
            if seen[-1] in seen[:-1]:
                raise Incorrect(f"the undos go round in a circle: {' -> '.join(seen)}")
    return machine


def _check_wire(wire: Any) -> str:
    from ...runners.history import HistoryDiverged
    from ...runners.stepfunctions import StepFunctionsRunner, to_asl

    fn = function(wire, "wire")
    attempted(fn, ["a", "b"])
    checked = 0
    with StepFunctionsRunner.start() as runner:
        for steps in SAGAS:
            wiring = fn(list(steps))
            if not isinstance(wiring, dict):
                raise Incorrect(f"wire({list(steps)}) should return a dict, got {wiring!r}")
            asl = _wired(to_asl(_saga(steps)), wiring, steps)
            cases = [{step: "fail"} for step in steps]
            cases.append({steps[-1]: "fail", steps[0]: "undo_fails"})
            for faults in cases:
                expected = _saga(steps).run({"done": []}, inject=faults)
                try:
                    got = runner.execute(_saga(steps), {"done": []}, inject=faults, asl=asl)
                except HistoryDiverged as exc:
                    raise Incorrect(
                        f"with the steps {list(steps)}, when {next(iter(faults))} fails: {exc}"
                    ) from None
                outcome = got.outcome
                if (outcome.status, outcome.compensated, outcome.state_after) != (
                    expected.status, expected.compensated, expected.state_after,
                ):  # fmt: skip
                    raise Incorrect(
                        f"with the steps {list(steps)} and {faults}, the machine undid "
                        f"{list(outcome.compensated)} and left {outcome.state_after}; the saga "
                        f"undoes {list(expected.compensated)}"
                    )
                checked += 1
    return (
        f"your wiring rolled back {checked} failures of sagas of 2, 3 and 4 steps on Step "
        "Functions, each undo in the saga's order."
    )


q1 = Exercise(
    id="09.1",
    title="Wire the Catch and Next edges of a state machine",
    checker=_check_wire,
    answer_names=("wire",),
    hints=(
        "Each undo here is logged after its step succeeds: when 'Do X' fails, X did "
        "nothing, so the newest undo is the one of the step before X.",
        "The undos are chained newest first: 'Undo X' goes on to the undo of the step "
        "before X, and the first step's undo to 'Rolled back'.",
        "Walk the steps in order keeping `before` (at first 'Rolled back'): both 'Do X' "
        "and 'Undo X' lead to `before`; then `before` becomes 'Undo X'.",
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
    wrong_answers=(
        # the undos chained oldest first
        "def wire(steps):\n"
        "    wiring = {}\n"
        "    for n, step in enumerate(steps):\n"
        '        wiring[f"Do {step}"] = f"Undo {steps[0]}" if n else "Rolled back"\n'
        '        later = f"Undo {steps[n + 1]}" if n + 1 < len(steps) - 1 else "Rolled back"\n'
        '        wiring[f"Undo {step}"] = later\n'
        "    return wiring",
        # a failing step goes to its own undo (it was never logged)
        "def wire(steps):\n"
        "    wiring = {}\n"
        '    before = "Rolled back"\n'
        "    for step in steps:\n"
        '        wiring[f"Do {step}"] = f"Undo {step}" if step != steps[-1] else before\n'
        '        wiring[f"Undo {step}"] = before\n'
        '        before = f"Undo {step}"\n'
        "    return wiring",
        # fitted to the three steps the lesson shows
        "def wire(steps):\n"
        "    return {\n"
        '        "Do step1": "Rolled back", "Do step2": "Undo step1", "Do step3": "Undo step2",\n'
        '        "Undo step1": "Rolled back", "Undo step2": "Undo step1",\n'
        "    }",
        # every failure straight to the end: nothing is undone
        "def wire(steps):\n"
        '    return {f"{kind} {step}": "Rolled back" for step in steps for kind in ("Do", "Undo")}',
        # an undo that loops on itself
        "def wire(steps):\n"
        "    wiring = {}\n"
        '    before = "Rolled back"\n'
        "    for step in steps:\n"
        '        wiring[f"Do {step}"] = before\n'
        '        wiring[f"Undo {step}"] = f"Undo {step}"\n'
        '        before = f"Undo {step}"\n'
        "    return wiring",
    ),
    right_answers=(
        "def wire(steps):\n"
        '    undos = ["Rolled back"] + [f"Undo {s}" for s in steps]\n'
        "    wiring = {}\n"
        "    for n, step in enumerate(steps):\n"
        '        wiring["Do " + step] = undos[n]\n'
        '        wiring["Undo " + step] = undos[n]\n'
        "    return wiring",
        # the last undo left out: it never runs, so the machine has no such state
        "def wire(steps):\n"
        "    wiring = {}\n"
        "    for n, step in enumerate(steps):\n"
        '        previous = f"Undo {steps[n - 1]}" if n else "Rolled back"\n'
        '        wiring[f"Do {step}"] = previous\n'
        "        if n < len(steps) - 1:\n"
        '            wiring[f"Undo {step}"] = previous\n'
        "    return wiring",
    ),
)

register(q1)
