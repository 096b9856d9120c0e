"""A graph saga whose effects and undos land in a SQLite world, for the attack scripts.

Registry for `rollback-lessons recover --registry attacks.graphworld` (run from the worktree).
KILL_AT=k (environment) SIGKILLs the process at the k-th undo call, before its effect.
"""

from __future__ import annotations

import os
import signal
import sqlite3

from rollback_lessons import Parallel, Saga, Step
from rollback_lessons.durable.registry import Registry, compensation

registry = Registry()
_count = [0]


def con(world: str) -> sqlite3.Connection:
    c = sqlite3.connect(world, isolation_level=None, timeout=30)
    c.execute("CREATE TABLE IF NOT EXISTS effects (saga TEXT, step TEXT, undone INT DEFAULT 0)")
    c.execute("CREATE TABLE IF NOT EXISTS calls (n INTEGER PRIMARY KEY, saga TEXT, step TEXT)")
    return c


@compensation("gw.undo", registry)
def undo(world: str, saga: str, step: str, idempotency_key: str | None = None) -> None:
    _count[0] += 1
    if os.environ.get("KILL_AT") and int(os.environ["KILL_AT"]) == _count[0]:
        os.kill(os.getpid(), signal.SIGKILL)
    c = con(world)
    c.execute("INSERT INTO calls (saga, step) VALUES (?, ?)", (saga, step))
    c.execute("UPDATE effects SET undone = undone + 1 WHERE saga=? AND step=?", (saga, step))
    c.close()


def step(world: str, saga: str, name: str, register: str = "after") -> Step:
    def action(state: object) -> None:
        c = con(world)
        c.execute("INSERT INTO effects (saga, step) VALUES (?, ?)", (saga, name))
        c.close()

    return Step(name, action, undo.bind(world=world, saga=saga, step=name), register=register)


def saga(world: str, saga_id: str) -> Saga:
    s = lambda n: step(world, saga_id, n)  # noqa: E731
    # A, [B, C], D at once; then E; then F (which fails)
    return Saga([Parallel(s("A"), [s("B"), s("C")], s("D")), s("E"), s("F")], name="g")


DEPENDANTS = {  # a step's undo must run after its dependants' undos
    "A": {"E", "F"}, "B": {"C", "E", "F"}, "C": {"E", "F"}, "D": {"E", "F"}, "E": {"F"}, "F": set(),
}
