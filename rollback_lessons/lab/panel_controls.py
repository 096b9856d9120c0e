"""The controls of ``RollbackLab`` (widgets.py): the fault space as options with their
tooltips, and the panel's layout for a 1366x768 screen. Kept apart so that the panel's
module holds what a click does, and this one what a learner sees to click."""

from __future__ import annotations

import copy
import html
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import ipywidgets as w

from .. import faults
from ..errors import InvalidPipelineError
from ..events import Event, EventKind
from ..explore import ran, strike_order, strikes
from ..faults import LABELS, Fault
from ..outcome import Outcome, Status
from ..schedule import PAST_PIVOT
from .cue import CUE_LINE, NO_FAULTS, NONE_STRUCK, Said, cue_fits, late_why, undo_failed  # noqa: F401 (the cue's parts, as tests import them)
from .drawing import FAIL, RETRY, kind_word
from .panel_html import CSS, key, lost_banner, took
from .panel_html import view_px as options_view_px

# The engine's fault space, as control options (label, value), with a tooltip for each
ACTION_CHOICES = (("ok", "ok"), *((LABELS[f], f.value) for f in faults.ACTION_CHOICES))
UNDO_CHOICES = (("undo ok", "undo_ok"), *((LABELS[f], f.value) for f in faults.UNDO_CHOICES))
ACTION_TIPS = (
    "the step works",
    "the step fails before its effect",
    "the effect happens, then the call fails anyway (a timeout)",
)
UNDO_TIPS = ("its undo works", "its undo fails on every attempt",
             "its undo's first attempt fails (a later one works: under retry)")  # fmt: skip
POLICIES = (("continue", "continue"), ("retry", "retry"), ("halt", "halt"))
REGISTERS = (("as each step says", "step"), ("all after", "after"), ("all before", "before"))
ORDERS = (("reverse", "reverse"), ("forward", "forward"))
EACH_STEP, REVERSE = REGISTERS[0][1], ORDERS[0][1]  # the engine's own: what the explorer runs
# a saga with parallel groups: the orders the engine declares for a graph (``schedule``)
# each named as the event log's ``order=`` and lesson 12 say it (newuser8: "reverse
# completion" beside ``order=reverse``); the lesson says what each means
GRAPH_ORDERS = (
    ("reverse", "reverse"), ("reverse_start", "reverse_start"),
    ("by_dependency", "by_dependency"), ("forward", "forward"),
)  # fmt: skip
IN_ORDER = "one after another"  # the branches one at a time, as saga.run runs them
STOP_TIP = (
    "cancel the run at the event shown: nothing more starts, what has an undo is undone "
    "(a step running finishes first; declined once a step marked irreversible has started; "
    "too late once the run has failed or ended)"
)
FAULTS = ("ok", "undo_ok", *(f.value for f in Fault))


def stopped_tip(button: w.Button, stopped_after: int | None, outcome: Outcome) -> int | None:
    """Stop is for a run that was not stopped: the run shown after a Stop is not the run
    without it (a Stop there would cancel that other run, at an event never shown). One
    that did not take (too late, declined) left the run as it was: Stop stays, for an
    earlier event (newuser26: the first click, at the last event the panel opens on, locked
    it). Returns the event the run shown stands stopped after (None: not stopped)."""
    held = stopped_after if stopped_after is not None and took(outcome) else None
    button.disabled = held is not None
    button.tooltip = (
        STOP_TIP
        if held is None
        else f"this run was already stopped after event {held}: "
        "change a fault or an option for a new run (without the Stop)"
    )
    return held


def faults_said(faults: Iterable[tuple[str, Iterable[str]]]) -> str:
    """Faults in the dropdowns' words ("room undo fails once"), not the engine's spelling."""
    return ", ".join(f"{step} {' and '.join(LABELS[Fault(f)] for f in fs)}" for step, fs in faults)


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


def action_choice(offered: Iterable[str], width: str = "132px") -> w.Dropdown:
    """A step's faults: only those the explorer's fault space has for it
    (``explore.single_faults``, one rule: a gate changes nothing, so it has no effect to
    fail after), each with its tooltip."""
    allowed = {"ok", *offered}
    kept = [
        (choice, tip)
        for choice, tip in zip(ACTION_CHOICES, ACTION_TIPS, strict=True)
        if choice[1] in allowed
    ]
    options, tips = tuple(c for c, _ in kept), tuple(t for _, t in kept)
    return _choice(options, "ok", tips, width)


