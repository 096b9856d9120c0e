"""attack9's breaks (issue 25), each a test that failed on the code before its fix."""

from __future__ import annotations

import logging

import pytest

from rollback_lessons import Rollback, Status


@pytest.mark.parametrize("watched", [False, True], ids=["recorded", "on_event"])
def test_a_step_begun_from_an_undo_is_refused_on_the_recorded_path_too(watched, monkeypatch):
    """An undo that calls ``rb.do`` on its own block: the recorded path ran the new step,
    never undid it, and said it was undone (the machine refuses it: it is rolling back)."""
    monkeypatch.setattr(logging.getLogger("rollback_lessons"), "propagate", False)
    calls: list[str] = []
    refused: list[BaseException] = []
    rb = Rollback(on_event=(lambda e: None) if watched else None)

    def undo_b():
        calls.append("undo b")
        try:
            rb.do("c", lambda: calls.append("do c"), lambda: calls.append("undo c"))
        except RuntimeError as exc:  # (the block is ending: refused before its action)
            refused.append(exc)

    with pytest.raises(ValueError):
        with rb:
            rb.do("a", lambda: calls.append("do a"), lambda: calls.append("undo a"))
            rb.do("b", lambda: calls.append("do b"), undo_b)
            raise ValueError("boom")
    assert calls == ["do a", "do b", "undo b", "undo a"] and len(refused) == 1
    assert "refused before its action" in str(refused[0])
    outcome = rb.outcome
    assert outcome.status is Status.ROLLED_BACK and outcome.compensated == ("b", "a")
    assert [e.step for e in outcome.events if e.kind == "undo_done"] == ["b", "a"]
