"""A plain with-block nobody watches is recorded, and its machine told at the end (issue 23,
"Cheap events"): every observable thing must be what the machine hearing of each step as it
happens gives (``Run.recording = False``, the reference): the outcome, every event with its
times and run id, what an ``on_event`` saw, the exception raised and its notes, the undos
called, the journal's rows."""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from dataclasses import dataclass

import pytest
from conftest import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollback_lessons import RetryPolicy, Rollback, UndoPolicy, VirtualClock
from rollback_lessons._run import Run
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Registry, compensation
from rollback_lessons.events import describe, log_threshold
from rollback_lessons.machine import Machine, MachineError


@dataclass(frozen=True)
class StepCase:
    has_undo: bool
    action: str  # ok, fail (ValueError), interrupt (KeyboardInterrupt)
    undo_fails: int  # how many of its undo's first attempts raise
    undo_interrupt: bool  # its undo's first attempt is cut short by a Ctrl-C
    undo_how: str  # plain; events, dead_letters (read in its undo); base (its first attempt
    # raises a BaseException of its own); returns (its first attempt returns a generator)
    how: str  # do, register (its action then runs in the block's code), retry, events (read
    # before it), inside (read in its action), nested (its action begins another step)
    tick: float


@dataclass(frozen=True)
class BlockCase:
    steps: tuple[StepCase, ...]
    catch: bool  # the block's code catches a step's ValueError and goes on
    end: str  # commit, raise (LookupError), interrupt (KeyboardInterrupt)
    policy: str
    undo_order: str
    on_event: bool
    journal: bool
    read_outcome: bool  # the block's outcome read (the first time) before its events
    ctrl_c_at: int | None  # a Ctrl-C lands as the clock is read this many times
    logged: bool  # a logging handler wants the events (then they are logged as they happen)


step_cases = st.builds(
    StepCase,
    has_undo=st.booleans(),
    action=st.sampled_from(["ok"] * 6 + ["fail", "interrupt"]),
    undo_fails=st.sampled_from([0, 0, 0, 1, 2, 9]),
    undo_interrupt=st.sampled_from([False] * 9 + [True]),
    undo_how=st.sampled_from(["plain"] * 5 + ["events", "dead_letters", "base", "returns"]),
    how=st.sampled_from(["do"] * 8 + ["register", "retry", "events", "inside", "nested"]),
    tick=st.sampled_from([0.0, 0.125, 1.5]),
)


class HaltsOnStop(UndoPolicy):
    """A user's own policy (it decides in code): a Stop halts, any other error is retried
    once, then dead-lettered."""

    def decide(self, attempt: int, error: BaseException):  # type: ignore[override]
        if isinstance(error, Stop):
            return "halt"
        return 0.25 if attempt < 2 else "dead_letter"


POLICIES = {
    "continue": "continue",
    "retry": UndoPolicy(RetryPolicy(max_attempts=3, initial_delay=0.5)),
    "halt": "halt",
}
MORE_POLICIES = {  # (drawn for the rollback's own property)
    **POLICIES,
    "own": HaltsOnStop(),
    "timed": UndoPolicy(RetryPolicy(max_attempts=2, initial_delay=0.5, timeout=30.0)),
}


def block_cases(journal: st.SearchStrategy[bool]) -> st.SearchStrategy[BlockCase]:
    return st.builds(
        BlockCase,
        steps=st.lists(step_cases, max_size=5).map(tuple),
        catch=st.booleans(),
        end=st.sampled_from(["commit", "commit", "raise", "interrupt"]),
        policy=st.sampled_from(sorted(POLICIES)),
        undo_order=st.sampled_from(["reverse", "reverse", "forward"]),
        on_event=st.booleans(),
        journal=journal,
        read_outcome=st.booleans(),
        ctrl_c_at=st.none() | st.integers(1, 24),
        logged=st.sampled_from([False, False, False, True]),
    )


