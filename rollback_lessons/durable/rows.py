"""The rows a journal holds, as records: a saga (its owner and claimer, as ``owner`` tells
who a process is and whether it still runs), an undo, a saga claimed for recovery."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..rules import idempotency_key
from . import owner
from .owner import process_alive

LIVE = (
    "it may still be running the saga: recover it once that ends (stop the process first "
    "only if it hangs)"
)
"""What a saga whose process runs is left with: it may be healthy, mid-step (attack101 F3:
"stop it first" had an operator kill a healthy owner, leaving a step leaked)."""


@dataclass(frozen=True)
class SagaRecord:
    id: str
    name: str
    status: str
    owner_pid: int
    owner_host: str
    error: str | None
    undos: int
    undone: int
    dead: int
    owner_started: float | None = None
    pivot: str | None = None
    pivot_state: str | None = None
    claim_pid: int | None = None
    claim_host: str | None = None
    claim_started: float | None = None
    policy: str | None = None
    """The run's undo policy as JSON (``wire.PolicySpec``); None in older journals."""
    undo_order: str = "reverse"
    graph: str | None = None
    """A saga run as a graph: each step's dependencies as JSON (``Journal.start``); None: a
    list, or a journal older than schema 6."""
    leaked: int = 0
    """Steps that may have had their effect with nothing to undo it (``Journal.leaked``): a
    step with no undo too, which ``undos`` (undos logged) never counts."""
    owner_space: str | None = None
    """The owner's PID namespace and boot (``process_space``); None before schema 7."""
    claim_space: str | None = None

    def after(self) -> dict[str, tuple[str, ...]] | None:
        """Each step's dependencies, in definition order (None: a list)."""
        if self.graph is None:
            return None
        return {step: tuple(deps) for step, deps in json.loads(self.graph)}

    def owner_alive(self) -> bool | None:
        """Is the process that ran this saga still running? None: cannot tell from here."""
        return process_alive(self.owner_pid, self.owner_host, self.owner_started, self.owner_space)

    def running(self) -> str:
        """Why a saga whose owner runs is left alone. Where the journal recorded its program
        (where its stack began) and /proc hides it from this user (another user's process
        reads 0), whether it has exec'd another program since cannot be told here: "stop it
        first" would have a person kill a pid that may run another program now (attack86 F7).
        Read as root or as its own user, a 0 is no hiding: its main thread has ended, others
        run on (an exec would have made one of them its main thread again: attack91 F4)."""
        said = f"its process {self.owner_pid} is still running"
        space = self.owner_space
        if space is None or " exec " not in space or owner.process_exec(self.owner_pid):
            return f"{said}; {LIVE}"
        if not owner.hidden(self.owner_pid):
            return (
                f"its process {self.owner_pid} is taken as still running: its main thread has "
                "ended (its stack start reads 0, to this user too, who may read it), its other "
                f"threads run on; {LIVE}"
            )
        return (
            f"{said}, unless it has exec'd another program since, which this user cannot tell "
            "(/proc hides another user's program): run recover as its user, or as root"
        )

    def claim_alive(self) -> bool | None:
        """Is the process that claimed this saga for recovery still running?"""
        if self.claim_pid is None:
            return False
        return process_alive(self.claim_pid, self.claim_host, self.claim_started, self.claim_space)


@dataclass(frozen=True)
class UndoRecord:
    saga_id: str
    position: int
    step: str
    compensation: str
    args: dict[str, Any]
    state: str
    attempts: int
    error: str | None
    semantic: bool = False
    timeout: float | None = None
    """The step's own undo timeout (``Step(undo_timeout=...)``), kept since schema 5."""

    @property
    def key(self) -> str:
        return idempotency_key(self.saga_id, self.step)


@dataclass(frozen=True)
class Claimed:
    """A saga claimed for recovery, and what was left of it when claimed (one read)."""

    saga: SagaRecord
    gen: int  # the claim's generation: every write checks it is still current
    pending: list[UndoRecord]
    intents: list[UndoRecord]
    last_seq: int