def no_undo_reason(kind: str, last: bool) -> str:
    """Why a step has no undo to break, in the words its lane uses."""
    if kind_word(kind) == "irreversible":
        return "irreversible: once it has happened, nothing takes it back"
    if kind_word(kind):
        return "retried forward, never undone (its tries run out: the saga halts for a person)"
    if kind == "gate":
        return "a check that changes nothing (a gate): there is nothing to undo"
    return ("the last step: no later step can fail, but a Stop while it runs undoes the rest "
            "and leaves it done (kept)" if last else
            "its effect stays done if the run rolls back (kept)")  # fmt: skip


def undo_choice(kind: str, has_undo: bool, last: bool, width: str = "132px") -> w.Dropdown:
    """The undo's faults; a step with no undo says "no undo", and its tooltip says why."""
    if has_undo:
        return _choice(UNDO_CHOICES, "undo_ok", UNDO_TIPS, width)
    return w.Dropdown(
        options=[("no undo", "undo_ok")], value="undo_ok", disabled=True,
        tooltip=f"no undo: {no_undo_reason(kind, last)}", layout=w.Layout(width=width),
    )  # fmt: skip


def _dropdown(options: tuple[tuple[str, str], ...], value: str, label: str, tip: str) -> Any:
    return w.Dropdown(
        options=list(options),
        value=value,
        description=label,
        tooltip=tip,
        style={"description_width": "128px"},
        layout=w.Layout(width="296px"),
    )


def layout(lab: Any, title: str) -> w.VBox:
    """Made for 1366x768 with JupyterLab's file browser open (934 px wide, 647 px high):
    the title and the player on top, the view (picture; state and result beside it; the
    log under it), the faults and options underneath."""
    for name, control in lab.actions.items():
        control.add_class("rl-action").add_class(f"rl-action-{_css(name)}")
    for name, control in lab.undos.items():
        control.add_class("rl-undo").add_class(f"rl-undo-{_css(name)}")
    for control, css in (
        (lab.policy, "rl-policy"), (lab.register, "rl-register"), (lab.order, "rl-order"),
        (lab.play_button, "rl-play-button"), (lab.play, "rl-play"),
        (lab.slider, "rl-frame"), (lab.back, "rl-back"), (lab.forward, "rl-forward"),
        (lab.view, "rl-view"), (lab.stop_button, "rl-stop"),
    ):  # fmt: skip
        control.add_class(css)
    if lab.first is not None:
        lab.first.add_class("rl-first")  # stable hooks for styling and for the browser tests
    head = w.HTML(
        f"{CSS}<span class='rl-title'>{html.escape(title)}</span>",
        layout=w.Layout(flex="1 1 auto", overflow="hidden"),
    )
    top = w.HBox(
        [
            head,
            lab.play_button,
            lab.stop_button,
            lab.back,
            lab.slider,
            lab.forward,
            lab.play,
        ],
        layout=w.Layout(align_items="center", width="100%"),
    )
    columns = []
    tagged = any(kind_word(step.kind) for step in lab.saga.steps)
    for step in lab.saga.steps:
        # the kind in the lanes' own word, on a line of its own (never cut); every column
        # keeps that line when one step has it, so the controls stay in rows
        word = kind_word(step.kind)
        said = f"({html.escape(word)})" if word else "&nbsp;"
        kind = f"<div class='rl-kind'>{said}</div>" if tagged else ""
        name = w.HTML(
            f"<div class='rl-step' title='{html.escape(step.label or step.name)}'>"
            f"{html.escape(step.name)}</div>{kind}",
            layout=w.Layout(width="132px", margin="0"),
        )
        columns.append(
            w.VBox(
                [name, lab.actions[step.name], lab.undos[step.name]],
                layout=w.Layout(width="136px", flex="none"),
            )
        )
    legend = w.HTML(
        "<b>break it</b> <span class='rl-legend'>(coloured: a fault you chose,"
        f"{key(FAIL)}in a step{key(RETRY)}in its undo)</span>"
    )
    choices = [lab.policy, lab.register, lab.order]
    options = w.VBox(
        choices + ([lab.first] if lab.first is not None else []),
        layout=w.Layout(flex="none", width="300px"),
    )
    band = w.VBox(
        [legend, w.HBox([*columns, options], layout=w.Layout(flex_flow="row wrap"))],
        layout=w.Layout(width="100%"),
    )
    body = w.VBox([top, lab.view, band], layout=w.Layout(width="100%"))
    body.add_class("rl-dim")
    panel = w.VBox([w.HTML(lost_banner()), body], layout=w.Layout(width="100%"))
    panel.add_class("rl-panel").add_class("rollback-lab")
    return panel


def view_px(lab: Any) -> int:
    """The picture and the row under it at most, in ``lab``'s panel: what its option rows
    (``layout``'s) leave of the screen (``panel_html.view_px``)."""
    options = (lab.policy, lab.register, lab.order, lab.first)
    return options_view_px(sum(option is not None for option in options))


