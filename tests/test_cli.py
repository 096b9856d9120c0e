"""The terminal demo, run as a user would: a subprocess."""

import subprocess
import sys


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
    assert "not undone    step2" in after


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
    assert shown.stdout.splitlines()[1].split() == ["saga-1", "crashlab", "running", "2", "0", "0"]
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
