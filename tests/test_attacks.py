"""The attacker's breaks of the README's recovery promises (issue 25, second round), each
as a test: an interrupt inside a step, input refused before anything happens, journal
paths, damaged values, exits during recover, the CLI's one-line errors."""

import math
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from rollback_lessons import RetryPolicy, Rollback, Saga, Status, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry, compensation

registry = Registry()
LOG: list[str] = []


@compensation("attacks.undo", registry)
def undo(step, idempotency_key=None):
    if ("undo", step) not in [tuple(x.split(" ", 1)) for x in LOG]:
        LOG.append(f"undo {step}")


def effect(step, then=None):
    def act(state):
        LOG.append(f"do {step}")
        if then is not None:
            raise then

    return act


# -- 3. a Ctrl-C inside a step, just after its effect: reported, never lost ----------------


@pytest.mark.parametrize("register", ["after", "before"])
def test_a_ctrl_c_inside_a_step_after_its_effect_is_never_lost(tmp_path, register):
    """The defect: the journal said rolled_back, the charge was neither undone nor reported
    (a SIGKILL at the same instant reported it leaked). A step cut short inside its call
    may have happened: with its undo logged after it, it is reported leaked; logged before
    it, it is undone."""
    LOG.clear()
    saga = Saga(
        [
            Step("reserve", effect("reserve"), undo.bind(step="reserve")),
            Step("charge", effect("charge", KeyboardInterrupt()), undo.bind(step="charge"),
                 register=register),
        ]
    )  # fmt: skip
    with Journal(tmp_path / "j.db") as journal:
        with pytest.raises(KeyboardInterrupt) as caught:
            saga.run({}, journal=journal, run_id="s")
        states = {u.step: u.state for u in journal.undos("s")}
        status = journal.saga("s").status
        assert journal.unfinished() == []
    if register == "after":
        assert LOG == ["do reserve", "do charge", "undo reserve"]
        assert status == "rollback_incomplete" and states == {"reserve": "done", "charge": "leaked"}
        assert "rollback: not undone (no undo logged for it): charge" in caught.value.__notes__
    else:
        assert LOG == ["do reserve", "do charge", "undo charge", "undo reserve"]
        assert status == "rolled_back" and states == {"reserve": "done", "charge": "done"}


def test_a_ctrl_c_inside_a_with_block_step_is_reported_leaked_without_a_journal():
    LOG.clear()
    with pytest.raises(KeyboardInterrupt), Rollback() as rb:
        rb.do("reserve", lambda: LOG.append("do reserve"), lambda: LOG.append("undo reserve"))
        rb.do("charge", lambda: effect("charge", KeyboardInterrupt())({}), lambda: None)
    assert rb.outcome.status is Status.ROLLBACK_INCOMPLETE
    assert rb.outcome.leaked == ("charge",) and rb.outcome.compensated == ("reserve",)


