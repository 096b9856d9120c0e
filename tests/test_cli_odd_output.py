"""What recover prints, and what the journal stores, when the text is odd (attack112):
F1: a registry (on import, or in an undo) that replaces ``sys.stdout`` (None, or a writer
that raises) made recover end in a traceback, its report lost: the command prints to the
stdout it began with. F2: an undo's error whose repr names a file as ``os.fsdecode`` gives
non-UTF-8 bytes (a lone surrogate) could never be written: every recover stopped there, the
undos after it never ran, the saga stuck ``running``. F3: an ASCII stdout lost the whole
report of a saga with a non-ASCII name: it is printed escaped."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import crash_at_first_undo

from rollback_lessons import Saga, Status, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry

CALLS: list[str] = []
registry = Registry()  # (the in-process runs'; recover's: ``SURROGATE_REG``, by name)
BAD_NAME = os.fsdecode(b"/tmp/gone-\xff.dat")  # (a lone surrogate, U+DCFF)


class DeleteFailed(Exception):
    def __repr__(self) -> str:
        return f"DeleteFailed({self.args[0]})"


def _undo(step: str, idempotency_key: str | None = None) -> None:
    if step == "b":
        raise DeleteFailed(BAD_NAME)
    CALLS.append(step)


COMP = registry.add("odd.undo", _undo)


def _saga(names: str = "abc", name: str = "odd") -> Saga:
    steps = [Step(k, lambda s: None, COMP.bind(step=k)) for k in names]
    return Saga([*steps, Step("z", lambda s: 1 / 0)], name=name)


def _recover(path: os.PathLike[str], module: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m rollback_lessons recover PATH --registry MODULE``, another process."""
    paths = os.pathsep.join([os.path.dirname(__file__), env.pop("extra", "")])
    command = [sys.executable, "-m", "rollback_lessons", "recover", str(path)]
    return subprocess.run(
        [*command, "--registry", module], capture_output=True, text=True, timeout=60,
        check=False, env={**os.environ, "PYTHONPATH": paths, **env},
    )  # fmt: skip


@pytest.mark.parametrize("how", ["import-none", "undo-none", "raising-writer"])
def test_a_registry_replacing_stdout_leaves_recovers_report_whole(tmp_path, how):
    crash_at_first_undo(tmp_path / "j.db", Saga([Step("a", lambda s: None,
        COMP.bind(step="a")), Step("z", lambda s: 1 / 0)], name="odd"))  # fmt: skip
    replace = {
        "import-none": "sys.stdout = None\n",
        "undo-none": "",
        "raising-writer": "class W:\n    def write(self, t): raise RuntimeError('shim')\n"
        "    def flush(self): raise RuntimeError('shim')\nsys.stdout = W()\n",
    }[how]
    undo = "sys.stdout = None" if how == "undo-none" else "pass"
    (tmp_path / "odd_reg.py").write_text(
        "import sys\nfrom rollback_lessons.durable.registry import Registry\n"
        "registry = Registry()\n"
        f"def undo(step, idempotency_key=None):\n    {undo}\n"
        "registry.add('odd.undo', undo)\n" + replace
    )
    done = _recover(tmp_path / "j.db", "odd_reg", extra=str(tmp_path))
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "s (odd): rolled_back; undone a" in done.stdout, done.stdout


SURROGATE_REG = """
import os
from rollback_lessons.durable.registry import Registry
registry = Registry()
class DeleteFailed(Exception):
    def __repr__(self):
        return f"DeleteFailed({self.args[0]})"
def undo(step, idempotency_key=None):
    if step == "b":
        raise DeleteFailed(os.fsdecode(b"/tmp/gone-\\xff.dat"))
    with open(os.environ["WORLD"], "a") as world:
        world.write(f"undo {step}\\n")
registry.add("odd.undo", undo)
"""


def test_an_error_naming_a_non_utf8_file_is_journalled_and_the_rollback_goes_on(tmp_path):
    path, world = tmp_path / "j.db", tmp_path / "world.txt"
    crash_at_first_undo(path, _saga())
    (tmp_path / "surrogate_reg.py").write_text(SURROGATE_REG)
    done = _recover(path, "surrogate_reg", extra=str(tmp_path), WORLD=str(world))
    assert done.returncode == 1, (done.stdout, done.stderr)  # (a dead letter: a person)
    assert "dead letters b" in done.stdout, done.stdout
    with Journal(path, readonly=True) as journal:
        [saga] = journal.sagas()
        assert saga.status == "rollback_incomplete", saga
    again = _recover(path, "surrogate_reg", extra=str(tmp_path), WORLD=str(world))
    assert again.returncode == 1 and "waits for a person" in again.stdout, again.stdout
    assert world.read_text().split("\n") == ["undo c", "undo a", ""]  # (each once)


def test_an_error_naming_a_non_utf8_file_is_journalled_in_process(tmp_path):
    CALLS.clear()
    with Journal(tmp_path / "j.db") as journal:
        outcome = _saga().run({}, journal=journal, run_id="r")
    assert outcome.status is Status.ROLLBACK_INCOMPLETE and CALLS == ["c", "a"], CALLS
    assert not outcome.notes, outcome.notes  # (no "journal write failed")
    with Journal(tmp_path / "j.db", readonly=True) as journal:
        [saga] = journal.sagas()
        assert saga.status == "rollback_incomplete"
        assert "\\udcff" in (saga.error or "") or any(
            "\\udcff" in (u.error or "") for u in journal.undos("r")
        )


def test_an_ascii_stdout_prints_non_ascii_names_escaped(tmp_path):
    path = tmp_path / "j.db"
    crash_at_first_undo(path, _saga("a", name="Zahlung-€"))
    (tmp_path / "surrogate_reg.py").write_text(SURROGATE_REG)
    done = _recover(path, "surrogate_reg", extra=str(tmp_path), WORLD=str(tmp_path / "w"),
                    PYTHONIOENCODING="ascii")  # fmt: skip
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "s (Zahlung-\\u20ac): rolled_back; undone a" in done.stdout, done.stdout
