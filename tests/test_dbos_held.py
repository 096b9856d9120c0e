"""DBOS on one file, two processes, and a changed saga (attack17's G1 and G2): a second
launch on a file a live runner holds is refused before DBOS launches (DBOS's launch resumed
the live run, whose step then ran twice); a saga whose steps differ from the run's saved
plan is refused before it is hosted (an undo removed was reported done, a step renamed
failed the run for good with a raw KeyError)."""

import subprocess
import sys
import time

_TWO = r"""
import json, os, sys, time
from pathlib import Path
from rollback_lessons import Saga, Step
from rollback_lessons.runners.dbos import DBOSRunner, FileInUse, SagaChanged

SYSTEM, WORLD, MODE = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
VARIANT = sys.argv[4] if sys.argv[4:] else ""  # the saga changed: "noundo", "renamed"
GO = WORLD.with_name("go")


def log(*entry):
    with open(WORLD, "a") as f:
        f.write(json.dumps([os.getpid(), *entry]) + "\n")


def b(s):
    log("start", "b")
    while MODE == "first" and not GO.exists():  # held in b until the test says
        time.sleep(0.02)
    log("do", "b")


def make(run_id=None, variant=""):
    a = "a2" if variant == "renamed" else "a"
    undo = None if variant == "noundo" else (lambda s: log("undo", a))
    return Saga([Step(a, lambda s: log("do", a), undo),
                 Step("b", b, lambda s: log("undo", "b")),
                 Step("c", lambda s: log("do", "c"), lambda s: log("undo", "c"))], name="two")


try:
    sagas = None if MODE == "handle" else {"two": lambda run_id: make(run_id, VARIANT)}
    with DBOSRunner.start(SYSTEM, sagas=sagas) as runner:
        if MODE == "first":
            out = runner.run(make(), {}, run_id="run-1")
        elif MODE == "second":  # launched while A runs: it must leave A's run alone
            time.sleep(1)
            sys.exit(print("second launched"))
        else:  # a relaunch: it finishes what a dead process left
            out = runner.handle_for(make(None, VARIANT), "run-1").outcome()
        print(MODE, out.status, ",".join(out.compensated))
except (FileInUse, SagaChanged) as exc:
    print("refused:", exc)
"""


def _world(path):
    import json

    return [json.loads(line)[1:] for line in path.read_text().splitlines()]


def _until_b_started(world, proc):
    for _ in range(3000):
        if world.exists() and ["start", "b"] in _world(world):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("b never started")


