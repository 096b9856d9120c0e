"""A Ctrl-C or ``sys.exit`` at the command's last instants (its work done and printed):
one line and its status, never a traceback nor a silent exit 0. attack121 F1: a Python call
in ``main``'s last ``finally`` (unbinding its stdout) was an instant a real signal's handler
runs at, outside every guard: ``journal show`` ended in a raw traceback (Ctrl-C) or exit 0
(``sys.exit``). Raised at the entry of every function the command calls once its output is
flushed, as a signal's handler would be."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from rollback_lessons import Saga, Step, _output
from rollback_lessons.cli import main
from rollback_lessons.durable.journal import Journal


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_after_the_commands_output_is_one_line_and_its_status(tmp_path, capsys, kind):
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        Saga([Step("a", lambda s: None)], name="s").run({}, journal=journal, run_id="r1")
    flushed = [False]
    calls = [0]

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if event != "call":
            return None
        if frame.f_code is _output._Stdout.flush.__code__:
            flushed[0] = True  # (its output out: what follows is the command's end)
        elif flushed[0] and frame.f_code.co_filename.startswith(_output.__file__[:-10]):
            calls[0] += 1
            sys.settrace(None)
            raise kind()
        return None

    sys.settrace(tracer)
    try:
        status = main(["journal", "show", str(path)])
    except (KeyboardInterrupt, SystemExit) as escaped:  # (a traceback, or a silent exit)
        pytest.fail(f"{escaped!r} escaped the command at its end")
    finally:
        sys.settrace(None)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if calls[0]:  # (an instant there was cut: said, never exit 0)
        assert status != 0 and err.count("\n") == 1, (status, err)
