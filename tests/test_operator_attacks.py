"""What an operator met in a terminal (attack45, s53)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from rollback_lessons.durable.journal import Journal

# A Ctrl-C landing as a dataclass field's __set_name__ starts (CPython checks for signals as
# a function starts), while the command imports the package's modules lazily: Python 3.11
# wraps it in RuntimeError("Error calling __set_name__ ...").
AT_SET_NAME = textwrap.dedent(
    """
    import sys
    done = []
    def tracer(frame, event, arg):
        caller = frame.f_back.f_globals.get("__name__", "") if frame.f_back else ""
        if event == "call" and not done and frame.f_code.co_name == "__set_name__" \\
                and caller.startswith("rollback_lessons"):
            done.append(caller)
            sys.modules["rollback_lessons._starting"].HEARD.append(2)  # (as a Ctrl-C's is)
            raise KeyboardInterrupt
    sys.argv = ["rollback-lessons", *sys.argv[1:]]
    from rollback_lessons import cli
    sys.settrace(tracer)
    cli.run()
    """
)


SETTLE = ["journal", "settle", "s", "--note", "n"]


@pytest.mark.parametrize("command", [["journal", "show"], SETTLE])
def test_a_ctrl_c_as_a_lazily_imported_class_is_made_is_one_line(tmp_path, command):
    """attack45 F3: a RuntimeError traceback, exit 1."""
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        journal.start("trip", "s").flush()
    args = [*command[:2], str(path), *command[2:]]
    done = subprocess.run(
        [sys.executable, "-c", AT_SET_NAME, *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 130, done.stderr
    said = " before the settle was written: nothing was settled" if command == SETTLE else ""
    assert done.stderr.splitlines() == [f"rollback-lessons: interrupted (Ctrl-C){said}"]
    with Journal(path) as journal:
        assert journal.saga("s").status == "running"  # nothing settled


@pytest.mark.parametrize("raised, status", [("SystemExit(0)", 2), ("KeyboardInterrupt", 130)])
def test_an_interrupt_as_the_cli_lists_threads_left_is_one_line_never_exit_0(
    tmp_path, raised, status
):
    """attack49 F5: between the thread wait's try and the exit's, a SIGTERM handler's
    sys.exit(0) ended the command 0 with no line; a Ctrl-C was a traceback."""
    path = tmp_path / "j.db"
    Journal(path).close()
    script = textwrap.dedent(
        f"""
        import sys
        from rollback_lessons import cli
        def cut(waited, warn):
            raise {raised}
        cli.threads_left = cut
        sys.argv = ["rollback-lessons", "journal", "show", sys.argv[1]]
        cli.run()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == status, done
    assert len(done.stderr.splitlines()) == 1 and "came as the process ended" in done.stderr


def test_a_sys_exit_as_the_registry_is_asked_is_not_blamed_on_it_alone(tmp_path):
    """attack49 L2: a SIGTERM handler's sys.exit(0) heard in the registry's __contains__ was
    told as 'the registry raised SystemExit(0)'."""
    from conftest import orphan

    from rollback_lessons.durable.recovery import RegistryFailed, recover
    from rollback_lessons.durable.registry import Registry

    class Exiting(Registry):
        def __contains__(self, name):
            raise SystemExit(0)

    reg = Exiting()
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        journal.start("trip", "t").register("hold", reg.add("x", print).bind(), "pending")
    orphan(path, "t")
    with Journal(path) as journal, pytest.raises(RegistryFailed) as caught:
        recover(journal, reg)
    said = str(caught.value)
    assert "was cut by sys.exit(0) (its own, or a signal handler's" in said
    assert "raised SystemExit" not in said


EXITING_REGISTRY = textwrap.dedent(
    """
    from rollback_lessons.durable.registry import Registry

    class Exiting(Registry):
        asked = 0

        def resolve(self, name):  # (a SIGTERM handler's sys.exit(143) heard here)
            Exiting.asked += 1
            if Exiting.asked == 5:  # (the claim asks once a saga, attack84 F5; then r0's
                raise SystemExit(143)  # undo, then r1's)
            return super().resolve(name)

    registry = Exiting()
    registry.add("x", lambda idempotency_key=None: None)
    """
)


def test_a_sys_exit_as_the_registry_is_asked_for_an_undo_keeps_its_code_and_names_all_left(
    tmp_path,
):
    """attack50 F3: a SIGTERM handler's sys.exit(143) heard as recover asked the registry
    for an undo: exit 2 (not 143) and only the saga being undone named, though the two others
    it had claimed were left unfinished too. Now: its code, and every saga left, named."""
    from conftest import orphan

    from rollback_lessons.durable.registry import Registry

    (tmp_path / "exiting_reg.py").write_text(EXITING_REGISTRY)
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        undo = Registry().add("x", print).bind()
        for saga_id in ("r0", "r1", "r2"):
            journal.start("trip", saga_id).register("a", undo, "pending")
    for saga_id in ("r0", "r1", "r2"):
        orphan(path, saga_id)
    command = ["recover", str(path), "--registry", "exiting_reg"]
    done = subprocess.run(
        [sys.executable, "-m", "rollback_lessons", *command],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 143, done
    assert done.stdout.splitlines()[0].startswith("r0 ") and len(done.stdout.splitlines()) == 1
    (line,) = done.stderr.splitlines()
    assert "sys.exit(143)" in line and "'r1'" in line and "'r2'" in line, line


@pytest.mark.parametrize("raised, status, said", [
    ("SystemExit(143)", 143, "a sys.exit came"), ("KeyboardInterrupt", 130, "a Ctrl-C came"),
])  # fmt: skip
def test_an_interrupt_as_the_cli_runs_its_exit_handlers_keeps_its_own_status(
    tmp_path, raised, status, said
):
    """attack50 F3: a SIGTERM handler's sys.exit(143) heard at the very entry of the exit
    handlers' run was told as a Ctrl-C, exit 130."""
    path = tmp_path / "j.db"
    Journal(path).close()
    script = textwrap.dedent(
        f"""
        import sys
        from rollback_lessons import cli
        def cut(code, warn, status, *within):
            raise {raised}
        cli.ended = cut
        sys.argv = ["rollback-lessons", "journal", "show", sys.argv[1]]
        cli.run()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == status, done
    assert done.stderr.splitlines() == [f"rollback-lessons: {said} as the process ended, its "
                                        "command's work done and recorded"]  # fmt: skip
