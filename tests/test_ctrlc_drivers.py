"""A Ctrl-C in the engine's drivers tells one story on every driver (issue 25, attack16):
``saga.run`` on a list, on the graph (``completion=``), ``saga.arun``, ``Rollback`` and
``AsyncRollback``. Going forward a Ctrl-C anywhere (an event's observer, a logging handler,
the cancel function) fails the run there: what was done is undone, a step that returned is
done (its undo runs), a step whose action was never called is not run (neither leaked nor a
pivot in doubt), what is left is named in the KeyboardInterrupt's notes, and it is re-raised;
once the saga committed, nothing is undone and a note says so.
"""

import asyncio
import logging
import re
from functools import partial

import pytest
from conftest import a_part, examples
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rollback_lessons import (
    AsyncRollback,
    Kind,
    Parallel,
    RetryPolicy,
    Rollback,
    Saga,
    Status,
    Step,
    VirtualClock,
)
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry, compensation
from rollback_lessons.runners.stepfunctions import StepFunctionsRunner

AFTER_COMMIT = "rollback: the Ctrl-C came once the saga had committed: there is nothing to undo"
QUICK = RetryPolicy(max_attempts=2, initial_delay=0.0, max_delay=0.0)


def drive(saga: Saga, driver: str, **kw):
    """Run ``saga`` on ``driver``: its Outcome, or the KeyboardInterrupt it raised."""
    kw.setdefault("clock", VirtualClock())
    try:
        if driver == "list":
            return saga.run({}, **kw)
        if driver == "graph":
            return saga.run({}, completion=list(saga.names), **kw)
        return asyncio.run(saga.arun({}, **kw))
    except (KeyboardInterrupt, SystemExit) as exc:
        return exc


def notes(exc) -> str:
    return "\n".join(getattr(exc, "__notes__", ()))


def recorded(rec: list):
    def act(k):
        return lambda s: rec.append(("do", k))

    def undo(k):
        return lambda s: rec.append(("undo", k))

    return act, undo


def named(exc) -> set[str]:
    """The steps the KeyboardInterrupt's notes name (steps are single capitals here)."""
    return set(re.findall(r"\b[A-Z]\b", notes(exc)))


def undo_world(name: str, *, gone: bool = False):
    """A world, ``rm`` (an undo registered in a fresh registry, which marks step ``k``
    undone in the world (0), or takes it out: ``gone``), and the registry."""
    registry, world = Registry(), {}

    @compensation(name, registry)
    def rm(k, idempotency_key=None):
        if gone:
            world.pop(k, None)
        else:
            world[k] = 0

    return world, rm, registry


def setter(world: dict, rm, k: str) -> Step:
    """Step ``k``: sets world[k] = 1, undone by ``rm``."""
    return Step(k, lambda s: world.__setitem__(k, 1), rm.bind(k=k))


def flaky(action):
    """``action``, its first call failing before its effect (retried)."""
    tries: list[int] = []

    def act(s):
        tries.append(1)
        if len(tries) == 1:
            raise ConnectionError("busy, try again")
        return action(s)

    return act


def shapes(rec: list) -> dict[str, Saga]:
    act, undo = recorded(rec)
    return {
        "list": Saga(
            [
                Step("A", act("A"), undo("A")),
                Step("B", act("B"), undo("B"), register="before"),
                Step("R", flaky(act("R")), undo("R"), retry=QUICK),
                Step("N", act("N")),
            ],
            name="list",
        ),
        "group": Saga(
            [
                Step("A", act("A"), undo("A")),
                Parallel(
                    Step("B", act("B"), undo("B")),
                    [Step("C", act("C"), undo("C"), register="before"), Step("D", act("D"))],
                ),
                Step("E", act("E"), undo("E")),
            ],
            name="group",
        ),
    }


NO_UNDO = {"N", "D"}
CASES = [
    (shape, driver, inject)
    for shape, inject in [
        ("list", {}),
        ("list", {"N": "fail"}),
        ("group", {}),
        ("group", {"E": "fail"}),
        ("group", {"B": "fail_after_effect"}),
    ]
    for driver in ("list", "graph", "arun")
]


def events_of(shape: str, driver: str, inject) -> int:
    seen: list = []
    drive(shapes([])[shape], driver, inject=inject, on_event=seen.append)
    return len(seen)


SWEEP = [
    (shape, driver, inject, n)
    for shape, driver, inject in CASES
    for n in range(1, events_of(shape, driver, inject) + 1)
]