_SIGINT_CHILD = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, sys.argv[2])
    import sigint_world as w
    from rollback_lessons import Saga, Step
    from rollback_lessons.durable.journal import Journal

    def act(step):
        def f(state):
            time.sleep(0.02)
            w.record(f"do {step}")
        return f

    steps = [Step(n, act(n), w.undo.bind(step=n), register=r)
             for n, r in zip("abcdef", ["after", "before"] * 3)] + [Step("g", act("g"))]
    try:  # (a SIGINT after the run, while the journal closes, is this script's, not the saga's)
        with Journal(sys.argv[1]) as j:
            print("ready", flush=True)
            Saga(steps, name="sigint").run({}, inject={"g": "fail"}, journal=j, run_id="s")
    except KeyboardInterrupt:
        pass
    """
)

_SIGINT_WORLD = textwrap.dedent(
    """
    import os
    from rollback_lessons.durable.registry import Registry, compensation
    registry = Registry()
    LOG = os.environ["SIGINT_WORLD"]

    def record(line):
        with open(LOG, "a") as f:
            f.write(line + "\\n")

    @compensation("undo", registry)
    def undo(step, idempotency_key=None):
        done = open(LOG).read().split("\\n") if os.path.exists(LOG) else []
        if f"undo {step}" not in done:
            record(f"undo {step}")
    """
)


def test_real_sigint_at_random_instants_of_a_journalled_saga_loses_no_step(tmp_path):
    """The attacker's soak (1 of 25 broke): SIGINT anywhere in a saga of steps logged
    after and before, the process exits, ``recover`` runs. Every step whose effect happened
    is undone or reported leaked; a journal that says rolled_back undid every one. Seeded;
    SIGINT_TRIALS sets the count (make soak: 40)."""
    (tmp_path / "sigint_world.py").write_text(_SIGINT_WORLD)
    rng = random.Random(31)
    for trial in range(int(os.environ.get("SIGINT_TRIALS", "4"))):
        db, log = tmp_path / f"j{trial}.db", tmp_path / f"world{trial}.log"
        env = dict(os.environ, SIGINT_WORLD=str(log), PYTHONPATH=str(tmp_path))
        child = subprocess.Popen(
            [sys.executable, "-c", _SIGINT_CHILD, str(db), str(tmp_path)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert child.stdout is not None
        child.stdout.readline()
        time.sleep(rng.uniform(0, 0.45))
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
        assert "Traceback" not in err, err[-800:]
        lines = log.read_text().splitlines() if log.exists() else []
        done = {x.split()[1] for x in lines if x.startswith("do ")}
        first = {x.split()[1] for x in lines if x.startswith("undo ")}
        with Journal(db) as journal:
            started = any(saga.id == "s" for saga in journal.sagas())
            if not started:  # interrupted before the saga was journalled: nothing ran
                assert not done, (trial, lines)
                continue
            if journal.saga("s").status == "rolled_back":
                assert done <= first, (trial, lines)
        r = subprocess.run(
            [sys.executable, "-m", "rollback_lessons", "recover", str(db),
             "--registry", "sigint_world"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert "Traceback" not in r.stderr, r.stderr
        lines = log.read_text().splitlines() if log.exists() else []
        undone = {x.split()[1] for x in lines if x.startswith("undo ")}
        with Journal(db) as journal:
            status = journal.saga("s").status
            leaked = {u.step for u in journal.undos("s") if u.state == "leaked"}
        assert status not in ("running", "rolling_back"), trial
        if status != "halted":
            assert done <= undone | leaked, (trial, status, lines)


def test_a_journalled_sync_run_imports_nothing_once_its_journal_is_open(tmp_path):
    """The soak's child once lost its SIGINT as CPython swallowed it in importlib's lock
    callback: the run imported asyncio mid-saga (to ask if a failed step was a cancelled
    task's). A sync run loads no module between the journal's opening and its end."""
    child = textwrap.dedent(
        """
        import sys
        from rollback_lessons import Saga, Step
        from rollback_lessons.durable.journal import Journal
        from rollback_lessons.durable.registry import Registry, compensation

        @compensation("undo", Registry())
        def undo(step, idempotency_key=None):
            pass

        def boom(state):
            raise RuntimeError("no")

        steps = [Step(n, lambda s: None, undo.bind(step=n)) for n in "ab"] + [Step("c", boom)]
        with Journal(sys.argv[1]) as j:
            before = set(sys.modules)
            out = Saga(steps, name="imports").run({}, journal=j, run_id="s")
            print(out.status, sorted(set(sys.modules) - before))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", child, str(tmp_path / "j.db")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.stdout.split(" ", 1) == ["rolled_back", "[]\n"], done.stdout + done.stderr


# -- 6. recover's and the journal's input, refused before anything happens -------------


def _crashed(tmp_path):
    """A journal with one saga whose process died after logging two undos."""
    from conftest import dead_pid

    LOG.clear()
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        saga = Saga(
            [Step(n, effect(n), undo.bind(step=n)) for n in ("a", "b")] + [Step("c", effect("c"))]
        )
        saga.run({}, inject={"c": "fail"}, journal=journal, run_id="s")
        journal.write(
            [("UPDATE sagas SET status = 'rolling_back', owner_pid = ?", (dead_pid(),)),
             ("UPDATE undos SET state = 'pending' WHERE state = 'done'", ())]
        )  # fmt: skip
    LOG.clear()
    return path


@pytest.mark.parametrize(
    "bad",
    [{"attacks.undo": undo}, [undo], "attacks"],
    ids=["dict", "list", "str"],
)
def test_recover_refuses_a_registry_that_is_not_one_before_claiming(tmp_path, bad):
    """The defect: a dict claimed the saga and dead-lettered every undo; a later recover
    with the right registry could never run them."""
    path = _crashed(tmp_path)
    with Journal(path) as journal:
        with pytest.raises(TypeError, match="must be a Registry"):
            recover(journal, bad)
        saga = journal.saga("s")
        assert (saga.status, saga.claim_pid, saga.dead) == ("rolling_back", None, 0)
        recover(journal, registry)
        assert journal.saga("s").status == "rolled_back"
    assert LOG == ["undo b", "undo a"]


def test_recover_refuses_what_is_not_a_journal(tmp_path):
    path = _crashed(tmp_path)
    with pytest.raises(TypeError, match="needs a Journal"):
        recover(str(path), registry)  # type: ignore[arg-type]
    with Journal(path) as journal:
        with pytest.raises(ValueError, match="batch"):
            recover(journal, registry, batch=0.5)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="force"):
            recover(journal, registry, force="yes")  # type: ignore[arg-type]
        assert journal.saga("s").claim_pid is None


