"""Item 2: the CLI's errors. Each command must end with one line on stderr, a non-zero
exit, no traceback. Prints each case that does not.

    .venv/bin/python attacks/a2_cli_errors.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.path.join(ROOT, ".venv", "bin", "rollback-lessons")
CRASHLAB = [sys.executable, "-m", "rollback_lessons.worlds.crashlab"]
d = tempfile.mkdtemp()
good = os.path.join(d, "good.db")
world = os.path.join(d, "world.db")
# a journal with one unfinished saga (crashlab killed at its 4th checkpoint)
subprocess.run([*CRASHLAB, "--journal", good, "--world", world, "--fail-every", "1",
                "--kill-at", "4"], cwd=ROOT, capture_output=True)
os.symlink("/nonexistent/target", os.path.join(d, "dangling.db"))
os.mkdir(os.path.join(d, "dir.db"))
with open(os.path.join(d, "text.db"), "w") as f:
    f.write("hello\n")
os.mkfifo(os.path.join(d, "fifo.db"))

J = ["journal", "show"]
R = ["recover"]
REG = ["--registry", "rollback_lessons.worlds.crashlab"]
cases = {
    "show missing": J + [os.path.join(d, "missing.db")],
    "show dangling symlink": J + [os.path.join(d, "dangling.db")],
    "show directory": J + [os.path.join(d, "dir.db")],
    "show text file": J + [os.path.join(d, "text.db")],
    "show fifo": J + [os.path.join(d, "fifo.db")],
    "show /dev/null": J + ["/dev/null"],
    "show /dev/zero": J + ["/dev/zero"],
    "show /proc/self/status": J + ["/proc/self/status"],
    "show empty path": J + [""],
    "show ENAMETOOLONG": J + ["x" * 5000],
    "show component too long": J + [os.path.join(d, "y" * 300, "j.db")],
    "show path in a file": J + [os.path.join(d, "text.db", "j.db")],
    "show --wait nan": J + [good, "--wait", "nan"],
    "recover no registry flag": R + [good],
    "recover registry ''": R + [good, "--registry", ""],
    "recover registry '.'": R + [good, "--registry", "."],
    "recover registry '..x'": R + [good, "--registry", "..x"],
    "recover registry 'os.path'": R + [good, "--registry", "os.path"],
    "recover registry 'a b'": R + [good, "--registry", "a b"],
    "recover registry nul": R + [good, "--registry", "x\udcff"],
    "recover registry is a package dir without __init__": R + [good, "--registry", "attacks_nope.x"],
    "recover registry 'rollback_lessons.worlds.crashlab.registry'": R + [good, "--registry", "rollback_lessons.worlds.crashlab.registry"],
    "recover registry 'antigravity'": None,  # (opens a browser: skipped)
    "recover missing file": R + [os.path.join(d, "missing.db"), *REG],
    "recover directory": R + [os.path.join(d, "dir.db"), *REG],
    "recover /dev/null": R + ["/dev/null", *REG],
    "lab --port 0": ["lab", os.path.join(d, "lab"), "--port", "0"],
    "lab --port x": ["lab", os.path.join(d, "lab"), "--port", "x"],
    "lab dir is a file": ["lab", os.path.join(d, "text.db"), "--port", "1"],
    "lab dir under a file": ["lab", os.path.join(d, "text.db", "sub"), "--port", "1"],
    "lab dir name too long": ["lab", "z" * 300, "--port", "1"],
    "demo bad flag": ["demo", "--fail-at", "nope"],
    "journal no sub": ["journal"],
    "nothing": [],
    "unknown": ["frobnicate"],
}
bad = 0
for name, argv in cases.items():
    if argv is None:
        continue
    try:
        p = subprocess.run([BIN, *argv], capture_output=True, text=True, timeout=60, cwd=d,
                           errors="replace", stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        print(f"HANG      {name}")
        bad += 1
        continue
    err = p.stderr.strip().splitlines()
    usage = err and err[0].startswith("usage:") and ": error: " in err[-1]  # argparse's usage + one error line
    ok = p.returncode != 0 and "Traceback" not in p.stderr and (len(err) == 1 or usage)
    if not ok:
        bad += 1
    print(f"{'OK ' if ok else 'BAD'} rc={p.returncode:<4} {name}: {err[-1][:160] if err else '(no stderr)'}"
          + (f"  [{len(err)} lines]" if not ok else ""))
print("bad:", bad)