plain_steps = st.builds(
    StepCase,
    has_undo=st.sampled_from([True, True, True, False]),
    action=st.just("ok"),
    undo_fails=st.sampled_from([0, 0, 0, 0, 1, 2, 9]),
    undo_interrupt=st.sampled_from([False] * 7 + [True]),
    undo_how=st.sampled_from(["plain"] * 6 + ["events", "dead_letters", "base", "returns"]),
    how=st.just("do"),
    tick=st.sampled_from([0.0, 0.125, 1.5]),
)
plain_failed_blocks = st.builds(
    BlockCase,
    steps=st.lists(plain_steps, max_size=5).map(tuple),
    catch=st.just(False),
    end=st.sampled_from(["raise", "raise", "interrupt"]),
    policy=st.sampled_from(sorted(MORE_POLICIES)),
    undo_order=st.sampled_from(["reverse", "reverse", "forward", "reverse_start"]),
    on_event=st.just(False),
    journal=st.just(False),
    read_outcome=st.booleans(),
    ctrl_c_at=st.none() | st.none() | st.integers(1, 16),
    logged=st.just(False),
)
"""A plain block nobody watches that fails after its steps: its rollback is recorded
(``_recorded.roll_back``), its undos doing everything an undo can (return, raise once or
for good, a Ctrl-C, a BaseException of its own, refuse a generator, read the run)."""

JOURNALS = itertools.count()


def event_facts(events):
    return [(e.seq, e.kind, e.step, dict(e.details), e.run_id, e.at, e.offset) for e in events]


class Stop(BaseException):
    """A BaseException of an undo's own (neither Ctrl-C nor SystemExit)."""


class CtrlCClock(VirtualClock):
    """A virtual clock a Ctrl-C lands on as it is read the ``at``-th time (a stamp before or
    after a step's call, the commit's, an undo's: the moments the two paths share)."""

    def __init__(self, at: int | None) -> None:
        super().__init__()
        self.at, self.reads = at, 0

    def monotonic(self) -> float:
        self.reads += 1
        if self.reads == self.at:
            raise KeyboardInterrupt
        return self.now


class Watching(logging.Handler):
    """A logging handler that wants every event (and keeps none)."""

    def emit(self, record: logging.LogRecord) -> None:
        pass


