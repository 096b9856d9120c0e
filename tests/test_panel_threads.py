"""The explorer grid and the isolation panel, like RollbackLab (test_widgets_threads.py),
handle one click at a time whichever kernel thread it comes on (JupyterLab 4.6 sends widget
messages over a subshell: a panel's clicks arrive on two threads at once)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from test_explore import FLAWED
from test_widgets_threads import Watched

from rollback_lessons.explore import explore
from rollback_lessons.lab.grid import ExplorerGrid
from rollback_lessons.lab.interleave import IsolationLab

LIMIT_S = 30  # generous: each wait ends on its condition


def waits_for_the_lock(panel: Any, click: Callable[[], Any]) -> None:
    """A click on another thread, while this thread holds the panel's lock: it waits for
    it (and runs once it is free), never runs beside what holds it."""
    waiting, done = threading.Event(), threading.Event()
    held = panel._lock = Watched(waiting)
    errors: list[BaseException] = []

    def on_another_thread() -> None:
        try:
            click()
        except BaseException as error:  # (reported below, not lost in the thread)
            errors.append(error)
        finally:
            done.set()

    with held:
        thread = threading.Thread(target=on_another_thread)
        thread.start()
        for _ in range(LIMIT_S * 20):  # the first of the two to happen
            if waiting.wait(0.05) or done.is_set():
                break
        assert waiting.is_set() and not done.is_set(), "the click ran beside the lock"
    assert done.wait(LIMIT_S)
    thread.join(LIMIT_S)
    assert not errors, errors


def grid() -> ExplorerGrid:
    saga, state, options = FLAWED["past the pivot"]
    return ExplorerGrid(explore(saga, state, **options), state)


def test_a_grid_cell_clicked_on_another_thread_waits_for_the_panel() -> None:
    shown = grid()
    assert shown._lock is shown.lab._lock  # the grid and its panel: one lock
    key = shown.find((("charge_card", "fail"),))
    waits_for_the_lock(shown, shown.buttons[key].click)
    assert shown.opened is not None and shown.opened.faults == (("charge_card", "fail"),)
    assert "data:image/png;base64," in shown.note


@pytest.mark.parametrize("control", ["next", "back", "turn", "choice"])
def test_an_isolation_panel_click_on_another_thread_waits(control: str) -> None:
    lab = IsolationLab("dirty read")
    turns = lab.turn.value
    clicks: dict[str, Callable[[], Any]] = {
        "next": lab.next.click,
        "back": lab.back.click,
        "turn": lambda: setattr(lab.turn, "value", 1),
        "choice": lambda: setattr(lab.interleaving, "value", lab.interleaving.max),
    }
    waits_for_the_lock(lab, clicks[control])
    if control in ("back", "turn"):
        assert lab.turn.value < turns
