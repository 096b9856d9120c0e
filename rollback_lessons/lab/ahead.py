"""Runs one change away from the panel's, drawn while the kernel waits for the learner.

A fault change shows a run the panel may never have drawn: the saga runs, its artists are
made, its telling frame drawn and encoded (about 5 ms of CPU; 10-60 ms on a loaded 2-core
machine, most of a change's kernel share). While the learner looks at the picture, the
kernel is idle: ``schedule`` then draws, one per turn of the kernel's event loop, the telling
frame of every run a single change of one control leads to, into the panel's frames
(``Timeline.frames``, by ``run_key``). The change the learner makes next then finds its
picture drawn and only sends it.

It starts a moment after a change (``DELAY_S``: the browser is still painting the picture
just sent, on the same cores) and stops at the next change, while Play plays, and outside
a kernel (no running event loop: a script, a test). A click that arrives meanwhile waits
for at most one run's drawing. Only a panel whose state is plain data (numbers, strings,
lists, dicts) draws ahead: a state holding services (lesson 06's mail server) would have
runs the learner never asked for send real messages; a state that offers a ``rehearsal()``
(lesson 06's world of services: its mail held, unsent) draws ahead on that (``rehearsal``).
A change's picture is always its own run's: one drawn ahead is found by the run's events
(``timeline_run.run_key``), so a rehearsal that ran otherwise only costs the drawing.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

DELAY_S = 0.25  # after a change: its picture painted first, a quick next click unhindered
# between two drawings: the loop polls for messages first (a click waits for one drawing)
GAP_S = 0.015
PLAIN = (str, int, float, bool, type(None))


def plain(value: Any) -> bool:
    """Numbers, strings, None, and lists, tuples, sets and dicts of them."""
    if isinstance(value, PLAIN):
        return True
    if isinstance(value, dict):
        return all(plain(k) and plain(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return all(plain(v) for v in value)
    return False


def rehearsal(first: Any, make: Callable[[], Any]) -> Callable[[], Any] | None:
    """What to draw ahead on, given the panel's state ``first`` and its factory ``make``:
    the state itself when it is plain data, its ``rehearsal()`` when it offers one (a world
    of services with whatever reaches outside the kernel held back), else nothing."""
    if plain(first):
        return make
    if callable(getattr(first, "rehearsal", None)):
        return lambda: make().rehearsal()
    return None


def changes(lab: Any) -> Iterator[tuple[Any, str]]:
    """(control, value): every single change a learner can make to the panel's run, the
    fault controls first (what the lessons ask a learner to click)."""
    controls = [*lab.actions.values(), *lab.undos.values()]
    controls += [lab.policy, lab.register, lab.order, lab.first]
    for control in controls:
        if control is None or control.disabled:
            continue
        for _, value in control.options:
            if value != control.value:
                yield control, value


def outcomes(lab: Any) -> Iterator[Any]:
    """The runs one change away (``changes``), for a panel whose state is plain data (a
    world of services would act unasked); a run the engine refuses is left out."""
    if not lab.draw_ahead:
        return
    for control, value in changes(lab):
        try:
            yield lab._run_saga((control, value), ahead=True)
        except Exception:  # (any: the change itself says why, if the learner makes it)
            continue


def draw_for(lab: Any, control: Any, value: str) -> bool:
    """Draw the picture ``control`` set to ``value`` would show; False: drawn before, or a
    run the engine refuses (the change itself says why, if the learner makes it)."""
    try:
        outcome = lab._run_saga((control, value), ahead=True)
    except Exception:  # (any: a run refused is simply not drawn ahead)
        return False
    return bool(lab.timeline.draw_ahead(outcome, lab.telling_frame(outcome, False)))


def cells(grid: Any) -> Iterator[Callable[[], bool]]:
    """The explorer grid's cells' pictures (each run at its last event, as a click shows
    it), to draw first (``schedule``): a click then finds its picture drawn."""
    for run in grid.grid.values():
        yield functools.partial(_draw_cell, grid.lab, run)


def _draw_cell(lab: Any, run: Any) -> bool:
    try:
        faults = [(step, str(fault)) for step, fault in run.faults]
        settings = lab.explored_settings(faults, run.policy, run.completion)
        outcome = lab._run_saga(settings, ahead=True)
    except Exception:  # (any: a run refused is simply not drawn ahead)
        return False
    return bool(lab.timeline.draw_ahead(outcome, len(outcome.events) - 1))


def schedule(lab: Any, first: Iterable[Callable[[], bool]] = ()) -> None:
    """Draw the runs one change away from ``lab``'s, from ``DELAY_S`` on, one per turn of
    the kernel's event loop, until the panel changes again (``lab._ahead`` counts changes).
    ``first``: other pictures to draw before them, each a call saying whether it drew (the
    explorer's grid: its cells' runs, which a click shows)."""
    lab._ahead += 1
    if not lab.draw_ahead or lab.timeline.frames.runs <= 0:
        return
    own = (functools.partial(draw_for, lab, control, value) for control, value in changes(lab))
    # done: the shown run's artists again, for Play and back
    in_turns(lab, itertools.chain(first, own), lab.timeline.rebuild, lambda: lab.play.playing)


def in_turns(
    panel: Any,
    todo: Iterable[Callable[[], bool]],
    done: Callable[[], None] = lambda: None,
    busy: Callable[[], bool] = lambda: False,
) -> bool:
    """Do ``todo``'s drawings from ``DELAY_S`` on, one that drew per turn of the kernel's
    event loop, ``GAP_S`` apart, under ``panel._lock``, until ``panel._ahead`` (its changes)
    moves on or ``busy()``; then ``done()``. False: no running loop (a script, a test),
    nothing scheduled. The gap lets a click wait for one drawing at most: the next drawing
    queued at once (``call_soon``) ran before a message that came during the last, the
    loop's I/O being polled after what is ready (lesson 12: a change back to its first
    option, made while the runs one change away from the last were drawn, waited for two
    or three drawings, 82-149 ms, newuser15)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # no kernel loop: nothing to wait for
        return False
    turn, todo = panel._ahead, iter(todo)

    def step() -> None:
        with panel._lock:  # a click handled on another thread waits (``one_at_a_time``)
            if turn != panel._ahead or busy():
                return  # changed since, or playing: the panel's own frames come first
            for draw in todo:
                if draw():
                    loop.call_later(GAP_S, step)  # (not call_soon: a click first)
                    return
            done()

    loop.call_later(DELAY_S, step)
    return True
