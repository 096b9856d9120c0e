"""``RollbackLab``: one panel to break a saga on purpose and watch the undo walk back.

The panel only maps its controls to ``saga.run`` arguments and shows what comes back:
the engine runs the saga, ``timeline.Timeline`` draws it. Everything a learner can click is
also a method, so lesson cells and tests drive the same panel without a browser.

Made for a classroom: it fits one 1366x768 screen with JupyterLab's file browser open
(about 600 px tall), its text is at least 12 px, and each change reaches the browser as
ONE widget message (the view: picture, state, result and event log together), so a click
is painted in well under a tenth of a second.
"""

from __future__ import annotations

import base64
import copy
import html
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import ipywidgets as w

from .. import faults
from ..clock import VirtualClock
from ..errors import InvalidPipelineError, UnknownFaultError, UnknownStepError
from ..events import Event
from ..faults import LABELS, Fault
from ..outcome import Outcome, Status
from ..saga import Kind, Saga, snapshot
from . import guard, timeline
from .png import size
from .timeline import CURRENT, FAIL, HIGHLIGHT, INK, PIVOT, RETRY, UNDO

# The engine's fault space, as control options (label, value), with a tooltip for each
ACTION_CHOICES = (("ok", "ok"), *((LABELS[f], f.value) for f in faults.ACTION_CHOICES))
UNDO_CHOICES = (("undo ok", "undo_ok"), *((LABELS[f], f.value) for f in faults.UNDO_CHOICES))
ACTION_TIPS = (
    "the step works",
    "the step fails before its effect",
    "the effect happens, then the call fails anyway (a timeout)",
)
UNDO_TIPS = ("its undo works", "its undo fails on every attempt", "its undo fails once, then works")
POLICIES = (("continue", "continue"), ("retry", "retry"), ("halt", "halt"))
REGISTERS = (("as each step says", "step"), ("all after", "after"), ("all before", "before"))
ORDERS = (("reverse", "reverse"), ("forward", "forward"))
FAULTS = ("ok", "undo_ok", *(f.value for f in Fault))
STATUS_COLOURS = {
    Status.COMMITTED: timeline.FORWARD,
    Status.ROLLED_BACK: UNDO,
    Status.HALTED: PIVOT,
}

LOG_ROWS = 4  # the event log shows this many rows around the current event
PANEL_WIDTH = timeline.PANEL_WIDTH  # inches at 80 dpi: the picture, shown 1:1

# Shared by every panel of the package (the isolation lab and the grid use it too): text at
# least 12 px, compact tables, a chosen fault coloured like the pictures, and a panel that
# lost its kernel says so (ipywidgets marks its views "jupyter-widgets-disconnected").
CSS = f"""<style>
.rl-panel {{font-size: 13px; line-height: 1.3; color: {INK}}}
.rl-panel table {{border-collapse: collapse; font-size: 13px; line-height: 1.3}}
.rl-panel td, .rl-panel th {{padding: 1px 6px; text-align: left; vertical-align: top;
  border: none; white-space: normal}}
.rl-panel th {{font-weight: bold; white-space: nowrap}}
.rl-panel .rl-title {{font-size: 16px; font-weight: bold}}
.rl-panel .widget-html-content, .rl-panel .widget-label {{font-size: 13px; line-height: 1.3}}
.rl-panel select {{font-size: 13px}}
.rl-panel .rl-row {{display: flex; gap: 12px; align-items: flex-start}}
.rl-panel .rl-image {{flex: none; max-width: none; display: block}}
.rl-panel .rl-side, .rl-panel .rl-result {{flex: 1 1 auto; min-width: 0}}
.rl-panel .rl-cue {{color: {timeline.FORWARD}; font-weight: bold; min-height: 17px}}
.rl-panel .rl-caption {{font-size: 15px; font-weight: bold; margin: 2px 0 4px}}
.rl-panel .rl-state td:nth-child(n+2) {{font-family: monospace; overflow-wrap: anywhere}}
.rl-panel tr.changed td:last-child {{background: {HIGHLIGHT}}}
.rl-panel tr.now {{background: {CURRENT}}}
.rl-panel .rl-log {{flex: none; width: {int(timeline.PANEL_WIDTH * timeline.DPI)}px}}
.rl-panel .rl-log table {{table-layout: fixed; width: 100%}}
.rl-panel .rl-log td {{white-space: nowrap; overflow: hidden; text-overflow: ellipsis}}
.rl-panel .rl-details {{color: #444; overflow-wrap: anywhere}}
.rl-panel .rl-log tr.gap td {{color: #555; font-style: italic}}
.rl-panel .rl-key {{display: inline-block; width: 12px; height: 12px; vertical-align: -1px;
  margin: 0 3px 0 8px; border: 1px solid #888}}
.rl-panel .rl-legend {{color: #333}}
.rl-panel .rl-action.rl-chosen select {{background: {FAIL}; color: white}}
.rl-panel .rl-undo.rl-chosen select {{background: {RETRY}; color: black}}
.rl-panel .rl-step {{font-weight: bold; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis}}
.rl-panel .rl-lost {{display: none; background: {FAIL}; color: white; font-weight: bold;
  font-size: 15px; padding: 4px 8px; margin: 2px 0}}
.rl-panel.jupyter-widgets-disconnected .rl-lost {{display: block}}
.rl-panel.jupyter-widgets-disconnected .rl-dim {{opacity: 0.35; pointer-events: none}}
</style>"""
LOST = "this panel lost its kernel: run the cell again"


