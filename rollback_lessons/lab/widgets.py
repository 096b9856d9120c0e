"""``RollbackLab``: one panel to break a saga on purpose and watch the undo walk back.

The panel only maps its controls to ``saga.run`` arguments and shows what comes back:
the engine runs the saga, ``timeline.Timeline`` draws it. Everything a learner can click is
also a method, so lesson cells and tests drive the same panel without a browser.

Made for a classroom: it fits one 1366x768 screen with the file browser open (about 600 px
tall), its text is at least 12 px, and a change reaches the browser as ONE widget message
(the view: picture, state, result and log), sent before the slider's (one message). The
kernel's share: about 5 ms CPU for a run not drawn before, 1-2 ms for one drawn ahead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import ipywidgets as w

from ..clock import VirtualClock
from ..errors import InvalidPipelineError, UnknownFaultError, UnknownStepError
from ..explore import Exploration, single_faults
from ..outcome import Outcome
from ..saga import Saga, snapshot
from . import ahead, guard, reuse, timeline
from .graphs import branch_groups
from .panel_controls import (
    EACH_STEP,
    FAULTS,
    GRAPH_ORDERS,
    IN_ORDER,
    ORDERS,
    POLICIES,
    REGISTERS,
    REVERSE,
    STOP_TIP,
    _dropdown,
    action_choice,
    explored_settings,
    faults_set,
    judged,
    layout,
    mark_chosen,
    run_cue,
    run_said,
    state_factory,
    stop_heard,
    stopped_tip,
    telling_frame,
    undo_choice,
    valid,
    view_px,
)
from .panel_controls import completion_of as _completion
from .panel_controls import value_after as _value
from .panel_html import (  # noqa: F401 (the panel's HTML parts, as the other panels import them)
    CSS,
    LOG_ROWS,
    LOST,
    PANEL_WIDTH,
    details,
    key,
    log_html,
    lost_banner,
    png_img,
    result_at,
    result_html,
    state_html,
    view_html,
)
from .player import Player, one_at_a_time


class RollbackLab(Player):
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
        draw_ahead: bool | None = None,
    ) -> None:
        if saga is None:
            raise guard.RunTheCellsAbove("RollbackLab needs a saga: RollbackLab(saga, state=...)")
        if not isinstance(saga, Saga):
            raise TypeError(f"RollbackLab needs a Saga, got {type(saga).__name__}")
        self.saga = saga
        self._make_state = state_factory(state)
        first = self._make_state()
        self.state_keys = list(snapshot(first)) if first is not None else []
        # the runs one change away drawn while the learner looks (``ahead``): by default
        # only for a state of plain data, or one with a rehearsal (a world of services
        # would act unasked: lesson 06's holds its mail back in its rehearsal)
        rehearse = ahead.rehearsal(first, self._make_state)
        self.draw_ahead = rehearse is not None if draw_ahead is None else draw_ahead
        self._rehearse = rehearse or self._make_state
        self._ahead = 0  # changes so far: a drawing ahead stops at the next
        self.groups = branch_groups(saga)
        self.timeline = timeline.Timeline(
            saga.names,
            groups=self.groups,
            stop=True,  # the panel has a Stop button: its mark is in the legend
            kinds={s.name: str(s.kind) for s in saga.steps},
            labels={s.name: s.label for s in saga.steps if s.label},
            width=PANEL_WIDTH,
            table=False,  # the state is HTML beside the picture: whole values, wrapped
            title=False,  # and so is the event the frame shows
        )
        self.outcome: Outcome | None = None
        self._quiet = False  # True while several controls change as one
        self._lock = threading.RLock()  # one click at a time (``player.one_at_a_time``)
        self._jumped = False  # the frame shown was the panel's choice, not the learner's
        self._frame = 0

        offered = single_faults(saga)  # the explorer's fault space: one rule for both
        self.actions = {
            s.name: action_choice(f.value for step, f in offered if step == s.name)
            for s in saga.steps
        }
        last = saga.steps[-1].name
        self.undos = {
            s.name: undo_choice(str(s.kind), s.undo is not None, s.name == last) for s in saga.steps
        }
        self.policy = _dropdown(POLICIES, policy, "when an undo fails",
                                "what a failed undo leads to")  # fmt: skip
        self.register = _dropdown(
            REGISTERS, register, "log each undo", "before its step runs, or after it succeeds"
        )
        graph = saga.after is not None
        self.order = _dropdown(
            GRAPH_ORDERS if graph else ORDERS, undo_order, "undo order",
            "the order the undos run in (forward only shows why it is wrong)",
        )  # fmt: skip
        # a saga with parallel groups: which branch finishes first (every ready step starts
        # at once: saga.run(completion=...)), or the branches one after another
        firsts = [(IN_ORDER, "")] + [
            (f"{' → '.join(branch)} first", ",".join(branch))
            for group in self.groups
            for branch in group
        ]
        self.first: w.Dropdown | None = (
            _dropdown(
                tuple(firsts), "", "finishes first",
                "which branch of a parallel group finishes first (the others start with it)",
            )
            if graph
            else None
        )  # fmt: skip
        self.stop_button = w.Button(
            description="Stop", icon="stop", tooltip=STOP_TIP,
            layout=w.Layout(width="80px", flex="none"),
        )  # fmt: skip
        self.play_button = w.Button(
            description="Play", icon="play", button_style="primary",
            tooltip="play the run event by event (press again to pause)",
            layout=w.Layout(width="88px", flex="none"),
        )  # fmt: skip
        self.play = w.Play(
            min=1, max=1, value=1, interval=interval_ms, description="Play", tooltip="play / pause",
            show_repeat=False, layout=w.Layout(display="none"),
        )  # fmt: skip
        self.slider = w.IntSlider(
            min=1, max=1, value=1, description="event", readout=True,
            tooltip="drag through the run's events (numbered as in the log)",
            style={"description_width": "42px"}, layout=w.Layout(width="260px", flex="none"),
        )  # fmt: skip
        self.back = w.Button(
            description="back", icon="step-backward", tooltip="the previous event",
            layout=w.Layout(width="80px", flex="none"),
        )  # fmt: skip
        self.forward = w.Button(
            description="next", icon="step-forward", tooltip="the next event",
            layout=w.Layout(width="80px", flex="none"),
        )  # fmt: skip
        self.view = w.HTML()  # picture, cue, state, result and log: one message per change
        self.runs = 0  # the runs the learner caused since the panel was displayed ("run N")
        self._said: Any = None  # the last run (panel_controls.Said): how it ended, faults
        self._cue = ("", "")  # (what the cue shows, its whole text: the title)
        self._result = ""
        self._shown_result = ""  # the panel's own: with what the run breaks (a grid cell's)
        self._breaks: tuple[str, ...] = ()  # the explorer's violations of the run to open
        self.exploration: Exploration | None = None  # a grid's: it judges the learner's runs
        self.stopped_at: int | None = None  # the event a Stop that took cancelled it after
        for control in [*self.actions.values(), *self.undos.values()]:
            control.observe(self._on_control, names="value")
        for control in (self.policy, self.register, self.order, self.first):
            if control is not None:
                control.observe(self._on_control, names="value")
        self.play_button.on_click(lambda _: self.toggle_play())
        self.stop_button.on_click(lambda _: self.stop())
        self.play.observe(self._on_playing, names="playing")
        self.play.observe(self._on_tick, names="value")
        self.slider.observe(self._on_slider, names="value")
        self.back.on_click(lambda _: self.show_frame(self.frame - 1))
        self.forward.on_click(lambda _: self.show_frame(self.frame + 1))
        # the saga named as a saga: quoted alone, a learner looked for a step called so
        self.widget = self._layout(title or f"Break the {saga.name} saga")
        reuse.replace(self, saga.name)  # the same panel made again: the old one's widgets go
        self.run(opening=True)

    def _layout(self, title: str) -> w.VBox:
        return layout(self, title)

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
        elif fault not in [v for _, v in self.actions[step].options]:
            raise InvalidPipelineError(
                f"step {step!r} is a gate: it changes nothing, so it has no effect to fail after"
            )
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

    def set_first(self, branch: str | Iterable[str] | None) -> Outcome:
        """Which branch of a parallel group finishes first: a step of it (or its steps);
        None: the branches one after another. Re-runs the saga."""
        if self.first is None:
            raise InvalidPipelineError(f"{self.saga.name!r} has no parallel group")
        if branch is None:
            return self._set(self.first, "", "branch")
        names = {branch} if isinstance(branch, str) else set(branch)
        for _, value in self.first.options:
            if value and names <= set(value.split(",")):
                return self._set(self.first, value, "branch")
        branches = ", ".join(v.replace(",", " → ") for _, v in self.first.options if v)
        raise InvalidPipelineError(f"no branch holds {sorted(names)}; the branches: {branches}")

    @property
    def completion(self) -> tuple[str, ...] | None:
        """The ``saga.run(completion=...)`` the "finishes first" control describes."""
        return _completion(self.first.value if self.first is not None else "")

    @one_at_a_time
    def stop(self, at: int | None = None) -> Outcome:
        """Stop (cancel) the run right after event ``at`` (0-based, of the run shown; None: the
        event shown; out of range: ValueError): the same run, its cancel token set once that
        event happened. Nothing more starts, what was done is undone, the outcome says
        ``cancelled``; past the pivot the engine declines (its note says so); once the run
        failed or ended it changes nothing. A stopped run is returned as it is (at another
        event: ValueError, as its disabled Stop button says)."""
        assert self.outcome is not None
        if self.stopped_at is not None:
            if at is not None and at + 1 != self.stopped_at:  # (not the run without the Stop)
                raise ValueError(self.stop_button.tooltip)
            return self.outcome
        if at is not None and not 0 <= at < self.frame_count:  # (newuser25: clamped, unsaid)
            raise ValueError(f"no event {at}: the run shown has events 0 to {self.frame_count - 1}")
        return self.run(stop_after=(self.frame if at is None else at) + 1)

    def reset(self) -> Outcome:
        """Every step ok, every undo ok."""
        return self.open_run([], self.policy.value)

    @one_at_a_time
    def open_run(
        self, faults: Iterable[tuple[str, str]], policy: str = "continue", *, at_end: bool = False
    ) -> Outcome:
        """Show one run: exactly these (step, fault) pairs under ``policy``, in one go (the
        explorer's grid opens a cell here); ``at_end``: at its last event."""
        return self._open(self._faults_set(faults, policy), at_end)

    @one_at_a_time
    def open_explored(
        self,
        faults: Iterable[tuple[str, str]],
        policy: str,
        completion: tuple[str, ...] | None,
        *,
        at_end: bool = False,
        breaks: Iterable[str] = (),
    ) -> Outcome:
        """The explorer's run exactly (the grid opens a cell here): its faults and policy
        (``open_run``), and what the explorer leaves as the saga says (``explored_as``):
        each step's own register, the reverse undo order, the branches finishing as
        ``completion`` says (None: in order). A learner's earlier change of these would
        show another run beside the cell's words (newuser8). ``at_end``: at its last event.
        ``breaks``: the explorer's check's violations of the run (its cell's cross): the
        result says it breaks them (a phantom undo reads "rolled_back", newuser15)."""
        self._breaks = tuple(breaks)  # (for this run only: ``run`` takes them)
        return self._open(self.explored_settings(faults, policy, completion), at_end)

    def explored_settings(
        self, faults: Iterable[tuple[str, str]], policy: str, completion: tuple[str, ...] | None
    ) -> dict[Any, str]:
        """Every control's value for the explorer's run (``open_explored``), nothing set:
        the grid draws its cells' pictures ahead from these (``_run_saga``)."""
        return explored_settings(self, faults, policy, completion)

    def _faults_set(self, faults: Iterable[tuple[str, str]], policy: str) -> dict[Any, str]:
        return faults_set(self, faults, policy)

    def _open(self, settings: Mapping[Any, str], at_end: bool) -> Outcome:
        self._quiet = True  # every control set first, then one run
        try:
            for control, value in settings.items():
                control.value = value
        finally:
            self._quiet = False
        return self.run(at_end=at_end)

    def explored_as(self, completion: tuple[str, ...] | None) -> bool:
        """The panel's other settings are the explorer's (``open_explored``)."""
        return (self.register.value, self.order.value, self.completion) == (
            EACH_STEP, REVERSE, completion or None,
        )  # fmt: skip

    def _set(self, control: w.Dropdown, value: str, what: str) -> Outcome:
        control.value = valid(control, value, what)
        assert self.outcome is not None
        return self.outcome

    @property
    def inject(self) -> dict[str, list[str]]:
        """The faults the controls describe, as ``saga.run(inject=...)`` takes them."""
        return self._inject()

    def _inject(
        self, change: tuple[Any, str] | Mapping[Any, str] | None = None
    ) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name in self.saga.names:
            faults = [_value(self.actions[name], change), _value(self.undos[name], change)]
            faults = [f for f in faults if f not in ("ok", "undo_ok")]
            if faults:
                out[name] = faults
        return out

    def _run_saga(
        self,
        change: tuple[Any, str] | Mapping[Any, str] | None = None,
        stop_after: int | None = None,
        *,
        ahead: bool = False,
    ) -> Outcome:
        """The saga run as the controls say with ``change`` made (control -> value), stopped
        after ``stop_after`` events of the run shown (``stop_heard``); ``ahead``: drawn ahead."""
        happened, heard = 0, stop_heard(self.outcome, stop_after)

        def count(event: object) -> None:
            nonlocal happened
            happened += 1

        register = _value(self.register, change)
        first = _value(self.first, change) if self.first is not None else ""
        return self.saga.run(
            (self._rehearse if ahead else self._make_state)(),
            inject=self._inject(change),
            policy=_value(self.policy, change),
            register=None if register == "step" else register,
            undo_order=_value(self.order, change),
            clock=VirtualClock(),
            trace_state=True,
            completion=_completion(first),
            on_event=count if stop_after is not None else None,
            cancel=(lambda: happened >= heard) if stop_after is not None else None,
        )

    @one_at_a_time
    def run(
        self, *, opening: bool = False, stop_after: int | None = None, at_end: bool = False
    ) -> Outcome:
        """Run the saga with the chosen faults on a fresh state and show its telling frame:
        where it fails (after a change), or the whole run (when the panel opens, or
        ``at_end``: the grid's cell, one frame drawn, not two).
        ``stop_after``: cancel the run once that many events have happened (``stop``)."""
        outcome = self._run_saga(stop_after=stop_after)
        self.stopped_at = stopped_tip(self.stop_button, stop_after, outcome)  # (if it took)
        self.outcome = outcome
        self.timeline.load(outcome, stopped_after=stop_after)
        self._said = run_said(self, outcome, stop_after)  # (the opening run's too)
        if not opening:
            self.runs += 1
        self._cue = ("", "") if opening else run_cue(f"↻ run {self.runs}", self._said)
        self._result = result_html(outcome, stop_after)
        breaks, self._breaks = self._breaks or judged(self, outcome, stop_after), ()
        self._shown_result = result_html(outcome, stop_after, breaks) if breaks else self._result
        frame = self.telling_frame(outcome, opening or at_end)
        self._show(frame)  # the view first: it is what the learner watches (one message)
        self._follow(frame, len(outcome.events))  # then the player
        mark_chosen(self.actions, self.undos)
        self._jumped = True  # the panel chose this frame: Play walks the run from event 1
        ahead.schedule(self)  # the next change's pictures, while the learner looks at this
        return outcome

    telling_frame = staticmethod(telling_frame)

    # -- plumbing ----------------------------------------------------------------------

    def _on_control(self, change: dict[str, Any]) -> None:
        if not self._quiet:
            self.run()

    def view_html(self, index: int) -> str:
        """The view at frame ``index`` (see ``panel_html.view_html``)."""
        assert self.outcome is not None
        png = self.timeline.render(index)
        result = result_at(self.outcome, index, self._shown_result)  # as of this frame
        view = view_px(self)  # (what the panel's option rows leave)
        return view_html(self.outcome, index, png, self._cue, result, self.state_keys, view)

    def _show(self, index: int) -> None:
        self._ahead += 1  # (a frame of its own asked for: no drawing ahead over it)
        self._frame = index
        self.view.value = self.view_html(index)

    @one_at_a_time
    def displayed(self) -> None:
        """The panel goes on screen: its run count starts again (the runs a lesson cell
        made before are not the learner's), the cue says what it opens on; the runs one
        change away are drawn while it is read."""
        reuse.shown(self)
        self.runs = 0
        self._cue = run_cue("as opened", self._said) if self._said else ("", "")
        if self.outcome is not None:
            self._show(self._frame)
            ahead.schedule(self)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        self.displayed()
        return self.widget._repr_mimebundle_(**kwargs)
