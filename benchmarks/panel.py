"""The widget panel's speed: on the kernel side (a click to the new view, whole replays),
and in the browser (fault click to the new picture painted, against a bare widget round
trip timed in the same run)."""

from __future__ import annotations

import os
import statistics
import time

from rollback_lessons import Saga, Step
from rollback_lessons.lab import viz
from rollback_lessons.lab.widgets import RollbackLab

from . import browser
from .common import table

CLICK_TARGET_MS = 50
FRAMES_TARGET_S = 1.0


def saga_of(n: int) -> Saga:
    def setter(key: str, value: int):
        return lambda state: state.__setitem__(key, value)

    return Saga(
        [
            Step(f"step{i}", setter(f"k{i}", i), setter(f"k{i}", 0), label=f"k{i} = {i}")
            for i in range(1, n + 1)
        ],
        name=f"{n} steps",
    )


def click_latencies(samples: int = 200) -> list[float]:
    """Seconds from changing a fault control to the new outcome and its view (the one
    message a browser gets)."""
    saga = saga_of(8)
    lab = RollbackLab(saga, state={f"k{i}": 0 for i in range(1, 9)})
    faults = ["fail", "ok", "fail_after_effect", "ok"]
    times = []
    for i in range(samples):
        control = lab.actions[f"step{1 + i % 8}"]
        fault = faults[i % len(faults)]
        if control.value == fault:
            fault = "ok" if fault != "ok" else "fail"
        start = time.perf_counter()
        control.value = fault  # what a click in the browser does, on the kernel side
        assert lab.outcome is not None and lab.view.value
        times.append(time.perf_counter() - start)
    return times


def replay_seconds() -> tuple[float, float, int]:
    """All frames of a 10-step rollback: the static pictures (a new figure with the state
    table and the title, as a GIF is made), and played in the panel (its own figure,
    reused: lanes only, the state and the event in HTML beside it)."""
    saga = saga_of(10)
    state = {f"k{i}": 0 for i in range(1, 11)}
    outcome = saga.run(dict(state), inject={"step10": "fail"}, trace_state=True)
    start = time.perf_counter()
    pngs = viz.frames(outcome)
    fresh = time.perf_counter() - start
    lab = RollbackLab(saga, state=state)
    lab.timeline.load(outcome)
    start = time.perf_counter()
    for i in range(lab.timeline.frame_count):
        lab.timeline.render(i)
    reused = time.perf_counter() - start
    return fresh, reused, len(pngs)


def run() -> None:
    times = sorted(click_latencies())
    p50 = statistics.median(times) * 1e3
    p95 = times[int(0.95 * len(times)) - 1] * 1e3
    fresh, reused, count = replay_seconds()
    rows = [
        (
            "fault click -> outcome + its view (8 steps), p50 / p95",
            f"{p50:.1f} / {p95:.1f} ms",
            f"p95 <= {CLICK_TARGET_MS} ms",
            "meets" if p95 <= CLICK_TARGET_MS else "misses",
        ),
        (
            f"all {count} frames of a 10-step rollback, static pictures (new figure)",
            f"{fresh:.2f} s",
            f"<= {FRAMES_TARGET_S} s",
            "meets" if fresh <= FRAMES_TARGET_S else "misses",
        ),
        (
            f"all {count} frames, played in the panel (its figure reused)",
            f"{reused:.2f} s",
            f"<= {FRAMES_TARGET_S} s",
            "meets" if reused <= FRAMES_TARGET_S else "misses",
        ),
    ]
    print("Widget panel, kernel side (no browser)")
    print(table(rows, ("measure", "result", "target", "verdict")))
    print()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"Widget panel in JupyterLab (Chromium, 1366x768, file browser open, default settings;"
        f" {os.cpu_count()} cores, load average {load:.1f})"
    )
    print(table(browser.rows(browser.measure()), ("measure", "result", "target", "verdict")))
