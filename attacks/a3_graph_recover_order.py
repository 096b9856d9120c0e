"""Item 3: recover of a graph saga killed (SIGKILL) mid-compensation: is every undo run
once, and in the declared undo order (reverse_start / by_dependency / reverse)?

    .venv/bin/python attacks/a3_graph_recover_order.py

For each undo order, each completion order of the group and each kill point k (the k-th
undo call, before its effect), a child process runs the saga with a journal and dies;
then `recover` (in this process) finishes it. The world's own record (table calls) gives
the order the undos really ran in; it is compared with the uninterrupted run's order.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from attacks import graphworld as gw  # noqa: E402
from rollback_lessons.durable.journal import Journal  # noqa: E402
from rollback_lessons.durable.recovery import recover  # noqa: E402

CHILD = """
import sys, json
sys.path.insert(0, {root!r})
from attacks import graphworld as gw
from rollback_lessons.durable.journal import Journal
order, completion, world, jpath = json.loads(sys.argv[1])
with Journal(jpath) as j:
    o = gw.saga(world, "s1").run({{}}, inject={{"F": "fail"}}, undo_order=order,
        completion=completion, journal=j, run_id="s1")
print(o.status, o.compensated)
"""


def calls(world: str) -> list[str]:
    c = gw.con(world)
    out = [r[0] for r in c.execute("SELECT step FROM calls ORDER BY n")]
    c.close()
    return out


def trial(order, completion, kill):
    import json

    d = tempfile.mkdtemp()
    world, jpath = os.path.join(d, "w.db"), os.path.join(d, "j.db")
    gw.con(world).close()
    env = dict(os.environ, KILL_AT=str(kill) if kill else "")
    root = os.path.join(os.path.dirname(__file__), "..")
    p = subprocess.run([sys.executable, "-c", CHILD.format(root=root),
                        json.dumps([order, completion, world, jpath])],
                       env=env, capture_output=True, text=True)
    status = p.stdout.strip()
    report = None
    if kill:
        with Journal(jpath) as j:
            report = recover(j, gw.registry)
        status = f"killed rc={p.returncode}; after recover: " + "; ".join(
            f"{r.saga_id} {r.status}" for r in report.recovered)
    return calls(world), status


def bad_dependency(seq):
    for i, s in enumerate(seq):
        for later in seq[i + 1:]:
            if later in gw.DEPENDANTS[s]:
                return f"{s} undone before its dependant {later}"
    return None


problems = 0
for order in ("reverse_start", "by_dependency", "reverse"):
    for perm in itertools.permutations(["A", "B", "D"]):
        completion = list(perm) + ["C", "E"]
        ref, st = trial(order, completion, None)
        for kill in range(1, len(ref) + 1):
            got, status = trial(order, completion, kill)
            doubled = [s for s in set(got) if got.count(s) > 1]
            missing = sorted(set(ref) - set(got))
            bad = bad_dependency(got)
            if got != ref or doubled or missing or bad:
                problems += 1
                print(f"{order:13} completion={''.join(completion)} kill@{kill}: "
                      f"in process {ref} | killed+recover {got}"
                      f"{' DOUBLED ' + str(doubled) if doubled else ''}"
                      f"{' MISSING ' + str(missing) if missing else ''}"
                      f"{' DEPENDENCY ' + bad if bad else ''}  [{status}]")
print("trials with an undo order other than in process:", problems)
