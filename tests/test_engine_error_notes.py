"""An engine's ``Outcome.error`` carries what the rollback left as notes, as ``saga.run``'s
does (attack287 F4: every engine's came back bare, so ``raise_for_status()`` said less)."""

from __future__ import annotations

import pytest

from rollback_lessons import Parallel, Saga, Step


def undo_a(state: dict) -> None:
    raise ConnectionError("refund service down")


SAGA = Saga(
    [
        Step("a", lambda s: s.update(a=1), undo_a),
        Parallel(
            Step("b", lambda s: s.update(b=1), lambda s: s.pop("b")),
            Step("c", lambda s: s.update(c=1), lambda s: s.pop("c")),
        ),
        Step("d", lambda s: s.update(d=1), lambda s: s.pop("d")),
    ],
    name="notes",
)


@pytest.mark.parametrize("policy", ["continue", "halt"])
@pytest.mark.parametrize("engine", ["sfn_runner", "bpmn_runner"])
def test_an_engines_outcome_error_carries_the_rollbacks_notes(engine, policy, request):
    options = {"inject": {"d": "fail"}, "policy": policy}
    here = SAGA.run({}, **options)
    there = request.getfixturevalue(engine).run(SAGA, {}, **options)
    assert here.error is not None and there.error is not None
    said = here.error.__notes__
    assert said and there.error.__notes__ == said  # (was: none)
    with pytest.raises(type(here.error)) as caught:
        there.raise_for_status()
    assert caught.value.__notes__ == said


class NoNotes(Exception):
    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("no notes here")


def refund(state: dict) -> None:
    raise RuntimeError("refund broke")


def charge(state: dict) -> None:
    raise NoNotes("declined")


def test_an_error_refusing_notes_has_the_outcome_say_so_on_an_engine_too(bpmn_runner):
    """attack288 F3: saga.run's outcome said the error refused the rollback's notes; an
    engine's dropped them, nowhere said."""
    saga = Saga([Step("book", lambda s: None, refund), Step("charge", charge, None)],
                policy="continue")  # fmt: skip
    here, there = saga.run({}), bpmn_runner.run(saga, {})
    assert (
        here.notes
        == there.notes
        == ("the NoNotes raised refused these notes (add_note failed); the outcome keeps them",)
    )
