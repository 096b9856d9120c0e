"""The player of ``RollbackLab`` (widgets.py): Play, the event slider, back and next,
and the frame they show. Kept apart so that the panel's module holds what a change of
fault does (a new run), and this one how a learner walks through the run shown."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any, TypeVar, cast

import ipywidgets as w

BOUNDS_FIRST = ("min", "max")  # a message's keys in this order, then the others
F = TypeVar("F", bound=Callable[..., Any])


def one_at_a_time(method: F) -> F:
    """``method`` under the panel's ``_lock``: what a click does happens whole, whichever
    thread handles it. JupyterLab 4.6 sends widget messages over a kernel subshell and
    ipykernel 7 routes each comm's to the shell that last sent on it, so a panel's clicks
    are handled on two threads at once: a next handled while a run was drawn ahead showed
    that run's frame, and disabled next at its end (lesson 12: "event 15 of 18")."""

    @functools.wraps(method)
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return cast(F, locked)


def _send_bounds_first(widget: w.Widget) -> None:
    """Send what ``hold_sync`` held, the bounds before the value. The browser applies a
    message's keys in order, and a slider handed its value before a larger max clamps the
    value to the old max and sends that back: the panel then showed a mid-run frame of a
    new, longer run ("event 5 of 12", newuser11). ipywidgets holds the keys in a set,
    whose order changes with each kernel's hash seed."""
    held = widget._states_to_send  # (ipywidgets' own: sent, then cleared, by hold_sync)
    if held:
        first = [k for k in BOUNDS_FIRST if k in held]
        widget.send_state(first + sorted(held - set(first)))
        held.clear()  # nothing left for hold_sync to send again


@contextmanager
def one_message_each(*widgets: w.Widget) -> Iterator[None]:
    """Several properties of each widget changed together reach the browser as one
    message per widget (max and value: not two, each moving the slider and its readout),
    the bounds before the value (``_send_bounds_first``). A widget held already, by an
    outer ``one_message_each``, is sent by it, at its end (the explorer's grid: its picture
    first, then the rest of a click)."""
    with ExitStack() as stack:
        for widget in widgets:
            if widget._holding_sync:  # (ipywidgets' own flag)
                continue
            stack.enter_context(widget.hold_sync())
            stack.callback(_send_bounds_first, widget)  # (runs before hold_sync ends)
        yield


class Player:
    """Mixed into ``RollbackLab``: it sets ``timeline``, ``play``, ``slider``, ``back``,
    ``forward``, ``play_button``, ``_frame``, ``_quiet`` and ``_jumped``, and draws a frame
    with ``_show``."""

    timeline: Any
    play: w.Play
    slider: w.IntSlider
    back: w.Button
    forward: w.Button
    play_button: w.Button
    _frame: int
    _quiet: bool
    _jumped: bool
    _lock: AbstractContextManager[Any]  # (an RLock: a call made inside another is not held up)

    def _show(self, index: int) -> None:  # pragma: no cover - RollbackLab's
        raise NotImplementedError

    @one_at_a_time
    def toggle_play(self) -> None:
        """Play from the frame the learner chose, or from the start (at the end, or where
        a change of fault left the panel: its failure, the lesson's "walk down the lanes,
        to the failure, and the undo back up"); or pause."""
        if self.play.playing:
            self.play.playing = False
            return
        if self._jumped or self.frame >= self.frame_count - 1:
            self.show_frame(0)
        self._jumped = False
        self.play.value = self.frame + 1
        self.play.playing = True

    @one_at_a_time
    def show_frame(self, index: int) -> bytes:
        """Show frame ``index`` (0-based, clamped to the run) and return its PNG."""
        self._jumped = False  # (the learner's choice: Play goes on from it)
        self.play.playing = False  # back or next while playing: Play pauses there
        index = max(0, min(index, self.frame_count - 1))
        if self.slider.value != index + 1:
            self.slider.value = index + 1  # the slider's observer draws it
        else:
            self._show(index)
        return self.picture

    @property
    def frame(self) -> int:
        """The frame shown, 0-based (the slider and the log say ``frame + 1``)."""
        return self._frame

    @property
    def frame_count(self) -> int:
        return self.timeline.frame_count

    @property
    def picture(self) -> bytes:
        """The PNG of the frame shown."""
        return self.timeline.render(self._frame)

    @one_at_a_time
    def _on_slider(self, change: dict[str, Any]) -> None:
        if not self._quiet:
            self.play.playing = False  # the learner took the slider: Play pauses
            self._jumped = False
            self._show(change["new"] - 1)
            self._ends()

    @one_at_a_time
    def _on_tick(self, change: dict[str, Any]) -> None:
        """Play's next frame (Play counts in the browser; the kernel draws). A tick that
        arrives once the kernel has stopped Play is ignored: it left the browser before the
        stop got there, and would move the new run to a frame nobody chose."""
        if self._quiet or not self.play.playing:
            return
        index = max(0, min(change["new"] - 1, self.frame_count - 1))
        self._show(index)  # the view first, then the slider follows it
        self._quiet = True
        try:
            self.slider.value = index + 1
        finally:
            self._quiet = False
        self._ends()

    def _on_playing(self, change: dict[str, Any]) -> None:
        playing = bool(change["new"])
        self.play_button.description = "Pause" if playing else "Play"
        self.play_button.icon = "pause" if playing else "play"

    def _follow(self, frame: int, events: int) -> None:
        """Play and the slider follow a new run of ``events`` events shown at ``frame``
        (its view sent first), without drawing the frame again; then back and next."""
        self._quiet = True
        try:
            with one_message_each(self.play, self.slider):
                self.play.playing = False
                self.play.max = self.slider.max = events
                self.slider.value = frame + 1
        finally:
            self._quiet = False
        self._ends()

    def _ends(self) -> None:
        """Back and next are disabled at either end of the run."""
        self.back.disabled = self._frame <= 0
        self.forward.disabled = self._frame >= self.frame_count - 1