@pytest.mark.parametrize(
    ("run_id", "name", "error", "match"),
    [
        (("t",), "saga", TypeError, "run_id must be a str"),
        ("", "saga", ValueError, "non-empty"),
        ("a\nb", "saga", ValueError, "printable"),
        ("ok", "order\nsaga-42  refund  committed  0  0  0", ValueError, "printable"),
        ("shop:7", "saga", ValueError, "must not contain ':'"),
    ],
)
def test_a_journalled_run_id_or_name_is_refused_before_any_step(tmp_path, run_id, name, error,
                                                                match):  # fmt: skip
    LOG.clear()
    saga = Saga([Step("a", effect("a"), undo.bind(step="a"))], name=name)
    with Journal(tmp_path / "j.db") as journal:
        with pytest.raises(error, match=match):
            saga.run({}, journal=journal, run_id=run_id)
        assert journal.sagas() == []
    assert LOG == []


def test_a_journalled_step_name_with_a_line_break_is_refused_before_any_step(tmp_path):
    from rollback_lessons.errors import InvalidNameError

    LOG.clear()
    saga = Saga([Step("a", effect("a"), undo.bind(step="a")),
                 Step("b\nforged", effect("b"), undo.bind(step="b"))])  # fmt: skip
    with Journal(tmp_path / "j.db") as journal:
        with pytest.raises(InvalidNameError, match="printable"):
            saga.run({}, journal=journal, run_id="s")
    assert LOG == []


def test_journal_show_never_prints_a_forged_row(tmp_path):
    """A journal written before names were checked: the name is one cell, escaped."""
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        saga = Saga([Step("a", effect("a"), undo.bind(step="a"))], name="order")
        saga.run({}, journal=journal, run_id="s")
        journal.write([("UPDATE sagas SET name = ?", ("order\nsaga-42  refund  committed",))])
        table = journal.table()
    assert len(table.splitlines()) == 2 and "'order\\nsaga-42" in table


# -- 11. idempotency keys name one undo ---------------------------------------------------


def test_idempotency_keys_of_two_sagas_never_collide(tmp_path):
    """The attack: run id "shop:7" with step "charge", run id "shop" with step "7:charge":
    both keys were "shop:7:charge", and the provider skipped the second refund. Run ids
    with ':' are refused; a step name may hold ':' (the key's first ':' ends the id)."""
    keys: list[str] = []
    reg = Registry()

    @compensation("refund", reg)
    def refund(order, idempotency_key):
        keys.append(idempotency_key)

    def boom(state):
        raise RuntimeError("shipping failed")

    with Journal(tmp_path / "j.db") as journal:
        s1 = Saga([Step("charge", lambda s: None, refund.bind(order=7)), Step("ship", boom)])
        with pytest.raises(ValueError, match="':'"):
            s1.run({}, journal=journal, run_id="shop:7")
        s2 = Saga([Step("7:charge", lambda s: None, refund.bind(order=99)), Step("ship", boom)])
        assert s2.run({}, journal=journal, run_id="shop").status is Status.ROLLED_BACK
        assert s1.run({}, journal=journal, run_id="shop7").status is Status.ROLLED_BACK
    assert keys == ["shop:7:charge", "shop7:charge"]
    assert [k.split(":", 1) for k in keys] == [["shop", "7:charge"], ["shop7", "charge"]]


