"""Item 2: `rollback-lessons recover` on a full disk (RLIMIT_FSIZE: a write beyond it fails
with EFBIG, as on a full disk), at every size from the journal's size up. Each run must end
with one line and a non-zero exit, and a second recover (no limit) must finish the job:
every effect undone exactly once (the world's own record).

    .venv/bin/python attacks/a5_recover_disk_full.py [sagas] [step-bytes]
"""

from __future__ import annotations

import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PY = os.path.join(ROOT, ".venv", "bin", "python")
BIN = os.path.join(ROOT, ".venv", "bin", "rollback-lessons")
SAGAS = int(sys.argv[1]) if len(sys.argv) > 1 else 6
STEP = int(sys.argv[2]) if len(sys.argv) > 2 else 2048

src = tempfile.mkdtemp()
J, W = os.path.join(src, "j.db"), os.path.join(src, "w.db")
for n in range(SAGAS):  # each: 8 steps, killed before step8's effect
    subprocess.run([PY, "-m", "rollback_lessons.worlds.crashlab", "--journal", J, "--world", W,
                    "--prefix", f"p{n}", "--steps", "8", "--kill-at", "15"],
                   cwd=ROOT, capture_output=True)
shutil.copy(W, W + ".orig")  # the undos act on W (its path is in the journal): reset per trial
base = sum(os.path.getsize(os.path.join(src, f)) for f in os.listdir(src) if f.startswith("j.db"))


def world_problems(world):
    c = sqlite3.connect(world)
    eff = c.execute("SELECT saga, step, undone FROM effects").fetchall()
    applied = c.execute("SELECT saga, step, count(*) FROM undo_applied GROUP BY 1, 2").fetchall()
    c.close()
    out = [f"{s}:{t} not undone" for s, t, u in eff if not u]
    out += [f"{s}:{t} undone {k} times" for s, t, k in applied if k > 1]
    return out


bad = 0
trials = 0
for limit in range(0, 400_000, STEP):
    d = tempfile.mkdtemp()
    for f in os.listdir(src):
        if f.startswith("j.db"):
            shutil.copy(os.path.join(src, f), d)
    shutil.copy(W + ".orig", W)
    j, w = os.path.join(d, "j.db"), W
    big = max(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))

    def limited(limit=limit, big=big):
        resource.setrlimit(resource.RLIMIT_FSIZE, (big + limit, big + limit))

    p = subprocess.run([BIN, "recover", j, "--registry", "rollback_lessons.worlds.crashlab"],
                       capture_output=True, text=True, preexec_fn=limited, cwd=d)
    err = p.stderr.strip().splitlines()
    trials += 1
    q = subprocess.run([BIN, "recover", j, "--registry", "rollback_lessons.worlds.crashlab"],
                       capture_output=True, text=True, cwd=d)
    problems = world_problems(w)
    one_line = "Traceback" not in p.stderr and (p.returncode == 0 or len(err) >= 1)
    lines_ok = p.returncode == 0 or (len(err) == 1 or all(l.startswith("rollback-lessons:") for l in err))
    if problems or not one_line or not lines_ok or q.returncode not in (0,):
        bad += 1
        print(f"limit +{limit}: first rc={p.returncode} {err[-3:]} | second rc={q.returncode} "
              f"{q.stderr.strip().splitlines()[-1:]} | world: {problems[:4]}")
    shutil.rmtree(d)
    if p.returncode == 0:
        break
print(f"{trials} limits tried (journal {base} bytes), bad: {bad}")
