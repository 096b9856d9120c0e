"""The panel's kernel side runs one thing at a time, whichever thread calls it.

JupyterLab 4.6 sends widget messages over a kernel subshell (its setting
``commsOverSubshells``, by default one subshell per comm target), and ipykernel 7.4 routes
each comm's messages to the shell that last sent on it: a panel's clicks are handled on the
main thread or on the subshell's, at the same time. A next click handled on the subshell's
thread while the main thread drew a run ahead (``ahead``) found the picture loaded with that
other run: the panel showed its frame and disabled next at the other run's end (lesson 12,
seen under load: "event 15 of 18" beside the last frame of a 15-event run, next disabled).
"""

from __future__ import annotations

import asyncio
import re
import threading
from typing import Any

from rollback_lessons.lab import ahead
from rollback_lessons.lab.timeline import Timeline
from rollback_lessons.lab.widgets import RollbackLab
from rollback_lessons.worlds import travel

LIMIT_S = 30  # generous: each wait below ends on its condition


class Watched:
    """The panel's lock, setting ``waiting`` when a caller has to wait for it."""

    def __init__(self, waiting: threading.Event) -> None:
        self._lock = threading.RLock()
        self.waiting = waiting

    def __enter__(self) -> Watched:
        if not self._lock.acquire(blocking=False):
            self.waiting.set()
            self._lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def picture_in(view: str) -> str:
    """The frame the panel's view shows (its PNG, inline)."""
    found = re.search(r"src='data:image/png;base64,([^']+)'", view)
    assert found is not None, view[:200]
    return found.group(1)


def stopped(draw_ahead: bool) -> RollbackLab:
    """Lesson 12's panel as its browser check leaves it: the room first, Stop at event 5."""
    lab = RollbackLab(travel.booking(), state=travel.state, draw_ahead=draw_ahead)
    lab.set_first("room")
    lab.show_frame(4)
    lab.stop()
    return lab


def test_a_click_on_another_thread_waits_for_the_run_drawn_ahead(monkeypatch) -> None:
    lab, plain = stopped(True), stopped(False)
    moved = threading.Event()  # the click is done, or waits for the drawing ahead
    lab._lock = Watched(moved)  # type: ignore[assignment]
    control, value = next(ahead.changes(lab))
    drawn = len(lab._run_saga((control, value)).events)  # the run drawn ahead first: 15 events
    assert drawn + 1 < lab.frame_count
    start = drawn - 2  # next then shows event `drawn` of 18: that run's last, not this one's
    lab.show_frame(start)
    clicked: dict[str, Any] = {}

    def click() -> None:  # next, handled on the subshell's thread
        try:
            lab.forward.click()
        except Exception as error:  # (reported below, not lost in the thread)
            clicked["error"] = error
        finally:
            clicked["done"] = True
            moved.set()

    original = Timeline.render

    def render(timeline: Timeline, index: int) -> bytes:
        if timeline is lab.timeline and timeline._outcome is not lab.outcome and not clicked:
            clicked["thread"] = thread = threading.Thread(target=click)
            thread.start()  # the click arrives while another run is loaded to be drawn
            assert moved.wait(LIMIT_S)
        return original(timeline, index)

    monkeypatch.setattr(Timeline, "render", render)

    async def looking() -> None:
        ahead.schedule(lab)  # as run() does once the learner looks at the stopped run
        for _ in range(LIMIT_S * 100):
            if clicked.get("done"):
                return
            await asyncio.sleep(0.01)
        raise AssertionError("no run was drawn ahead, or the click never ended")

    asyncio.run(looking())
    clicked["thread"].join(LIMIT_S)
    monkeypatch.undo()
    assert "error" not in clicked, f"the click failed: {clicked['error']!r}"
    plain.show_frame(start + 1)
    assert lab.frame == start + 1
    assert lab.timeline.frame_count == len(lab.outcome.events)  # type: ignore[union-attr]
    assert (lab.back.disabled, lab.forward.disabled) == (False, False), "next disabled mid-run"
    assert picture_in(lab.view.value) == picture_in(plain.view.value), "another run's frame"