# -- 12. durations that cannot be waited are refused when made ----------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: RetryPolicy(initial_delay=math.nan),
        lambda: RetryPolicy(max_delay=math.nan),
        lambda: RetryPolicy(multiplier=math.nan),
        lambda: RetryPolicy(multiplier=math.inf),
        lambda: RetryPolicy(initial_delay=math.inf, max_delay=math.inf),
        lambda: RetryPolicy(timeout=math.nan),
        lambda: RetryPolicy(timeout=-0.0),
        lambda: RetryPolicy(max_attempts=True),
        lambda: Step("x", lambda s: None, lambda s: None, undo_timeout=math.nan),
        lambda: Step("x", lambda s: None, lambda s: None, undo_timeout=math.inf),
        lambda: Step("x", lambda s: None, lambda s: None, undo_timeout=-0.0),
        lambda: Step("x", lambda s: None, lambda s: None, undo_timeout=True),
    ],
)
def test_non_finite_or_negative_durations_are_refused_at_construction(make):
    from rollback_lessons.errors import InvalidPipelineError

    with pytest.raises(InvalidPipelineError, match="must be"):
        make()


def test_a_with_block_refuses_a_non_finite_undo_timeout_before_the_step():
    from rollback_lessons.errors import InvalidPipelineError

    ran = []
    with pytest.raises(InvalidPipelineError, match="finite"), Rollback() as rb:
        rb.do("a", lambda: ran.append("a"), lambda: None, undo_timeout=math.inf)
    assert ran == []


def test_a_long_run_of_retries_waits_the_cap_never_overflows():
    policy = RetryPolicy(max_attempts=5000, initial_delay=1.0, multiplier=2.0, max_delay=5.0)
    assert policy.delay(4000) == 5.0


# -- 8. a value the journal never writes is damage: refused before any undo ---------------


@pytest.mark.parametrize(
    ("sql", "what"),
    [
        ("UPDATE undos SET state = 'pendinG' WHERE step = 'a'", "an undo's state is 'pendinG'"),
        ("UPDATE sagas SET status = 'rolling_bacK'", "a saga's status is 'rolling_bacK'"),
        ("UPDATE sagas SET status = 42", "a saga's status is '42'"),
        ("UPDATE sagas SET pivot_state = 'donE'", "a saga's pivot state is 'donE'"),
        ("UPDATE undos SET semantic = 7 WHERE step = 'b'", "an undo's semantic flag is 7"),
        *(  # (attack204 F3: ids the engine refuses, their undos run with keys ':a', ' :a')
            (
                f"PRAGMA foreign_keys = OFF; UPDATE sagas SET id = '{i}'; UPDATE undos SET saga_id"
                f" = '{i}'; UPDATE events SET saga_id = '{i}'",
                f"a saga's id is {i!r}",
            )
            for i in ("", "   ", "x\x1b[31m", "tab\there")
        ),
        ("UPDATE sagas SET name = ''", "a saga's name is ''"),
    ],
)
def test_a_value_outside_the_journals_own_is_refused_before_any_undo(tmp_path, sql, what):
    """The defect: ``pending`` changed to ``pendinG`` on disk (one byte) and recover skipped
    that undo and reported the saga rolled_back; a status of garbage was shown as is."""
    from rollback_lessons.cli import main
    from rollback_lessons.durable.journal import JournalError

    path = _crashed(tmp_path)
    con = sqlite3.connect(path)
    con.executescript(sql)
    con.commit()
    con.close()
    with Journal(path) as journal:
        with pytest.raises(JournalError, match=f"damaged .*{re.escape(what)}.*no undo was run"):
            recover(journal, registry)
    assert LOG == []
    assert main(["journal", "show", str(path)]) == 2