def lost_banner() -> str:
    """Hidden while the kernel lives; shown (by CSS alone) once ipywidgets marks the panel
    disconnected, which it does when the kernel restarts."""
    return f"<div class='rl-lost'>{LOST}</div>"


def key(colour: str) -> str:
    """A colour swatch for an HTML legend."""
    return f"<span class='rl-key' style='background:{colour}'></span>"


def png_img(png: bytes, alt: str, css: str = "rl-image") -> str:
    """A PNG inline, at its own size (1:1: its text stays as large as it was drawn)."""
    width, height = size(png)
    data = base64.b64encode(png).decode("ascii")
    return (
        f"<img class='{css}' src='data:image/png;base64,{data}' width='{width}' "
        f"height='{height}' style='width:{width}px;height:{height}px' alt='{html.escape(alt)}'>"
    )


def _css(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def _choice(
    options: tuple[tuple[str, str], ...],
    value: str,
    tips: tuple[str, ...],
    width: str,
    **kw: Any,
) -> w.Dropdown:
    """One compact choice; its tooltip lists what each option means."""
    tooltip = "; ".join(f"{label}: {tip}" for (label, _), tip in zip(options, tips, strict=True))
    return w.Dropdown(
        options=list(options), value=value, tooltip=tooltip, layout=w.Layout(width=width), **kw
    )


def _dropdown(options: tuple[tuple[str, str], ...], value: str, label: str, tip: str) -> Any:
    return w.Dropdown(
        options=list(options),
        value=value,
        description=label,
        tooltip=tip,
        style={"description_width": "128px"},
        layout=w.Layout(width="296px"),
    )


def _details(event: Event) -> str:
    return " ".join(f"{k}={v}" for k, v in event.details.items())


def log_html(events: list[Event] | tuple[Event, ...], current: int, rows: int = LOG_ROWS) -> str:
    """A window of ``rows`` events that holds ``current`` (marked ▶, pale blue); a line above
    and below says how many are not shown. Always the same number of lines, so the panel
    keeps its height while it plays."""
    start = max(0, min(current - rows // 2, len(events) - rows))
    end = min(len(events), start + rows)
    body = [
        f"<tr class='gap'><td colspan=5>{f'… {start} earlier' if start else '&nbsp;'}</td></tr>"
    ]
    for i in range(start, end):
        e = events[i]
        now = i == current
        body.append(
            f"<tr{' class=now' if now else ''}><td>{'▶' if now else ''}</td><td>{e.seq}</td>"
            f"<td>{html.escape(e.kind)}</td><td>{html.escape(e.step or '-')}</td>"
            f"<td title='{html.escape(_details(e))}'>{html.escape(_details(e))}</td></tr>"
        )
    body += ["<tr><td colspan=5>&nbsp;</td></tr>"] * (rows - (end - start))
    later = len(events) - end
    after = f"… {later} later" if later else "&nbsp;"
    body.append(f"<tr class='gap'><td colspan=5>{after}</td></tr>")
    columns = (
        "<colgroup><col style='width:18px'><col style='width:34px'><col style='width:124px'>"
        "<col style='width:106px'><col></colgroup>"
    )
    head = "<tr><th></th><th>#</th><th>event</th><th>step</th><th>details</th></tr>"
    return f"<table>{columns}<thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


def state_html(before: Mapping[str, Any], now: Mapping[str, Any], keys: Iterable[str]) -> str:
    """The state before the run and at this frame; a value that changed is yellow."""
    rows = []
    for k in keys:
        b, n = before.get(k, _MISSING), now.get(k, _MISSING)
        changed = " class='changed'" if b != n else ""
        rows.append(
            f"<tr{changed}><td>{html.escape(str(k))}</td><td>{html.escape(_repr(b))}</td>"
            f"<td>{html.escape(_repr(n))}</td></tr>"
        )
    head = "<tr><th>state</th><th>before</th><th>now</th></tr>"
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


_MISSING = object()


def _repr(value: Any) -> str:
    return "-" if value is _MISSING else repr(value)


def _names(names: Iterable[str]) -> str:
    return ", ".join(names) or "none"


def result_html(outcome: Outcome) -> str:
    """How the run ended, in a few lines: the status, why, and what a person must know."""
    colour = STATUS_COLOURS.get(outcome.status, FAIL)
    head = f"<b style='color:{colour}'>{html.escape(str(outcome.status))}</b>"
    if outcome.error is not None:
        head += f": {html.escape(outcome.failed_step or 'the block')} failed with " + html.escape(
            repr(outcome.error)
        )
    ran = {*outcome.completed, *([outcome.failed_step] if outcome.failed_step else [])}
    not_run = [s for s in outcome.steps if s not in ran]
    lines = [("undone", _names(outcome.compensated))]
    dead = "; ".join(f"{d.step} ({d.attempts} attempt{'s' * (d.attempts != 1)})"
                     for d in outcome.dead_letters)  # fmt: skip
    lines.append(("dead letters", dead or "none"))
    if outcome.pending:
        lines.append(("pending", f"{_names(outcome.pending)} (left for a person)"))
    if outcome.leaked:
        lines.append(("not undone", f"{_names(outcome.leaked)} (no undo covers it)"))
    if outcome.semantic:
        lines.append(("compensated", f"{_names(outcome.semantic)} (by a new action)"))
    if not_run:
        lines.append(("not run", _names(not_run)))
    rows = "".join(f"<tr><th>{k}</th><td>{html.escape(v)}</td></tr>" for k, v in lines)
    return f"<div>{head}</div><table>{rows}</table>"


class RollbackLab:
    """A failure-injection panel for ``saga``; ``state`` is a mapping or a factory of one."""

    def __init__(
        self,
        saga: Saga | None = None,
        state: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
        *,
        policy: str = "continue",
        register: str = "step",
        undo_order: str = "reverse",
        title: str | None = None,
        interval_ms: int = 700,
    ) -> None:
        if saga is None:
            raise guard.RunTheCellsAbove("RollbackLab needs a saga: RollbackLab(saga, state=...)")
        if not isinstance(saga, Saga):
            raise TypeError(f"RollbackLab needs a Saga, got {type(saga).__name__}")
        self.saga = saga
        self._make_state = self._state_factory(state)
        first = self._make_state()
        self.state_keys = list(snapshot(first)) if first is not None else []
        self.timeline = timeline.Timeline(
            saga.names,
            kinds={s.name: str(s.kind) for s in saga.steps},
            labels={s.name: s.label for s in saga.steps if s.label},
            width=PANEL_WIDTH,
            table=False,  # the state is HTML beside the picture: whole values, wrapped
            title=False,  # and so is the event the frame shows
        )
        self.outcome: Outcome | None = None
        self._quiet = False  # True while several controls change as one
        self._frame = 0

        self.actions = {
            s.name: _choice(ACTION_CHOICES, "ok", ACTION_TIPS, "132px") for s in saga.steps
        }
        self.undos = {
            s.name: _choice(UNDO_CHOICES, "undo_ok", UNDO_TIPS, "132px", disabled=s.undo is None)
            for s in saga.steps
        }
        self.policy = _dropdown(
            POLICIES, policy, "when an undo fails", "what a failed undo leads to"
        )
        self.register = _dropdown(
            REGISTERS, register, "log each undo", "before its step runs, or after it succeeds"
        )
        self.order = _dropdown(
            ORDERS, undo_order, "undo order", "reverse is right; forward shows why"
        )
        self.play_button = w.Button(
            description="Play",
            icon="play",
            button_style="primary",
            tooltip="play the run event by event (press again to pause)",
            layout=w.Layout(width="88px", flex="none"),
        )
        self.play = w.Play(
            min=1, max=1, value=1, interval=interval_ms, description="Play", tooltip="play / pause",
            show_repeat=False, layout=w.Layout(display="none"),
        )  # fmt: skip
        self.slider = w.IntSlider(
            min=1, max=1, value=1, description="event", readout=True,
            tooltip="drag through the run's events (numbered as in the log)",
            style={"description_width": "42px"}, layout=w.Layout(width="260px", flex="none"),
        )  # fmt: skip
        w.jslink((self.play, "value"), (self.slider, "value"))
        self.back = w.Button(
            description="back", icon="step-backward", tooltip="the previous event",
            layout=w.Layout(width="80px", flex="none"),
        )  # fmt: skip
        self.forward = w.Button(
            description="next", icon="step-forward", tooltip="the next event",
            layout=w.Layout(width="80px", flex="none"),
        )  # fmt: skip
        self.view = w.HTML()  # picture, cue, state, result and log: one message per change
        self.runs = 0
        self._cue = ""
        self._result = ""

        for control in [*self.actions.values(), *self.undos.values()]:
            control.observe(self._on_control, names="value")
        for control in (self.policy, self.register, self.order):
            control.observe(self._on_control, names="value")
        self.play_button.on_click(lambda _: self.toggle_play())
        self.play.observe(self._on_playing, names="playing")
        self.slider.observe(self._on_slider, names="value")
        self.back.on_click(lambda _: self.show_frame(self.frame - 1))
        self.forward.on_click(lambda _: self.show_frame(self.frame + 1))
        self.widget = self._layout(title or f"Break '{saga.name}' and watch it undo")
        self.run(opening=True)

    @staticmethod
    def _state_factory(state: Any) -> Callable[[], Any]:
        if state is None:
            return lambda: None
        if callable(state):
            return state
        if isinstance(state, Mapping):
            return lambda: copy.deepcopy(dict(state))
        raise TypeError(f"state must be a mapping or a function that makes one, got {state!r}")

    def _layout(self, title: str) -> w.VBox:
        """Made for 1366x768 with JupyterLab's file browser open (934 px wide, 647 px high):
        the title and the player on top, the view (picture; state and result beside it; the
        log under it), the faults and options underneath."""
        for name, control in self.actions.items():
            control.add_class("rl-action").add_class(f"rl-action-{_css(name)}")
        for name, control in self.undos.items():
            control.add_class("rl-undo").add_class(f"rl-undo-{_css(name)}")
        for control, css in (
            (self.policy, "rl-policy"), (self.register, "rl-register"), (self.order, "rl-order"),
            (self.play_button, "rl-play-button"), (self.play, "rl-play"),
            (self.slider, "rl-frame"), (self.back, "rl-back"), (self.forward, "rl-forward"),
            (self.view, "rl-view"),
        ):  # fmt: skip
            control.add_class(css)  # stable hooks for styling and for the browser tests
        head = w.HTML(
            f"{CSS}<span class='rl-title'>{html.escape(title)}</span>",
            layout=w.Layout(flex="1 1 auto", overflow="hidden"),
        )
        top = w.HBox(
            [head, self.play_button, self.back, self.slider, self.forward, self.play],
            layout=w.Layout(align_items="center", width="100%"),
        )
        columns = []
        for step in self.saga.steps:
            tag = "" if step.kind is Kind.COMPENSABLE else f" ({step.kind})"
            name = w.HTML(
                f"<div class='rl-step' title='{html.escape(step.label or step.name)}'>"
                f"{html.escape(step.name)}{html.escape(tag)}</div>",
                layout=w.Layout(width="132px", margin="0"),
            )
            columns.append(
                w.VBox(
                    [name, self.actions[step.name], self.undos[step.name]],
                    layout=w.Layout(width="136px", flex="none"),
                )
            )
        legend = w.HTML(
            "<b>break it</b> <span class='rl-legend'>(coloured: a fault you chose,"
            f"{key(FAIL)}in a step{key(RETRY)}in its undo)</span>"
        )
        options = w.VBox(
            [self.policy, self.register, self.order], layout=w.Layout(flex="none", width="300px")
        )
        band = w.VBox(
            [legend, w.HBox([*columns, options], layout=w.Layout(flex_flow="row wrap"))],
            layout=w.Layout(width="100%"),
        )
        body = w.VBox([top, self.view, band], layout=w.Layout(width="100%"))
        body.add_class("rl-dim")
        panel = w.VBox([w.HTML(lost_banner()), body], layout=w.Layout(width="100%"))
        panel.add_class("rl-panel").add_class("rollback-lab")
        return panel

    # -- what a learner can do, as methods ---------------------------------------------

    def set_fault(self, step: str, fault: str) -> Outcome:
        """Choose what goes wrong at ``step``: ok, fail, fail_after_effect (the action) or
        undo_ok, undo_fails, undo_fails_once (its undo). Re-runs the saga."""
        if step not in self.actions:
            raise UnknownStepError(
                f"no step {step!r} in this panel; the steps are: {', '.join(self.saga.names)}"
            )
        if fault not in FAULTS:
            raise UnknownFaultError(f"unknown fault {fault!r}; choose from: {', '.join(FAULTS)}")
        if fault.startswith("undo"):
            if self.undos[step].disabled:
                raise InvalidPipelineError(f"step {step!r} has no undo to break")
            self.undos[step].value = fault
        else:
            self.actions[step].value = fault
        assert self.outcome is not None
        return self.outcome

    def set_policy(self, policy: str) -> Outcome:
        return self._set(self.policy, policy, "policy")

    def set_register(self, register: str) -> Outcome:
        return self._set(self.register, register, "register")

    def set_order(self, order: str) -> Outcome:
        return self._set(self.order, order, "undo order")

    def reset(self) -> Outcome:
        """Every step ok, every undo ok."""
        return self.open_run([], self.policy.value)

    def open_run(self, faults: Iterable[tuple[str, str]], policy: str = "continue") -> Outcome:
        """Show one run: exactly these (step, fault) pairs under ``policy``, in one go (the
        explorer's grid opens a cell here)."""
        faults = list(faults)
        for step, fault in faults:
            if step not in self.actions or fault not in FAULTS:
                raise InvalidPipelineError(f"cannot set {fault!r} on {step!r} in this panel")
        self._quiet = True  # every control set first, then one run
        try:
            for control in self.actions.values():
                control.value = "ok"
            for control in self.undos.values():
                control.value = "undo_ok"
            for step, fault in faults:
                (self.undos if str(fault).startswith("undo") else self.actions)[step].value = fault
            self._set(self.policy, policy, "policy")
        finally:
            self._quiet = False
        return self.run()

    def _set(self, control: w.Dropdown, value: str, what: str) -> Outcome:
        valid = [v for _, v in control.options]
        if value not in valid:
            raise InvalidPipelineError(f"unknown {what} {value!r}; choose from: {', '.join(valid)}")
        control.value = value
        assert self.outcome is not None
        return self.outcome

    @property
    def inject(self) -> dict[str, list[str]]:
        """The faults the controls describe, as ``saga.run(inject=...)`` takes them."""
        out: dict[str, list[str]] = {}
        for name in self.saga.names:
            faults = [self.actions[name].value, self.undos[name].value]
            faults = [f for f in faults if f not in ("ok", "undo_ok")]
            if faults:
                out[name] = faults
        return out

    def run(self, *, opening: bool = False) -> Outcome:
        """Run the saga with the chosen faults on a fresh state and show its telling frame:
        where it fails (after a change), or the whole run (when the panel opens)."""
        outcome = self.saga.run(
            self._make_state(),
            inject=self.inject,
            policy=self.policy.value,
            register=None if self.register.value == "step" else self.register.value,
            undo_order=self.order.value,
            clock=VirtualClock(),
            trace_state=True,
        )
        self.outcome = outcome
        self.timeline.load(outcome)
        self.runs += 1
        faults = ", ".join(f"{k} {'+'.join(v)}" for k, v in self.inject.items()) or "no faults"
        self._cue = (
            "" if opening else f"↻ run {self.runs}: {html.escape(faults)} → {outcome.status}"
        )
        self._result = result_html(outcome)
        frame = self.telling_frame(outcome, opening)
        self._show(frame)  # the view first: it is what the learner watches (one message)
        self._quiet = True  # then the player follows, without drawing the frame again
        try:
            self.play.playing = False
            self.play.max = self.slider.max = len(outcome.events)
            self.slider.value = frame + 1
        finally:
            self._quiet = False
        self._ends()
        self._mark_chosen()
        return outcome

    @staticmethod
    def telling_frame(outcome: Outcome, opening: bool) -> int:
        """The frame worth seeing first: the failure, or (opening, or a commit) the end."""
        last = len(outcome.events) - 1
        if opening:
            return last
        failed = next(
            (i for i, e in enumerate(outcome.events) if e.kind == "pipeline_failed"), None
        )
        return last if failed is None else failed

    def toggle_play(self) -> None:
        """Play from the frame shown (from the start when at the end), or pause."""
        if self.play.playing:
            self.play.playing = False
            return
        if self.frame >= self.frame_count - 1:
            self.show_frame(0)
        self.play.value = self.frame + 1
        self.play.playing = True

    def show_frame(self, index: int) -> bytes:
        """Show frame ``index`` (0-based, clamped to the run) and return its PNG."""
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

    # -- plumbing ----------------------------------------------------------------------

    def _on_control(self, change: dict[str, Any]) -> None:
        if not self._quiet:
            self.run()

    def _on_slider(self, change: dict[str, Any]) -> None:
        if not self._quiet:
            self._show(change["new"] - 1)
            self._ends()

    def _on_playing(self, change: dict[str, Any]) -> None:
        playing = bool(change["new"])
        self.play_button.description = "Pause" if playing else "Play"
        self.play_button.icon = "pause" if playing else "play"

    def _ends(self) -> None:
        """Back and next are disabled at either end of the run."""
        self.back.disabled = self._frame <= 0
        self.forward.disabled = self._frame >= self.frame_count - 1

    def _mark_chosen(self) -> None:
        """A chosen fault stands out, coloured like the pictures (on a projector too)."""
        for controls, plain in ((self.actions, "ok"), (self.undos, "undo_ok")):
            for control in controls.values():
                chosen = "rl-chosen" in control._dom_classes
                if (control.value != plain) != chosen:
                    if chosen:
                        control.remove_class("rl-chosen")
                    else:
                        control.add_class("rl-chosen")

    def view_html(self, index: int) -> str:
        """The view at frame ``index``: the picture, and beside it the cue, the event it
        shows and the state; under it the event log and the result."""
        outcome = self.outcome
        assert outcome is not None
        png = self.timeline.render(index)
        event = outcome.events[index]
        before = outcome.state_before or {}
        now = outcome.state_at(index) or {}
        total = len(outcome.events)
        status = f" → {outcome.status}" if index == total - 1 else ""
        caption = f"event {index + 1} of {total}: {timeline.caption(event)}{status}"
        details = _details(event)
        legend = (
            f"<div class='rl-legend'>{key(HIGHLIGHT)}changed since before"
            f"{key(CURRENT)}▶ the event shown</div>"
        )
        side = (
            f"<div class='rl-cue'>{self._cue}</div>"
            f"<div class='rl-caption'>{html.escape(caption)}</div>"
            f"<div class='rl-details'>{html.escape(details)}</div>"
            f"<div class='rl-state'>{state_html(before, now, self.state_keys)}</div>{legend}"
        )
        return (
            f"<div class='rl-row'>{png_img(png, caption)}<div class='rl-side'>{side}</div></div>"
            f"<div class='rl-row'><div class='rl-log'>{log_html(outcome.events, index)}</div>"
            f"<div class='rl-result'>{self._result}</div></div>"
        )

    def _show(self, index: int) -> None:
        self._frame = index
        self.view.value = self.view_html(index)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
