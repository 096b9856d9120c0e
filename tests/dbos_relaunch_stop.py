"""A saga on DBOS killed in its rollback, then a launch on the same file that stops it at
once (attack164 F3), run as ``python tests/dbos_relaunch_stop.py DB WORLD PHASE``:

- ``first``: a, b, c (c fails): b's undo runs, then the process dies (SIGKILL) as a's begins;
  ``first-in-c``: the process dies in c's action (its intent saved: it may have happened).
- ``stop``: a launch that hosts the run (``sagas=``) and ``handle_for(...).stop()`` at once.
- ``bare``: a launch whose workflow hears a bare ``DBOS.cancel_workflow`` as its replay begins.
- ``at-c``: a launch whose workflow hears one as it has replayed c's intent (attack166 F2).

The launches print the outcome (or the one line it raised) as JSON; the world file gets a
line per call."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading

from rollback_lessons import Saga, Step

DB, WORLD, PHASE = sys.argv[1:4]
RID = "relaunched"


def said(line: str) -> None:
    with open(WORLD, "a") as world:
        world.write(f"{PHASE}: {line}\n")


def saga() -> Saga:
    def undo_a(state: object) -> None:
        if PHASE == "first":
            os.kill(os.getpid(), signal.SIGKILL)
        said("undone a")

    def fails(state: object) -> None:
        said("did c")
        if PHASE == "first-in-c":
            os.kill(os.getpid(), signal.SIGKILL)
        raise ValueError("no seats")

    return Saga([Step("a", lambda s: said("did a"), undo_a),
                 Step("b", lambda s: said("did b"), lambda s: said("undone b")),
                 Step("c", fails)], name="relaunch-stop")  # fmt: skip


def main() -> None:
    from rollback_lessons.runners.dbos import DBOSRunner, StoppedUnrecorded

    if PHASE.startswith("first"):
        with DBOSRunner.start(DB) as runner:
            runner.run(saga(), {}, run_id=RID)
        return
    if PHASE == "bare":  # the cancel as the resumed workflow begins to replay
        from dbos import DBOS

        from rollback_lessons.runners.dbos import replay, stops

        begin, take, taken = replay.begin, stops.take, threading.Event()

        def cancelled_as_it_begins(run_id: str) -> None:
            begin(run_id)
            cancel = threading.Thread(target=DBOS.cancel_workflow, args=(run_id,))
            cancel.start()
            cancel.join()
            taken.wait(5)  # (the outcome read as the run is not yet live here: s79, once
            # under load it was told as stopped "before it ran here")

        def taking(*args: object) -> object:
            threading.Timer(0.3, taken.set).start()  # (the run goes on as it is read)
            return take(*args)

        replay.begin = cancelled_as_it_begins  # type: ignore[assignment]
        stops.take = taking  # type: ignore[assignment]
    if PHASE == "at-c":  # the cancel once c's intent (the dead launch's) was replayed
        from dbos import DBOS

        from rollback_lessons.runners.dbos import workflow

        began = workflow.began

        def then_cancelled(step: str) -> str:
            intent = began(step)
            if step == "c":
                cancel = threading.Thread(target=DBOS.cancel_workflow, args=(RID,))
                cancel.start()
                cancel.join()
            return intent

        workflow.began = then_cancelled  # type: ignore[assignment]
    with DBOSRunner.start(DB, sagas={"relaunch-stop": lambda run_id: saga()}) as runner:
        handle = runner.handle_for(saga(), RID)
        if PHASE == "stop":
            handle.stop()
        try:
            o = handle.outcome()
        except StoppedUnrecorded as exc:
            print(json.dumps({"raised": str(exc)}))
            return
        print(json.dumps({"status": o.status.value, "compensated": o.compensated,
                          "pending": o.pending, "leaked": o.leaked, "notes": o.notes}))  # fmt: skip


if __name__ == "__main__":
    main()
