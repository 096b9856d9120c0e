"""Issue 25, attack23's F3 and F7: how every CLI command ends when something other than
argparse calls ``sys.exit`` (a registry's SIGTERM handler turning the signal into
``sys.exit(0)``, between two undos of ``recover``), and the registry and disk odds and ends.

F3: ``cli.main`` took any ``SystemExit`` with a false code for argparse's ``--help``: exit
0, not a word, the saga left ``rolling_back``. Now only argparse's own exit (``UsageExit``)
is; any other is an interrupt: one line naming what is left, never exit 0.
"""

import sqlite3
import sys

import pytest
from conftest import dead_pid

from rollback_lessons import Saga, Step, cli
from rollback_lessons.cli import main
from rollback_lessons.durable import recovery
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry

CALLS: list[str] = []
registry = Registry()  # (importable by name: ``--registry test_cli_exits``)


def UNDO(step, idempotency_key=None):
    CALLS.append(step)


COMP = registry.add("exits.undo", UNDO)


def _crashed(tmp_path, steps="abc"):
    """A journal whose saga (steps undone by exits.undo, then one that fails) crashed
    before its first undo: all its undos pending, its owner dead."""
    path = tmp_path / "j.db"
    saga = Saga([Step(k, lambda s: None, COMP.bind(step=k)) for k in steps]
                + [Step("z", lambda s: 1 / 0)])  # fmt: skip

    def crash(event):
        if event.kind == "undo":
            raise KeyboardInterrupt

    with Journal(path) as journal, pytest.raises(KeyboardInterrupt):
        saga.run({}, journal=journal, run_id="s", on_event=crash)
    con = sqlite3.connect(path)
    con.execute("UPDATE sagas SET owner_pid = ?, owner_started = NULL", (dead_pid(),))
    con.commit()
    con.close()
    CALLS.clear()
    return path


def _exits_after(monkeypatch, n: int, code: object) -> None:
    """``sys.exit(code)`` in recover after its ``n``-th undo ran, outside any undo (where a
    signal handler's exit lands between two undos: the write of what the undo did)."""
    real = recovery._Writer.undo_ran
    count = [0]

    def undo_ran(self, run):
        real(self, run)
        count[0] += 1
        if count[0] == n:
            sys.exit(code)

    monkeypatch.setattr(recovery._Writer, "undo_ran", undo_ran)


@pytest.mark.parametrize(("code", "status"), [(0, 2), (None, 2), (143, 143), ("bye", 2)])
def test_a_sys_exit_between_two_undos_of_recover_is_an_interrupt(
    tmp_path, monkeypatch, capsys, code, status
):
    """The defect: exit 0 and not a word (code 0), or exit 143 and not a word, the saga
    left rolling_back. Now one line naming the saga left, a failure status (a handler's
    own failure code kept), and the next recover finishes it."""
    path = _crashed(tmp_path)
    _exits_after(monkeypatch, 1, code)
    assert main(["recover", str(path), "--registry", "test_cli_exits"]) == status
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1, err
    assert f"recover interrupted (sys.exit({code!r}) was called" in err
    assert "left unfinished for the next recover: saga(s) 's'" in err
    assert CALLS == ["c"]
    monkeypatch.undo()
    with Journal(path) as journal:
        assert journal.saga("s").status == "rolling_back"
        [done] = recover(journal, registry).recovered
    assert str(done.status) == "rolled_back" and CALLS == ["c", "b", "a"]


def test_a_sys_exit_inside_an_undo_keeps_its_failure_code(tmp_path, monkeypatch, capsys):
    """The same signal landing inside an undo: the same status as between two undos."""
    path = _crashed(tmp_path)

    def undo(step, idempotency_key=None):
        if step == "b":
            sys.exit(143)
        UNDO(step)

    monkeypatch.setitem(registry._fns, "exits.undo", undo)
    assert main(["recover", str(path), "--registry", "test_cli_exits"]) == 143
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "called sys.exit(143)" in err
    assert CALLS == ["c"]


def test_a_recover_interrupted_after_finishing_a_saga_says_none_is_left(
    tmp_path, monkeypatch, capsys
):
    """The exit after the last undo (its saga written as finished): nothing claimed is
    left, and it says so; still not a success (the command was cut short)."""
    path = _crashed(tmp_path, steps="a")
    real = recovery._Writer.finished

    def finished(self, run, report):
        real(self, run, report)
        self.flush()
        sys.exit(0)

    monkeypatch.setattr(recovery._Writer, "finished", finished)
    assert main(["recover", str(path), "--registry", "test_cli_exits"]) == 2
    out, err = capsys.readouterr()
    assert out.startswith("s (saga): rolled_back")  # the saga it finished, told
    assert len(err.splitlines()) == 1 and "no saga it claimed is left unfinished" in err


def test_a_sys_exit_in_every_other_command_is_one_line_and_a_failure(tmp_path, monkeypatch, capsys):
    """demo, journal show, journal settle: the same rule (before: exit 0, nothing said)."""
    path = _crashed(tmp_path)

    def exits(*args, **kwargs):
        sys.exit(0)

    monkeypatch.setattr(cli, "run_demo", exits)
    assert main(["demo"]) == 2
    monkeypatch.setattr(Journal, "table", exits)
    assert main(["journal", "show", str(path)]) == 2
    monkeypatch.setattr(Journal, "settle", exits)
    assert main(["journal", "settle", str(path), "s", "--note", "done by hand"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3 and all("sys.exit(0) was called" in line for line in lines)
    assert lines[0].endswith("the command did not finish")
    assert "before the settle was written: nothing was settled" in lines[2]


def test_argparse_own_exits_stay_what_they_were(capsys):
    """--help: its text, exit 0; a usage error: argparse's lines, SystemExit(2)."""
    assert main(["--help"]) == 0
    assert "usage:" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--fail-at", "nope"])
    assert exit_.value.code == 2 and "invalid choice" in capsys.readouterr().err
