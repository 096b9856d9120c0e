"""The backward pass: run the undo log last-in-first-out, under the run's undo policy.

A plan (see ``plan.py``): it yields each undo call and each backoff sleep, and is told
how each call went. What a failed undo leads to (retry, dead letter, halt) is the policy's
answer; a KeyboardInterrupt or SystemExit in an undo stops the pass and leaves the rest
pending, truthfully, for ``recover`` or a person.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from .events import EventKind, describe
from .faults import Fault
from .outcome import DeadLetter
from .plan import Call, Plan, Sleep
from .rules import undo_error, undo_fails

if TYPE_CHECKING:
    from ._run import Run


class UndoEntry:
    """One logged undo: what to call, its injected fault, its timeout, its journal place."""

    __slots__ = ("fault", "position", "semantic", "step", "timeout", "undo")

    def __init__(
        self,
        step: str,
        undo: Callable[[], Any],
        fault: Fault | None,
        timeout: float | None,
        semantic: bool = False,
    ) -> None:
        self.step, self.undo, self.fault, self.timeout = step, undo, fault, timeout
        self.semantic = semantic  # a correction, not an inverse
        self.position = 0  # its place in the journal, once written there


def compensation_plan(run: Run) -> Plan:
    """Run the log backwards; what a failed undo leads to follows the run's policy."""
    entries = run.log[::-1] if run.undo_order == "reverse" else list(run.log)
    run.leaked.extend(run.irreversible)
    if run.jrun is not None:  # every undo logged so far is durable before any of them runs
        run.durably(partial(run.jrun.status, flush=True), "rolling_back")
    run.emit(
        EventKind.ROLLBACK_START,
        undos=len(entries),
        order=run.undo_order,
        policy=run.policy.name,
    )
    for index, entry in enumerate(entries):
        attempt = 0
        while True:
            attempt += 1
            run.emit(EventKind.UNDO, entry.step, attempt=attempt)
            if undo_fails(entry.fault, attempt):
                assert entry.fault is not None
                error: BaseException | None = undo_error(entry.step, entry.fault)
            else:
                timeout = entry.timeout if entry.timeout is not None else run.policy.timeout
                what = f"undo of step {entry.step!r}"
                try:
                    error = yield Call(entry.undo, what, timeout)
                except BaseException as exc:  # Ctrl-C, SystemExit, a cancelled task
                    interrupt(run, exc, entries[index:])
                    raise
            if error is None:
                run.compensated.append(entry.step)
                if entry.semantic:
                    run.semantic.append(entry.step)
                run.emit(EventKind.UNDO_DONE, entry.step, attempt=attempt)
                if run.jrun is not None:
                    run.durably(run.jrun.undo_done, entry.position, attempt)
                break
            decision = run.policy.decide(attempt, error)
            if isinstance(decision, str):
                run.emit(
                    EventKind.UNDO_FAILED, entry.step, attempt=attempt, error=describe(error),
                    then=decision,
                )  # fmt: skip
                if decision == "halt":
                    run.halted = True
                    run.pending.extend(e.step for e in entries[index:])
                else:
                    run.dead_letters.append(DeadLetter(entry.step, error, attempt))
                    if run.jrun is not None:
                        run.durably(run.jrun.undo_dead, entry.position, attempt, describe(error))
                break
            run.emit(
                EventKind.UNDO_FAILED, entry.step, attempt=attempt, error=describe(error),
                then="retry", delay=decision,
            )  # fmt: skip
            try:
                yield Sleep(decision)
            except BaseException as exc:  # Ctrl-C while waiting to retry
                interrupt(run, exc, entries[index:])
                raise
        if run.halted:
            break
    rollback_done(run)


def rollback_done(run: Run, **extra: Any) -> None:
    """The rollback's last event: how it ended, for a person reading the log."""
    run.emit(
        EventKind.ROLLBACK_DONE,
        status=str(run.status()),
        undone=len(run.compensated),
        dead_letters=len(run.dead_letters),
        pending=len(run.pending),
        **extra,
    )


def interrupt(run: Run, exc: BaseException, left: list[UndoEntry]) -> None:
    """An undo was cut short by a BaseException: what is left is pending, truthfully."""
    run.interrupted = exc
    run.halted = True
    run.pending.extend(e.step for e in left)
    run.problems.append(
        f"rollback interrupted by {type(exc).__name__} during the undo of {left[0].step}; "
        f"not known to be undone: {', '.join(e.step for e in left)}"
        + (" (the journal keeps them for recover)" if run.jrun is not None else "")
    )
    rollback_done(run, interrupted=type(exc).__name__)