def play(case: BlockCase, recording: bool, tmp_path, monkeypatch) -> dict:
    """Run ``case``'s block; everything anyone could see of it."""
    monkeypatch.setattr(Run, "recording", recording)
    # A run a logging handler watches is never recorded (its events are logged as they
    # happen): here only when the case says so, by a handler of its own (pytest's log
    # capture, CRITICAL only since s46, watches no run; it is cut off all the same).
    log = logging.getLogger("rollback_lessons")
    monkeypatch.setattr(log, "propagate", False)
    others = [h for h in log.handlers if not isinstance(h, Watching)]  # (one test, many cases)
    monkeypatch.setattr(log, "handlers", [*others, Watching()] if case.logged else others)
    assert (log_threshold() <= logging.ERROR) == case.logged, log.handlers  # the path asked
    clock = CtrlCClock(case.ctrl_c_at)
    seen: list = []
    called: list = []
    attempts: Counter = Counter()
    behaviour = {f"s{i}": s for i, s in enumerate(case.steps)}

    def undo_of(step: str) -> object:
        s = behaviour[step]
        attempts[step] += 1
        called.append((step, attempts[step]))
        clock.now += 0.25
        if s.undo_how == "events":  # the rollback so far, read from inside an undo
            midway.append(event_facts(rb.events))  # type: ignore[union-attr]
        if s.undo_how == "dead_letters":
            midway.append([(d.step, d.attempts) for d in rb.dead_letters])  # type: ignore[union-attr]
        if s.undo_interrupt and attempts[step] == 1:
            raise KeyboardInterrupt
        if s.undo_how == "base" and attempts[step] == 1:
            raise Stop(f"undo of {step} stopped")
        if attempts[step] <= s.undo_fails:
            raise RuntimeError(f"undo of {step} failed, attempt {attempts[step]}")
        if s.undo_how == "returns" and attempts[step] == 1:
            return (n for n in range(1))  # refused: its body never ran (a failed attempt)
        return None

    journal = None
    if case.journal:
        registry = Registry()
        comp = compensation("undo", registry)(lambda step: undo_of(step))
        journal = Journal(tmp_path / f"journal-{next(JOURNALS)}.db")

    def action_of(name: str, s: StepCase):
        def action() -> str:
            clock.now += s.tick
            if s.how == "inside":  # what the block did so far, read from inside a step
                midway.append(event_facts(rb.events))  # type: ignore[union-attr]
            if s.how == "nested":  # a step begun inside another: refused, as ever
                rb.do(f"{name} inside", lambda: None)  # type: ignore[union-attr]
            if s.action == "fail":
                raise ValueError(f"{name} failed")
            if s.action == "interrupt":
                raise KeyboardInterrupt
            return f"{name} done"

        return action

    raised = None
    midway: list = []
    rb = None
    try:
        rb = Rollback(
            policy=MORE_POLICIES[case.policy],
            clock=clock,
            undo_order=case.undo_order,  # type: ignore[arg-type]
            on_event=seen.append if case.on_event else None,
            journal=journal,
            run_id="r1" if journal is not None else None,
        )
        with rb:
            for name, s in behaviour.items():
                undo = None
                if s.has_undo or s.how == "register":
                    undo = comp.bind(step=name) if journal else (lambda n=name: undo_of(n))
                action = action_of(name, s)
                try:
                    if s.how == "register":
                        rb.register(name, undo)
                        action()
                    elif s.how == "retry":
                        rb.do(name, action, undo, retry=RetryPolicy(max_attempts=2))
                    else:
                        if s.how == "events":
                            midway.append(event_facts(rb.events))
                        rb.do(name, action, undo)
                except (ValueError, MachineError):
                    if not case.catch:
                        raise
            clock.now += 0.5
            if case.end == "raise":
                raise LookupError("the block failed")
            if case.end == "interrupt":
                raise KeyboardInterrupt
    except BaseException as exc:  # (what the block let out is compared)
        raised = (type(exc).__name__, str(exc), tuple(getattr(exc, "__notes__", ())))
    if rb is None:  # (the Ctrl-C landed as it started)
        if journal is not None:
            journal.close()
        return {"raised": raised, "reads": clock.reads}
    made = "m" in vars(rb._run)  # (not compared: was the machine made as the block ended?)
    if case.read_outcome:
        rb.outcome  # noqa: B018 (read first: its events built then)
    o = rb.outcome
    assert o is not None
    facts = {
        "raised": raised,
        "midway": midway,
        "called": called,
        "seen": event_facts(seen),
        "events": event_facts(o.events),
        "dead": [(d.step, describe(d.error), d.attempts) for d in o.dead_letters],
        "error": describe(o.error) if o.error is not None else None,
        "results": dict(o.results),
        "rb_events": event_facts(rb.events),
        "rb_dead": [(d.step, d.attempts) for d in rb.dead_letters],
        "sleeps": list(clock.sleeps),
        "reads": clock.reads,
        "made": made,
    }
    fields = "status steps completed compensated pending leaked semantic failed_step kinds name"
    for field in (*fields.split(), "run_id", "notes", "started_at"):
        facts[field] = getattr(o, field)
    if journal is not None:
        run_id = o.run_id
        assert run_id is not None
        sagas = journal.sagas()
        facts["journal"] = (
            [(s.id, s.status, s.error, s.undos, s.undone, s.dead, s.policy) for s in sagas],
            event_facts(journal.events(run_id)),
            [(u.position, u.step, u.state, u.attempts, u.error) for u in journal.undos(run_id)],
        )
        journal.close()
    return facts


def same(case: BlockCase, tmp_path, monkeypatch) -> bool | None:
    """Compare the two paths; was the recorded block's machine made as it ended?"""
    reference = play(case, False, tmp_path, monkeypatch)
    recorded = play(case, True, tmp_path, monkeypatch)
    reference.pop("made", None)
    made = recorded.pop("made", None)
    for key in reference:
        assert recorded[key] == reference[key], key
    return made


@settings(max_examples=examples(400), suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=block_cases(st.just(False)))
def test_a_recorded_block_is_what_the_machine_heard_live(case, tmp_path, monkeypatch):
    same(case, tmp_path, monkeypatch)


@settings(max_examples=examples(25), suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=block_cases(st.just(True)))
def test_a_journalled_block_writes_what_it_wrote(case, tmp_path, monkeypatch):
    same(case, tmp_path, monkeypatch)