@pytest.mark.parametrize(
    ("shape", "driver", "inject", "n"), a_part(SWEEP, 3, name="ctrlc-every-event")
)
def test_a_ctrl_c_at_any_event_undoes_every_step_that_returned_on_every_driver(
    shape, driver, inject, n
):
    """A KeyboardInterrupt raised by an observer at the n-th event: it comes out (never
    swallowed, never "Task exception was never retrieved"), no undo runs twice or for a step
    never started, every effect left (of a step with an undo) is named in its notes, and
    going forward every step that returned with its undo logged is undone; once committed,
    nothing is undone and a note says so. (Before: arun left the steps done in place,
    unnamed, or went on to commit.)"""
    rec: list = []
    seen: list = []

    def observer(event):
        seen.append((event.kind, event.step))
        if len(seen) == n:
            raise KeyboardInterrupt

    got = drive(shapes(rec)[shape], driver, inject=inject, on_event=observer)
    assert isinstance(got, KeyboardInterrupt), (got, seen)
    done = [k for op, k in rec if op == "do"]
    undone = [k for op, k in rec if op == "undo"]
    started = {k for kind, k in seen if kind == "step_start"}
    assert len(undone) == len(set(undone)), rec
    assert set(undone) <= started, (rec, seen)
    if ("committed", None) in seen:
        assert undone == [] and notes(got) == AFTER_COMMIT, (rec, notes(got))
        return
    assert set(done) - set(undone) - NO_UNDO <= named(got), (rec, notes(got))
    forward = "pipeline_failed" not in [kind for kind, _ in seen]
    logged = {k for kind, k in seen[: n - 1] if kind == "undo_registered"}
    if forward:
        assert logged & set(done) <= set(undone), (rec, seen)


