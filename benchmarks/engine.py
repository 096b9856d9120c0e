"""The engine's cost per saga of 3 no-op steps, against the lesson's bare pattern."""

from __future__ import annotations

import subprocess
import sys
import time

from rollback_lessons import Rollback, Saga, Step

from .common import per_call, table

TARGET = 1.5


def noop() -> None:
    pass


def work() -> None:
    """About 10-20 us of pure Python: still far less than any real side effect (an HTTP call)."""
    sum(range(400))


class Boom(Exception):
    pass


def bare(fail: bool, step=noop) -> None:
    """The lesson's pattern: a list of (name, undo) tuples and reversed()."""
    log = []
    try:
        for name in ("a", "b", "c"):
            step()
            log.append((name, step))
        if fail:
            raise Boom
    except Boom:
        for _name, undo in reversed(log):
            undo()


def engine(fail: bool, step=noop) -> None:
    try:
        with Rollback() as rb:
            rb.do("a", step, step)
            rb.do("b", step, step)
            rb.do("c", step, step)
            if fail:
                raise Boom
    except Boom:
        pass


def _noop_state(state: dict) -> None:
    pass


SAGA = Saga([Step(n, _noop_state, _noop_state) for n in "abc"])


def saga(fail: bool) -> None:
    SAGA.run(inject={"c": "fail"} if fail else None)


def import_time(module: str | None, rounds: int = 15) -> float:
    code = f"import {module}" if module else "pass"
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        best = min(best, time.perf_counter() - start)
    return best


def run() -> None:
    rows = []
    for path, fail in (("commit", False), ("rollback", True)):
        base = per_call(lambda f=fail: bare(f))
        for label, fn in (("Rollback", engine), ("Saga.run", saga)):
            t = per_call(lambda f=fail, fn=fn: fn(f))
            verdict = "meets" if t / base <= TARGET else "misses"
            rows.append(
                (
                    f"{label} ({path})",
                    f"{base * 1e6:.2f}",
                    f"{t * 1e6:.2f}",
                    f"{t / base:.1f}x",
                    f"{verdict} <= {TARGET}x",
                )
            )
    print("Engine cost per saga of 3 no-op steps, events kept in memory")
    print(table(rows, ("case", "bare us", "engine us", "ratio", "target")))
    rows = []
    for path, fail in (("commit", False), ("rollback", True)):
        base = per_call(lambda f=fail: bare(f, work))
        t = per_call(lambda f=fail: engine(f, work))
        rows.append(
            (f"Rollback ({path})", f"{base * 1e6:.1f}", f"{t * 1e6:.1f}", f"{t / base:.2f}x")
        )
    print()
    print("The same with steps that do a little work (sum(range(400)) each), for scale")
    print(table(rows, ("case", "bare us", "engine us", "ratio")))
    bare_start, pkg_start = import_time(None), import_time("rollback_lessons")
    print()
    print("Import time (best of 15 fresh interpreters)")
    print(
        table(
            [
                (
                    "python -c 'import rollback_lessons'",
                    f"{bare_start * 1e3:.1f}",
                    f"{pkg_start * 1e3:.1f}",
                    f"{pkg_start / bare_start:.2f}x",
                    f"+{(pkg_start - bare_start) * 1e3:.1f} ms",
                )
            ],
            ("case", "bare ms", "with import ms", "ratio", "added"),
        )
    )