def undos_all_return(case: BlockCase) -> bool:
    """Does every undo of ``case`` return at its first attempt, nothing reading the run, no
    Ctrl-C, under a policy that does not time them (then no machine is needed to end it)?"""
    return (
        case.ctrl_c_at is None
        and case.policy != "timed"
        and all(
            not s.has_undo or (s.undo_fails == 0 and not s.undo_interrupt and s.undo_how == "plain")
            for s in case.steps
        )
    )


@settings(max_examples=examples(300), suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=plain_failed_blocks)
def test_a_recorded_rollback_is_what_the_machine_decided_live(case, tmp_path, monkeypatch):
    """A plain block that fails after its steps, its undos doing anything an undo can, under
    every policy (a user's own, one that times its undos) and order, a Ctrl-C at any clock
    reading: as the machine hearing of each undo live; no machine made when none is needed."""
    made = same(case, tmp_path, monkeypatch)
    if undos_all_return(case):
        assert made is False  # (the recorded path was taken: else this compares nothing)


def test_the_plain_block_nobody_watches_is_recorded(monkeypatch):
    """The fast path is taken where it may be (else the property above compares nothing)."""
    monkeypatch.setattr(logging.getLogger("rollback_lessons"), "propagate", False)
    with Rollback() as rb:
        rb.do("a", lambda: 1, lambda: None)
        run = rb._run
        assert run.history is not None and "m" not in vars(run)
    assert rb.outcome is not None and rb.outcome.status == "committed"
    assert "m" in vars(run) and run.history is None
    for watched in ({"on_event": print}, {"inject": {"a": "fail"}, "steps": ["a"]}):
        assert Rollback(**watched)._run.history is None  # type: ignore[arg-type]


def ctrl_c_around_a_step(where: str) -> tuple:
    undone: list = []
    rb = Rollback(clock=VirtualClock())

    def action() -> None:
        if where == "during":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with rb:
            rb.do("a", lambda: None, lambda: undone.append("a"))
            if where == "before":
                raise KeyboardInterrupt
            rb.do("b", action, lambda: undone.append("b"))
            raise KeyboardInterrupt
    o = rb.outcome
    assert o is not None
    return o.status, o.completed, o.compensated, o.leaked, undone, event_facts(o.events)


@pytest.mark.parametrize("where", ["before", "during", "after"])
def test_a_ctrl_c_around_a_recorded_step_loses_nothing(where, monkeypatch):
    """A Ctrl-C as a step is recorded: told to the machine exactly as one heard live."""
    monkeypatch.setattr(logging.getLogger("rollback_lessons"), "propagate", False)
    monkeypatch.setattr(Run, "recording", False)
    reference = ctrl_c_around_a_step(where)
    monkeypatch.setattr(Run, "recording", True)
    assert ctrl_c_around_a_step(where) == reference


def test_a_plain_rollback_makes_no_machine(monkeypatch):
    """A recorded block's rollback calls its undos, newest first, and makes no machine until
    the outcome is read (else the property above compares nothing); the error raised is
    the block's own, its traceback the block's."""
    monkeypatch.setattr(logging.getLogger("rollback_lessons"), "propagate", False)
    undone: list = []
    error = LookupError("the block failed")
    with pytest.raises(LookupError) as raised:
        with Rollback() as rb:
            for name in "abc":
                rb.do(name, lambda: None, lambda n=name: undone.append(n))
            raise error
    assert raised.value is error and undone == ["c", "b", "a"]
    assert error.__traceback__ is not None
    assert error.__traceback__.tb_frame.f_code is test_a_plain_rollback_makes_no_machine.__code__
    assert error.__traceback__.tb_next is None  # (no frame of the engine's in it)
    assert "m" not in vars(rb._run)
    o = rb.outcome
    assert o is not None and o.status == "rolled_back" and o.error is error
    assert o.compensated == ("c", "b", "a") and "m" in vars(rb._run)


