"""The panels' Stop, at every event (newuser20): a Stop after event N is heard as the
engine asks for a cancel (as each step returns), so it was heard only once the NEXT step
had started and returned: "Stop after event 2" (reserve done) let pay run after the line,
and the cue said "too late: the run had already failed" of a run that had not. Now, at
every event of every lesson world's runs: the stopped run is the shown run up to event N
(the line is drawn where the learner pressed), no step of a sequential saga starts after
it, and the cue says "too late" exactly when the cancel never took."""

from __future__ import annotations

import html
import re

import pytest
from conftest import a_part
from test_widgets_steady import worlds

from rollback_lessons.lab.widgets import RollbackLab
from rollback_lessons.worlds import travel


def cue(lab: RollbackLab) -> str:
    return html.unescape(lab.view.value.split("class='rl-cue'>")[1].split("</div>")[0])


WORLDS = {**worlds(), "travel (12)": (travel.booking, travel.state)}


@pytest.mark.parametrize("world", list(WORLDS))
def test_a_stop_at_any_event_stops_there_and_the_cue_says_what_took(world):
    make_saga, make_state = WORLDS[world]
    lab = RollbackLab(make_saga(), state=make_state)
    sequential = lab.saga.after is None
    names = lab.saga.names
    undoable = next(s.name for s in lab.saga.steps if s.undo is not None)
    after = names[names.index(undoable) + 1]
    runs = [[], [(names[-1], "fail")], [(after, "fail"), (undoable, "undo_fails")]]
    for faults in a_part(runs, 1, name=f"panel stop: {world}"):
        lab.open_run(faults)
        shown = lab.outcome
        assert shown is not None
        for at in range(len(shown.events)):
            lab.open_run(faults)
            stopped = lab.stop(at)
            n = at + 1
            before = [(e.kind, e.step) for e in shown.events[:n]]
            assert [(e.kind, e.step) for e in stopped.events[:n]] == before, (faults, n)
            later = [e.step for e in stopped.events[n:] if e.kind == "step_start"]
            said = cue(lab)
            if sequential and "declined" not in said:  # (past the pivot: the run goes on)
                assert later == [], (world, faults, n, later)
            took = any(
                e.kind == "rollback_start" and e.details.get("cancelled") for e in stopped.events
            )
            assert ("too late" in said) == (not took and "declined" not in said), (n, said)
            # (the Stop a clause of its own, right after the end when no fault is said)
            assert re.search(r"(; |→ [^;]+: )Stop after event", said), said
            assert "struck: Stop" not in said
            if took:  # the run was going on at event N: it did not fail or end first
                over = {"pipeline_failed", "rollback_start", "halted", "committed"}
                assert not any(e.kind in over for e in shown.events[:n]), (n, said)


def test_a_second_stop_at_another_event_of_a_stopped_run_is_refused_with_the_buttons_words():
    """A stopped run was returned as it was for ``stop(at)`` at any other event, silently: the
    run shown is not the run without the Stop (its button is disabled, its tooltip says
    why). The same event again, or no event, returns the run as it is."""
    make_saga, make_state = WORLDS["travel (12)"]
    lab = RollbackLab(make_saga(), state=make_state)
    stopped = lab.stop(2)
    assert stopped.status == "cancelled" and lab.stop_button.disabled
    assert lab.stop(2) is stopped and lab.stop() is stopped
    with pytest.raises(ValueError, match="already stopped after event 3: change a fault"):
        lab.stop(4)
    assert lab.outcome is stopped
