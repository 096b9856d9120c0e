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