def test_a_second_launch_on_a_live_runners_file_is_refused_and_its_run_left_alone(tmp_path):
    """G1: process A runs a -> b -> c; while b runs, process B launches on the same file
    (the README's relaunch). It used to resume A's PENDING run (every process is DBOS's
    executor ``local``), and A ran b's action a second time. B is now refused in one line
    (``FileInUse``), before DBOS launches; A's run ends committed, each action done once."""
    script, world, system, a = _a_in_b(tmp_path)
    try:
        b = subprocess.run([sys.executable, str(script), str(system), str(world), "second"],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
        (tmp_path / "go").touch()
        out, err = a.communicate(timeout=300)
    finally:
        a.kill()
        a.wait()
    assert _world(world) == [["do", "a"], ["start", "b"], ["do", "b"], ["do", "c"]]
    assert b.returncode == 0 and b.stderr == "", b.stderr[-2000:]
    line = b.stdout.splitlines()
    assert len(line) == 1 and line[0].startswith(f"refused: DBOS runs on {system} in another "
                                                 f"live process (pid {a.pid}")  # fmt: skip
    assert (a.returncode, out) == (0, "first committed \n"), err[-2000:]


def _a_in_b(tmp_path):
    """A (the script's "first") started and inside b: the script, world and system files,
    and A's process."""
    script, world, system = tmp_path / "two.py", tmp_path / "world.jsonl", tmp_path / "d.sqlite"
    script.write_text(_TWO)
    a = subprocess.Popen([sys.executable, str(script), str(system), str(world), "first"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        _until_b_started(world, a)
    except BaseException:
        a.kill()
        a.communicate()
        raise
    return script, world, system, a


def _killed_in_b(tmp_path):
    """A (the script's "first") SIGKILLed inside b: the script, world and system files."""
    script, world, system, a = _a_in_b(tmp_path)
    a.kill()
    a.communicate()
    return script, world, system


def test_a_relaunch_after_the_holder_died_is_not_refused_and_finishes(tmp_path):
    """The lock dies with its process: A SIGKILLed inside b, a relaunch on the file is not
    refused, and finishes the run (b in doubt, cut short, its effect leaked: a undone once)."""
    script, world, system = _killed_in_b(tmp_path)
    again = subprocess.run([sys.executable, str(script), str(system), str(world), "again"],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert (again.returncode, again.stdout) == (
        0,
        "again rollback_incomplete a\n",
    )  # b leaked, again.stderr[-2000:]
    assert _world(world) == [["do", "a"], ["start", "b"], ["undo", "a"]]


def _crashlab(*args):
    command = [sys.executable, "-m", "rollback_lessons.worlds.crashlab", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_crashlab_on_a_file_a_live_runner_holds_says_so_in_one_line(tmp_path):
    """The operator's CLI: one line on stderr and exit 2, never a traceback; nothing ran. The
    file reached by another name (a symlink: attack19's F4, whose lock was per name) is the
    same file; a file in a missing folder is one line too (attack19's S1: a traceback)."""
    import os

    from rollback_lessons.runners.dbos.held import hold, let_go

    system, world = tmp_path / "d.sqlite", tmp_path / "world.db"
    alias = tmp_path / "alias.sqlite"
    fd = hold(system)  # a live runner's lock (this process)
    try:
        alias.symlink_to(system)
        run = _crashlab("--dbos", alias, "--world", world)
    finally:
        let_go(fd)
    assert run.returncode == 2 and run.stdout == "", run.stderr[-2000:]
    assert run.stderr == (f"crashlab: DBOS runs on {alias} in another live process (pid "
                          f"{os.getpid()}, or a process forked from it): a second launch would "
                          "resume its running sagas and run their steps again; close that "
                          "runner first (a process that died holds nothing)\n")  # fmt: skip
    assert not world.exists()
    missing = tmp_path / "nowhere" / "d.sqlite"
    run = _crashlab("--dbos", missing, "--world", world)
    assert (run.returncode, run.stdout) == (2, ""), run.stderr[-2000:]
    assert run.stderr == (f"crashlab: DBOS cannot use {missing}: No such file or directory "
                          "(nothing was launched)\n")  # fmt: skip
    assert not world.exists() and not missing.parent.exists()


def test_one_lock_per_file_whatever_name_reaches_it(tmp_path):
    """attack19's F4: the lock was a file beside the database's *name*: a symlink (or a hard
    link) to a live runner's file took a lock of its own, launched, and resumed the live run,
    whose running step ran a second time. The lock is now on the file itself: each other name
    is refused (naming this process), and free once the holder lets go."""
    import os

    import pytest

    from rollback_lessons.runners.dbos import FileInUse
    from rollback_lessons.runners.dbos.held import hold, let_go

    system = tmp_path / "d.sqlite"
    system.touch()  # (a database already there)
    fd = hold(system)
    (tmp_path / "sub").mkdir()
    (tmp_path / "symlink.sqlite").symlink_to(system)
    os.link(system, tmp_path / "hardlink.sqlite")
    names = ["symlink.sqlite", "hardlink.sqlite", "sub/../d.sqlite", "d.sqlite"]
    try:
        for name in names:
            with pytest.raises(FileInUse, match=rf"\(pid {os.getpid()}\)"):
                hold(tmp_path / name)
    finally:
        let_go(fd)
    for name in names:
        let_go(hold(tmp_path / name))


def test_a_runner_on_a_file_it_cannot_open_is_refused_before_dbos_launches(tmp_path):
    """attack19's S1: ``DBOSRunner.start`` in a missing folder raised a raw FileNotFoundError
    (from the lock); it is one line (``FileUnusable``), and the runner slot is free again."""
    import pytest

    from rollback_lessons.runners.dbos import DBOSRunner, FileUnusable

    missing = tmp_path / "nowhere" / "d.sqlite"
    for _ in range(2):  # (the second is not DBOSUnavailable: nothing was left launched)
        with pytest.raises(FileUnusable, match="No such file or directory"):
            DBOSRunner.start(missing)
    assert not missing.parent.exists()


def test_a_changed_saga_of_the_runs_name_is_refused_before_it_is_hosted(tmp_path):
    """G2: A SIGKILLed inside b; a relaunch hosting a saga of the same name whose steps
    differ from the run's saved plan: a's undo removed (the Outcome said a was compensated
    though no undo ran), or a renamed a2 (a raw KeyError DBOS saved for good). Each is refused
    in one line, by ``handle_for`` and by ``sagas=`` at launch, and the run is left as it was:
    a later relaunch with the saga that started it finishes it, a undone once."""
    script, world, system = _killed_in_b(tmp_path)

    def launch(mode, variant=""):
        run = subprocess.run([sys.executable, str(script), str(system), str(world), mode, variant],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        assert run.returncode == 0, run.stderr[-2000:]
        return run.stdout

    start = "refused: saga 'two' is not the one run 'run-1' was started with ("
    for mode in ("handle", "again"):  # handle_for, then sagas=
        noundo = launch(mode, "noundo")
        assert noundo.startswith(start + "step 'a' has no undo now, it had one): nothing was")
        renamed = launch(mode, "renamed")
        assert renamed.startswith(start + "steps ['a'] are gone and steps ['a2'] are new)")
        assert noundo.count("\n") == renamed.count("\n") == 1
    assert launch("again") == "again rollback_incomplete a\n"  # (b in doubt: leaked)
    assert _world(world) == [["do", "a"], ["start", "b"], ["undo", "a"]]


def test_a_saga_of_another_name_is_never_the_runs_and_the_refusal_says_so():
    """attack19's S2: ``handle_for`` given a saga named "y" for a run of a saga "x" was
    refused as "saga 'x' is not the one ... (steps [...] are gone)", naming the run's saga,
    not the one given, and not saying the names differ; one of the same steps under another
    name was hosted. Each is refused, naming both; the run's own saga is not."""
    from rollback_lessons import Saga, Step
    from rollback_lessons.runners.dbos.hosting import changed
    from rollback_lessons.runners.wire import plan_of

    def saga(name, *steps):
        return Saga([Step(k, lambda s: None, lambda s: None) for k in steps], name=name)

    plan = plan_of(saga("x", "a", "b", "c"), "run-1")
    why = ("saga 'y' is not the one run 'run-1' was started with (that was a saga 'x'): "
           "nothing was hosted; give the saga that started it")  # fmt: skip
    assert changed("run-1", saga("y", "a"), plan) == why
    assert changed("run-1", saga("y", "a", "b", "c"), plan) == why  # (same steps: hosted)
    assert changed("run-1", saga("x", "a", "b", "c"), plan) is None
    assert changed("run-1", saga("x", "a"), plan) == (
        "saga 'x' is not the one run 'run-1' was started with (steps ['b', 'c'] are gone): "
        "nothing was hosted; give the saga that started it"
    )


def test_a_factory_that_fails_or_makes_a_changed_saga_is_tried_again_a_bounded_number_of_times(
    monkeypatch, caplog
):
    """harden21's leftover and attack19's S4: a ``sagas=`` factory that raised, or made a
    saga other than the run's (on its 2nd call only), left the run waiting until
    ``handle_for`` or a relaunch, never called again. It is tried again after a wait
    (``BACKOFF``, doubled), each failed try a warning saying what follows; made at last, the
    run goes on; after ``TRIES`` the run waits as before, ``REFUSED`` saying why. Pure: the
    run's saved plan is given, no DBOS."""
    import logging

    from rollback_lessons import Saga, Step
    from rollback_lessons.runners.dbos import hosting
    from rollback_lessons.runners.wire import plan_of

    def saga(*steps):
        return Saga([Step(k, lambda s: None, lambda s: None) for k in steps], name="x")

    made = [saga("a", "b"), saga("a"), ConnectionError("down"), saga("a", "b")]

    def fickle(run_id):  # good at start's check, then changed, then raising, then good
        got = made.pop(0) if made else ConnectionError("down")
        if isinstance(got, Exception):
            raise got
        return got

    monkeypatch.setattr(hosting, "BACKOFF", 0.0)
    monkeypatch.setattr(hosting, "_closing", False)  # (as launched: a runner closed before)
    monkeypatch.setitem(hosting.FACTORIES, "x", fickle)
    for run_id in ("s4", "gone"):
        monkeypatch.setitem(hosting.PLANS, run_id, plan_of(saga("a", "b"), run_id))
    fickle("s4")  # (start's check: the saga it makes is the run's)
    with caplog.at_level(logging.WARNING, logger="rollback_lessons"):
        got, state = hosting._saga("s4", "x")
    assert [s.name for s in got.steps] == ["a", "b"] and state == {} and not made
    tries = [r.getMessage() for r in caplog.records]
    assert len(tries) == 2 and "run 's4' was started with" in tries[0]
    assert tries[0].endswith("(try 1 of 6): tried again in 0 s")
    assert "raised ConnectionError('down')" in tries[1] and "(try 2 of 6)" in tries[1]
    assert "s4" not in hosting.RETRYING and "s4" not in hosting.REFUSED
    monkeypatch.setattr(hosting, "TRIES", 3)
    try:  # a factory that never makes it: three tries, then the run waits for its saga
        assert [hosting._tried("gone", *hosting._made("gone", "x")) for _ in range(3)] == [None] * 3
        assert hosting.REFUSED["gone"] == (
            "sagas={'x': ...} raised ConnectionError('down') making the saga of run 'gone' "
            "(3 tries): it waits, unfinished; handle_for(saga, run_id) hosts it, or a later "
            "launch whose sagas= makes it"
        )
        assert "gone" not in hosting.RETRYING
        monkeypatch.setattr(hosting, "TRIES", 1)  # (its count inflected: attack87 F3)
        hosting._tried("gone", *hosting._made("gone", "x"))
        assert "making the saga of run 'gone' (1 try): it waits" in hosting.REFUSED["gone"]
    finally:
        hosting.REFUSED.pop("gone", None)
        hosting.RETRYING.pop("gone", None)


def test_any_character_in_a_name_names_the_file_locked_and_the_data_alike(tmp_path):
    """attack24's M2: the URL was ``sqlite:///{path}`` unquoted, so DBOS kept ``j%41.sqlite``'s
    data in ``jA.sqlite`` (``%41`` decoded) and ``j?x=1``'s in ``j``, while the lock was on the
    name given: a runner on the data's plain name was not refused, and saw the other's runs.
    Each name is now its own file, the one locked, whatever it holds (# ? % & space Unicode)."""
    import os

    import pytest

    from rollback_lessons import Saga, Status, Step
    from rollback_lessons.runners.dbos import DBOSRunner
    from rollback_lessons.runners.hosted import UnknownRun

    saga = Saga([Step("a", lambda s: s.update(a=1), lambda s: s.pop("a"))], name="odd")
    odd = ["j%41.sqlite", "a #b?c=1&uri=false %2F é.sqlite"]
    for name in odd:
        with DBOSRunner.start(tmp_path / name) as runner:
            assert runner.run(saga, {}, run_id=f"run-{len(name)}").status is Status.COMMITTED
    assert sorted(os.listdir(tmp_path)) == sorted(odd)  # (no jA.sqlite, no "a #b")
    with DBOSRunner.start(tmp_path / "jA.sqlite") as runner:  # another file: not j%41's runs
        with pytest.raises(UnknownRun):
            runner.record(f"run-{len(odd[0])}")
    for name in odd:  # each holds its own run
        with DBOSRunner.start(tmp_path / name) as runner:
            assert runner.record(f"run-{len(name)}").status is Status.COMMITTED


def test_a_file_that_is_not_sqlite_or_is_a_journal_is_refused_before_dbos_launches(tmp_path):
    """attack24's M3: a file that is not SQLite failed in DBOS's launch with SQLAlchemy's
    three-line error (a traceback logged); a rollback journal was taken, DBOS adding its
    tables to it. Both are ``FileUnusable`` in one line, the file left as it was, and the
    runner slot free again."""
    import pytest

    from rollback_lessons.durable.journal import Journal
    from rollback_lessons.runners.dbos import DBOSRunner, FileUnusable

    text = tmp_path / "notes.txt"
    text.write_text("not a database, but more than sixteen bytes long\n")
    journal = tmp_path / "journal.sqlite"
    Journal(journal).close()
    kept = {p: p.read_bytes() for p in (text, journal)}
    for path, why in [(text, "it is not a SQLite database"),
                      (journal, "it is a rollback journal, not a DBOS file")]:  # fmt: skip
        with pytest.raises(FileUnusable) as refused:
            DBOSRunner.start(path)
        assert str(refused.value).startswith(f"DBOS cannot use {path}: {why}")
        assert "\n" not in str(refused.value)
        assert path.read_bytes() == kept[path]
    with DBOSRunner.start(tmp_path / "new.sqlite"):  # (nothing was left launched)
        pass


_HOT = r"""
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("PRAGMA cache_size = 1")  # the change spills into the file itself
con.execute("BEGIN IMMEDIATE")
con.execute("UPDATE workflow_status SET status = 'ERROR'")
con.execute("CREATE TABLE filler (x)")
con.execute("INSERT INTO filler SELECT zeroblob(4000) FROM "
            "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50) "
            "SELECT i FROM n)")
print("held", flush=True)
time.sleep(600)
"""


def test_a_relaunch_after_a_kill_that_left_a_hot_journal_is_not_refused_and_finishes(tmp_path):
    """attack87's F6: a process SIGKILLed while SQLite held a write transaction on DBOS's
    file leaves a hot ``-journal`` beside it. The up-front check opened the file read-only,
    where SQLite cannot roll a hot journal back, and refused every relaunch for ever
    ("not a readable SQLite database"), the saga's effects standing. The check now lets
    SQLite roll it back: the relaunch finishes the run (the killed change undone: the run
    still ``PENDING``, b in doubt, a undone once)."""
    script, world, system = _killed_in_b(tmp_path)
    hot = tmp_path / "hot.py"
    hot.write_text(_HOT)
    holder = subprocess.Popen([sys.executable, str(hot), str(system)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n", holder.communicate()
    finally:
        holder.kill()
        holder.communicate()
    journal = system.with_name(system.name + "-journal")
    assert journal.exists() and journal.stat().st_size > 0  # a hot journal, as a kill leaves
    again = subprocess.run([sys.executable, str(script), str(system), str(world), "again"],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert (again.returncode, again.stdout) == (0, "again rollback_incomplete a\n"), (
        again.stdout + again.stderr[-2000:]
    )
    assert _world(world) == [["do", "a"], ["start", "b"], ["undo", "a"]]
