"""A KeyboardInterrupt at any instruction of a graph step's launch bookkeeping (attack79 F1).

``GraphMachine.launch`` stored ``where[step], attempts[step] = _RUNNING, 1``: an exception
between the two stores (a tracer's, ``PyThreadState_SetAsyncExc``) left the step in
``where`` with no ``attempts``; ``not_run`` then deleted both and raised ``KeyError``, so
``arun`` returned ``rolled_back`` blaming the step (the Ctrl-C swallowed) and ``saga.run``
noted "not undone (no undo logged for it)" for a step never called. Every instant of those
stores (and of ``_unlaunch``'s deletes, a second interrupt there) now leaves the run failed
there, the interrupt re-raised, the step said not run.
"""

import asyncio
import dis
import sys

import pytest

from rollback_lessons import Saga, Step
from rollback_lessons.graph import Parallel
from rollback_lessons.schedule import GraphMachine

LAUNCH, UNLAUNCH = GraphMachine.launch.__code__, GraphMachine._unlaunch.__code__


def _offsets(code, marker: str) -> list[int]:
    """The instructions of the lines of ``code`` holding ``marker``."""
    import inspect

    lines, first = inspect.getsourcelines(code)
    wanted = {first + n for n, text in enumerate(lines) if marker in text}
    return [i.offset for i in dis.get_instructions(code) if i.positions.lineno in wanted]


STORES = list(
    dict.fromkeys(_offsets(LAUNCH, "self.where[step]") + _offsets(LAUNCH, "self.attempts[step]"))
)
DELETES = _offsets(UNLAUNCH, "self.where[step]") + _offsets(UNLAUNCH, "self.attempts")


def _saga(effects: list[str], register: str) -> Saga:
    def step(name: str) -> Step:
        def act(state):  # type: ignore[no-untyped-def]
            effects.append(name)

        return Step(name, act, lambda state: effects.append(f"undo {name}"), register=register)

    return Saga([step("a"), Parallel(step("b"), [step("c"), step("d")], step("e")), step("f")])


def _run(driver: str, point: tuple[object, int], launch_n: int) -> tuple[list, object, bool]:
    """Run the saga, raising a KeyboardInterrupt once at ``point`` (code, offset): in
    ``launch``, at the ``launch_n``-th launch; in ``_unlaunch``, once a Ctrl-C at that
    step's ``undo_registered`` (its undo logged before it) unlaunches it (a tracer raising
    a second time is unset by CPython). What was done, what came out, and if it fired."""
    effects: list[str] = []
    code, offset = point
    in_unlaunch, fired, launches = code is UNLAUNCH, [False], [0]
    target = "abc"[launch_n - 1]

    def local(frame, event, arg):  # type: ignore[no-untyped-def]
        at = event == "opcode" and frame.f_code is code and frame.f_lasti == offset
        if at and not fired[0] and (in_unlaunch or launches[0] >= launch_n):
            fired[0] = True
            raise KeyboardInterrupt
        return local

    def glob(frame, event, arg):  # type: ignore[no-untyped-def]
        launches[0] += frame.f_code is LAUNCH
        if frame.f_code is code:
            frame.f_trace_opcodes = True
            return local
        return None

    def on_event(event):  # type: ignore[no-untyped-def]
        if in_unlaunch and event.kind == "undo_registered" and event.step == target:
            raise KeyboardInterrupt

    saga = _saga(effects, "before" if in_unlaunch else "after")
    sys.settrace(glob)
    try:
        if driver == "arun":
            out: object = asyncio.run(saga.arun({}, on_event=on_event))
        else:
            out = saga.run({}, on_event=on_event)
    except KeyboardInterrupt as exc:
        out = exc
    finally:
        sys.settrace(None)
    return effects, out, fired[0]


@pytest.mark.parametrize("driver", ["run", "arun"])
@pytest.mark.parametrize("launch_n", [2, 3])
@pytest.mark.parametrize("point", [(LAUNCH, o) for o in STORES] + [(UNLAUNCH, o) for o in DELETES])
def test_a_ctrl_c_in_a_launchs_stores_fails_the_run_there(driver, launch_n, point):
    effects, out, fired = _run(driver, point, launch_n)
    assert fired, "the interrupt was raised there"
    assert isinstance(out, KeyboardInterrupt), f"swallowed: {out!r}"
    notes = " ".join(getattr(out, "__notes__", []))
    called = [s for s in effects if not s.startswith("undo ")]
    for step in "abcdef":
        if step not in called:  # never called: never said not undone
            assert f"no undo logged for it): {step}" not in notes, notes
            assert f"{step} (" not in notes or "not run" in notes
    assert sorted(f"undo {s}" for s in called) == sorted(s for s in effects if "undo" in s)