@pytest.mark.parametrize("driver", ["list", "graph", "arun"])
def test_a_ctrl_c_in_a_logging_handler_fails_the_run_there_in_arun_too(driver):
    """The same from a handler on the package's logger, at B's start (B and C start as A
    ends: in arun, in A's task; before, the KeyboardInterrupt left the event loop there,
    "Task exception was never retrieved", A left in place)."""
    rec: list = []
    raised: list[str] = []

    class Interrupting(logging.Handler):
        def emit(self, record):
            if "step_start B" in record.getMessage() and not raised:  # (once)
                raised.append(record.getMessage())
                raise KeyboardInterrupt

    logger = logging.getLogger("rollback_lessons")
    handler, level = Interrupting(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        got = drive(shapes(rec)["group"], driver)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert isinstance(got, KeyboardInterrupt)
    assert rec == [("do", "A"), ("undo", "A")], raised
    assert "B was not run" in notes(got) and raised


def test_arun_in_a_group_never_commits_after_a_ctrl_c_at_a_branchs_end(tmp_path):
    """attack16 F2: a Ctrl-C at ``step_done b`` while c ran in the same turn of the loop:
    c's end freed e, which started and committed before the run heard of it (the journal
    said ``committed``), then a bare KeyboardInterrupt. Now the machine hears it in b's own
    task: nothing more starts, a, b and c are undone, the journal says rolled_back."""
    world, rm, _ = undo_world("h18_rm")
    saga = Saga(
        [setter(world, rm, "a"), Parallel(setter(world, rm, "b"), setter(world, rm, "c")),
         setter(world, rm, "e")],
        name="j",
    )  # fmt: skip

    def observer(event):
        if (event.kind, event.step) == ("step_done", "b"):
            raise KeyboardInterrupt

    with Journal(str(tmp_path / "j.db")) as journal:
        got = drive(saga, "arun", on_event=observer, journal=journal, run_id="r1")
        assert isinstance(got, KeyboardInterrupt)
        assert world == {"a": 0, "b": 0, "c": 0}
        assert journal.saga("r1").status == "rolled_back"


# -- the cancel function raising KeyboardInterrupt (F1) ------------------------------------


def interrupting(k: int):
    """A cancel function that raises KeyboardInterrupt at its k-th call."""
    calls: list[int] = []

    def cancel() -> bool:
        calls.append(1)
        if len(calls) == k:
            raise KeyboardInterrupt
        return False

    return cancel, calls


@pytest.mark.parametrize("driver", ["list", "graph", "arun"])
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_a_ctrl_c_in_the_cancel_function_as_a_step_returns_undoes_that_step(driver, k):
    """Asked as s{k-2} returns (k=1: before the start), the cancel function raises a
    KeyboardInterrupt: the step returned, so it is done and undone, on every driver. (Before,
    a list left it unlogged: s0 "not undone (no undo logged for it)", its effect in place.)"""
    world: dict = {}

    def step(k: str) -> Step:
        return Step(k, lambda s: world.__setitem__(k, 1), lambda s: world.pop(k))

    saga = Saga([step("s0"), step("s1"), step("s2")])
    cancel, _ = interrupting(k)
    got = drive(saga, driver, cancel=cancel)
    assert isinstance(got, KeyboardInterrupt)
    assert world == {}
    assert "not undone" not in notes(got) and "also failed" not in notes(got), notes(got)


def test_a_ctrl_c_in_the_cancel_function_names_what_it_leaves_in_arun(tmp_path):
    """attack16 F1b: arun, the cancel function raising KeyboardInterrupt while b waits to
    retry (its 4th call): a is undone (before: left, nothing said, the journal ``running``)."""
    world, rm, _ = undo_world("h18_f1b")
    b = flaky(lambda s: world.__setitem__("b", 1))
    saga = Saga(
        [
            setter(world, rm, "a"),
            Step("b", b, rm.bind(k="b"), retry=RetryPolicy(max_attempts=3, initial_delay=0.3)),
        ],
        name="f1b",
    )
    cancel, calls = interrupting(4)
    with Journal(str(tmp_path / "j.db")) as journal:
        got = drive(saga, "arun", cancel=cancel, journal=journal, run_id="r1", clock=None)
        assert isinstance(got, KeyboardInterrupt) and len(calls) >= 4
        assert world == {"a": 0}
        assert journal.saga("r1").status == "rolled_back"


class InterruptedWait(VirtualClock):
    """A clock whose wait is cut by a Ctrl-C (a loop run otherwise than by asyncio.run
    delivers it there: a Jupyter kernel's interrupt, ``run_until_complete``)."""

    def __init__(self, raised: type[BaseException]) -> None:
        super().__init__()
        self.raised = raised

    def sleep(self, seconds: float) -> None:
        raise self.raised

    async def asleep(self, seconds: float) -> None:
        raise self.raised


@pytest.mark.parametrize("driver", ["list", "graph", "arun"])
@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("raised", [KeyboardInterrupt, SystemExit])
def test_a_ctrl_c_in_a_steps_wait_to_retry_undoes_what_was_done(driver, grouped, raised, tmp_path):
    """attack18's F2: in arun the clock's wait ran in a task of its own, and a Ctrl-C there
    left the event loop at once: a's effect in place, no note, the journal rolling_back."""
    world, rm, _ = undo_world("retry_wait", gone=True)
    b = Step("b", flaky(lambda s: world.__setitem__("b", 1)), rm.bind(k="b"),
             retry=RetryPolicy(max_attempts=3, initial_delay=1.0))  # fmt: skip
    a, c = setter(world, rm, "a"), setter(world, rm, "c")
    saga = Saga([a, Parallel(b, c)] if grouped else [a, b], name="retry_wait")
    with Journal(str(tmp_path / "j.db")) as journal:
        got = drive(saga, driver, journal=journal, run_id="r", clock=InterruptedWait(raised))
        assert journal.saga("r").status == "rolled_back"
    assert isinstance(got, raised) and world == {}


@pytest.mark.parametrize("driver", ["list", "graph", "arun"])
@pytest.mark.parametrize("raised", [KeyboardInterrupt, RuntimeError])
def test_a_logging_handler_raising_at_the_commit_never_undoes_it(driver, raised, tmp_path):
    """attack18's F1: a handler raising at the ``committed`` record undid the committed saga
    (the journal still said committed: recover never told). An error is reported on stderr
    and the run commits; a Ctrl-C is re-raised once the run ended, with the commit's note."""
    world, rm, _ = undo_world("commit_log", gone=True)

    class Raising(logging.Handler):
        def emit(self, record):
            if record.getMessage().startswith("committed"):
                raise raised("the log is down")

    saga = Saga([setter(world, rm, k) for k in "AB"], name="commit_log")
    logger = logging.getLogger("rollback_lessons")
    handler, level = Raising(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with Journal(str(tmp_path / "j.db")) as journal:
            got = drive(saga, driver, journal=journal, run_id="r")
            assert journal.saga("r").status == "committed"
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert world == {"A": 1, "B": 1}
    if raised is KeyboardInterrupt:
        assert isinstance(got, KeyboardInterrupt) and AFTER_COMMIT in notes(got)
    else:
        assert got.status is Status.COMMITTED


@pytest.mark.parametrize("driver", ["list", "graph", "arun"])
def test_a_ctrl_c_as_the_commits_write_returns_never_undoes_the_committed_saga(driver, tmp_path):
    """attack21's A1: a Ctrl-C that lands as the journal's write holding the commit returns
    (the commit on disk) undid the saga in ``arun`` (``saga.run`` kept it: the journal alone
    knows whether the commit landed). On every driver nothing is undone, the Ctrl-C is
    re-raised with a note saying so, and the journal says committed: read back (attack70
    F4), the note says the saga had committed."""
    world, rm, _ = undo_world("commit_write", gone=True)
    saga = Saga([setter(world, rm, k) for k in "AB"], name="commit_write")
    with Journal(str(tmp_path / "j.db")) as journal:
        real = journal.write

        def write(statements, **kw):
            out = real(statements, **kw)
            if any("committed" in str(s) for s in statements):
                raise KeyboardInterrupt  # the commit is on disk; Ctrl-C now
            return out

        journal.write = write  # type: ignore[method-assign]
        got = drive(saga, driver, journal=journal, run_id="r")
        journal.write = real  # type: ignore[method-assign]
        assert journal.saga("r").status == "committed"
    assert world == {"A": 1, "B": 1}  # (without the fix, arun: {} - both undone)
    assert isinstance(got, KeyboardInterrupt)
    assert notes(got) == AFTER_COMMIT


@pytest.mark.parametrize("driver", ["list", "graph", "arun"])
def test_a_ctrl_c_in_the_cancel_function_while_a_step_waits_to_retry_fails_that_step(driver):
    """harden18's leftover: asked while b waits to retry, the cancel function raises a
    KeyboardInterrupt. A list fails b with it; the graph drivers said "b also failed ...
    ConnectionError('busy')" (b's own last error), as if b had failed on its own. Now each
    undoes a and says nothing of b's old error (the Ctrl-C is b's failure)."""
    world: dict = {}
    tries: list[int] = []

    def flaky_b(s):
        tries.append(1)
        if len(tries) == 1:
            raise ConnectionError("busy")
        world["b"] = 1

    saga = Saga(
        [
            Step("a", lambda s: world.__setitem__("a", 1), lambda s: world.pop("a")),
            Step("b", flaky_b, lambda s: world.pop("b"), retry=RetryPolicy(max_attempts=3)),
        ]
    )
    for k in range(1, 8):  # the call that comes while b waits (each driver asks its own way)
        world.clear()
        tries.clear()
        cancel, _ = interrupting(k)
        got = drive(saga, driver, cancel=cancel, clock=None)
        if isinstance(got, KeyboardInterrupt) and len(tries) == 1:
            break
    else:
        pytest.fail("no call of the cancel function came while b waited to retry")
    assert world == {} and "ConnectionError" not in notes(got), notes(got)


# -- a Ctrl-C at a step's start, at its failure, at the commit (F7, F4, F12) ----------------


@pytest.mark.parametrize("driver", ["list", "graph", "arun"])
def test_a_ctrl_c_as_a_step_starts_says_it_was_not_run(driver):
    """At ``step_start`` of b (its action not yet called): b is not run, so neither leaked
    nor undone; a is undone. (Before: b "not undone (no undo logged for it)", a false leak.)"""
    rec: list = []
    act, undo = recorded(rec)
    saga = Saga(
        [Step("a", act("a"), undo("a")), Step("b", act("b"), undo("b")), Step("c", act("c"))]
    )

    def observer(event):
        if (event.kind, event.step) == ("step_start", "b"):
            raise KeyboardInterrupt

    got = drive(saga, driver, on_event=observer)
    assert isinstance(got, KeyboardInterrupt)
    assert rec == [("do", "a"), ("undo", "a")]
    assert "not undone" not in notes(got)
    assert "b was not run" in notes(got)


@pytest.mark.parametrize("driver", ["list", "graph", "arun"])
def test_a_ctrl_c_as_a_pivot_starts_rolls_back_not_halts(driver):
    """A pivot never called is not in doubt: the run rolls back what was done (before: it
    halted for a person, a, b left in place)."""
    rec: list = []
    act, undo = recorded(rec)
    saga = Saga(
        [
            Step("a", act("a"), undo("a")),
            Step("b", act("b"), undo("b")),
            Step("email", act("email"), kind=Kind.PIVOT),
        ]
    )

    def observer(event):
        if (event.kind, event.step) == ("step_start", "email"):
            raise KeyboardInterrupt

    got = drive(saga, driver, on_event=observer)
    assert isinstance(got, KeyboardInterrupt)
    assert rec == [("do", "a"), ("do", "b"), ("undo", "b"), ("undo", "a")]
    assert "left for a person" not in notes(got)


@pytest.mark.parametrize("driver", ["list", "graph", "arun"])
def test_a_ctrl_c_at_a_step_failed_after_its_effect_names_it(driver):
    """attack16 F4: b fails after its effect (its undo logged after it: leaked) and the
    Ctrl-C comes at its ``step_failed``: the KeyboardInterrupt names b, on every driver
    (before: no note when b's group started together, completion= or arun)."""
    world: dict = {}

    def step(k, register="after"):
        return Step(k, lambda s: world.__setitem__(k, 1), lambda s: world.__setitem__(k, 0),
                    register=register)  # fmt: skip

    saga = Saga([step("a"), Parallel(step("b"), step("c", "before"))])

    def observer(event):
        if (event.kind, event.step) == ("step_failed", "b"):
            raise KeyboardInterrupt

    got = drive(saga, driver, inject={"b": "fail_after_effect"}, on_event=observer)
    assert isinstance(got, KeyboardInterrupt)
    assert world["a"] == 0 and world["b"] == 1
    assert "not undone (no undo logged for it): b" in notes(got)


def test_a_ctrl_c_at_the_commit_says_so_in_every_with_block_and_saga():
    """attack16 F12: at the ``committed`` event nothing is undone and the KeyboardInterrupt
    says why, in Rollback and AsyncRollback too (before: no note there)."""

    def observer(event):
        if event.kind == "committed":
            raise KeyboardInterrupt

    world: dict = {}
    with pytest.raises(KeyboardInterrupt) as sync:
        with Rollback(on_event=observer) as rb:
            rb.do("a", lambda: world.__setitem__("a", 1), lambda: world.__setitem__("a", 0))

    async def block() -> None:
        async with AsyncRollback(on_event=observer) as rb:
            await rb.do("b", lambda: world.__setitem__("b", 1), lambda: world.__setitem__("b", 0))

    with pytest.raises(KeyboardInterrupt) as awaited:
        asyncio.run(block())
    saga = Saga(
        [Step("c", lambda s: world.__setitem__("c", 1), lambda s: world.__setitem__("c", 0))]
    )
    runs = [drive(saga, d, on_event=observer) for d in ("list", "graph", "arun")]
    assert world == {"a": 1, "b": 1, "c": 1}
    for exc in [sync.value, awaited.value, *runs]:
        assert isinstance(exc, KeyboardInterrupt)
        assert exc.__notes__ == [AFTER_COMMIT]


# -- the cancel asked at the same points on every engine (F8) -------------------------------


def undo_retried(graph: bool) -> Saga:
    def act(n, s):
        s[n] = "done"

    def undo(n, s):
        if s.get(n) == "done":
            s[n] = "undone"

    s0 = Step("s0", partial(act, "s0"), partial(undo, "s0"), register="before")
    s1 = Step("s1", partial(act, "s1"), partial(undo, "s1"))
    s2 = Step("s2", partial(act, "s2"), partial(undo, "s2"))
    return Saga([s0, Parallel(s1, s2)] if graph else [s0, s1, s2], name="undo-wait", policy="retry")


def counting(k: int):
    """True at the k-th call only (a request consumed when read)."""
    calls: list[int] = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) == k

    return cancel, calls


@pytest.mark.parametrize("graph", [False, True])
def test_a_cancel_is_never_asked_after_an_undos_wait(graph, dbos_runner):
    """attack16 F8: s2 fails, s0's undo fails once and waits to retry. The cancel is asked
    before the start and as s0 and s1 return: 3 times, on saga.run (list and graph), Step
    Functions and DBOS alike (before: saga.run on a list and DBOS asked a 4th time, after the
    undo's wait, and a True read there was eaten)."""
    inject = {"s2": "fail_after_effect", "s0": "undo_fails_once"}
    here, here_calls = counting(4)
    local = undo_retried(graph).run({}, inject=inject, cancel=here, clock=VirtualClock())
    assert len(here_calls) == 3 and local.status.value == "rollback_incomplete"
    with StepFunctionsRunner.start() as sfn:
        for runner in (sfn, dbos_runner):
            cancel, calls = counting(4)
            remote = runner.run(undo_retried(graph), {}, inject=inject, cancel=cancel)
            assert len(calls) == 3, runner
            assert remote.status == local.status


# -- the window Python owns at start-up (F9) ------------------------------------------------


def test_the_readme_says_which_lines_run_before_the_ctrl_c_handler_is_installed() -> None:
    """attack16 F9: a Ctrl-C during the package's first line (the import of ``_starting``,
    which installs the handler as its last line) gave a traceback, while the README placed
    Python's window "before the package's first line runs". The README now names that line,
    and these are the lines: the package's first statement imports ``_starting``, whose last
    statement installs the handler."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    first = ast.parse((root / "rollback_lessons" / "__init__.py").read_text()).body[1]
    assert isinstance(first, ast.ImportFrom) and [a.name for a in first.names] == ["_starting"]
    last = ast.parse((root / "rollback_lessons" / "_starting.py").read_text()).body[-1]
    assert ast.unparse(last) == "install()"
    readme = " ".join((root / "README.md").read_text().split())
    assert (
        "before the handler is installed, in Python's own start-up, its finding of the "
        "package and the package's first line, `from . import _starting`, until that "
        "module's last line installs it" in readme
    )


@settings(max_examples=examples(25))
@example(n=2, parallel=False, undo_fails=0, fails=True, k=4, driver="arun")
@given(
    n=st.integers(1, 4),
    parallel=st.booleans(),
    undo_fails=st.integers(0, 3),
    fails=st.booleans(),
    k=st.integers(1, 6),
    driver=st.sampled_from(["list", "graph", "arun"]),
)
def test_no_driver_asks_the_cancel_once_the_run_failed(n, parallel, undo_fails, fails, k, driver):
    """The property behind ``schedule.asks_cancel``: whatever the saga (undos failing once
    and retried, a step failing), the cancel function is never asked once the run failed
    (its ``pipeline_failed`` event), on any in-process driver: asked there it could change
    nothing, and a request consumed when read would be eaten. (Before: a list asked it after
    each undo's wait to retry; arun asked it in its loop after a branch, run in the same
    turn, had failed the run: the example.)"""
    seen: list[str] = []
    asked_late: list[int] = []
    world: dict = {}

    def step(i: int) -> Step:
        k_ = f"s{i}"
        return Step(k_, lambda s: world.__setitem__(k_, 1), lambda s: world.pop(k_, None))

    steps = [step(i) for i in range(n)]
    shape = [steps[0], Parallel(steps[1], steps[2]), *steps[3:]] if parallel and n >= 3 else steps
    inject = {f"s{undo_fails}": "undo_fails_once"} if undo_fails < n else {}
    if fails:
        inject[f"s{n - 1}"] = "fail"
    saga = Saga(shape, name="asked", policy="retry")
    calls: list[int] = []

    def cancel() -> bool:
        calls.append(1)
        if "pipeline_failed" in seen:
            asked_late.append(len(calls))
        return len(calls) == k

    got = drive(saga, driver, inject=inject, cancel=cancel, on_event=lambda e: seen.append(e.kind))
    assert not isinstance(got, BaseException)
    assert asked_late == [], (seen, asked_late)


@pytest.mark.parametrize("driver", ["list", "graph", "arun"])
@pytest.mark.parametrize("first", [True, False])
def test_a_step_not_run_leaves_no_intent_in_the_journal(tmp_path, driver, first):
    """With a journal, a Ctrl-C at a step's start (the first step's: arun launches it from
    its own loop, not a branch) ends the saga rolled_back, the step's intent abandoned
    (not_run), what was done undone (before: arun left the first step's saga
    ``rolling_back`` with its intent, for recover to report; any other driver, an intent
    left ``intent`` though the step never ran)."""
    world, rm, _ = undo_world("h18_not_run")
    saga = Saga(
        [setter(world, rm, "a"), Parallel(setter(world, rm, "b"), setter(world, rm, "c"))],
        name="not-run",
    )
    at = "a" if first else "b"

    def observer(event):
        if (event.kind, event.step) == ("step_start", at):
            raise KeyboardInterrupt

    with Journal(str(tmp_path / "j.db")) as journal:
        got = drive(saga, driver, on_event=observer, journal=journal, run_id="r1")
        assert isinstance(got, KeyboardInterrupt) and f"{at} was not run" in notes(got)
        assert world == ({} if first else {"a": 0})
        assert journal.saga("r1").status == "rolled_back"
        states = {u.step: u.state for u in journal.undos("r1")}
        assert states[at] == "not_run" and journal.unfinished() == []


@pytest.mark.parametrize("driver", ["list", "graph", "arun"])
def test_a_step_not_run_stays_not_run_when_a_second_ctrl_c_cuts_the_rollback(tmp_path, driver):
    """attack18's F3: a Ctrl-C at b's start (not run), then another in the rollback: the
    saga is left for recover, and b's intent stayed ``started``, so recover reported b
    leaked ("may have happened") though its action was never called."""
    from conftest import dead_pid

    from rollback_lessons.durable.recovery import recover

    world, rm, registry = undo_world("not_run_twice")
    saga = Saga([setter(world, rm, k) for k in "ab"], name="not-run-twice")

    def observer(event):
        if (event.kind.value, event.step) in (("step_start", "b"), ("undo", "a")):
            raise KeyboardInterrupt

    with Journal(str(tmp_path / "j.db")) as journal:
        got = drive(saga, driver, on_event=observer, journal=journal, run_id="r")
        assert isinstance(got, KeyboardInterrupt)
        assert {u.step: u.state for u in journal.undos("r")}["b"] == "not_run"
        journal.write([("UPDATE sagas SET owner_pid = ?, owner_started = NULL", (dead_pid(),))])
        recover(journal, registry)
        assert journal.saga("r").status == "rolled_back" and journal.leaked("r") == []
    assert world == {"a": 0}


@pytest.mark.parametrize("raised", [KeyboardInterrupt, SystemExit])
def test_a_ctrl_c_at_a_register_before_steps_undo_registered_tells_one_story(raised):
    """attack18's F4: at b's ``undo_registered`` (its undo logged before it, its action not
    called), arun added "b also failed, while the running steps finished" (the same Ctrl-C,
    counted twice); the list and ``completion=`` say nothing of it. One story on each."""

    def story(driver: str) -> str:
        world: dict = {}
        saga = Saga([Step("a", lambda s: world.__setitem__("a", 1), lambda s: world.pop("a")),
                     Step("b", lambda s: world.__setitem__("b", 1), lambda s: world.pop("b", 0),
                          register="before")])  # fmt: skip

        def observer(event):
            if (event.kind.value, event.step) == ("undo_registered", "b"):
                raise raised

        got = drive(saga, driver, on_event=observer)
        assert isinstance(got, raised) and world == {}
        return notes(got)

    told = {driver: story(driver) for driver in ("list", "graph", "arun")}
    assert told["arun"] == told["graph"] == told["list"], told


@pytest.mark.parametrize("driver", ["list", "graph", "arun"])
def test_a_pivot_not_run_is_no_pivot_for_recover_when_a_second_ctrl_c_cuts_the_rollback(
    tmp_path, driver
):
    """harden18's leftover: a Ctrl-C as the pivot starts (its action never called, so the
    rollback goes on across it), then another in that rollback: the journal kept the pivot
    ``started``, and recover halted the saga ("it may have happened") with a's effect in
    place. Its pivot is ``refused`` (no effect), so recover finishes the rollback."""
    from conftest import dead_pid

    from rollback_lessons.durable.recovery import recover

    world, rm, registry = undo_world("pivot_not_run")
    mail = Step("mail", lambda s: world.__setitem__("mail", 1), kind=Kind.PIVOT)
    saga = Saga([setter(world, rm, "a"), mail], name="pivot-not-run")

    def observer(event):
        if (event.kind.value, event.step) in (("step_start", "mail"), ("undo", "a")):
            raise KeyboardInterrupt

    with Journal(str(tmp_path / "j.db")) as journal:
        got = drive(saga, driver, on_event=observer, journal=journal, run_id="r")
        assert isinstance(got, KeyboardInterrupt) and "mail was not run" in notes(got)
        assert journal.saga("r").pivot_state == "refused"
        journal.write([("UPDATE sagas SET owner_pid = ?, owner_started = NULL", (dead_pid(),))])
        report = recover(journal, registry)
        assert journal.saga("r").status == "rolled_back", report
    assert world == {"a": 0}


def orphan_and_recover(journal, registry, run_id: str):
    """The saga orphaned (its owner a dead pid), then ``recover``: its report."""
    from conftest import dead_pid

    from rollback_lessons.durable.recovery import recover

    journal.write([("UPDATE sagas SET owner_pid = ?, owner_started = NULL", (dead_pid(),))])
    return recover(journal, registry)


@pytest.mark.parametrize("driver", ["list", "graph", "arun"])
def test_two_ctrl_cs_around_a_retried_steps_wait_leave_it_not_run(tmp_path, driver, capfd):
    """attack19's F7: b's first attempt refuses (nothing done); a Ctrl-C at its retry, a
    second at its step_failed. arun left the event loop with the second (no rollback, "Task
    exception was never retrieved" on stderr, the journal ``running`` with b's intent), and
    recover said b leaked; the list's note said the rollback was cut "during the undo of a".
    Now every driver: the rollback cut there (said so), b not_run, recover rolls back."""
    world, rm, registry = undo_world("f7_retry")
    saga = Saga([setter(world, rm, "a"),
                 Step("b", flaky(lambda s: world.__setitem__("b", 1)), rm.bind(k="b"), retry=QUICK),
                 setter(world, rm, "c")], name="f7")  # fmt: skip

    def observer(event):
        if (event.kind.value, event.step) in (("step_retry", "b"), ("step_failed", "b")):
            raise KeyboardInterrupt

    with Journal(str(tmp_path / "j.db")) as journal:
        got = drive(saga, driver, on_event=observer, journal=journal, run_id="r")
        assert isinstance(got, KeyboardInterrupt)
        assert "rollback interrupted by KeyboardInterrupt at the step_failed event of b" in notes(
            got
        )
        assert {u.step: u.state for u in journal.undos("r")}["b"] == "not_run"
        report = orphan_and_recover(journal, registry, "r")
        assert journal.saga("r").status == "rolled_back" and journal.leaked("r") == [], report
    assert world == {"a": 0}
    assert "never retrieved" not in capfd.readouterr().err


@pytest.mark.parametrize("driver", ["list", "graph", "arun"])
@pytest.mark.parametrize("second", ["step_failed", "pipeline_failed", "halted"])
def test_two_ctrl_cs_around_a_retriable_steps_wait_after_the_pivot_never_call_it_leaked(
    tmp_path, driver, second
):
    """attack19's F7, past the pivot: ship (retriable, no undo) refuses once; a Ctrl-C at
    its retry, a second at ``second``. The saga halts for a person (as it should), but the
    list and completion= reported ship leaked though it never had an effect."""
    world, rm, registry = undo_world("f7_pivot")
    saga = Saga([setter(world, rm, "a"),
                 Step("mail", lambda s: world.__setitem__("mail", 1), kind=Kind.PIVOT),
                 Step("ship", flaky(lambda s: world.__setitem__("ship", 1)),
                      kind=Kind.RETRIABLE, retry=QUICK)], name="f7p")  # fmt: skip
    fired: list[str] = []

    def observer(event):
        if (event.kind.value, event.step) == ("step_retry", "ship") or (
            fired and event.kind.value == second
        ):
            fired.append(event.kind.value)
            raise KeyboardInterrupt

    with Journal(str(tmp_path / "j.db")) as journal:
        got = drive(saga, driver, on_event=observer, journal=journal, run_id="r")
        assert isinstance(got, KeyboardInterrupt) and len(fired) == 2, fired
        orphan_and_recover(journal, registry, "r")
        assert journal.saga("r").status == "halted" and journal.leaked("r") == []
    assert world == {"a": 1, "mail": 1}


@pytest.mark.parametrize("driver", ["list", "graph", "arun"])
def test_a_sibling_whose_action_was_never_called_is_not_run_after_a_ctrl_c(tmp_path, driver):
    """attack19's F6: a, then Parallel(b, c); a Ctrl-C at b's step_done. completion= had
    launched c (its action not called yet: the timing played) and reported it leaked, the
    journal ``rollback_incomplete``; arun (c refuses) and a list (c never starts) said
    rolled_back. One story: rolled_back, nothing leaked."""
    world, rm, _ = undo_world("f6_sibling")
    called: list[str] = []

    def c_refuses(s):
        called.append("c")
        raise ConnectionError("busy")

    saga = Saga([setter(world, rm, "a"),
                 Parallel(setter(world, rm, "b"), Step("c", c_refuses, rm.bind(k="c")))],
                name="f6")  # fmt: skip

    def observer(event):
        if (event.kind.value, event.step) == ("step_done", "b"):
            raise KeyboardInterrupt

    with Journal(str(tmp_path / "j.db")) as journal:
        got = drive(saga, driver, on_event=observer, journal=journal, run_id="r")
        assert isinstance(got, KeyboardInterrupt) and "leaked" not in notes(got)
        assert "no undo logged for it" not in notes(got), notes(got)
        assert journal.saga("r").status == "rolled_back" and journal.leaked("r") == []
    assert world == {"a": 0, "b": 0}
    assert called == (["c"] if driver == "arun" else [])


PAIRS_REGISTRY = Registry()
PAIRS_REC: list = []


@compensation("pairs_undo", PAIRS_REGISTRY)
def pairs_undo(k, idempotency_key=None):
    PAIRS_REC.append(("undo", k))


def pairs_saga(shape: str) -> Saga:
    """attack19's pairs sweep, its sagas: a retried step in a list, a group whose branch
    is retried, a retriable step after the pivot (each first attempt refusing)."""

    def act(k):
        return lambda s: PAIRS_REC.append(("do", k))

    def step(k, **kw):
        return Step(k, act(k), pairs_undo.bind(k=k), **kw)

    if shape == "list":
        return Saga([step("a", register="before"), Step("b", flaky(act("b")),
                     pairs_undo.bind(k="b"), retry=QUICK), step("c")], name="pl")  # fmt: skip
    if shape == "group":
        return Saga([step("a"), Parallel(step("b"), [Step("c", flaky(act("c")),
                     pairs_undo.bind(k="c"), retry=QUICK), step("e")]), step("d")],
                    name="pg")  # fmt: skip
    return Saga([step("a"), Step("email", act("email"), kind=Kind.PIVOT),
                 Step("ship", flaky(act("ship")), kind=Kind.RETRIABLE, retry=QUICK)],
                name="pp")  # fmt: skip


PAIRS_INJECT = {"list": {"c": "fail"}, "group": {"d": "fail"}, "pivot": {}}


def pairs_events(shape: str, driver: str) -> int:
    seen: list = []
    drive(pairs_saga(shape), driver, inject=PAIRS_INJECT[shape], on_event=seen.append)
    return len(seen)


PAIRS = [
    (shape, driver, n1, n2)
    for shape in ("list", "group", "pivot")
    for driver in ("list", "graph", "arun")
    for events in [pairs_events(shape, driver)]
    for n1 in range(1, events + 1)
    for n2 in range(n1 + 1, events + 2)
]


@pytest.mark.parametrize(("shape", "driver", "n1", "n2"), a_part(PAIRS, 40, name="ctrlc-pairs"))
def test_two_ctrl_cs_at_any_pair_of_events_then_recover_tell_the_truth(
    tmp_path, shape, driver, n1, n2
):
    """attack19's pairs sweep (F6, F7): Ctrl-Cs at the n1-th and n2-th events, with a
    journal, then recover: the Ctrl-C comes out, no undo runs twice nor for a step never
    done (a register-before one aside), nothing is undone across the pivot, nothing is
    left unfinished, and no step is reported leaked whose action never had an effect."""
    PAIRS_REC.clear()
    count: list = []

    def observer(event):
        count.append((event.kind.value, event.step))
        if len(count) in (n1, n2):
            raise KeyboardInterrupt

    with Journal(str(tmp_path / "j.db")) as journal:
        got = drive(pairs_saga(shape), driver, inject=PAIRS_INJECT[shape], on_event=observer,
                    journal=journal, run_id="r")  # fmt: skip
        assert isinstance(got, KeyboardInterrupt), got
        if journal.unfinished():
            orphan_and_recover(journal, PAIRS_REGISTRY, "r")
        assert journal.unfinished() == []
        leaked = set(journal.leaked("r"))
    done = [k for op, k in PAIRS_REC if op == "do"]
    undone = [k for op, k in PAIRS_REC if op == "undo"]
    assert len(undone) == len(set(undone)), PAIRS_REC
    assert set(undone) <= {*done, "a"}, (PAIRS_REC, count)  # (a: its undo logged before it)
    assert not ("email" in done and undone), PAIRS_REC
    assert leaked <= set(done), (leaked, PAIRS_REC, count)
