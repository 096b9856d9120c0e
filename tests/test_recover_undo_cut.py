"""A Ctrl-C in ``recover`` during an undo, here right after its call returned (attack75 F3):
its done is not written, so the next recover runs it again. The CLI's line said "what it
undid is recorded" (exit 130) and nothing of that undo; a ``sys.exit`` there was told right."""

from __future__ import annotations

import subprocess
import sys

import pytest
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


NASTY_REG = """
from rollback_lessons.durable.registry import Registry

class Nasty(Exception):
    def __repr__(self):
        raise {raised}
    __str__ = __repr__

def undo(step, idempotency_key=None):
    if step == "b":
        raise Nasty("refund refused")
    print("UNDID", step)

registry = Registry()
registry.add("u", undo)
"""


def _crashed_with(tmp_path, module: str, text: str) -> tuple[list[str], dict[str, str]]:
    """Saga 's' (a, b, c undone by 'u'; d fails) crashed at its first undo, and the recover
    command that loads registry ``module`` (``text``) instead of the printing one."""
    path = tmp_path / "j.db"
    steps = [Step(k, lambda _: None, undo.bind(step=k)) for k in "abc"]
    crash_at_first_undo(path, Saga([*steps, Step("d", fails)]))
    command, env = recover_command(tmp_path, path)
    (tmp_path / f"{module}.py").write_text(text)
    command[command.index("printing_reg")] = module
    return command, env


@pytest.mark.parametrize(
    ("raised", "said", "status"),
    [("KeyboardInterrupt('from repr')", "KeyboardInterrupt('from repr')", 2),
     ("SystemExit(0)", "SystemExit(0)", 2), ("SystemExit(3)", "SystemExit(3)", 3)],
)  # fmt: skip
def test_an_undo_whose_errors_repr_raises_an_interrupt_is_named_not_a_ctrl_c(
    tmp_path, raised, said, status
):
    """attack91 F5: an undo's error whose repr raises a KeyboardInterrupt (or a SystemExit)
    as recover tells it. Without the fix: "recover interrupted (Ctrl-C); ... left unfinished
    for the next recover: saga 's'" (exit 130; a sys.exit's "(a signal handler's?)"),
    naming neither the undo nor its error, and a Ctrl-C nobody sent."""
    command, env = _crashed_with(tmp_path, "nasty_reg", NASTY_REG.format(raised=raised))
    for undid in (["UNDID", "c"], []):  # (the next recover alike: c's undo recorded done)
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert (done.returncode, done.stdout.split()) == (status, undid), done.stderr
        assert done.stderr == (
            f"rollback-lessons: the undo of 'b' (saga 's') raised Nasty, whose repr raised "
            f"{said} (an interrupt; no Ctrl-C was sent): recover stopped there; the saga is "
            "left unfinished, that undo pending, for the next recover, which stops there again "
            "until the compensation or its error is fixed\n"
        )


def test_an_undo_raising_an_interrupt_whose_repr_raises_is_told_by_its_type(tmp_path):
    """(attack91 F5, the same for an undo that raises a BaseException of its own: its repr
    raising a KeyboardInterrupt as recover described it ended recover as a Ctrl-C.)"""
    path = tmp_path / "j.db"
    steps = [Step(k, lambda _: None, undo.bind(step=k)) for k in "abc"]
    crash_at_first_undo(path, Saga([*steps, Step("d", fails)]))
    command, env = recover_command(tmp_path, path)
    (tmp_path / "stop_reg.py").write_text(
        NASTY_REG.format(raised="KeyboardInterrupt").replace("(Exception)", "(BaseException)")
    )
    command[command.index("printing_reg")] = "stop_reg"
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout.split()) == (2, ["UNDID", "c"]), done.stderr
    assert done.stderr == (
        "rollback-lessons: the undo of 'b' (saga 's') raised <Nasty (its repr failed)> (an "
        "interrupt): recover stopped there; the saga is left unfinished, the undos not recorded "
        "done pending, for the next recover\n"
    )


