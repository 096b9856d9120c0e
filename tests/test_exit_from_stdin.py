"""A ``sys.exit`` that ends a run in a script read from stdin (``python - < file``, ``-c``):
its ``__main__`` has no source, and the warning that says the exit's notes (Python never
prints them) failed in ``warnings.warn_explicit`` (linecache's ImportError): no warning, and
a false note that the SystemExit "refused these notes" (attack143 F1)."""

import subprocess
import sys

SCRIPT = """
from rollback_lessons import Saga, Step

def b(state):
    raise SystemExit(3)

def undo_a(state):
    raise RuntimeError("undo a broke")

try:
    Saga([Step("a", lambda s: None, undo_a), Step("b", b)], name="exits").run({})
except SystemExit as exc:
    print(exc.__notes__)
"""


def test_an_exit_in_a_script_read_from_stdin_is_said_on_stderr_and_never_said_refused():
    ran = subprocess.run([sys.executable, "-"], input=SCRIPT, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "refused" not in ran.stdout, ran.stdout
    assert "undo of a: RuntimeError('undo a broke')" in ran.stdout
    assert "saga 'exits' ended by sys.exit(3), whose notes Python never prints" in ran.stderr
