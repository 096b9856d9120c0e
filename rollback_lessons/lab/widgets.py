"""``RollbackLab``: one panel to break a saga on purpose and watch the undo walk back.

The panel only maps its controls to ``saga.run`` arguments and shows what comes back:
the engine runs the saga, ``viz.Timeline`` draws it. Everything a learner can click is
also a method, so lesson cells and tests drive the same panel without a browser.
"""

from __future__ import annotations

import copy
import html
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import ipywidgets as w

from .. import faults
from ..clock import VirtualClock
from ..errors import InvalidPipelineError, UnknownFaultError, UnknownStepError
from ..events import events_html
from ..faults import LABELS, Fault
from ..outcome import Outcome, state_table_html
from ..saga import Kind, Saga, snapshot
from . import viz

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

_CSS = """<style>
.rollback-lab table {border-collapse: collapse; font-size: 14px}
.rollback-lab td, .rollback-lab th {padding: 2px 8px; text-align: left}
.rollback-lab .now {background: #F0E442}
.rollback-lab .rl-action.rl-chosen select {background: #D55E00; color: white}
.rollback-lab .rl-undo.rl-chosen select {background: #E69F00; color: black}
.rollback-lab .rl-action select, .rollback-lab .rl-undo select {font-size: 13px}
.rollback-lab .rl-step {font-size: 13px; line-height: 1.15; overflow-wrap: anywhere}
.rollback-lab .rl-cue {color: #0072B2; font-weight: bold}
.rollback-lab .rl-log table {font-size: 13px}
</style>"""  # a chosen fault stands out (also on a projector); colours match the pictures


