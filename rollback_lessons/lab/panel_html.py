"""The panel's HTML: one view per change (picture, cue, state, result, log), text of at
least 12 px, a legend for every colour and highlight, and a banner for a lost kernel.
Shared by every panel of the package (the isolation lab and the explorer's grid too)."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import Cancelled
from ..events import Event, EventKind
from ..outcome import Outcome, Status
from ..schedule import PAST_PIVOT
from . import drawing
from .cue import failed_steps
from .drawing import CURRENT, FAIL, HIGHLIGHT, INK, RETRY, a_cancel
from .png import size

LOG_ROWS = 3  # the event log shows this many events around the current one (two lines each)
# The view's fixed sizes (issue 24, panel15): a click never changes the panel's height, by
# construction. The picture sets the top row's height (the cue and the caption two lines
# each, clamped, whole in their title; the state scrolls in the rest if it must); the log
# and the result under it are ``under_px`` high: what the screen leaves the view once the
# panel's controls are under it (the browser test clicks the lessons' panels and checks
# that nothing in them scrolls, after the clicks too).
UNDER_PX = 170  # the row under the picture: the log's three rows of two lines, and more
VIEW_PX = 450  # picture and row under it at most, for a panel with four option rows under
# it (lesson 12's graph, a 322 px picture): it fits 1366x768 with the file browser open (647 px)
OPTION_ROWS = 4  # (policy, register, undo order, and "finishes first" for a parallel saga)
STEP_ROWS = 3  # a step's column beside them: its name (and kind), its fault, its undo's
OPTION_PX = 30  # one option row (a dropdown): a panel with fewer gives its view that room
LOG_PX = 128  # the log's three rows of two lines and its head: the row is never lower


def view_px(options: int) -> int:
    """Picture and row under it at most, for a panel whose controls under the view hold
    ``options`` option rows: the band under the view is as high as its option rows or its
    steps' columns (``STEP_ROWS``), whichever is higher, and the view has the rest (s43,
    lesson 11's panel: a halt's reason and result hid 15 px in a 128 px row, with 30 px of
    the screen left unused under a panel of three option rows)."""
    return VIEW_PX + OPTION_PX * (OPTION_ROWS - max(options, STEP_ROWS))


def under_px(picture_height: int, view: int = VIEW_PX) -> int:
    """The row under a picture this high: as high as the view's budget (``view_px``)
    leaves, at most ``UNDER_PX``, never lower than the log's rows. One picture height per
    panel (its lanes and legend) and one set of controls, so one height: fixed for the
    panel's life."""
    return max(LOG_PX, min(UNDER_PX, view - picture_height))


PANEL_WIDTH = drawing.PANEL_WIDTH  # inches at 80 dpi: the picture, shown 1:1

