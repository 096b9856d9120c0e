"""``RollbackLab``: one panel to break a saga on purpose and watch the undo walk back.

The panel only maps its controls to ``saga.run`` arguments and shows what comes back:
the engine runs the saga, ``viz.Timeline`` draws it. Everything a learner can click is
also a method, so lesson cells and tests drive the same panel without a browser.
"""

from __future__ import annotations

import copy
import html
import re
from collections.abc import Callable, Mapping
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

# The engine's fault space, as control options (label, value)
ACTION_CHOICES = (("ok", "ok"), *((LABELS[f], f.value) for f in faults.ACTION_CHOICES))
UNDO_CHOICES = (("undo ok", "undo_ok"), *((LABELS[f], f.value) for f in faults.UNDO_CHOICES))
FAULTS = ("ok", "undo_ok", *(f.value for f in Fault))

_CSS = """<style>
.rollback-lab table {border-collapse: collapse; font-size: 14px}
.rollback-lab td, .rollback-lab th {padding: 2px 8px; text-align: left}
.rollback-lab .now {background: #F0E442}
.rollback-lab .rl-action button.mod-active:not([data-value="ok"])
  {background: #D55E00; color: white}
.rollback-lab .rl-undo button.mod-active:not([data-value="undo%20ok"])
  {background: #E69F00; color: black}
</style>"""  # a chosen fault stands out (also on a projector); colours match the pictures


def _css(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def _toggles(options: tuple[tuple[str, str], ...], value: str, **kw: Any) -> w.ToggleButtons:
    return w.ToggleButtons(
        options=list(options),
        value=value,
        style={"button_width": "auto"},
        layout=w.Layout(width="auto"),
        **kw,
    )


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
        )
        self.outcome: Outcome | None = None
        self._quiet = False  # True while several controls change as one

        self.actions = {s.name: _toggles(ACTION_CHOICES, "ok") for s in saga.steps}
        self.undos = {
            s.name: _toggles(UNDO_CHOICES, "undo_ok", disabled=s.undo is None) for s in saga.steps
        }
        self.policy = _toggles(
            (("continue", "continue"), ("retry", "retry"), ("halt", "halt")), policy
        )
        self.register = _toggles(
            (("as each step says", "step"), ("all after", "after"), ("all before", "before")),
            register,
        )
        self.order = _toggles((("reverse", "reverse"), ("forward", "forward")), undo_order)
        self.run_button = w.Button(description="Run", button_style="primary", icon="play")
        self.play = w.Play(min=0, max=0, value=0, interval=interval_ms, description="Play")
        self.slider = w.IntSlider(min=0, max=0, value=0, description="frame", readout=True)
        w.jslink((self.play, "value"), (self.slider, "value"))
        self.back = w.Button(description="", icon="step-backward", layout=w.Layout(width="40px"))
        self.forward = w.Button(description="", icon="step-forward", layout=w.Layout(width="40px"))
        self.image = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.result = w.HTML()
        self.log = w.HTML(layout=w.Layout(max_height="320px", overflow="auto"))
        self.dead = w.HTML()

        for control in [*self.actions.values(), *self.undos.values()]:
            control.observe(self._on_control, names="value")
        for control in (self.policy, self.register, self.order):
            control.observe(self._on_control, names="value")
        self.run_button.on_click(lambda _: self.run())
        self.slider.observe(self._on_slider, names="value")
        self.back.on_click(lambda _: self.show_frame(self.frame - 1))
        self.forward.on_click(lambda _: self.show_frame(self.frame + 1))
        self.widget = self._layout(title or f"Break the saga '{saga.name}' and watch it undo")
        self.run()

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
        rows = []
        for name, control in self.actions.items():
            control.add_class("rl-action").add_class(f"rl-action-{_css(name)}")
        for name, control in self.undos.items():
            control.add_class("rl-undo").add_class(f"rl-undo-{_css(name)}")
        for control, css in (
            (self.policy, "rl-policy"), (self.register, "rl-register"), (self.order, "rl-order"),
            (self.run_button, "rl-run"), (self.play, "rl-play"), (self.slider, "rl-frame"),
            (self.back, "rl-back"), (self.forward, "rl-forward"), (self.image, "rl-image"),
            (self.result, "rl-result"), (self.log, "rl-log"), (self.dead, "rl-dead"),
        ):  # fmt: skip
            control.add_class(css)  # stable hooks for styling and for the browser tests
        for step in self.saga.steps:
            tag = "" if step.kind is Kind.COMPENSABLE else f" <i>({step.kind})</i>"
            text = (
                f"<b>{html.escape(step.name)}</b>{tag}<br><small>{html.escape(step.label)}</small>"
            )
            name = w.HTML(text, layout=w.Layout(width="170px"))
            rows.append(w.HBox([name, self.actions[step.name], self.undos[step.name]]))
        options = w.VBox(
            [
                w.HBox(
                    [w.Label("when an undo fails", layout=w.Layout(width="150px")), self.policy]
                ),
                w.HBox([w.Label("log each undo", layout=w.Layout(width="150px")), self.register]),
                w.HBox([w.Label("undo order", layout=w.Layout(width="150px")), self.order]),
            ]
        )
        player = w.HBox([self.run_button, self.play, self.back, self.slider, self.forward])
        results = w.HBox(
            [
                w.VBox([w.HTML("<b>result</b>"), self.result, self.dead]),
                w.VBox([w.HTML("<b>event log</b>"), self.log]),
            ],
            layout=w.Layout(grid_gap="24px"),
        )
        head = w.HTML(f"{_CSS}<h3>{html.escape(title)}</h3>")
        return w.VBox(
            [head, w.VBox(rows), options, player, self.image, results],
            _dom_classes=["rollback-lab"],
        )

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
        self._quiet = True
        try:
            for control in self.actions.values():
                control.value = "ok"
            for control in self.undos.values():
                control.value = "undo_ok"
        finally:
            self._quiet = False
        return self.run()

    def _set(self, control: w.ToggleButtons, value: str, what: str) -> Outcome:
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

    def run(self) -> Outcome:
        """Run the saga with the chosen faults on a fresh state; show its first frame."""
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
        self._quiet = True  # moving the slider back to 0 must not draw the old run
        try:
            self.slider.value = 0
            self.play.max = self.slider.max = self.timeline.frame_count - 1
        finally:
            self._quiet = False
        self.result.value = outcome._repr_html_()
        self.dead.value = self._dead_letters_html(outcome)
        self._show(0)
        return outcome

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

    def _show(self, index: int) -> None:
        self.image.value = self.timeline.render(index)
        self.log.value = events_html(self.outcome.events, index)  # type: ignore[union-attr]

    @staticmethod
    def _dead_letters_html(outcome: Outcome) -> str:
        if not outcome.dead_letters:
            return "<p><b>dead letters:</b> none</p>"
        items = "".join(f"<li>{html.escape(str(d))}</li>" for d in outcome.dead_letters)
        return f"<p><b>dead letters</b> (undo by hand):</p><ul>{items}</ul>"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
