"""The result names a Stop that did not take (the panel leftovers of newuser23): it said
"committed" and nothing of the Stop, which only the cue line above told. Now the result's
head says the Stop came too late (and why, as the cue does) or was declined past the pivot;
a Stop that took is told as before ("cancelled ...")."""

from __future__ import annotations

import html
import re

from rollback_lessons import Status
from rollback_lessons.lab.widgets import RollbackLab
from rollback_lessons.worlds import examples, travel


def head(lab: RollbackLab) -> str:
    """The result's head at the run's last event (before it, the panel shows no result)."""
    part = lab.view_html(lab.frame_count - 1).split("class='rl-result'>")[1]
    return html.unescape(re.sub(r"<[^>]+>", "", part.split("</div>")[0]))


def at(lab: RollbackLab, kind: str, step: str | None) -> int:
    return next(i for i, e in enumerate(lab.outcome.events) if (e.kind, e.step) == (kind, step))


def test_a_stop_after_the_run_ended_is_named_too_late_in_the_result():
    lab = RollbackLab(travel.booking(), state=travel.state)
    end = at(lab, "committed", None)
    assert lab.stop(end).status is Status.COMMITTED
    assert (
        head(lab) == f"committed; the Stop after event {end + 1} came too late: the run had ended"
    )


def test_a_stop_past_the_pivot_is_named_declined_in_the_result():
    saga = examples.booking_saga([*examples.SAFE_BOOKING_ORDER, "award_points"])
    lab = RollbackLab(saga, state=examples.booking_state)
    pivot = at(lab, "step_start", "send_email")
    assert lab.stop(pivot).status is Status.COMMITTED
    assert head(lab) == f"committed; the Stop after event {pivot + 1} was declined (see the note)"


def test_a_stop_that_took_says_cancelled_and_nothing_of_too_late():
    lab = RollbackLab(travel.booking(), state=travel.state)
    assert lab.stop(at(lab, "step_done", "room")).status is Status.CANCELLED
    assert head(lab).startswith("cancelled: the saga was cancelled (Stop)")
    assert "too late" not in head(lab) and "declined" not in head(lab)