RAISING_REG = """
from rollback_lessons.durable.registry import Registry

def undo(step, idempotency_key=None):
    if step == "b":
        raise KeyboardInterrupt  # (a client library's own use of it: no Ctrl-C)
    print("UNDID", step)

class Asked(Registry):
    def resolve(self, name):
        raise KeyboardInterrupt

registry = {registry}()
registry.add("u", undo)
"""


@pytest.mark.parametrize("default", [None, "signal.default_int_handler", "signal.SIG_DFL"])
@pytest.mark.parametrize(
    ("registry", "undid", "during"),
    [("Registry", ["UNDID", "c"], " during the undo of 'b' (saga 's')"), ("Asked", [], "")],
)
def test_a_keyboard_interrupt_an_undo_or_a_lookup_raises_is_not_told_as_a_ctrl_c(
    tmp_path, registry, undid, during, default
):
    """attack281 F3: an undo's body (or a registry's lookup) raising KeyboardInterrupt
    itself, no Ctrl-C sent, was "recover interrupted (Ctrl-C)", exit 130, on every recover;
    nothing pointed at the code. Now said so, exit 2 (what it undid before is recorded).
    Also where the registry (a library it loads) put Python's default handler back
    (attack286 F11: "Ctrl-C" again, exit 130)."""
    text = RAISING_REG.format(registry=registry)
    if default:  # (attack294 F5: SIG_DFL too, a Ctrl-C then killing recover, no line)
        text += f"import signal\nsignal.signal(signal.SIGINT, {default})\n"
    command, env = _crashed_with(tmp_path, "raising_reg", text)
    for undone in (undid, []):  # (the next recover alike: c's undo recorded done)
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert (done.returncode, done.stdout.split()) == (2, undone), done.stderr
        assert done.stderr.startswith(
            "rollback-lessons: recover interrupted (a KeyboardInterrupt the code it ran "
            f"raised; no Ctrl-C was sent){during}"
        ), done.stderr
        assert done.stderr.count("\n") == 1, done.stderr


SIGTERM_REG = """
import os, signal, time
from rollback_lessons.durable.registry import Registry

signal.signal(signal.SIGTERM, signal.SIG_DFL)  # (as a library it loads may)
registry = Registry()

def undo(step, idempotency_key=None):
    print("UNDID", step, flush=True)
    if step == "c":
        os.kill(os.getpid(), signal.SIGTERM)  # (a service manager's stop, as it runs)
        time.sleep(5)

registry.add("u", undo)
"""


def test_a_registry_that_puts_sigterm_s_default_back_still_gets_the_commands_line(tmp_path):
    """attack298 F1: a registry setting SIGTERM to SIG_DFL as it loads: a SIGTERM during
    recover killed it, no line, exit -15, the undo it cut named nowhere."""
    command, env = _crashed_with(tmp_path, "term_reg", SIGTERM_REG)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 143 and done.stdout.split() == ["UNDID", "c"], done
    assert done.stderr.startswith("rollback-lessons: recover interrupted (SIGTERM) during the "
                                  "undo of 'c' (saga 's')"), done.stderr  # fmt: skip


MEDDLING_REG = """
import os, signal, time
from rollback_lessons.durable.registry import Registry

registry = Registry()

def undo(step, idempotency_key=None):
    print("UNDID", step, flush=True)
    if step == "c":  # (a client library's call, as it runs: its signals left so)
        {meddles}
    if step == "b":
        os.kill(os.getpid(), signal.{sent})  # (a Ctrl-C, a service manager's stop)
        time.sleep(5)

registry.add("u", undo)
"""