def _css(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def _choice(
    options: tuple[tuple[str, str], ...],
    value: str,
    tips: tuple[str, ...],
    width: str,
    **kw: Any,
) -> w.Dropdown:
    """One compact choice; its tooltip lists what each option means. A chosen fault gets
    the class ``rl-chosen`` (coloured like the pictures, so it reads on a projector)."""
    tooltip = "; ".join(f"{label}: {tip}" for (label, _), tip in zip(options, tips, strict=True))
    control = w.Dropdown(
        options=list(options), value=value, tooltip=tooltip, layout=w.Layout(width=width), **kw
    )
    default = value

    def mark(change: dict[str, Any]) -> None:
        if change["new"] == default:
            control.remove_class("rl-chosen")
        else:
            control.add_class("rl-chosen")

    control.observe(mark, names="value")
    return control


def _dropdown(options: tuple[tuple[str, str], ...], value: str, label: str, tip: str) -> Any:
    return w.Dropdown(
        options=list(options),
        value=value,
        description=label,
        tooltip=tip,
        style={"description_width": "initial"},
        layout=w.Layout(width="auto"),
    )


LOG_ROWS = 9  # the event log shows this many rows around the current event
PANEL_WIDTH = 8.5  # inches at 80 dpi: 680 px, about what the picture gets at 1366x768


class RollbackLab:
    """A failure-injection panel for ``saga``; ``state`` is a mapping or a factory of one."""

    def __init__(
        self,
        saga: Saga,
        state: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
        *,
        policy: str = "continue",
        register: str = "step",
        undo_order: str = "reverse",
        title: str | None = None,
        interval_ms: int = 700,
    ) -> None:
        if not isinstance(saga, Saga):
            raise TypeError(f"RollbackLab needs a Saga, got {type(saga).__name__}")
        self.saga = saga
        self._make_state = self._state_factory(state)
        first = self._make_state()
        self.timeline = viz.Timeline(
            saga.names,
            kinds={s.name: str(s.kind) for s in saga.steps},
            labels={s.name: s.label for s in saga.steps if s.label},
            state_keys=list(snapshot(first)) if first is not None else [],
            width=PANEL_WIDTH,
        )
        self.outcome: Outcome | None = None
        self._quiet = False  # True while several controls change as one

        self.actions = {
            s.name: _choice(ACTION_CHOICES, "ok", ACTION_TIPS, "132px") for s in saga.steps
        }
        self.undos = {
            s.name: _choice(UNDO_CHOICES, "undo_ok", UNDO_TIPS, "108px", disabled=s.undo is None)
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
            tooltip="play the run frame by frame (press again to pause)",
            layout=w.Layout(min_width="96px"),
        )
        self.play = w.Play(
            min=0, max=0, value=0, interval=interval_ms, description="Play", tooltip="play / pause",
            show_repeat=False, layout=w.Layout(display="none"),
        )  # fmt: skip
        self.slider = w.IntSlider(
            min=0, max=0, value=0, description="frame", readout=True,
            tooltip="drag through the run's events",
            style={"description_width": "44px"}, layout=w.Layout(flex="1 1 auto", width="auto"),
        )  # fmt: skip
        w.jslink((self.play, "value"), (self.slider, "value"))
        self.back = w.Button(
            description="back", icon="step-backward", tooltip="the previous event",
            layout=w.Layout(width="auto", min_width="82px"),
        )  # fmt: skip
        self.forward = w.Button(
            description="next", icon="step-forward", tooltip="the next event",
            layout=w.Layout(width="auto", min_width="82px"),
        )  # fmt: skip
        self.image = w.Image(format="png", layout=w.Layout(width="100%"))
        self.cue = w.HTML()
        self.result = w.HTML()
        self.log = w.HTML()
        self.dead = w.HTML()
        self.runs = 0

        for control in [*self.actions.values(), *self.undos.values()]:
            control.observe(self._on_control, names="value")
        for control in (self.policy, self.register, self.order):
            control.observe(self._on_control, names="value")
        self.play_button.on_click(lambda _: self.toggle_play())
        self.play.observe(self._on_playing, names="playing")
        self.slider.observe(self._on_slider, names="value")
        self.back.on_click(lambda _: self.show_frame(self.frame - 1))
        self.forward.on_click(lambda _: self.show_frame(self.frame + 1))
        self.widget = self._layout(title or f"Break the saga '{saga.name}' and watch it undo")
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
        """Made for 1366x768 with JupyterLab's file browser open: the picture and the player
        on the left, the faults and options beside them, the result and the log below."""
        for name, control in self.actions.items():
            control.add_class("rl-action").add_class(f"rl-action-{_css(name)}")
        for name, control in self.undos.items():
            control.add_class("rl-undo").add_class(f"rl-undo-{_css(name)}")
        for control, css in (
            (self.policy, "rl-policy"), (self.register, "rl-register"), (self.order, "rl-order"),
            (self.play_button, "rl-play-button"), (self.play, "rl-play"),
            (self.slider, "rl-frame"), (self.back, "rl-back"), (self.forward, "rl-forward"),
            (self.image, "rl-image"), (self.cue, "rl-cue"), (self.result, "rl-result"),
            (self.log, "rl-log"), (self.dead, "rl-dead"),
        ):  # fmt: skip
            control.add_class(css)  # stable hooks for styling and for the browser tests
        rows = []
        for step in self.saga.steps:
            tag = "" if step.kind is Kind.COMPENSABLE else f" <i>({step.kind})</i>"
            text = f"<div class='rl-step'><b>{html.escape(step.name)}</b>{tag}</div>"
            name = w.HTML(
                text,
                tooltip=step.label or step.name,
                layout=w.Layout(width="112px", overflow="hidden"),
            )
            rows.append(w.HBox([name, self.actions[step.name], self.undos[step.name]]))
        player = w.HBox(
            [self.play_button, self.back, self.slider, self.forward, self.play],
            layout=w.Layout(align_items="center", width="100%"),
        )
        picture = w.VBox(
            [self.image, player],
            layout=w.Layout(width="64%", max_width=f"{int(PANEL_WIDTH * 80)}px", min_width="420px"),
        )
        options = w.HBox(
            [self.policy, self.register, self.order], layout=w.Layout(flex_flow="row wrap")
        )
        controls = w.VBox(
            [w.HTML("<b>break it</b>"), *rows, options],
            layout=w.Layout(width="36%", min_width="360px", padding="0 0 0 8px"),
        )
        results = w.HBox(
            [
                w.VBox(
                    [w.HTML("<b>result</b>"), self.result, self.dead], layout=w.Layout(width="50%")
                ),
                w.VBox([w.HTML("<b>event log</b>"), self.log], layout=w.Layout(width="50%")),
            ],
            layout=w.Layout(grid_gap="24px"),
        )
        head = w.HBox(
            [w.HTML(f"{_CSS}<b style='font-size:16px'>{html.escape(title)}</b>"), self.cue],
            layout=w.Layout(justify_content="space-between"),
        )
        return w.VBox([head, w.HBox([picture, controls]), results], _dom_classes=["rollback-lab"])

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
        self.play.playing = False
        frame = self.telling_frame(outcome, opening)
        self._quiet = True  # moving the slider must not draw the old run
        try:
            self.play.max = self.slider.max = self.timeline.frame_count - 1
            self.slider.value = frame
        finally:
            self._quiet = False
        self._show(frame)  # the picture first: it is what the learner watches
        self.runs += 1
        faults = ", ".join(f"{k} {'+'.join(v)}" for k, v in self.inject.items()) or "no faults"
        self.cue.value = (
            ""
            if opening
            else f"<span>↻ run {self.runs}: {html.escape(faults)} → "
            f"{html.escape(str(outcome.status))}</span>"
        )
        self.result.value = outcome._repr_html_()
        self.dead.value = self._dead_letters_html(outcome)
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
        self.play.value = self.frame
        self.play.playing = True

    def show_frame(self, index: int) -> bytes:
        """Show frame ``index`` (clamped to the run) and return its PNG."""
        index = max(0, min(index, self.frame_count - 1))
        if self.slider.value != index:
            self.slider.value = index  # the slider's observer draws it
        else:
            self._show(index)
        return self.image.value

    @property
    def frame(self) -> int:
        return self.slider.value

    @property
    def frame_count(self) -> int:
        return self.timeline.frame_count

    def state_html(self) -> str:
        """The state before and after the current run, changed values highlighted."""
        assert self.outcome is not None
        return state_table_html(self.outcome.state_before or {}, self.outcome.state_after or {})

    # -- plumbing ----------------------------------------------------------------------

    def _on_control(self, change: dict[str, Any]) -> None:
        if not self._quiet:
            self.run()

    def _on_slider(self, change: dict[str, Any]) -> None:
        if not self._quiet:
            self._show(change["new"])

    def _on_playing(self, change: dict[str, Any]) -> None:
        playing = bool(change["new"])
        self.play_button.description = "Pause" if playing else "Play"
        self.play_button.icon = "pause" if playing else "play"

    def _show(self, index: int) -> None:
        self.image.value = self.timeline.render(index)
        events = self.outcome.events  # type: ignore[union-attr]
        # a window of rows that holds the current one: the log follows the frame
        start = max(0, min(index - LOG_ROWS // 2, len(events) - LOG_ROWS))
        self.log.value = events_html(events, index, start=start, rows=LOG_ROWS)

    @staticmethod
    def _dead_letters_html(outcome: Outcome) -> str:
        if not outcome.dead_letters:
            return "<p><b>dead letters:</b> none</p>"
        items = "".join(f"<li>{html.escape(str(d))}</li>" for d in outcome.dead_letters)
        return f"<p><b>dead letters</b> (undo by hand):</p><ul>{items}</ul>"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
