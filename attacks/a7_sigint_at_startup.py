"""Item 2: a Ctrl-C in the first tens of milliseconds of `rollback-lessons ...` (the
interpreter's own start-up: `site`, the editable install's .pth finder, the standard
streams) prints a traceback ("Fatal Python error: init_import_site" / "init_sys_streams")
and exits 1, although the README promises one line and exit 130 "even while the command is
still starting". Rarer, and in the package's reach: a traceback ending at the console
script's own line `from rollback_lessons.cli import main` (KeyboardInterrupt while the
package is being found/loaded, before its __init__ installs _starting). Sends SIGINT at 20..120 ms after the start, with a second invocation
running beside it (as under load).

    .venv/bin/python attacks/a7_sigint_at_startup.py
"""

import collections
import os
import signal
import subprocess
import tempfile
import time

BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".venv", "bin", "rollback-lessons")
d = tempfile.mkdtemp()
seen = collections.Counter()
example = None
for i in range(40):
    p = subprocess.Popen([BIN, "demo"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=d)
    q = subprocess.Popen([BIN, "demo"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=d)
    time.sleep(0.02 + 0.0025 * i)
    p.send_signal(signal.SIGINT)
    err = p.communicate()[1]
    q.wait()
    lines = err.strip().splitlines()
    if "Traceback" in err:
        seen[f"traceback, rc={p.returncode}"] += 1
        example = example or err
    elif p.returncode == 130 and len(lines) == 1:
        seen["one line, 130"] += 1
    else:
        seen[f"rc={p.returncode} {lines[-1:]}"] += 1
print(dict(seen))
if example:
    print("example:\n" + "\n".join(example.splitlines()[:4]) + "\n  ...\n" + example.splitlines()[-1])
