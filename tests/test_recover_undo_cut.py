"""A Ctrl-C in ``recover`` during an undo, here right after its call returned (attack75 F3):
its done is not written, so the next recover runs it again. The CLI's line said "what it
undid is recorded" (exit 130) and nothing of that undo; a ``sys.exit`` there was told right."""

from __future__ import annotations

import subprocess
import sys

from conftest import crash_at_first_undo, recover_command

from rollback_lessons import Saga, Step
from rollback_lessons.durable.registry import Registry, compensation

registry = Registry()


@compensation("u", registry)
def undo(step: str, idempotency_key: str | None = None) -> None:
    """(Run by recover in its own process: the registry there prints instead.)"""


def fails(_: object) -> None:
    raise RuntimeError("d failed")


CUT = """
import inspect, runpy, sys

def at_return(frame, event, arg):  # the undo's call returned: its result looked at next
    if event == "call" and frame.f_code is inspect.isawaitable.__code__:
        if frame.f_back.f_code.co_name == "attempt":
            sys.settrace(None)
            raise KeyboardInterrupt
    return None

sys.argv = ["rollback_lessons", *sys.argv[1:]]
sys.settrace(at_return)
runpy.run_module("rollback_lessons", run_name="__main__")
"""


def test_a_ctrl_c_as_an_undo_returned_says_that_undo_runs_again(tmp_path):
    """Without the fix: "recover interrupted (Ctrl-C); what it undid is recorded", then the
    next recover ran c again, unannounced."""
    path = tmp_path / "j.db"
    steps = [Step(k, lambda _: None, undo.bind(step=k)) for k in "abc"]
    crash_at_first_undo(path, Saga([*steps, Step("d", fails)]))  # (its undos left pending)
    command, env = recover_command(tmp_path, path)
    cut = subprocess.run(
        [sys.executable, "-c", CUT, *command[3:]], env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert (cut.returncode, cut.stdout.split()) == (130, ["UNDID", "c"]), cut.stderr
    assert cut.stderr == (
        "rollback-lessons: recover interrupted (Ctrl-C) during the undo of 'c' (saga 's'), not "
        "recorded done: it runs again next time (same idempotency key); what it undid before "
        "it is recorded, and left unfinished for the next recover: saga 's'\n"
    )
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert [line for line in again.stdout.splitlines() if line.startswith("UNDID")] == [
        "UNDID c", "UNDID b", "UNDID a"
    ]  # fmt: skip