@pytest.mark.parametrize(
    ("meddles", "sent"),
    [
        ("signal.signal(signal.SIGINT, signal.SIG_DFL)", "SIGINT"),
        ("signal.signal(signal.SIGINT, signal.default_int_handler)", "SIGINT"),
        ("signal.signal(signal.SIGTERM, signal.SIG_DFL)", "SIGTERM"),
        ("signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})", "SIGINT"),
        ("signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})", "SIGTERM"),
        ("signal.signal(signal.SIGINT, signal.SIG_IGN)", "SIGINT"),  # (attack299 F4)
        ("signal.signal(signal.SIGTERM, signal.SIG_IGN)", "SIGTERM"),
    ],
)
def test_an_undo_that_meddles_with_the_signals_leaves_the_next_one_heard(tmp_path, meddles, sent):
    """attack298 F1, F2: an undo putting a signal's default back (killed by the next one,
    no line, the undo it cut named nowhere) or blocking it (a later Ctrl-C never heard:
    every saga finished, exit 0). Once an undo is recorded, the command's handlers and
    mask are its own again: the next undo's signal is the one line, 130 or 143."""
    text = MEDDLING_REG.format(meddles=meddles, sent=sent)
    command, env = _crashed_with(tmp_path, "meddling_reg", text)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    why, status = ("Ctrl-C", 130) if sent == "SIGINT" else ("SIGTERM", 143)
    assert (done.returncode, done.stdout.split()) == (status, ["UNDID", "c", "UNDID", "b"]), done
    assert done.stderr.startswith(
        f"rollback-lessons: recover interrupted ({why}) during the undo of 'b' (saga 's'), "
        "not recorded done"
    ), done.stderr
    assert done.stderr.count("\n") == 1, done.stderr


FORKING_REG = """
import os, signal, time
from rollback_lessons.durable.registry import Registry

registry = Registry()

def undo(step, idempotency_key=None):
    print("UNDID", step, flush=True)
    if step == "c":  # (a Ctrl-C that lands as a fork's hook runs: logging's, attack299 F2)
        os.register_at_fork(after_in_parent=lambda: os.kill(os.getpid(), signal.SIGINT))
        child = os.fork()
        if child == 0:
            os._exit(0)
        os.waitpid(child, 0)

registry.add("u", undo)
"""

BLOCKING_REG = """
import os, signal, time
from rollback_lessons.durable.registry import Registry

signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # (as a library it loads may)
registry = Registry()

def undo(step, idempotency_key=None):
    print("UNDID", step, flush=True)
    if step == "c":
        os.kill(os.getpid(), signal.SIGINT)  # (a Ctrl-C as the first undo runs)
        time.sleep(5)

registry.add("u", undo)
"""


HOOKED = "import sys\nsys.unraisablehook = lambda unraisable: None  # (its own, at load)\n"
WAKING = """import os, signal
r, w = os.pipe()  # (a wakeup fd no loop drains: full, every write to it fails)
os.set_blocking(w, False)
try:
    while True:
        os.write(w, b"x" * 65536)
except BlockingIOError:
    pass
signal.set_wakeup_fd(w)
"""


@pytest.mark.parametrize(
    ("module", "during"),
    [(FORKING_REG, ""), (BLOCKING_REG, "c"), (HOOKED + FORKING_REG, ""),  # (attack300 F3)
     (WAKING + BLOCKING_REG, "c"),  # (F1: a traceback of Python's before the line)
     (FORKING_REG.replace("os.waitpid(child, 0)", "os.waitpid(child, 0)\n        time.sleep(30)"),
      "c")],  # (F2: then blocked, as on a pool whose worker the Ctrl-C killed: heard there)
)  # fmt: skip
def test_a_ctrl_c_python_discards_or_a_registry_blocks_is_heard(tmp_path, module, during):
    """attack299 F2: a Ctrl-C landing as an undo's fork ran its hooks (logging's, in the
    recover process) was raised there, where Python discards it: every undo ran, exit 0,
    an "Exception ignored" traceback or nothing. Now heard once that undo is recorded.
    F5: a registry blocking the signal as it loads: heard only once the first undo ended
    (2.9 s late). Now unblocked once it is loaded."""
    command, env = _crashed_with(tmp_path, "signals_reg", module)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout.split()) == (130, ["UNDID", "c"]), done
    where = f" during the undo of '{during}' (saga 's'), not recorded done" if during else ";"
    assert done.stderr.startswith(f"rollback-lessons: recover interrupted (Ctrl-C){where}"), done
    assert done.stderr.count("\n") == 1, done.stderr