# Shared by every panel of the package (the isolation lab and the grid use it too): text at
# least 12 px, compact tables, a chosen fault coloured like the pictures, and a panel that
# lost its kernel says so (ipywidgets marks its views "jupyter-widgets-disconnected"): the
# message replaces its body, so nothing is left to click or type into, and ipywidgets'
# broken-link icons (one per widget, squeezing the controls) are not drawn.
CSS = f"""<style>
.rl-panel {{font-size: 13px; line-height: 1.3; color: {INK}}}
.rl-panel table {{border-collapse: collapse; font-size: 13px; line-height: 1.3}}
.rl-panel td, .rl-panel th {{padding: 1px 6px; text-align: left; vertical-align: top;
  border: none; white-space: normal}}
.rl-panel th {{font-weight: bold; white-space: nowrap}}
.rl-panel .rl-title {{font-size: 16px; font-weight: bold}}
.rl-panel .widget-html-content {{font-size: 13px; line-height: 1.3}}
.rl-panel select {{font-size: 13px}}
.rl-panel .rl-row {{display: flex; gap: 12px; align-items: flex-start}}
.rl-panel .rl-image {{flex: none; max-width: none; display: block}}
.rl-panel .rl-side, .rl-panel .rl-result {{flex: 1 1 auto; min-width: 0}}
.rl-panel .rl-top > .rl-side {{display: flex; flex-direction: column; overflow: hidden auto}}
.rl-panel .rl-side > div {{flex: none}}
.rl-panel .rl-side > .rl-state {{flex: 0 1 auto; min-height: 0; overflow: hidden auto}}
.rl-panel .rl-under {{align-items: stretch}}
.rl-panel .rl-box {{flex: 1 1 auto; min-width: 0; overflow: hidden auto}}
.rl-panel .rl-cue {{color: {drawing.FORWARD}; font-weight: bold; min-height: 2.6em}}
.rl-panel .rl-side .rl-cue {{height: 2.6em; display: -webkit-box; -webkit-box-orient: vertical;
  -webkit-line-clamp: 2; line-clamp: 2; overflow: hidden}}
.rl-panel .rl-caption {{font-size: 15px; font-weight: bold; margin: 2px 0 4px}}
.rl-panel .rl-state td:nth-child(n+2) {{font-family: monospace; overflow-wrap: break-word}}
.rl-panel .rl-state td:first-child, .rl-panel .rl-state td.rl-short {{white-space: nowrap}}
.rl-panel .rl-state td:last-child, .rl-panel .rl-state th:last-child {{padding-right: 0}}
.rl-panel tr.changed td:last-child {{background: {HIGHLIGHT}}}
.rl-panel tr.now {{background: {CURRENT}}}
.rl-panel .rl-log {{flex: none; width: {int(drawing.PANEL_WIDTH * drawing.DPI)}px;
  overflow: hidden auto}}
.rl-panel .rl-log table {{table-layout: fixed; width: 100%}}
.rl-panel .rl-log td {{height: 2.6em; overflow-wrap: break-word}}
.rl-panel .rl-head {{overflow-wrap: break-word}}
.rl-panel .rl-log .rl-line {{display: -webkit-box; -webkit-box-orient: vertical;
  -webkit-line-clamp: 2; line-clamp: 2; overflow: hidden; max-height: 2.6em}}
.rl-panel .rl-log tr.now .rl-line {{display: block; -webkit-line-clamp: none; line-clamp: none;
  overflow: visible; max-height: none}}
.rl-panel .rl-log .rl-what {{display: inline-block; min-width: 118px; padding-right: 6px;
  white-space: nowrap; vertical-align: top}}
.rl-panel .rl-log .rl-where {{min-width: 100px}}
.rl-panel .rl-details {{color: #444}}
.rl-panel .rl-more {{color: #555; font-weight: normal; font-style: italic}}
.rl-panel .rl-side .rl-caption {{min-height: 2.6em; height: 2.6em; display: -webkit-box;
  -webkit-box-orient: vertical; -webkit-line-clamp: 2; line-clamp: 2; overflow: hidden}}
.rl-panel .rl-key {{display: inline-block; width: 12px; height: 12px; vertical-align: -1px;
  margin: 0 3px 0 8px; border: 1px solid #888}}
.rl-panel .rl-legend {{color: #333}}
.rl-panel .rl-action.rl-chosen select {{background: {FAIL}; color: white}}
.rl-panel .rl-undo.rl-chosen select {{background: {RETRY}; color: black}}
.rl-panel .rl-step {{font-weight: bold; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis}}
.rl-panel .rl-kind {{font-weight: bold; white-space: nowrap}}
.rl-panel .rl-lost {{display: none; background: {FAIL}; color: white; font-weight: bold;
  font-size: 15px; padding: 4px 8px; margin: 2px 0}}
.rl-panel.jupyter-widgets-disconnected .rl-lost {{display: block}}
.rl-panel.jupyter-widgets-disconnected .rl-dim {{display: none}}
.rl-panel.jupyter-widgets-disconnected::before, .rl-panels.jupyter-widgets-disconnected::before,
.rl-panel .jupyter-widgets-disconnected::before {{content: none; display: none}}
</style>"""
LOST = "this panel lost its kernel: run the cell again"


def lost_banner() -> str:
    """Hidden while the kernel lives; shown (by CSS alone) in place of the panel's body
    once ipywidgets marks the panel disconnected, which it does when the kernel restarts."""
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


def details(event: Event) -> str:
    """An event's details as the log's row says them: ``key=value``, but a cancel's
    "error=Cancelled('the run was cancelled by its caller')" in a learner's words (the
    panel's caller is its Stop: newuser22)."""
    if a_cancel(event):
        return "cancelled by the Stop, not a failure"
    return " ".join(f"{k}={v}" for k, v in event.details.items())


def _said(event: Event) -> str:
    return " ".join(part for part in (event.kind, event.step or "-", details(event)) if part)


