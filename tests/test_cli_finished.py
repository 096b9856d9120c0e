"""A Ctrl-C or a sys.exit heard once a command had finished (its work done and said, as
``journal_command`` returns: attack60 F2): said so, with the command's own status, not
"interrupted (Ctrl-C)" nor "the command did not finish" (exit 2) of a settle written."""

from __future__ import annotations

import sys

import pytest

from rollback_lessons.cli import main
from rollback_lessons.durable.journal import Journal


def _recover(tmp_path, monkeypatch) -> list[str]:  # type: ignore[no-untyped-def]
    """``recover`` of an empty journal, with a registry module of its own."""
    (tmp_path / "empty_reg.py").write_text(
        "from rollback_lessons.durable.registry import Registry\nregistry = Registry()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    Journal(str(tmp_path / "j.db")).close()
    return ["recover", str(tmp_path / "j.db"), "--registry", "empty_reg"]


def _cut_as_it_returns(argv: list[str], cut: BaseException) -> int:
    def hook(frame, event, arg):  # type: ignore[no-untyped-def]
        if event == "return" and frame.f_code.co_name == "journal_command":
            sys.setprofile(None)
            raise cut

    sys.setprofile(hook)
    try:
        return main(argv)
    finally:
        sys.setprofile(None)


@pytest.mark.parametrize("cut", [KeyboardInterrupt(), SystemExit(0)])
def test_an_interrupt_as_recover_returns_says_it_had_finished(cut, tmp_path, capsys, monkeypatch):
    code = _cut_as_it_returns(_recover(tmp_path, monkeypatch), cut)
    err = capsys.readouterr().err  # (its work done, said so: the interrupt's status, as at
    assert code == (130 if isinstance(cut, KeyboardInterrupt) else 2), err  # the end: 299 F3)
    assert "once the command had finished: recover finished" in err, err
    assert "did not finish" not in err


def test_a_later_command_cut_before_it_finished_is_not_said_finished(tmp_path, capsys, monkeypatch):
    """The record of an earlier ``main`` in the same process is not this one's."""
    argv = _recover(tmp_path, monkeypatch)
    assert main(argv) == 0

    def hook(frame, event, arg):  # type: ignore[no-untyped-def]
        if event == "call" and frame.f_code.co_name == "journal_command":
            sys.setprofile(None)
            raise KeyboardInterrupt

    capsys.readouterr()
    sys.setprofile(hook)
    try:
        code = main(argv)
    finally:
        sys.setprofile(None)
    err = capsys.readouterr().err
    assert code == 130 and "once the command had finished" not in err, err
