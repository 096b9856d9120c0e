"""A Stop and a failure told together, truly (newuser22 #2, #3 and the log's row), swept
over every lesson world's panel (02-06, 12):

1. lesson 12, a Stop in flight while another branch failed after its effect: the cue said
   "cancelled, then rollback_incomplete" ("then an undo failed") though no undo failed,
   and the result named room's error, not the Stop. Now "cancelled, then X" only when an
   undo failed; else "cancelled and X", and the result names both ("cancelled (Stop after
   event 1); room failed after its effect: no undo logged for it"). A failure beside a Stop
   whose rollback finished is named in the result too ("room failed too");
2. a Stop at the failing step's start read "too late: the run failed or ended before the
   Stop was heard": now "too late: reserve was running" (it failed as it finished, before
   the Stop was heard), each reason checked from the events;
3. the log's pipeline_failed row of a cancel said "error=Cancelled('the run was cancelled
   by its caller')": now "cancelled by the Stop, not a failure"."""

from __future__ import annotations

import re

import pytest
from conftest import a_part
from test_panel_cue import cue, result, took
from test_panel_stop import WORLDS

from rollback_lessons.faults import fault_space
from rollback_lessons.lab.panel_controls import cue_fits
from rollback_lessons.lab.panel_html import log_html
from rollback_lessons.lab.widgets import RollbackLab
from rollback_lessons.worlds import travel


def head(lab: RollbackLab) -> str:
    """The result's head: what comes before its rows."""
    return result(lab).split(" undone ")[0]


def stopped(world: str, faults: list, at: int, first: str | None = None) -> RollbackLab:
    make_saga, make_state = WORLDS[world]
    lab = RollbackLab(make_saga(), state=make_state)
    if first:
        lab.set_first(first)
    lab.open_run(faults)
    lab.stop(at)
    lab.show_frame(lab.frame_count - 1)
    return lab


# newuser22's five: the branch that finishes first, another failing after its effect
PAIRS = [("car", "room"), ("car", "flight"), ("room", "flight"), ("flight", "car"),
         ("flight", "room")]  # fmt: skip


@pytest.mark.parametrize(("first", "failing"), PAIRS)
def test_a_stop_beside_a_failure_after_its_effect_is_not_cancelled_then(first, failing):
    lab = stopped("travel (12)", [(failing, "fail_after_effect")], 0, first)
    assert took(lab) and lab.outcome is not None
    assert not any(e.kind == "undo_failed" for e in lab.outcome.events)  # (no undo failed)
    shown, whole = cue(lab)
    assert "→ cancelled and rollback_incomplete: " in shown and "then" not in whole, whole
    assert cue_fits(shown)
    said = head(lab)
    told = f"cancelled (Stop after event 1); {failing} failed after its effect"
    assert f"{told}: no undo logged for it" in said, said
    assert "InjectedTimeout" not in said


def test_a_failure_beside_a_stop_whose_rollback_finished_is_named_in_the_result():
    """set_fault('room','fail'), car first, Stop at event 1: cancelled, and room failed."""
    lab = stopped("travel (12)", [("room", "fail")], 0, "car")
    assert lab.outcome is not None and lab.outcome.status == "cancelled"
    said = head(lab)
    assert "the saga was cancelled (Stop) after event 1; room failed too" in said, said


def test_a_stop_at_the_failing_steps_start_says_the_step_was_running():
    """newuser22 #3: lesson 03, reserve fails, Stop after event 1 (step_start reserve)."""
    lab = stopped("order", [("reserve", "fail")], 0)
    shown, whole = cue(lab)
    assert "rolled_back (too late: reserve was running): reserve fail; Stop after event 1" in shown
    assert "(its call returned failed, and a Stop is heard only as a step returns)" in whole
    assert "failed or ended" not in whole and cue_fits(shown)


def test_the_logs_row_of_a_cancel_says_it_in_a_learners_words():
    """Lesson 03, reserve's undo fails, Stop after event 5: the pipeline_failed row."""
    lab = stopped("order", [("reserve", "undo_fails")], 4)
    assert lab.outcome is not None
    events = lab.outcome.events
    at = next(i for i, e in enumerate(events) if e.kind == "pipeline_failed")
    row = log_html(events, at)
    assert "cancelled by the Stop, not a failure" in row and "Cancelled(" not in row, row


def late_reason(events: list, n: int) -> tuple[str, str]:
    """Why a Stop after event ``n`` was too late, from the events alone (the test's rule):
    (the reason's words, the step they name)."""
    seen, later = events[:n], events[n:]
    if any(e.kind == "committed" for e in seen):
        return "the run had ended", ""
    if any(e.kind in ("step_failed", "pipeline_failed") for e in seen):
        return "the run had already failed", ""
    done = {e.step for e in seen if e.kind in ("step_done", "step_failed")}
    running = [e.step for e in seen if e.kind == "step_start" and e.step not in done]
    failed = [e.step for e in later if e.kind == "step_failed"]
    first = failed[0]  # (a Stop too late on a run going on: a step failed after it)
    return (
        ("was running", first)
        if first in running
        else (f"started with {', '.join(running)}", first)
    )


def runs(world: str) -> list[tuple[list, str | None]]:
    """Every single fault the world's panel offers, and none, with each "finishes first"."""
    make_saga, make_state = WORLDS[world]
    lab = RollbackLab(make_saga(), state=make_state)
    offered = {(s, v) for s, c in (*lab.actions.items(), *lab.undos.items()) for _, v in c.options}
    space = [
        (s, str(f))
        for s, f in fault_space((s.name, s.undo is not None) for s in lab.saga.steps)
        if (s, str(f)) in offered
    ]
    firsts = [None, *(v for _, v in lab.first.options if v)] if lab.first is not None else [None]
    return [([f] if f else [], first) for first in firsts for f in [None, *space]]


