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
