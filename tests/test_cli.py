"""The terminal demo, run as a user would: a subprocess."""

import os
import re
import subprocess
import sys

import pytest

from rollback_lessons.cli import CommandError, load_registry, main


def demo(*args):
    done = subprocess.run(
        [sys.executable, "-m", "rollback_lessons", "demo", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    return done


def test_demo_fail_at_step3_shows_reverse_undo_and_restored_state():
    done = demo("--fail-at", "step3")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.index("undo            step2") < out.index("undo            step1")
    assert "step_failed     step3" in out
    assert "state before  {'x': 0, 'y': 0, 'z': 0}" in out
    assert "state after   {'x': 0, 'y': 0, 'z': 0}" in out
    assert done.stderr == ""


def test_demo_without_flags_shows_a_commit_then_a_rollback():
    out = demo().stdout
    assert out.index("committed") < out.index("rolled_back")


@pytest.mark.parametrize(
    "flags, said",
    [(["--register", "before"], "register=before"), (["--policy", "halt"], "policy=halt"),
     (["--fault", "fail_after_effect"], "step3 fails (fail_after_effect)")],
)  # fmt: skip
def test_demo_without_fail_at_runs_both_runs_under_the_flags_given(flags, said):
    """attack36 F8: ``demo --register before`` ran the plain demo and printed register=after
    on every step; --policy and --fault were ignored too, silently. Now both runs take them,
    and their titles say so."""
    done = demo(*flags)
    assert done.returncode == 0, done.stderr
    titles = [line for line in done.stdout.splitlines() if line.startswith("==")]
    assert len(titles) == 2 and said in titles[-1], titles
    if "--register" in flags:
        assert "register=after" not in done.stdout.replace("== ", "")
        assert done.stdout.count("register=before") >= 6


@pytest.mark.parametrize(
    ("flags", "title"),
    [(["--undo-fails", "step2"], "== no step fails, --undo-fails step2 never struck"),
     (["--fail-at", "step2", "--undo-fails", "step1", "--undo-fails", "step3"],
      "== step2 fails (fail), --undo-fails step3 never struck"),
     (["--fail-at", "step3", "--undo-fails", "step1"], "== step3 fails (fail), policy=")],
)  # fmt: skip
def test_an_undo_fault_that_never_struck_is_said(flags, title):
    """attack41 F8: ``demo --undo-fails step2`` ran a commit titled "no step fails" and never
    said the undo fault could not strike (the panel says "never struck")."""
    done = demo(*flags)
    assert done.returncode == 0 and done.stdout.startswith(title), done.stdout[:200]


def test_demo_dead_letter_with_retry():
    out = demo("--fail-at", "step3", "--undo-fails", "step1", "--policy", "retry").stdout
    assert (
        "dead letters  step1: InjectedFault('undo of step1: injected failure') after 3 attempts"
        in out
    )
    assert "state after   {'x': 1, 'y': 0, 'z': 0}" in out


def test_demo_timeout_after_effect_register_before_is_undone():
    out = demo("--fail-at", "step2", "--fault", "fail_after_effect", "--register", "before").stdout
    assert "undone        step2, step1" in out
    after = demo("--fail-at", "step2", "--fault", "fail_after_effect").stdout
    assert "leaked        step2  (no undo logged for it)" in after


def test_demo_rejects_unknown_step_with_the_valid_choices():
    done = demo("--fail-at", "step9")
    assert done.returncode == 2
    assert "choose from 'step1', 'step2', 'step3'" in done.stderr


def test_help_documents_the_flags():
    out = demo("--help").stdout
    for flag in ("--fail-at", "--undo-fails", "--policy", "--register", "--fault"):
        assert flag in out


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "rollback_lessons", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_journal_show_and_recover_from_the_command_line(crashed):
    journal, _world = crashed
    shown = cli("journal", "show", str(journal))
    assert shown.returncode == 0
    assert shown.stdout.splitlines()[1].split() == [
        "saga-1",
        "crashlab",
        "running",
        "2",
        "0",
        "0",
        "0",
    ]
    recovered = cli("recover", str(journal), "--registry", "rollback_lessons.worlds.crashlab")
    assert recovered.returncode == 0, recovered.stderr
    assert "saga-1 (crashlab): rolled_back; undone step2, step1" in recovered.stdout
    assert cli("journal", "show", str(journal)).stdout.splitlines()[1].split()[2] == "rolled_back"


def test_journal_commands_refuse_a_file_that_is_not_a_journal(tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    done = cli("journal", "show", str(other))
    assert done.returncode == 2
    assert "not a readable journal" in done.stderr
    assert other.read_text() == "hello"
    assert "no journal at" in cli("recover", str(tmp_path / "nope.db"), "--registry", "x").stderr


# -- bad input: one clear line naming the problem, never a repr or a bare errno ----------------


@pytest.mark.parametrize("name", ["", ".bad", "a..b", "os:path", "1x", "a b"])
def test_a_registry_that_is_no_module_name_is_one_clear_line(name, tmp_path, capsys):
    from rollback_lessons.durable.journal import Journal

    with Journal(tmp_path / "j.db"):
        pass
    with pytest.raises(SystemExit) as exit_:
        main(["recover", str(tmp_path / "j.db"), "--registry", name])
    assert exit_.value.code == 2  # (a usage error: one line, attack285 F3)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rollback-lessons recover: error: ")
    assert err.endswith(" (`rollback-lessons recover --help` shows usage)\n")
    assert f"argument --registry: {name!r} is not a module name" in err.splitlines()[-1]
    assert "Error(" not in err and "Traceback" not in err  # (no repr)
    with pytest.raises(CommandError, match=f"--registry {re.escape(repr(name))} is not a module"):
        load_registry(name)  # (called from code, the same check)


@pytest.mark.parametrize(
    "argv",
    [["journal", "show", ""], ["journal", "settle", "", "x", "--note", "n"],
     ["recover", "", "--registry", "m"]],
)  # fmt: skip
def test_an_empty_journal_path_is_one_clear_line(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # (SQLite took '' for the folder: ". is a directory")
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1  # (a usage error: one line, attack285 F4)
    assert ": error: argument file: a journal's path cannot be empty (" in err
    assert "Traceback" not in err and os.listdir(tmp_path) == []
    from rollback_lessons.durable.journal import Journal

    with pytest.raises(ValueError, match="cannot be empty"):  # (from code: the same refusal)
        Journal("")


def test_a_registry_whose_import_fails_says_the_error_not_its_repr(tmp_path, capsys, monkeypatch):
    from rollback_lessons.durable.journal import Journal

    (tmp_path / "broken_reg.py").write_text("raise ValueError('no database configured')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with Journal(tmp_path / "j.db"):
        pass
    assert main(["recover", str(tmp_path / "j.db"), "--registry", "broken_reg"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "importing 'broken_reg' failed: ValueError: no database configured" in err


@pytest.mark.parametrize(
    "source",
    [
        "def __getattr__(name):\n    raise RuntimeError('lazy attribute failed')\n",
        "class Meta(type):\n    def __instancecheck__(cls, obj):\n        raise OSError('x')\n"
        "import rollback_lessons.durable.registry as r\nregistry = r.Registry()\n"
        "class Odd(metaclass=Meta): pass\nregistry = Odd\n",
    ],
    ids=["module __getattr__ raises", "an odd registry"],
)
def test_a_registry_that_raises_when_read_is_one_line(source, tmp_path, capsys, monkeypatch):
    """attack9: a module whose ``__getattr__`` raises gave a traceback and exit 1."""
    from rollback_lessons.durable.journal import Journal

    module = f"lazy_reg_{len(source)}"  # (one module per case: imports are cached)
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with Journal(tmp_path / "j.db"):
        pass
    assert main(["recover", str(tmp_path / "j.db"), "--registry", module]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_lab_in_a_folder_that_cannot_hold_the_lessons_is_one_clear_line(tmp_path, capsys):
    pytest.importorskip("jupyterlab")
    assert main(["lab", "/proc/1", "--port", "9999"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot put the lessons in /proc/1" in err
    assert "[Errno" not in err and "No such file or directory" in err


def test_the_console_script_finds_a_registry_in_the_folder_it_runs_in(tmp_path):
    """attack41 F13: ``rollback-lessons recover j.db --registry myapp.compensations`` from the
    app's own folder (not installed) said "no module named"; ``python -m`` found it (its
    sys.path[0] is the folder, the console script's is the venv's bin/)."""
    import os
    from pathlib import Path

    from rollback_lessons.durable.journal import Journal

    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "compensations.py").write_text(
        "from rollback_lessons import Registry\nregistry = Registry()\n"
    )
    Journal(tmp_path / "j.db").close()
    script = Path(sys.executable).with_name("rollback-lessons")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [str(script), "recover", "j.db", "--registry", "myapp.compensations"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout == "recovered 0 sagas, left 0\n", done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["recover", "j.db", "--registry", "m", "--fo"],
        ["recover", "j.db", "--reg", "m"],
        ["recover", "j.db", "--registry", "m", "--wa", "0"],
        ["journal", "show", "j.db", "--wa", "0"],
        ["demo", "--fail"],
    ],
)
def test_a_flag_s_prefix_is_no_flag(args, capsys):
    """attack127 F2: argparse took ``--fo`` for ``--force`` (a takeover of another host's
    saga, both undos run, where plain ``recover`` left it): a usage error now, exit 2."""
    from rollback_lessons.cli import UsageExit

    with pytest.raises(UsageExit) as exited:
        main(args)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments" in err or "required" in err, err
