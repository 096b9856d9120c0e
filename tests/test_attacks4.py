"""The fourth attacker's breaks of recover (attacks 30 and 33), each as a test: an async undo
that ignores its cancellation is abandoned past its timeout, as in process, not waited for
forever; a registry whose lookup raises is one line, with nothing claimed or half-done."""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest
from conftest import dead_pid

from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry

STUBBORN = textwrap.dedent(
    """
    import asyncio
    from rollback_lessons.durable.registry import Registry
    registry = Registry()

    async def release(room, idempotency_key=None):
        while True:  # a remote call that ignores cancellation
            try:
                await asyncio.sleep(3600)
                return
            except asyncio.CancelledError:
                pass

    RELEASE = registry.add("release", release)
    """
)


def _orphan(path) -> None:
    con = sqlite3.connect(path)
    con.execute("UPDATE sagas SET owner_pid = ?, owner_started = NULL", (dead_pid(),))
    con.commit()
    con.close()


def _run(cmd, tmp_path, limit=30):
    """Run ``cmd``; one still running after ``limit`` seconds is killed, and fails the test."""
    child = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(tmp_path)), start_new_session=True,
    )  # fmt: skip
    try:
        out, err = child.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        pytest.fail(f"{cmd} still running after {limit} s")
    return child.returncode, out, err


@pytest.fixture
def stubborn(tmp_path, monkeypatch):
    """A journal with one saga, killed, its async undo (which will not stop) pending with
    an undo timeout of 0.5 s."""
    (tmp_path / "reg30.py").write_text(STUBBORN)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    import reg30

    importlib.reload(reg30)
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        run = journal.start("trip", "t")
        run.register("hold", reg30.RELEASE.bind(room="r1"), "pending", timeout=0.5)
        run.flush()
    _orphan(path)
    return path


def _dead_letter(path) -> None:
    with Journal(path, readonly=True) as journal:
        assert journal.saga("t").status == "rollback_incomplete"
        [undo] = journal.undos("t")
        assert undo.state == "dead" and "TimeoutError" in (undo.error or "")


def test_recover_cli_abandons_an_async_undo_that_ignores_its_cancellation(tmp_path, stubborn):
    """The defect: the attempt timed out, but asyncio.run's shutdown then cancelled the
    left-behind undo and waited for it: `recover` never ended."""
    cmd = [
        sys.executable,
        "-m",
        "rollback_lessons",
        "recover",
        str(stubborn),
        "--registry",
        "reg30",
    ]
    code, out, err = _run(cmd, tmp_path)
    assert code == 1 and "Traceback" not in err, err
    assert out.startswith("t (trip): rollback_incomplete") and "TimeoutError" in out
    _dead_letter(stubborn)


@pytest.mark.parametrize("where", ["plain", "inside a running loop"])
def test_recover_abandons_an_async_undo_that_ignores_its_cancellation(tmp_path, stubborn, where):
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        import reg30
        from rollback_lessons.durable.journal import Journal
        from rollback_lessons.durable.recovery import recover

        def go():
            with Journal({str(stubborn)!r}) as journal:
                [done] = recover(journal, reg30.registry)
            print(done.status, [d.step for d in done.dead_letters])

        async def in_a_notebook():  # (a running loop, as in a Jupyter cell)
            go()

        go() if {where!r} == "plain" else asyncio.run(in_a_notebook())
        """
    )
    code, out, err = _run([sys.executable, "-c", script], tmp_path)
    assert code == 0, err
    assert out.strip() == "rollback_incomplete ['hold']"
    _dead_letter(stubborn)


# -- a registry whose lookup raises -------------------------------------------------------

BROKEN = textwrap.dedent(
    """
    import os
    from rollback_lessons.durable.registry import Registry, UnknownCompensationError

    class Remote(Registry):  # backed by a config service that is down
        def __contains__(self, name):
            if os.environ.get("DOWN") == "contains":
                raise RuntimeError("registry backend down")
            return super().__contains__(name)

        def resolve(self, name):
            asked.append(name)  # (the claim asks once per saga, attack84 F5: then the undos)
            down, at_undo = os.environ.get("DOWN"), len(asked) > 2
            if down == "resolve_at_claim" or (down == "resolve" and at_undo):
                raise RuntimeError("registry backend down")
            if down == "gone" and at_undo:  # had it at the claim, not at the undo
                raise UnknownCompensationError(f"no compensation named {name!r}")
            return super().resolve(name)

    asked = []
    registry = Remote()
    RELEASE = registry.add("release", lambda room, idempotency_key=None: print("released", room))
    """
)


@pytest.mark.parametrize("down", ["contains", "resolve_at_claim", "resolve", "gone"])
def test_a_registry_whose_lookup_raises_is_one_line_and_nothing_half_done(
    tmp_path, monkeypatch, down
):
    """The defect: a 30-line traceback (the lookup ran inside the claim's transaction, and
    nothing caught it)."""
    (tmp_path / "reg33.py").write_text(BROKEN)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    import reg33

    importlib.reload(reg33)
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        for saga_id in ("a", "b"):
            run = journal.start("trip", saga_id)
            run.register("hold", reg33.RELEASE.bind(room=saga_id), "pending")
            run.flush()
    _orphan(path)
    cmd = [sys.executable, "-m", "rollback_lessons", "recover", str(path), "--registry", "reg33"]
    monkeypatch.setenv("DOWN", down)
    code, out, err = _run(cmd, tmp_path)
    assert code == 2 and "Traceback" not in err and "released" not in out
    [line] = err.splitlines()
    said = "RuntimeError('registry backend down')"
    said = "UnknownCompensationError(" if down == "gone" else said
    assert said in line and "'release'" in line  # (gone: a traceback, attack45 F4)
    at_claim = down in ("contains", "resolve_at_claim")
    assert "run recover again" in line if at_claim else "next recover" in line
    con = sqlite3.connect(path)
    rows = con.execute("SELECT status, claim_gen FROM sagas ORDER BY id").fetchall()
    undos = con.execute("SELECT state FROM undos").fetchall()
    con.close()
    assert [s for s, _ in rows] == ["running", "running"] and undos == [("pending",)] * 2
    if at_claim:  # asked while claiming: nothing at all was claimed
        assert [g for _, g in rows] == [0, 0]
    monkeypatch.setenv("DOWN", "")  # it answers again: the next recover finishes both
    code, out, err = _run(cmd, tmp_path)
    assert code == 0, err
    assert "a (trip): rolled_back" in out and "b (trip): rolled_back" in out


def test_a_registry_whose_lookup_raises_in_process_is_a_journal_error(tmp_path):
    from rollback_lessons.durable.journal import JournalError
    from rollback_lessons.durable.recovery import RegistryFailed, recover

    class Down(Registry):
        def __contains__(self, name):
            raise RuntimeError("down")

    reg = Down()
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        journal.start("trip", "t").register("hold", reg.add("x", print).bind(), "pending")
    _orphan(path)
    with Journal(path) as journal:
        with pytest.raises(RegistryFailed, match="nothing was claimed") as caught:
            recover(journal, reg)
        assert isinstance(caught.value, JournalError)
        assert journal.saga("t").status == "running"