@pytest.mark.parametrize("world", list(WORLDS))
def test_every_stop_tells_the_stop_and_the_failure_as_the_events_say(world):
    """Every single fault (and none) of every lesson panel, each "finishes first", a Stop at
    every event (a 12th of the runs at a third of their events in make test, all in make
    soak), each checked from the events: "cancelled, then X" exactly when an undo failed;
    a Stop that took is in the result's head with every step that failed; a Stop too late
    says why (as ``late_reason``); the cue fits; the log never shows ``Cancelled(``."""
    make_saga, make_state = WORLDS[world]
    lab = RollbackLab(make_saga(), state=make_state)
    for faults, first in a_part(runs(world), 12, name=f"stop told: {world}"):
        if first:
            lab.set_first(first)
        lab.open_run(faults)
        total = len(lab.outcome.events)  # type: ignore[union-attr]
        for at in a_part(list(range(total)), 3, name=f"stop told events: {world}"):
            if first:
                lab.set_first(first)
            lab.open_run(faults)
            run = lab.stop(at)
            lab.show_frame(lab.frame_count - 1)
            shown, whole = cue(lab)
            said, events, case = head(lab), list(run.events), (faults, first, at + 1)
            assert cue_fits(shown), (case, shown)
            assert "Cancelled(" not in said + "".join(log_html(events, i) for i in range(total))
            if "declined" in whole:
                continue
            if took(lab):
                undo_failed = any(e.kind == "undo_failed" for e in events)
                if run.status != "cancelled":
                    word = ", then" if undo_failed else " and"
                    assert f"→ cancelled{word} {run.status}: " in shown, (case, shown)
                    assert f"cancelled (Stop after event {at + 1})" in said, (case, said)
                else:
                    assert f"cancelled (Stop) after event {at + 1}" in said, (case, said)
                for e in events:
                    if e.kind == "step_failed":
                        effect = " after its effect" if e.details.get("after_effect") else ""
                        assert f"; {e.step} failed{effect}" in said, (case, said)
                        assert (f"{e.step} failed{effect}: no undo logged for it" in said) == (
                            e.step in run.leaked
                        ), (case, said)
            else:
                reason, step = late_reason(events, at + 1)
                assert "(too late" in shown, (case, shown)  # (its reason if it fits)
                told = re.search(r"\(too late: ([^)]*)\)", whole)
                assert told, (case, whole)
                assert told.group(1) == (f"{step} {reason}" if step else reason), (case, shown)
                if step:
                    assert (
                        "(its call returned failed, and a Stop is heard only as a step returns)"
                        in whole
                    )


def test_the_sweep_meets_each_shape_it_checks():
    """The shapes above occur in lesson 12's panel (so the sweep's checks are not vacuous):
    a took Stop beside a failure after its effect, with and without a failed undo, and a
    Stop too late on a step started with the running one."""
    lab = stopped("travel (12)", [("car", "fail_after_effect")], 0, "room")
    assert "→ cancelled, then rollback_incomplete" in cue(lab)[0]  # (car's undo: none, and
    assert "car failed after its effect: no undo logged for it" in head(lab)  # flight's failed?)
    lab = stopped("travel (12)", [("room", "fail")], 0, "room")
    assert "(too late: room started with car)" in cue(lab)[0]
    assert travel.booking().names[0] == "car"


_BRANCHES, _KINDS = ["car", "room", "flight"], ["fail", "fail_after_effect"]
GROUP_PAIRS = [(first, a, ka, b, kb) for first in [None, *_BRANCHES] for a in _BRANCHES
               for b in _BRANCHES if a < b for ka in _KINDS for kb in _KINDS]  # fmt: skip


@pytest.mark.parametrize(
    ("first", "a", "ka", "b", "kb"), a_part(GROUP_PAIRS, 8, name="group-pairs-not-run")
)
def test_a_group_step_that_failed_beside_another_is_never_said_not_run(first, a, ka, b, kb):
    """newuser23 #1: car and room both failing (car first) listed room "not run" beside the
    note "room also failed" (the result counted as run only the completed steps and the one
    the run failed at). "not run" names exactly the steps with no step_start, over every
    pair of the group's branches, both failures, each branch first (a part in make test)."""
    make_saga, make_state = WORLDS["travel (12)"]
    lab = RollbackLab(make_saga(), state=make_state)
    if first:
        lab.set_first(first)
    lab.open_run([(a, ka), (b, kb)])
    lab.show_frame(lab.frame_count - 1)
    assert lab.outcome is not None
    started = {e.step for e in lab.outcome.events if e.kind == "step_start"}
    unrun = [s for s in lab.outcome.steps if s not in started]
    said = re.search(r" not run (.*?)(?: note |$)", result(lab))
    assert (said.group(1).strip().split(", ") if said else []) == unrun, result(lab)


def test_a_stop_beside_a_failure_then_a_failed_undo_is_told_in_the_events_order():
    """newuser24 #2: room failing, then car's undo failing, a Stop in flight: the head read
    "cancelled (Stop after event 3), then car's undo failed; room failed", room's failure
    told after the undo it came before. Now in the events' order."""
    make_saga, make_state = WORLDS["travel (12)"]
    lab = RollbackLab(make_saga(), state=make_state)
    lab.set_fault("room", "fail")
    lab.set_fault("car", "undo_fails")
    lab.set_first("flight")
    lab.stop(2)
    lab.show_frame(lab.frame_count - 1)
    assert lab.outcome is not None
    kinds = [(e.kind, e.step) for e in lab.outcome.events]
    assert kinds.index(("step_failed", "room")) < kinds.index(("undo_failed", "car"))
    assert "; room failed, then car's undo failed" in head(lab), head(lab)