def run_said(lab: Any, outcome: Outcome, stop_after: int | None) -> Said:
    """What a run's cue says: its faults and the options that differ from the engine's
    defaults (so a learner sees what they chose), and how it ended."""
    hit, missed = struck_said(lab.inject, outcome)
    options = tuple(  # the options that differ from the engine's defaults, named too
        f"{name}{control.label}"
        for name, control, usual in (
            ("policy ", lab.policy, "continue"), ("log ", lab.register, EACH_STEP),
            ("order ", lab.order, REVERSE), ("", lab.first, ""),
        )
        if control is not None and control.value != usual
    )  # fmt: skip
    said, stop, why = str(outcome.status), "", ""
    note: tuple[str, ...] = ()  # (why the Stop did not take)
    if stop_after is not None:  # (a clause of its own: not one of the faults, newuser20)
        stop = f"Stop after event {stop_after}"
        if PAST_PIVOT in outcome.notes:
            note = ("the cancel was declined: see the note", "cancel declined")
        elif not took(outcome):  # (why, from the events: newuser22 #3)
            late, why = late_why(outcome.events, stop_after)
            note = (late, "too late")
        else:
            why = stop_why(outcome.events, stop_after)
            if outcome.status is not Status.CANCELLED:  # "then": an undo failed (newuser21);
                then = ", then" if undo_failed(outcome.events) else " and"  # else a step
                said = f"cancelled{then} {outcome.status}"  # failed too (newuser22 #2)
    return Said(said, hit, missed, options, stop, why, note)


def stop_why(events: Sequence[Event], stop_after: int) -> str:
    """What a Stop that took let happen after event ``stop_after``, said only where it did:
    the steps running then finish; in a parallel group, the steps that start after it
    started with a running one (a group's ready steps start together: lesson 12's "car
    first", Stop at event 1, then room and flight start, newuser21)."""
    seen, later = events[:stop_after], events[stop_after:]
    ended = {e.step for e in seen if e.kind in (EventKind.STEP_DONE, EventKind.STEP_FAILED)}
    running = [e.step for e in seen if e.kind == EventKind.STEP_START and e.step not in ended]
    together = [e.step for e in later if e.kind == EventKind.STEP_START and e.step]
    if together:
        verb = "start" if len(together) > 1 else "starts"
        return f"({', '.join(together)} {verb} with {', '.join(map(str, running))})"
    return "(running steps finish first)" if running else ""


OVER = frozenset({
    EventKind.PIPELINE_FAILED, EventKind.ROLLBACK_START, EventKind.HALTED,
    EventKind.STEP_FAILED,  # (for good: a group's branch; its siblings run on, the run failing)
})  # fmt: skip


def stop_heard(shown: Outcome | None, stop_after: int | None) -> int:
    """How many events must have happened when the engine asks the cancel (as each step
    returns) for a Stop after event ``stop_after`` of the run ``shown``: those up to the
    last step that had started by then. That step finishes; none starts after it. Asked
    at ``stop_after`` itself, a Stop at "step_done reserve" was heard only once the next
    step had started and returned (newuser20: pay ran after the "Stop pressed" line)."""
    if shown is None or stop_after is None:
        return stop_after or 0
    seen = shown.events[:stop_after]
    if stop_after >= len(shown.events) or any(e.kind in OVER for e in seen):
        return stop_after  # the run had failed or ended: too late, never heard
    started = [i for i, e in enumerate(seen) if e.kind == EventKind.STEP_START]
    return started[-1] + 1 if started else 0


def struck_said(
    inject: Mapping[str, Iterable[str]], outcome: Outcome
) -> tuple[str, tuple[str, ...]]:
    """The faults chosen: those that struck ("no faults", "none struck"), and each of those
    that never did (their step never ran, or its undo never did): "make_folder fail after
    effect, write_file fail after effect" read as if both struck where only the first ran
    (newuser19)."""
    started, undone = ran(outcome)
    hit: dict[str, list[str]] = {}
    missed: dict[str, list[str]] = {}
    for step, chosen in inject.items():
        for fault in chosen:
            struck = strikes(step, fault, started, undone)
            (hit if struck else missed).setdefault(step, []).append(fault)
    named = tuple(faults_said([(step, fs)]) for step, fs in missed.items())
    when = strike_order(outcome)  # (in the order they struck: as the head tells the run)
    order = sorted(hit.items(), key=lambda item: min(when(item[0], f) for f in item[1]))
    return faults_said(order) or (NONE_STRUCK if named else NO_FAULTS), named


def run_cue(head: str, said: Said) -> tuple[str, str]:
    """The cue over a run, escaped: ``head`` ("↻ run 3", "as opened"), how it ended, then
    its faults and options (``Said.cue``: what fits two lines, and the whole for its
    title). The outcome comes first: a two-fault run's faults hid "rollback_incomplete"
    (newuser17)."""
    shown, whole = said.cue(head)
    return html.escape(shown), html.escape(whole)