def test_a_told_machine_calls_its_undos_in_a_row(monkeypatch):
    """Once a block's machine is made (its events read), its plain rollback is still said at
    once by the machine, and its undos called in a row (``in_a_row``)."""
    monkeypatch.setattr(logging.getLogger("rollback_lessons"), "propagate", False)
    plans: list = []
    in_a_row = Run.in_a_row
    monkeypatch.setattr(
        Run, "in_a_row", lambda run, plan: plans.append(plan) or in_a_row(run, plan)
    )
    undone: list = []
    with pytest.raises(LookupError):
        with Rollback() as rb:
            for name in "abc":
                rb.do(name, lambda: None, lambda n=name: undone.append(n))
            assert len(rb.events) == 9
            raise LookupError
    assert plans == [("c", "b", "a")] and undone == ["c", "b", "a"]
    assert rb.outcome is not None and rb.outcome.status == "rolled_back"


@pytest.mark.parametrize("policy", sorted(POLICIES))
@pytest.mark.parametrize("ctrl_c_at", range(1, 16))
def test_a_ctrl_c_at_every_clock_reading_of_a_rollback(ctrl_c_at, policy, tmp_path, monkeypatch):
    """A Ctrl-C at each clock reading of a plain block's rollback (before, between and after
    its undos, one of which fails once): as the machine hearing of each undo live."""
    plain = StepCase(True, "ok", 0, False, undo_how="plain", how="do", tick=0.125)
    failing = StepCase(True, "ok", 1, False, undo_how="plain", how="do", tick=0.0)
    case = BlockCase(
        steps=(plain, failing, plain, plain),
        catch=False,
        end="raise",
        policy=policy,
        undo_order="reverse",
        on_event=False,
        journal=False,
        read_outcome=False,
        ctrl_c_at=ctrl_c_at,
        logged=False,
    )
    same(case, tmp_path, monkeypatch)


def test_a_policy_that_times_its_undos_is_the_machines(monkeypatch):
    """A policy's undo timeout is kept by a recorded block too: an undo past it fails (and is
    dead-lettered), as the machine decides (a recorded rollback never calls it untimed). The
    undo hangs until the block is over, not for a time (a 0.2 s sleep once ended, at load,
    before the caller's thread was back to look: rolled_back, 24 of 100 runs)."""
    import threading

    monkeypatch.setattr(logging.getLogger("rollback_lessons"), "propagate", False)
    timed = UndoPolicy(RetryPolicy(max_attempts=1, timeout=0.02))
    release = threading.Event()
    try:
        with pytest.raises(LookupError) as raised:
            with Rollback(policy=timed) as rb:
                rb.do("a", lambda: None, lambda: release.wait(30))
                raise LookupError
    finally:
        release.set()
    o = rb.outcome
    assert o is not None and o.status == "rollback_incomplete"
    assert [d.step for d in o.dead_letters] == ["a"]
    assert isinstance(o.dead_letters[0].error, TimeoutError)
    assert "rollback: undo of a" in raised.value.__notes__[0]


def failed_plain_block() -> Rollback:
    with pytest.raises(LookupError):
        with Rollback(clock=VirtualClock()) as rb:
            for name in "abc":
                rb.do(name, lambda: None, lambda: None)
            raise LookupError("the block failed")
    return rb


@pytest.mark.parametrize("where", ["plain_steps", "fail", "undos_ok"])
def test_a_ctrl_c_as_a_recorded_rollback_is_told_leaves_it_to_tell_again(where, monkeypatch):
    """A Ctrl-C as a recorded rollback's machine is made (the outcome read first) interrupts
    that read only: the next read tells it again, whole (nothing told twice, nothing lost)."""
    monkeypatch.setattr(logging.getLogger("rollback_lessons"), "propagate", False)
    whole = failed_plain_block().outcome
    assert whole is not None and whole.compensated == ("c", "b", "a")
    rb = failed_plain_block()
    real = getattr(Machine, where)
    cuts = iter([True])

    def cut(m, *args):
        if next(cuts, False):
            raise KeyboardInterrupt
        return real(m, *args)

    monkeypatch.setattr(Machine, where, cut)
    with pytest.raises(KeyboardInterrupt):
        rb.outcome  # noqa: B018
    o = rb.outcome
    assert o is not None
    assert (o.status, o.compensated, event_facts(o.events)) == (
        whole.status, whole.compensated, event_facts(whole.events),
    )  # fmt: skip
