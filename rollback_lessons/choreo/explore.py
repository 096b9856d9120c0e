"""Every single fault of a choreography, run and checked (as ``rollback_lessons.explore``
does for an orchestrated saga).

A clean run counts the moments a crash can strike (``received``, ``committed``,
``handled``, ``relayed``, each as often as it happens) and the messages sent. Then one run
per fault, each on fresh databases: a crash at the n-th moment (the process dies, starts
again, carries on), the n-th message delivered twice, the n-th message delayed until
everything else is done. Each run is checked on the services' own records
(``run.violations``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..outcome import Table
from .queues import MemoryQueue
from .run import (
    EVERY_PATH,
    IN_ORDER,
    NAIVE,
    SAFE,
    Booking,
    Choreography,
    Crash,
    Variant,
    distinct,
    variants_of,
    violations,
)


@dataclass(frozen=True)
class Fault:
    """``kind`` ``crash`` at the ``n``-th moment named ``moment`` (from 1), or
    ``duplicate``/``delay`` of the ``n``-th message sent."""

    kind: str
    n: int
    moment: str = ""

    @property
    def family(self) -> str:
        """The fault without its number: ``crash at committed``, ``duplicate``..."""
        return f"crash at {self.moment}" if self.kind == "crash" else self.kind

    def __str__(self) -> str:
        if self.kind == "crash":
            return f"crash at {self.moment} #{self.n}"
        return f"{self.kind} message #{self.n}"


@dataclass(frozen=True)
class Run:
    """One run under one fault: what it broke, booking by booking."""

    fault: Fault | None
    variant: Variant
    broken: dict[str, list[str]]

    def describe(self) -> str:
        return "; ".join(f"{b}: {', '.join(v)}" for b, v in sorted(self.broken.items())) or "-"


class _CrashAt:
    """The checkpoint that raises ``Crash`` at the n-th ``moment``, once; it also counts
    every moment (for the clean run)."""

    def __init__(self, moment: str = "", n: int = 0) -> None:
        self.moment, self.n, self.fired = moment, n, False
        self.seen: dict[str, int] = {}

    def __call__(self, moment: str) -> None:
        self.seen[moment] = self.seen.get(moment, 0) + 1
        if not self.fired and moment == self.moment and self.seen[moment] == self.n:
            self.fired = True
            raise Crash(f"crash at {moment} #{self.n}")


def run_once(
    bookings: Sequence[Booking], fault: Fault | None, variant: Variant = SAFE
) -> tuple[Run, dict[str, int], int]:
    """One run under ``fault``; also the moments counted and the messages sent."""
    crash = _CrashAt(fault.moment, fault.n) if fault and fault.kind == "crash" else _CrashAt()
    queue = MemoryQueue(
        duplicate=frozenset([fault.n] if fault and fault.kind == "duplicate" else []),
        delay=frozenset([fault.n] if fault and fault.kind == "delay" else []),
    )
    choreo = Choreography(queue, variant, checkpoint=crash)
    try:
        try:
            choreo.ask(bookings)
            choreo.run()
        except Crash:
            choreo.restart()  # a new process on the same databases and queue
            choreo.run()
        broken = violations(choreo.effects(), bookings)
    finally:
        choreo.close()
    return Run(fault, variant, broken), crash.seen, queue.sent


def single_faults(bookings: Sequence[Booking], variant: Variant = SAFE) -> list[Fault]:
    """Every single fault of a clean run of ``bookings``."""
    _, moments, sent = run_once(bookings, None, variant)
    crashes = [Fault("crash", n, m) for m, count in moments.items() for n in range(1, count + 1)]
    return (
        crashes
        + [Fault("duplicate", n) for n in range(1, sent + 1)]
        + [Fault("delay", n) for n in range(1, sent + 1)]
    )


@dataclass(frozen=True)
class ChoreoExploration:
    runs: tuple[Run, ...]

    @property
    def failures(self) -> list[Run]:
        return [run for run in self.runs if run.broken]

    def table(self, *, only_failures: bool = False) -> Table:
        runs = self.failures if only_failures else list(self.runs)
        rows = tuple((str(r.variant), str(r.fault or "no fault"), r.describe()) for r in runs)
        return Table(("variant", "fault", "violated"), rows)

    def first_failures(self) -> Table:
        """The first broken run of each variant and kind of fault: what broke."""
        first: dict[tuple[str, str], Run] = {}
        for run in self.failures:
            key = (str(run.variant), run.fault.family if run.fault else "no fault")
            first.setdefault(key, run)
        rows = tuple((v, str(r.fault), r.describe()) for (v, _), r in first.items())
        return Table(("variant", "first broken run", "violated"), rows)

    def summary(self) -> Table:
        """Per variant and kind of fault: runs, and runs that broke an invariant."""
        counts: dict[tuple[str, str], list[int]] = {}
        for run in self.runs:
            key = (str(run.variant), run.fault.family if run.fault else "no fault")
            counts.setdefault(key, [0, 0])
            counts[key][0] += 1
            counts[key][1] += bool(run.broken)
        return Table(
            ("variant", "fault", "runs", "broken"),
            tuple((v, k, str(n), str(b)) for (v, k), (n, b) in counts.items()),
        )


def explore_choreography(
    bookings: Iterable[Booking] = EVERY_PATH, variants: Iterable[Variant] = (SAFE, NAIVE, IN_ORDER)
) -> ChoreoExploration:
    """Run ``bookings`` under every single fault, for each variant, and check each run."""
    bookings, variants = distinct(bookings), variants_of(variants)
    runs = [
        run_once(bookings, fault, variant)[0]
        for variant in variants
        for fault in [None, *single_faults(bookings, variant)]
    ]
    return ChoreoExploration(tuple(runs))