def test_a_changed_byte_of_an_undos_state_in_the_file_is_refused(tmp_path, capsys):
    """The attack itself: a byte of the file changed (SQLite's checks pass it)."""
    from rollback_lessons.cli import main

    path = _crashed(tmp_path)
    data = path.read_bytes()  # (the last connection closed: the WAL is in the file)
    at = data.rindex(b"pending")  # a row's (the first is the schema's default)
    path.write_bytes(data[: at + 6] + b"G" + data[at + 7 :])
    assert main(["recover", str(path), "--registry", __name__]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "'pendinG'" in err and "no undo was run" in err
    assert LOG == []


# -- 9, 10. the CLI: an exit in an undo, Ctrl-C, long names, a closed pipe ----------------

exiting = Registry()


@compensation("attacks.undo", exiting)
def exits(step, idempotency_key=None):
    if step == "b":
        sys.exit(0)
    LOG.append(f"undo {step}")


def _cli(*args, env=None, **kw):
    return subprocess.run(
        [sys.executable, "-m", "rollback_lessons", *args],
        capture_output=True, text=True, timeout=120, env=env, **kw,
    )  # fmt: skip


def test_an_undo_calling_sys_exit_during_recover_leaves_the_saga_unfinished(tmp_path, capsys):
    """The defect: the CLI exited 0, silently, the saga unfinished. SystemExit from an undo
    is an interrupt: one line, non-zero, and the next recover finishes the saga."""
    from rollback_lessons.cli import main

    path = _crashed(tmp_path)
    (tmp_path / "exiting_registry.py").write_text(
        "from test_attacks import exiting as registry\n"
    )  # (the test module's registry, importable by name)
    sys.path.insert(0, str(tmp_path))
    try:
        assert main(["recover", str(path), "--registry", "exiting_registry"]) == 2
    finally:
        sys.path.remove(str(tmp_path))
    err = capsys.readouterr().err
    assert (
        len(err.splitlines()) == 1
        and "sys.exit(0) was called during the undo of" in err
        and "unfinished" in err
    )
    with Journal(path) as journal:
        assert journal.saga("s").status == "rolling_back"
        assert [u.state for u in journal.undos("s")] == ["pending", "pending"]
        recover(journal, registry)
        assert journal.saga("s").status == "rolled_back"
    assert LOG == ["undo b", "undo a"]


def test_a_file_name_too_long_is_one_line(tmp_path):
    for command in (["journal", "show"], ["recover"]):
        extra = ["--registry", "json"] if command == ["recover"] else []
        r = _cli(*command, str(tmp_path / ("x" * 300 + ".db")), *extra)
        assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
        assert "File name too long" in r.stderr or "name too long" in r.stderr.lower()


_SLOW_REGISTRY = textwrap.dedent(
    """
    import os, time
    from rollback_lessons.durable.registry import Registry, compensation
    registry = Registry()

    @compensation("attacks.undo", registry)
    def undo(step, idempotency_key=None):
        with open(os.environ["SLOW_LOG"], "a") as f:
            f.write(f"start {step}\\n")
        time.sleep(0.3)
        with open(os.environ["SLOW_LOG"], "a") as f:
            f.write(f"undo {step}\\n")
    """
)


def _ctrl_c_default() -> None:
    """The child hears Ctrl-C as from a terminal, even when this run was started in the
    background (a shell starts background jobs with SIGINT ignored, and children inherit it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_recover_is_one_line_and_leaves_the_saga_for_the_next(tmp_path):
    """The defect: a KeyboardInterrupt traceback (5 of 10 trials)."""
    path = _crashed(tmp_path)
    (tmp_path / "slow_registry.py").write_text(_SLOW_REGISTRY)
    log = tmp_path / "slow.log"
    env = dict(os.environ, PYTHONPATH=str(tmp_path), SLOW_LOG=str(log))
    child = subprocess.Popen(
        [sys.executable, "-m", "rollback_lessons", "recover", str(path), "--registry",
         "slow_registry"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_ctrl_c_default,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (log.exists() and "start" in log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130 and err.splitlines() == [
        "rollback-lessons: recover interrupted (Ctrl-C) during the undo of 'b' (saga 's'), not "
        "recorded done: it runs again next time (same idempotency key); what it undid before it "
        "is recorded, and left unfinished for the next recover: saga 's'"  # (attack75 F3)
    ], err
    with Journal(path) as journal:
        assert journal.saga("s").status == "rolling_back"
    r = _cli("recover", str(path), "--registry", "slow_registry", env=env)
    assert r.returncode == 0, r.stderr
    with Journal(path) as journal:
        assert journal.saga("s").status == "rolled_back"


def test_output_piped_into_a_reader_that_stops_early_ends_quietly(tmp_path):
    """The defect: a BrokenPipeError traceback under ``journal show j.db | head -1``."""
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        saga = Saga([Step("a", effect("a"), undo.bind(step="a")), Step("b", effect("b"))],
                    name="order-" + "x" * 300)  # fmt: skip
        for i in range(300):
            saga.run({}, inject={"b": "fail"}, journal=journal, run_id=f"s{i}")
    child = subprocess.Popen(
        [sys.executable, "-m", "rollback_lessons", "journal", "show", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert child.stdout is not None and child.stderr is not None
    child.stdout.readline()
    child.stdout.close()  # (head -1)
    err = child.stderr.read().decode()
    assert child.wait(timeout=60) == 1 and err == "", err


# -- 7, 13. a journal path is a file path; creating one fails whole ------------------------


@pytest.mark.parametrize("name", [":memory:", "file:orders.db", "file:orders.db?mode=memory"])
def test_a_journal_path_sqlite_treats_as_special_is_a_plain_file(tmp_path, monkeypatch, name):
    """The defects: ``Journal(":memory:")`` kept nothing (and a file named :memory: appeared),
    ``Journal("file:orders.db")`` wrote to orders.db."""
    monkeypatch.chdir(tmp_path)
    LOG.clear()
    saga = Saga([Step("a", effect("a"), undo.bind(step="a")), Step("b", effect("b"))])
    with Journal(name) as journal:
        saga.run({}, inject={"b": "fail"}, journal=journal, run_id="s")
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    with Journal(name, create=False) as journal:
        assert journal.saga("s").status == "rolled_back"


def test_a_full_disk_while_creating_a_journal_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    from rollback_lessons.durable import files
    from rollback_lessons.durable.journal import JournalError

    real = sqlite3.connect

    class Full:
        def __init__(self, con):
            self.con = con

        def execute(self, sql, *args):
            if sql == "COMMIT":
                raise sqlite3.OperationalError("database or disk is full")
            return self.con.execute(sql, *args)

        def close(self):
            self.con.close()

    monkeypatch.setattr(files.sqlite3, "connect", lambda *a, **kw: Full(real(*a, **kw)))
    with pytest.raises(JournalError, match=r"cannot create the journal .*disk is full") as caught:
        Journal(tmp_path / "j.db")
    assert len(str(caught.value).splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


# -- 5. recover --force takes over an owner whose step is in flight ------------------------


def test_an_owner_taken_over_at_its_pivot_is_told_recover_undid_nothing(tmp_path):
    """attack42 F7: ``recover --force`` took the saga over while its pivot ran: it left the
    saga for a person, undoing nothing; the owner's error said its effect "may have landed
    after recover undid the saga"."""
    from rollback_lessons import Kind
    from rollback_lessons.errors import TakenOver

    LOG.clear()
    path = tmp_path / "j.db"

    def email(state):
        with Journal(path) as other:
            other.write([("UPDATE sagas SET owner_host = 'elsewhere', owner_space = ?", (ELSE,))])
            recover(other, registry, force=True)
        LOG.append("do email")

    saga = Saga([Step("reserve", effect("reserve"), undo.bind(step="reserve")),
                 Step("email", email, kind=Kind.PIVOT)])  # fmt: skip
    with Journal(path) as journal:
        outcome = saga.run({}, journal=journal, run_id="s")
    assert isinstance(outcome.error, TakenOver)
    said = str(outcome.error)
    assert "the journal shows the saga halted, nothing of it undone by recover" in said
    assert "undid the saga" not in said and "undo reserve" not in LOG


ELSE = "pid:[4026530000] boot 00000000-0000-0000-0000-000000000000"
"""Another machine's PID namespace and boot: a host name alone is no other machine (its
pid in this namespace and boot is checked here: attack23's F2)."""


@pytest.mark.parametrize("register", ["before", "after"])
def test_a_step_landing_after_a_forced_takeover_is_reported_never_rolled_back(tmp_path, register):
    """The attack: the owner (on "another host") is inside the charge, logged before it;
    ``recover --force`` undoes the charge and ends the saga rolled_back; then the charge
    happens. The owner checks its claim when each step returns: it reports the effect
    (the journal says rollback_incomplete, the charge leaked; its outcome is halted and
    says to check the charge by hand)."""
    from rollback_lessons.errors import TakenOver

    LOG.clear()
    path = tmp_path / "j.db"

    def charge(state):
        with Journal(path) as other:  # the other host's operator, while the charge is sent
            other.write([("UPDATE sagas SET owner_host = 'elsewhere', owner_space = ?", (ELSE,))])
            recover(other, registry, force=True)
        LOG.append("do charge")  # the provider answers: the card is charged

    saga = Saga(
        [
            Step("reserve", effect("reserve"), undo.bind(step="reserve")),
            Step("charge", charge, undo.bind(step="charge"), register=register),
            Step("ship", effect("ship"), undo.bind(step="ship")),
        ]
    )
    with Journal(path) as journal:
        outcome = saga.run({}, journal=journal, run_id="s")
        saga_row = journal.saga("s")
        states = {u.step: u.state for u in journal.undos("s")}
    assert isinstance(outcome.error, TakenOver) and outcome.status is Status.HALTED
    assert "step 'charge' returned after" in str(outcome.error)
    assert "check 'charge' by hand" in str(outcome.error)
    # what recover did, as the journal shows it (attack42 F7: said, whatever it did)
    undone = "charge, reserve" if register == "before" else "reserve"
    assert (
        f"landed after recover undid {undone} (the journal shows the saga rollback_incomplete)"
        in str(outcome.error)
    )
    assert "ship" not in " ".join(LOG)  # (the owner went no further)
    assert saga_row.status == "rollback_incomplete"
    assert states == {"reserve": "done", "charge": "leaked"}
    assert LOG[-1] == "do charge" and "undo reserve" in LOG
    # attack45 F1: its outcome's pending undos are the new holder's, not "left for a person"
    # (a person told to run them would refund what recover refunded)
    said = "\n".join(outcome.summary_lines())
    assert "left for a person" not in said, said
    assert "(not undone here: the process that took the saga over has them)" in said
    # attack48 F4: the step that landed late is no one's to undo: leaked, as the journal says
    assert outcome.leaked == ("charge",) and outcome.pending == ("reserve",)
    assert "charge: returned after the saga was taken over, check it by hand" in said
    assert "for a person" not in outcome._repr_html_()


def test_a_with_block_taken_over_mid_step_leaves_no_undo_to_a_person(tmp_path):
    """attack45 F1, the with-block: the TakenOver it raises said 'rollback halted; left for
    a person: charge, reserve', undos recover had run."""
    from rollback_lessons import Rollback
    from rollback_lessons.errors import TakenOver

    LOG.clear()
    path = tmp_path / "j.db"

    def charge():
        with Journal(path) as other:
            other.write([("UPDATE sagas SET owner_host = 'elsewhere', owner_space = ?", (ELSE,))])
            recover(other, registry, force=True)
        LOG.append("do charge")

    with Journal(path) as journal:
        with pytest.raises(TakenOver) as caught:
            with Rollback(journal=journal, run_id="s") as rb:
                rb.do("reserve", lambda: LOG.append("do reserve"), undo.bind(step="reserve"))
                rb.do("charge", charge, undo.bind(step="charge"))
    notes = " ".join(getattr(caught.value, "__notes__", []))
    assert "for a person" not in notes and "no undo logged" not in notes, notes  # (F4)
    assert "check 'charge' by hand" in str(caught.value)
    assert LOG.count("undo reserve") == 1 and rb.outcome.status is Status.HALTED