def telling_frame(outcome: Outcome, opening: bool) -> int:
    """The frame worth seeing first: the failure, or (opening, or a commit) the end."""
    last = len(outcome.events) - 1
    if opening:
        return last
    failed = next((i for i, e in enumerate(outcome.events) if e.kind == "pipeline_failed"), None)
    return last if failed is None else failed


def mark_chosen(actions: dict[str, Any], undos: dict[str, Any]) -> None:
    """A chosen fault stands out, coloured like the pictures (on a projector too)."""
    for controls, plain in ((actions, "ok"), (undos, "undo_ok")):
        for control in controls.values():
            chosen = "rl-chosen" in control._dom_classes
            if (control.value != plain) != chosen:
                if chosen:
                    control.remove_class("rl-chosen")
                else:
                    control.add_class("rl-chosen")


def value_after(control: Any, change: tuple[Any, str] | Mapping[Any, str] | None) -> Any:
    """The control's value, or the one ``change`` gives it: (control, value), or a mapping
    of several controls to their values (a grid cell's run: every control at once)."""
    if isinstance(change, Mapping):
        return change.get(control, control.value)
    return change[1] if change is not None and control is change[0] else control.value


def completion_of(first: str) -> tuple[str, ...] | None:
    """A "finishes first" value as ``saga.run(completion=...)`` takes it."""
    return tuple(first.split(",")) if first else None


def valid(control: Any, value: str, what: str) -> str:
    """``value`` if ``control`` offers it; else one line saying what it offers."""
    offered = [v for _, v in control.options]
    if value not in offered:
        raise InvalidPipelineError(f"unknown {what} {value!r}; choose from: {', '.join(offered)}")
    return value


def faults_set(lab: Any, faults: Iterable[tuple[str, str]], policy: str) -> dict[Any, str]:
    """A panel's fault controls and its policy for exactly these (step, fault) pairs."""
    settings: dict[Any, str] = {c: "ok" for c in lab.actions.values()}
    settings.update({c: "undo_ok" for c in lab.undos.values()})
    for step, fault in faults:
        controls = lab.undos if str(fault).startswith("undo") else lab.actions
        offered = [v for _, v in controls[step].options] if step in controls else []
        if fault not in offered:  # (a gate has no "fail after effect", ...)
            raise InvalidPipelineError(f"cannot set {fault!r} on {step!r} in this panel")
        settings[controls[step]] = fault
    settings[lab.policy] = valid(lab.policy, policy, "policy")
    return settings


def explored_settings(
    lab: Any, faults: Iterable[tuple[str, str]], policy: str, completion: tuple[str, ...] | None
) -> dict[Any, str]:
    """Every control's value for the explorer's run: its faults and policy, each step's own
    register, the reverse undo order, the branches finishing as ``completion`` says."""
    first = ",".join(completion or ())
    settings = {lab.register: EACH_STEP, lab.order: REVERSE}
    if lab.first is not None:
        settings[lab.first] = first
    elif first:
        raise InvalidPipelineError(f"no parallel branches to finish first: {first}")
    settings.update(faults_set(lab, faults, policy))
    for control, value in settings.items():
        valid(control, value, "branch" if control is lab.first else "setting")
    return settings


def run_widgets(lab: Any) -> list[Any]:
    """A panel's widgets a new run may change: its controls, view and player."""
    controls = [*lab.actions.values(), *lab.undos.values(), lab.policy, lab.register, lab.order]
    players = [lab.view, lab.play, lab.slider, lab.back, lab.forward, lab.stop_button]
    return [*controls, *([lab.first] if lab.first is not None else []), *players]


def state_factory(state: Any) -> Callable[[], Any]:
    """A panel's ``state`` as a function that makes a fresh one for each run."""
    if state is None:
        return lambda: None
    if callable(state):
        return state
    if isinstance(state, Mapping):
        return lambda: copy.deepcopy(dict(state))
    raise TypeError(f"state must be a mapping or a function that makes one, got {state!r}")


def judged(lab: Any, outcome: Outcome, stop_after: int | None) -> tuple[str, ...]:
    """What the learner's own run breaks, by the explorer's check of the grid above its
    panel (lesson 11's showed a phantom undo as a plain "rolled_back", newuser19). A panel
    of its own, or a run a Stop cut short (the explorer never stops one), judges nothing."""
    exploration = lab.exploration
    if exploration is None or stop_after is not None:
        return ()
    faults = tuple((step, Fault(fault)) for step, made in lab.inject.items() for fault in made)
    return tuple(exploration.judge(faults, outcome))
