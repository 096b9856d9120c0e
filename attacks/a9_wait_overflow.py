"""Item 2: `--wait SECONDS` above 2147483.647 (INT_MAX milliseconds, about 24.8 days) is
accepted as "a finite number of seconds" but then not waited at all: with the journal
locked by another process, recover gives up at once with "database is locked ... try
--wait". (SQLite's busy timeout is an int of milliseconds.) 2147483.647 waits as asked.

    .venv/bin/python attacks/a9_wait_overflow.py
"""

import os
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.path.join(ROOT, ".venv", "bin", "rollback-lessons")
d = tempfile.mkdtemp()
subprocess.run([sys.executable, "-m", "rollback_lessons.worlds.crashlab", "--journal", f"{d}/j.db",
                "--world", f"{d}/w.db", "--fail-every", "1", "--kill-at", "4"], cwd=ROOT, capture_output=True)
lock = sqlite3.connect(f"{d}/j.db", isolation_level=None)
lock.execute("BEGIN EXCLUSIVE")  # another process holds the journal
for wait in ("2147483.647", "2147483.648", "1e9"):
    t = time.time()
    try:
        p = subprocess.run([BIN, "recover", f"{d}/j.db", "--registry", "rollback_lessons.worlds.crashlab",
                            "--wait", wait], capture_output=True, text=True, timeout=4)
        print(f"--wait {wait}: gave up after {time.time() - t:.1f} s, exit {p.returncode}: {p.stderr.strip()}")
    except subprocess.TimeoutExpired:
        print(f"--wait {wait}: still waiting after 4 s, as asked")
