"""A small world in SQLite, and a process that runs sagas on it until it is killed.

Lesson 07 and the crash trials use it: every effect and every undo lands in the world
database, so after a ``SIGKILL`` and a ``recover`` one can check that each effect that
happened was undone exactly once (or its saga committed), and that no undo touched an
effect that never happened.

``python -m rollback_lessons.worlds.crashlab --journal J --world W ...`` is the process to kill;
with ``--dbos S`` instead of ``--journal``, the sagas run as DBOS workflows on the system
database S, and ``--resume`` launches DBOS on it again, which finishes what a killed process
left (lesson 07 shows both, side by side: ``crash_on_dbos``, ``compare_worlds``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ..durable.journal import Journal, JournalError
from ..durable.registry import Registry, compensation
from ..durable.wal import connect_wal
from ..errors import RollbackLessonsError
from ..rules import Kind, Register
from ..saga import Saga, Step

registry = Registry()
"""The compensations a recovery of these sagas may run (``--registry`` this module)."""

_WORLD = """
CREATE TABLE IF NOT EXISTS effects (
    saga TEXT NOT NULL, step TEXT NOT NULL, undone INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (saga, step));
CREATE TABLE IF NOT EXISTS undo_applied (saga TEXT NOT NULL, step TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS undo_calls (
    saga TEXT NOT NULL, step TEXT NOT NULL, changed INTEGER NOT NULL)
"""


def connect(world: str | os.PathLike[str]) -> sqlite3.Connection:
    return connect_wal(os.fspath(world), _WORLD, synchronous="FULL")


class _Checkpoints:
    """Numbered moments at which the process can be made to die or to stop and wait.

    A ``recover`` process (the CLI) is set up through the environment: CRASHLAB_KILL_AT
    and CRASHLAB_PAUSE_AT, as the saga runner is through its flags.
    """

    def __init__(self) -> None:
        self.count = 0
        kill_at = os.environ.get("CRASHLAB_KILL_AT")
        self.kill_at: int | None = int(kill_at) if kill_at else None
        self.pause_at: str | None = os.environ.get("CRASHLAB_PAUSE_AT") or None

    def __call__(self, name: str) -> None:
        self.count += 1
        if self.kill_at == self.count:
            os.kill(os.getpid(), signal.SIGKILL)
        self.pause(name)

    def pause(self, name: str) -> None:
        """Stop and wait at ``name`` if asked to (a moment not numbered for ``kill_at``)."""
        if self.pause_at == name:
            print(f"paused at {name}", flush=True)
            sys.stdin.readline()  # waits for the parent (which kills it), not for a clock


checkpoint = _Checkpoints()


def apply_effect(world: str, saga: str, step: str, *, once: bool = False) -> None:
    """Do ``step``'s effect for ``saga``. Twice is an error (a step run again), unless
    ``once``: then the saga and step are its idempotency key, and a repeat (an engine's
    retry after a lost worker) finds its own effect and changes nothing."""
    checkpoint(f"before {step}")
    con = connect(world)
    try:
        ignore = " ON CONFLICT DO NOTHING" if once else ""
        con.execute(f"INSERT INTO effects (saga, step) VALUES (?, ?){ignore}", (saga, step))
    finally:
        con.close()
    checkpoint(f"after {step}")


@compensation("crashlab.undo_effect", registry)
def undo_effect(world: str, saga: str, step: str, idempotency_key: str | None = None) -> None:
    """Undo one effect, once: a second call (after a crash mid-undo) changes nothing."""
    checkpoint(f"before undo {step}")
    con = connect(world)
    try:
        con.execute("BEGIN IMMEDIATE")
        changed = con.execute(
            "UPDATE effects SET undone = 1 WHERE saga = ? AND step = ? AND undone = 0",
            (saga, step),
        ).rowcount
        if changed:
            con.execute("INSERT INTO undo_applied VALUES (?, ?)", (saga, step))
        con.execute("INSERT INTO undo_calls VALUES (?, ?, ?)", (saga, step, changed))
        con.execute("COMMIT")
    finally:
        con.close()
    checkpoint(f"after undo {step}")


def _effect_step(world: str, saga: str, step: str, state: Any) -> None:
    apply_effect(world, saga, step)


REGISTERS = ("before", "after", "mixed")


def make_saga(world: str, saga_id: str, steps: int = 3, register: str = "before") -> Saga:
    """``steps`` steps; each writes an effect. Its undo is logged before it runs, after
    it succeeds, or (``mixed``) before for odd steps and after for even ones."""
    if register not in REGISTERS:
        raise ValueError(f"register must be one of {', '.join(REGISTERS)}, got {register!r}")
    world = str(world)

    def when(i: int) -> Register:
        if register == "mixed":
            return "before" if i % 2 else "after"
        return "before" if register == "before" else "after"

    return Saga(
        [
            Step(
                f"step{i}",
                partial(_effect_step, world, saga_id, f"step{i}"),
                undo_effect.bind(world=world, saga=saga_id, step=f"step{i}"),
                register=when(i),
                label=f"effect {i}",
            )
            for i in range(1, steps + 1)
        ],
        name="crashlab",
    )


def make_pivot_saga(world: str, saga_id: str) -> Saga:
    """charge (undo logged first) -> email (the pivot: irreversible) -> ship (retriable)."""
    world = str(world)
    return Saga(
        [
            Step(
                "charge",
                partial(_effect_step, world, saga_id, "charge"),
                undo_effect.bind(world=world, saga=saga_id, step="charge"),
                register="before",
            ),
            Step("email", partial(_effect_step, world, saga_id, "email"), kind=Kind.PIVOT),
            Step("ship", partial(_effect_step, world, saga_id, "ship"), kind=Kind.RETRIABLE),
        ],
        name="crashlab-pivot",
    )


def make_graph_saga(world: str, saga_id: str) -> Saga:
    """step1, then step2 and step3 at once (a parallel group), then step4; each writes an
    effect, each undo logged after its step (issue 27: a graph saga killed mid-rollback)."""
    from ..graph import Parallel

    world = str(world)

    def step(i: int) -> Step:
        return Step(f"step{i}", partial(_effect_step, world, saga_id, f"step{i}"),
                    undo_effect.bind(world=world, saga=saga_id, step=f"step{i}"))  # fmt: skip

    return Saga([step(1), Parallel(step(2), step(3)), step(4)], name="crashlab-graph")


def run_sagas(
    journal: Journal | Any,
    world: str,
    prefix: str,
    count: int,
    steps: int = 3,
    fail_every: int = 0,
    undo_fails_every: int = 0,
    register: str = "before",
    pivot: bool = False,
    graph: bool = False,
    at_once: bool = False,
) -> list[str]:
    """Run ``count`` sagas; every ``fail_every``-th fails at its last step (and rolls back),
    every ``undo_fails_every``-th has its first undo fail (a dead letter). ``journal`` may be
    a DBOS runner instead: each saga is then a DBOS workflow. ``graph``: the saga with a
    parallel group (``make_graph_saga``), its branches run at once on DBOS with
    ``at_once``."""
    statuses = []
    for n in range(1, count + 1):
        saga_id = f"{prefix}-{n}"
        if pivot:
            saga = make_pivot_saga(world, saga_id)
            last = "ship"
        elif graph:
            saga, last = make_graph_saga(world, saga_id), "step4"
        else:
            saga, last = make_saga(world, saga_id, steps, register), f"step{steps}"
        inject: dict[str, Any] = {}
        if fail_every and n % fail_every == 0:
            inject[last] = ["fail"]
        if undo_fails_every and n % undo_fails_every == 0:
            inject.setdefault(saga.names[0], []).append("undo_fails")
        if isinstance(journal, Journal):
            outcome = saga.run({}, inject=inject, journal=journal, run_id=saga_id)
        else:
            more = {"at_once": True} if at_once else {}
            outcome = journal.run(saga, {}, inject=inject, run_id=saga_id, **more)
        statuses.append(str(outcome.status))
    return statuses


def world_report(world: str | os.PathLike[str]) -> dict[str, Any]:
    """What happened in the world: effects, which are undone, and every undo applied."""
    con = connect(world)
    try:
        return {
            "effects": con.execute(
                "SELECT saga, step, undone FROM effects ORDER BY 1, 2"
            ).fetchall(),
            "undo_applied": con.execute(
                "SELECT saga, step FROM undo_applied ORDER BY 1, 2"
            ).fetchall(),
            "undo_calls": con.execute(
                "SELECT saga, step, changed FROM undo_calls ORDER BY rowid"
            ).fetchall(),
            "integrity": con.execute("PRAGMA integrity_check").fetchone()[0],
        }
    finally:
        con.close()


def spawn(
    journal: str | os.PathLike[str],
    world: str | os.PathLike[str],
    *,
    sagas: int = 1,
    fail_every: int = 0,
    pause_at: str | None = None,
    prefix: str = "saga",
    register: str = "before",
) -> subprocess.Popen[str]:
    """Start this module in its own process (as lesson 07 does), ready to be killed."""
    args = [
        sys.executable, "-m", __name__, "--journal", str(journal), "--world", str(world),
        "--sagas", str(sagas), "--fail-every", str(fail_every), "--prefix", prefix,
        "--register", register,
    ]  # fmt: skip
    if pause_at:
        args += ["--pause-at", pause_at]
    return subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def effects_table(world: str | os.PathLike[str]) -> str:
    """The world's effects, one line each: what happened and whether it was undone."""
    rows = world_report(world)["effects"]
    lines = [f"{saga:<8} {step:<6} {'undone' if undone else 'DONE'}" for saga, step, undone in rows]
    return "\n".join(lines) or "(no effects)"


class NotPaused(RollbackLessonsError):
    """``crash_on_dbos``'s first process never paused (its run id taken, say): one line."""


@dataclass(frozen=True)
class DBOSCrash:
    """Sagas run as DBOS workflows, their process killed, DBOS launched again on its file."""

    killed: str  # where the first process was when it was killed
    statuses: tuple[str, ...]  # how each saga ended, in the relaunched process
    world: Path


def crash_on_dbos(
    work: str | os.PathLike[str],
    *,
    sagas: int = 1,
    fail_every: int = 0,
    pause_at: str,
    prefix: str = "saga",
    graph: bool = False,
    at_once: bool = False,
) -> DBOSCrash:
    """The crash of lesson 07 on DBOS: the sagas run as DBOS workflows in a process, killed
    (SIGKILL) at ``pause_at``; then a new process launches DBOS on the same system database,
    which resumes what the dead one left. Its world is ``work/dbos-world.db``. ``graph``:
    sagas with a parallel group (``make_graph_saga``), run ``at_once`` or one step at a
    time."""
    work = Path(work)
    world, system = work / "dbos-world.db", work / "dbos.sqlite"
    common = ["--dbos", str(system), "--world", str(world), "--prefix", prefix, "--sagas",
              str(sagas), "--fail-every", str(fail_every)]  # fmt: skip
    if graph:
        common.append("--graph")
    if at_once:
        common.append("--at-once")
    with tempfile.TemporaryFile("w+") as said:  # (a file: a pipe unread could block it)
        first = subprocess.Popen(
            [sys.executable, "-m", __name__, *common, "--pause-at", pause_at],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=said, text=True,
        )  # fmt: skip
        assert first.stdout is not None
        line = first.stdout.readline().strip()
        first.kill()
        first.wait()
        said.seek(0)
        why = (
            said.read().strip().splitlines()
            or [f"it ran to its end ({line})" if line else "it said nothing"]
        )[-1]
        if not line.startswith("paused at "):  # (what it said, as the CLI says it)
            raise NotPaused(f"its first process never paused at {pause_at!r}: {why}")
    killed = line.removeprefix("paused at ")
    again = subprocess.run(
        [sys.executable, "-m", __name__, *common, "--resume"],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    return DBOSCrash(killed, tuple(again.stdout.split()), world)


def compare_worlds(worlds: dict[str, str | os.PathLike[str]], prefix: str = "") -> str:
    """Worlds side by side: each effect (of the sagas whose id starts with ``prefix``),
    whether it is undone, and how many times its undo was called (a second call changes
    nothing: the effect was undone already)."""
    reports = {label: world_report(path) for label, path in worlds.items()}
    keys = sorted(
        {(saga, step) for r in reports.values() for saga, step, _ in r["effects"]
         if saga.startswith(prefix)}
    )  # fmt: skip
    lines = [f"{'':<14}" + "".join(f"{label:<22}" for label in reports)]
    for saga, step in keys:
        cells = []
        for report in reports.values():
            undone = {(a, b): u for a, b, u in report["effects"]}.get((saga, step))
            calls = sum(1 for a, b, _ in report["undo_calls"] if (a, b) == (saga, step))
            text = "-" if undone is None else "undone" if undone else "DONE"
            cells.append(f"{text}{f', {calls} undo calls' if calls > 1 else ''}")
        lines.append(f"{saga + ' ' + step:<14}" + "".join(f"{c:<22}" for c in cells))
    return "\n".join(line.rstrip() for line in lines)


def _on_dbos(args: argparse.Namespace) -> list[str]:
    """Run (or, with ``--resume``, resume) the sagas as DBOS workflows on ``--dbos``."""
    from ..runners.dbos import DBOSRunner, UnknownRun

    def make(saga_id: str) -> Saga:
        return make_saga(str(args.world), saga_id, args.steps, args.register)

    def make_graph(saga_id: str) -> Saga:
        return make_graph_saga(str(args.world), saga_id)

    sagas = {"crashlab": make, "crashlab-graph": make_graph}
    from ..runners.dbos import workflow

    # "before step3 began": step2's end saved, step3's intent not yet (nothing in doubt)
    workflow.STARTING[:] = [lambda step: checkpoint.pause(f"before {step} began")]
    with DBOSRunner.start(args.dbos, sagas=sagas) as runner:
        if not args.resume:
            return run_sagas(
                runner, str(args.world), args.prefix, args.sagas, args.steps,
                args.fail_every, args.undo_fails_every, args.register, graph=args.graph,
                at_once=args.at_once,
            )  # fmt: skip
        statuses: list[str] = []
        for saga_id in (f"{args.prefix}-{n}" for n in range(1, args.sagas + 1)):
            try:
                statuses.append(str(runner.record(saga_id).status))
            except UnknownRun:  # (killed before it began: attack19's S1)
                raise UnknownRun(
                    f"DBOS has no saga {saga_id!r} in {args.dbos}: it never began there (a "
                    "process killed before it, or another --prefix or --sagas); resumed "
                    f"before it: {' '.join(statuses) or 'none'}"
                ) from None
        return statuses


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run sagas on a world database until killed.")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--journal", type=Path)
    where.add_argument("--dbos", type=Path, help="run them as DBOS workflows on this file")
    parser.add_argument("--resume", action="store_true", help="(DBOS) finish what was left")
    parser.add_argument("--world", required=True, type=Path)
    parser.add_argument("--prefix", default="saga")
    parser.add_argument("--sagas", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--fail-every", type=int, default=0)
    parser.add_argument("--undo-fails-every", type=int, default=0)
    parser.add_argument("--register", choices=REGISTERS, default="before")
    parser.add_argument("--pivot", action="store_true", help="charge -> email (pivot) -> ship")
    parser.add_argument("--graph", action="store_true", help="(DBOS) step1, step2 and step3 "
                        "at once, step4")  # fmt: skip
    parser.add_argument("--at-once", action="store_true", help="(DBOS, --graph) run the "
                        "branches at the same time")  # fmt: skip
    parser.add_argument("--kill-at", type=int, help="SIGKILL itself at this checkpoint number")
    parser.add_argument("--pause-at", help="stop at this checkpoint ('after step2') and wait")
    args = parser.parse_args(argv)
    ignored = [  # flags this mode would drop: refused, not run as another saga than asked
        flag for flag, given in (
            ("--pivot", args.pivot and (args.dbos is not None or args.graph)),
            ("--graph", args.graph and args.dbos is None),
            ("--at-once", args.at_once and not (args.graph and args.dbos is not None)),
            ("--steps", args.steps != 3 and args.graph),
            ("--register", args.register != "before" and args.graph),
            ("--resume", args.resume and args.dbos is None),
        ) if given
    ]  # fmt: skip
    if ignored:
        parser.error(f"{', '.join(ignored)} cannot be used in this mode (see --help)")
    checkpoint.kill_at = args.kill_at or checkpoint.kill_at
    checkpoint.pause_at = args.pause_at or checkpoint.pause_at
    if args.dbos is not None:
        try:
            print(" ".join(_on_dbos(args)), flush=True)
        except RollbackLessonsError as exc:  # (another live crashlab on the file, a folder
            print(f"crashlab: {exc}", file=sys.stderr)  # missing, a saga never begun): one line
            return 2
        return 0
    try:
        with Journal(args.journal) as journal:
            statuses = run_sagas(
                journal, str(args.world), args.prefix, args.sagas, args.steps,
                args.fail_every, args.undo_fails_every, args.register, args.pivot,
            )  # fmt: skip
    except JournalError as exc:  # (a full disk before a saga began, say): one line
        print(f"crashlab: {exc}", file=sys.stderr)
        return 2
    print(" ".join(statuses), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
