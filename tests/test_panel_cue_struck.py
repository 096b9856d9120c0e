"""A shortened cue keeps what struck before what never struck (newuser23 #2): lesson 05's
panel, ``label fail`` and ``pay undo fails once``, ``lab.stop(3)``, showed "cancelled, then
rollback_incomplete: never struck: 1 fault" (pay's fault, the one that struck, left to the
title), read as if no fault struck. Swept over every lesson panel's pairs of faults with a
Stop at each event, each cue checked against the run's events."""

from __future__ import annotations

import re

import pytest
from conftest import a_part
from test_panel_cue import cue
from test_panel_stop import WORLDS

from rollback_lessons.faults import ACTION_FAULTS, UNDO_FAULTS
from rollback_lessons.lab.panel_controls import cue_fits
from rollback_lessons.lab.widgets import RollbackLab

FAULTS = ACTION_FAULTS | UNDO_FAULTS
COUNTED = re.compile(r"(\d+) faults? struck")


def parts(text: str) -> list[str]:
    """A cue's parts after its end ("cancelled, then X"), brackets dropped."""
    tail = re.sub(r" ?\([^)]*\)", "", text.split(" → ", 1)[1])
    return tail.split(": ", 1)[1].split("; ") if ": " in tail else []


def struck_by_events(lab: RollbackLab, faults: list) -> tuple[int, int]:
    """(how many of ``faults`` struck, how many never did), from the events alone: an
    action's fault strikes if its step started, an undo's if its undo ran."""
    assert lab.outcome is not None
    events = lab.outcome.events
    started = {e.step for e in events if e.kind == "step_start"}
    undone = {e.step for e in events if e.kind == "undo"}
    hit = sum(step in (started if f in ACTION_FAULTS else undone) for step, f in faults)
    return hit, len(faults) - hit


def check_cue(lab: RollbackLab, faults: list, case: object) -> tuple[str, str]:
    """The cue fits; the faults it counts are those the events say; what never struck is
    said only after what struck (named, counted or "none struck"), never alone."""
    shown, whole = cue(lab)
    assert cue_fits(shown), (case, shown)
    hit, missed = struck_by_events(lab, faults)
    said, told = parts(shown), parts(whole)
    assert told[0] == ("none struck" if not hit else told[0]), (case, whole)
    assert told[0].count(", ") + told[0].count(" and ") + 1 == hit or not hit, (case, whole)
    never = [p for p in said if p.startswith("never struck: ")]
    if never:
        assert said[0] in (told[0], f"{hit} fault{'s' * (hit != 1)} struck"), (case, shown)
        many = re.fullmatch(r"never struck: (\d+) faults?", never[0])
        assert many is None or int(many.group(1)) == missed, (case, shown)
    for p in said:
        counted = COUNTED.fullmatch(p)
        assert counted is None or int(counted.group(1)) == hit, (case, shown)
    assert not (hit and {"none struck", "no faults"} & set(said)), (case, shown)
    return shown, whole


def stopped(lab: RollbackLab, faults: list, at: int) -> RollbackLab:
    lab.open_run(faults)
    lab.stop(at)
    lab.show_frame(lab.frame_count - 1)
    return lab


def test_lesson_05s_shortened_cue_keeps_the_fault_that_struck():
    """newuser23 #2's run: pay's undo failed once (struck), label's fault never ran."""
    make_saga, make_state = WORLDS["order"]
    lab = RollbackLab(make_saga(), state=make_state)
    for _ in range(4):  # (a fresh panel's fifth run: "↻ run 5")
        lab.open_run([])
    faults = [("label", "fail"), ("pay", "undo_fails_once")]
    shown, whole = check_cue(stopped(lab, faults, 3), faults, "05")
    assert shown != whole and "never struck: label fail" in whole, whole
    assert "cancelled, then rollback_incomplete" in shown, shown
    assert "never struck" not in shown or "1 fault struck" in shown, shown


def test_a_step_whose_both_faults_never_struck_counts_two():
    """Both faults of a step that never ran are two faults: "label fail and undo fails"
    was counted "never struck: 1 fault" (one step)."""
    make_saga, make_state = WORLDS["order"]
    lab = RollbackLab(make_saga(), state=make_state)
    faults = [("label", "fail"), ("label", "undo_fails")]
    shown, whole = check_cue(stopped(lab, faults, 0), faults, "label twice")
    assert "never struck: label fail and undo fails" in whole, whole
    assert "none struck; never struck: 2 faults" in shown, shown


def pairs(lab: RollbackLab) -> list[list[tuple[str, str]]]:
    """Every pair of faults the panel offers that it can set together (one action fault and
    one undo fault a step at most)."""
    controls = (*lab.actions.items(), *lab.undos.items())
    offered = sorted({(s, v) for s, c in controls for _, v in c.options if v in FAULTS})
    return [
        [a, b]
        for i, a in enumerate(offered)
        for b in offered[i + 1 :]
        if a[0] != b[0] or (a[1] in ACTION_FAULTS) != (b[1] in ACTION_FAULTS)
    ]


@pytest.mark.parametrize("world", list(WORLDS))
def test_every_stopped_pair_of_faults_keeps_what_struck(world):
    """Each pair of faults of each lesson panel, a Stop at every event (a 16th of the pairs
    at a quarter of their events in make test, all in make soak): ``check_cue``."""
    make_saga, make_state = WORLDS[world]
    lab = RollbackLab(make_saga(), state=make_state)
    for faults in a_part(pairs(lab), 16, name=f"cue struck: {world}"):
        lab.open_run(faults)
        total = len(lab.outcome.events)  # type: ignore[union-attr]
        for at in a_part(list(range(total)), 4, name=f"cue struck events: {world}"):
            check_cue(stopped(lab, faults, at), faults, (faults, at + 1))
