"""Widget messages held back a moment: a click's picture reaches the browser first, the
rest after it is painted (the explorer's grid: the panel under it, below the screen)."""

from __future__ import annotations

import asyncio
from contextlib import AbstractContextManager, ExitStack
from typing import Any

import ipywidgets as w

from .panel_controls import run_widgets


def panel_own(lab: Any) -> list[w.Widget]:
    """The widgets of a panel that the grid above it does not show: its view (its own copy
    of the picture), its fault controls and its Stop (not Play, back, next, the slider)."""
    shared = {id(lab.play), id(lab.slider), id(lab.back), id(lab.forward)}
    return [widget for widget in run_widgets(lab) if id(widget) not in shared]


class HeldBack:
    """``hold(widgets, seconds)``: their messages wait ``seconds`` (on the kernel's loop),
    then go, one per widget; a hold not yet released sends what later changes too. At
    once outside a kernel (no running loop: a script, a test)."""

    def __init__(self, lock: AbstractContextManager[Any]) -> None:
        self._lock = lock  # the panel's: a release is one of its clicks' turns
        self._held: ExitStack | None = None

    def hold(self, widgets: list[w.Widget], seconds: float) -> None:
        if self._held is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no kernel loop: every message now
            return
        held = ExitStack()
        for widget in widgets:
            if not widget._holding_sync:  # (ipywidgets' own flag)
                held.enter_context(widget.hold_sync())
        self._held = held
        loop.call_later(seconds, self.release)

    def release(self) -> None:
        with self._lock:
            held, self._held = self._held, None
            if held is not None:
                held.close()  # (each widget's held keys, in one message)