def log_html(events: list[Event] | tuple[Event, ...], current: int, rows: int = LOG_ROWS) -> str:
    """A window of ``rows`` events that holds ``current`` (marked ▶, pale blue); the heading
    says how many are not shown. Each event's details follow its kind and step and wrap
    onto its second line. The current row is whole, however long (newuser12: lesson 04's
    halt reason, the lesson's point, was cut); the others are two lines at most, a longer
    one ending in "…" with the whole row in its title. The details break at spaces only: a
    name stays whole ("'send_ / email'", "dead_ / letters=0" read as two words, newuser17),
    but one longer than the line (the CSS's break-word). The log's height is fixed
    (``under_px``)."""
    start = max(0, min(current - rows // 2, len(events) - rows))
    end = min(len(events), start + rows)
    body = []
    for i in range(start, end):
        e = events[i]
        now = i == current
        body.append(
            f"<tr{' class=now' if now else ''}><td>{'▶' if now else ''}</td><td>{e.seq}</td>"
            f"<td><div class='rl-line' title='{html.escape(_said(e))}'>"
            f"<span class='rl-what'>{words(e.kind)}</span>"
            f"<span class='rl-what rl-where'>{words(e.step or '-')}</span>"
            f"<span class='rl-details'>{html.escape(details(e))}</span></div></td></tr>"
        )
    body += ["<tr><td colspan=3>&nbsp;</td></tr>"] * (rows - (end - start))
    later = len(events) - end
    more = ", ".join(
        f"{n} {word}" for n, word in ((start, "earlier"), (later, "later")) if n
    )  # fmt: skip
    columns = "<colgroup><col style='width:26px'><col style='width:34px'><col></colgroup>"
    head = (
        "<tr><th></th><th>#</th><th><span class='rl-what'>event</span>"
        "<span class='rl-what rl-where'>step</span>details"
        f"{f' <span class=rl-more>(… {more})</span>' if more else ''}</th></tr>"
    )
    return f"<table>{columns}<thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


def words(text: str) -> str:
    """``text`` escaped, a line allowed to break after each underscore as at a space
    ("reserve_<wbr>room"), never inside a word (a new user saw a step name cut mid-word)."""
    return html.escape(text).replace("_", "_<wbr>")


def state_html(before: Mapping[str, Any], now: Mapping[str, Any], keys: Iterable[str]) -> str:
    """The state before the run and at this frame; a value that changed is yellow. A key
    and a short value are never broken ("sheet / rows", newuser15: the column had room)."""
    rows = []
    for k in keys:
        b, n = before.get(k, _MISSING), now.get(k, _MISSING)
        changed = " class='changed'" if b != n else ""
        rows.append(
            f"<tr{changed}><td>{html.escape(str(k))}</td>{_cell(_repr(b))}{_cell(_repr(n))}</tr>"
        )
    head = "<tr><th>state</th><th>before</th><th>now</th></tr>"
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


_MISSING = object()
SHORT = 16  # a value this long or shorter is never broken ("'4242 / valid'", newuser15)


def _cell(value: str) -> str:
    """A state value's cell: a short one on one line (the table gives a long one beside
    it less room instead), a long one wrapped (``tokens``). Its key never wraps either."""
    short = " class='rl-short'" if len(value) <= SHORT else ""
    return f"<td{short}>{tokens(value)}</td>"


def tokens(value: str) -> str:
    """A value, escaped, that a line never breaks at a hyphen inside a word ("['row-" /
    "1:reverted']", seen by newuser7): a word joiner after each hyphen; it may break after
    a colon ("['row-1:" / "reverted']") where the column cannot hold it whole: newuser18
    saw "['row-1:reverted']" widen the table past the side column, its "]" cut. (Never
    ``overflow-wrap: anywhere``: a table then sizes a column below its longest word.)"""
    return html.escape(value).replace("-", "-\u2060").replace(":", ":<wbr>")


def _repr(value: Any) -> str:
    return "-" if value is _MISSING else repr(value)


def _names(names: Iterable[str]) -> str:
    return ", ".join(names) or "none"


def result_html(
    outcome: Outcome, stopped_after: int | None = None, breaks: Sequence[str] = ()
) -> str:
    """How the run ended, in a few lines: the status, why, and what a person must know.
    ``stopped_after``: the events that had happened when Stop cancelled the run. The status
    is a word in bold ink: the words say it, no colour a legend would have to explain.
    ``breaks``: the explorer's check's violations of this run (a grid cell's cross, opened
    here): a run that "rolled_back" may still break an invariant (lesson 11, newuser15)."""
    head = f"<b>{html.escape(str(outcome.status))}</b>"
    if outcome.status is Status.CANCELLED:  # the learner's Stop, not a failure
        after = f" after event {stopped_after}" if stopped_after else ""
        head += html.escape(
            f": the saga was cancelled (Stop){after}{failed_besides(outcome, ' too')}"
        )
    elif took(outcome) or (issubclass(type(outcome.error), Cancelled) and not outcome.failed_step):
        head = cancelled_head(outcome, stopped_after)
    elif outcome.error is not None:
        head = failed_head(outcome.status, outcome.failed_step, outcome.error)
    # A Stop too late is named here (newuser23: the result said nothing of it; a cancelled
    # run's head and a declined one's note tell theirs); the cue says why (the box is fixed:
    # a longer head hid its rows).
    told = took(outcome) or PAST_PIVOT in outcome.notes or outcome.status is Status.CANCELLED
    if stopped_after and not told:
        head += html.escape(f"; Stop after event {stopped_after}: too late")
    ran = {e.step for e in outcome.events if e.kind == EventKind.STEP_START} | {
        *outcome.completed,
        *([outcome.failed_step] if outcome.failed_step else []),
    }  # (a group's other branch that failed too was run: newuser23 #1 read "not run")
    not_run = [s for s in outcome.steps if s not in ran]
    lines: list[tuple[str, str]] = []
    if breaks:  # first, by the check's own names (the grid's view says the whole of it)
        kinds = ", ".join(dict.fromkeys(v.split(":")[0] for v in breaks))
        lines.append(("breaks", f"✗ {kinds}"))  # (one line: "(the grid's check)" was cut)
    lines.append(("undone", _names(outcome.compensated)))
    dead = "; ".join(f"{d.step} ({d.attempts} attempt{'s' * (d.attempts != 1)})"
                     for d in outcome.dead_letters)  # fmt: skip
    if dead or not (outcome.pending and outcome.leaked):  # ("none" beside both: a row too
        lines.append(("dead letters", dead or "none"))  # many for the fixed box)
    if outcome.pending:
        lines.append(("pending", f"{_names(outcome.pending)} (left for a person)"))
    lines += [("leaked", f"{_names(names)} ({why})") for names, why in outcome.leaked_said]
    if outcome.semantic:
        lines.append(("compensated", f"{_names(outcome.semantic)} (by a new action)"))
    if outcome.kept:  # (done, no undo: the world is as it was but for these, newuser24 #1)
        lines.append(("kept", f"{_names(outcome.kept)} (no undo: its effect stands)"))
    if not_run:
        lines.append(("not run", _names(not_run)))
    lines += [("note", DECLINED if note == PAST_PIVOT else note) for note in outcome.notes]
    return _result_box(head, lines)


def cancelled_head(outcome: Outcome, stopped_after: int | None) -> str:
    """A Stop that took, then a rollback that did not finish: said as the learner did it,
    never "the block failed with Cancelled('the run was cancelled by its caller')" beside
    the caption "(a cancel, not a failure)" (newuser21); a step that failed beside the
    Stop is named with it, never the Stop left out (newuser22 #2: "room failed with
    InjectedTimeout(...)" of a run the Stop had cancelled)."""
    after = f" after event {stopped_after}" if stopped_after else ""
    failed = [e.step for e in outcome.events if e.kind == "undo_failed" and e.step]
    unfinished = [s for s in dict.fromkeys(failed) if s not in outcome.compensated]
    besides = failed_besides(outcome)
    steps = {s for s, _ in failed_steps(outcome.events)}
    leaked = [s for s in outcome.leaked if s not in steps]  # (the failed ones: said there)
    then = (
        f"{_names(unfinished)}'s undo failed" if len(unfinished) == 1
        else f"the undos of {_names(unfinished)} failed" if unfinished
        else f"{_names(leaked)} not undone" if leaked
        else "" if besides
        else "the rollback did not finish"
    )  # fmt: skip
    said = f": cancelled (Stop{after}){besides}{f', then {then}' if then else ''}"  # (in
    # the events' order: a step's failure comes before the rollback's: newuser24 #2)
    return f"<b>{html.escape(str(outcome.status))}</b>{html.escape(said)}"


DECLINED = PAST_PIVOT.split(" (undoing")[0]  # ("a cancel came ... had started: declined")
"""The engine's note of a declined cancel (``PAST_PIVOT``) in the result's fixed box, short:
in whole, beside a failure's error and a leaked step, it hid a row (16 of 282 Stops of
lesson 04's unsafe order); the log's event and the outcome keep it whole."""


def took(outcome: Outcome) -> bool:
    """Whether a cancel took: the rollback began as one (a Stop heard in time)."""
    return any(e.kind == "rollback_start" and e.details.get("cancelled") for e in outcome.events)


def failed_besides(outcome: Outcome, too: str = "") -> str:
    """The steps that failed beside a Stop that took, as "; room failed after its effect:
    no undo logged for it" (each from its events), or ""."""
    why = {step: why for names, why in outcome.leaked_said for step in names}  # (the outcome's)
    said = [
        f"{step} failed{' after its effect' if after else ''}{too}"
        + (f": {why[step]}" if step in why else "")
        for step, after in failed_steps(outcome.events)
    ]
    return "".join(f"; {s}" for s in said)


def failed_head(status: str, step: str | None, error: BaseException) -> str:
    """A result's head for a run that failed: its status, the step and its error."""
    said = f": {step or 'the run'} failed with {error!r}"
    return f"<b>{html.escape(str(status))}</b>{html.escape(said)}"


def _result_box(head: str, lines: list[tuple[str, str]]) -> str:
    """The head, whole (newuser12: clamped, a halt's error was cut), then a row for each
    line. The box's height is fixed (``under_px``)."""
    rows = "".join(f"<tr><th>{k}</th><td>{html.escape(v)}</td></tr>" for k, v in lines)
    return f"<div class='rl-head'>{head}</div><table>{rows}</table>"


PHASES = {"pipeline_failed": "failed…", "rollback_start": "rolling back…"}  # (from this event)


def result_at(outcome: Outcome, index: int, final: str) -> str:
    """The result box at frame ``index``: ``final`` (``result_html``) from the last event on;
    before it, what the run has done so far, never how it ends: "running…" until a step
    fails (or Stop lands: "cancelled…"), "failed…" until the rollback starts (a halt has
    none), then "rolling back…"; the same two rows throughout, so the box never grows."""
    if index >= len(outcome.events) - 1:
        return final
    done: list[str] = []
    undone: list[str] = []
    word = "running…"
    for event in outcome.events[: index + 1]:
        if event.kind == "step_done" and event.step:
            done.append(event.step)
        elif event.kind == "undo_done" and event.step:
            undone.append(event.step)
        elif event.kind in PHASES:
            word = PHASES[event.kind]
            if a_cancel(event):
                word = "cancelled…"  # the learner's Stop landed: not a failure
    last = len(outcome.events)
    head = f"<b>{word}</b> <span class='rl-more'>(the result shows at event {last})</span>"
    return _result_box(head, [("done so far", _names(done)), ("undone so far", _names(undone))])


def view_html(
    outcome: Outcome,
    index: int,
    png: bytes,
    cue: str | tuple[str, str],
    result: str,
    keys: Iterable[str],
    view: int = VIEW_PX,
    cue_title: str = "",
) -> str:
    """The panel's view at frame ``index``: the picture, and beside it the cue, the event it
    shows and the state; under it the event log and the result. Its height never changes
    (issue 24): the picture's sets the top row's, the side column is exactly as high (its
    cue and caption two lines each, clamped, whole in their title; the state scrolls if it
    must), and the row under it is ``under_px`` high whatever the log and the result say
    (``view``: the picture and that row at most, ``view_px`` of the panel's controls)."""
    event = outcome.events[index]
    before = outcome.state_before or {}
    now = outcome.state_at(index) or {}
    total = len(outcome.events)
    caption = drawing.frame_caption(event, index, total, outcome.status)
    legend = (
        f"<div class='rl-legend'>{key(HIGHLIGHT)}changed since before"
        f"{key(CURRENT)}▶ the event shown</div>"
    )
    cue, whole = cue if isinstance(cue, tuple) else (cue, cue_title or cue)  # (shown, title)
    said = html.escape(html.unescape(re.sub(r"<[^>]*>", "", whole)), quote=True)  # its words
    side = (
        f"<div title='{said}' class='rl-cue'>{cue}</div>"
        f"<div title='{html.escape(caption, quote=True)}' class='rl-caption'>"
        f"{html.escape(caption)}</div>"
        f"<div class='rl-state'>{state_html(before, now, keys)}</div>{legend}"
    )
    high = size(png)[1]
    return (
        f"<div class='rl-row rl-top'>{png_img(png, caption)}"
        f"<div class='rl-side' style='height:{high}px'>{side}</div></div>"
        f"<div class='rl-row rl-under' style='height:{under_px(high, view)}px'>"
        f"<div class='rl-log'>{log_html(outcome.events, index)}</div>"
        f"<div class='rl-box'><div class='rl-result'>{result}</div></div></div>"
    )


def now_html(outcome: Outcome, index: int, final: str) -> str:
    """The frame shown, as the panel says it: its caption and the result as of that event
    (``panel_html.result_at``: "running…" until the end, then ``final``)."""
    event = outcome.events[index]
    caption = drawing.frame_caption(event, index, len(outcome.events), outcome.status)
    return (
        f"<div class='rl-caption'>{html.escape(caption)}</div>"
        f"<div class='rl-result'>{result_at(outcome, index, final)}</div>"
    )
