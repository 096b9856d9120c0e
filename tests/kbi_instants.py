"""A KeyboardInterrupt at the n-th instant CPython 3.11 hears a Ctrl-C at in rollback.py,
for every n, during a ``Rollback`` / ``AsyncRollback`` block (attack28 F1, F2): a
function's entry (RESUME), right after a call returns (before its result is stored), and a
backward jump. A trace function raises it there (opcode events); each trial is checked on
the world's record. Run by test_ctrl_c_instants.py in a fresh interpreter (a
KeyboardInterrupt raised by a trace function inside asyncio upsets 3.11's recursion count
for what runs after it, test_attacks8).

Two threads (attack32 F1, F2), the Ctrl-C always in the main thread: "mainstep-ok|fail",
the block in a worker thread and a step in the main one, which the block's end waits for;
"blockwait-ok|fail", the block in the main thread, ending while a worker's step runs. The
instants of the ``threading`` code rollback.py calls count too (an ``Event``'s insides).

usage: kbi_instants.py MODE EVERY OFFSET  (MODE: fail|ok|stepfail|afail|aok, each "+w" for
a block with an observer: the machine's path, not the recorded one; or one of the threaded
above). Prints one JSON line: the count of instants, the ones tried, and the problems found."""

from __future__ import annotations

import asyncio
import dis
import json
import linecache
import random
import signal
import sys
import threading
import time
from types import CodeType, FrameType
from typing import Any

import rollback_lessons.rollback as module
from rollback_lessons import AsyncRollback, Rollback, Status
from rollback_lessons._guards import AFTER_COMMIT

SOURCE = module.__file__
ENTRY_ALLOWED = {"__exit__", "__aexit__"}  # Python's own instant (README): nothing undone
BEFORE = {"__init__", "__enter__", "__aenter__", "_enter"}  # (before the block: not its end)
_CALLS = {"CALL", "CALL_FUNCTION_EX"}
_instants: dict[CodeType, frozenset[int]] = {}


def instants(code: CodeType) -> frozenset[int]:
    """Offsets where the eval loop checks its breaker: after a call, a backward jump's target."""
    if code not in _instants:
        found, call = set(), None
        for ins in dis.get_instructions(code):
            if call is not None and _handler(code, ins.offset) == _handler(code, call):
                found.add(ins.offset)  # (else a trace raising there is not the call's region:
            call = ins.offset if ins.opname in _CALLS else None  # a return to a finally)
            if ins.opname.startswith("JUMP_BACKWARD"):
                found.add(ins.argval)
        _instants[code] = frozenset(found)
    return _instants[code]


def _handler(code: CodeType, offset: int) -> int | None:
    """Where an exception raised at ``offset`` goes (its try's handler), None if nowhere."""
    for entry in dis._parse_exception_table(code):  # type: ignore[attr-defined]
        if entry.start <= offset < entry.end:
            return int(entry.target)
    return None


class Tracer:
    """Counts the instants in the frames ``wanted`` lets in; raises at the n-th."""

    def __init__(self, n: int) -> None:
        self.n, self.count, self.fired = n, 0, None

    def wanted(self, frame: FrameType) -> bool:
        return _ours(frame) and frame.f_code.co_name not in BEFORE

    def where(self, frame: FrameType, kind: str) -> Any:
        return (frame.f_code.co_name, frame.f_lineno, kind)

    def glob(self, frame: FrameType, event: str, arg: Any) -> Any:
        if not self.wanted(frame):
            return None
        frame.f_trace_opcodes = True
        if event == "call" and _is_entry(frame):
            self._tick(frame, "entry")
        return self.local

    def local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "opcode" and frame.f_lasti in instants(frame.f_code):
            self._tick(frame, "after a call or a jump")
        return self.local

    def _tick(self, frame: FrameType, kind: str) -> None:
        self.count += 1
        if self.count == self.n:
            self.fired = self.where(frame, kind)
            sys.settrace(None)
            frame.f_trace = None
            raise KeyboardInterrupt(f"at {self.fired}")


def _ours(frame: FrameType | None) -> bool:
    """rollback.py's code, or the ``threading`` code it calls (directly or through more)."""
    while frame is not None and frame.f_code.co_filename == threading.__file__:
        frame = frame.f_back
    return frame is not None and frame.f_code.co_filename == SOURCE


def _is_entry(frame: FrameType) -> bool:
    """A function's first start (RESUME 0), not a coroutine resumed after an await."""
    for ins in dis.get_instructions(frame.f_code):
        if ins.offset == frame.f_lasti:
            return ins.opname == "RESUME" and ins.arg == 0
    return False


def _waits(thread: int) -> bool:
    """The thread is in the block's wait for a step (``_wait_step``'s waiting line)."""
    frame = sys._current_frames().get(thread)
    while frame is not None and frame.f_code.co_name != "_wait_step":
        frame = frame.f_back
    if frame is None:
        return False
    line = linecache.getline(SOURCE, frame.f_lineno)
    return "acquire(True" in line or ".wait()" in line


def threaded(
    mode: str, world: list[str], arm: Any = None, box: list[Any] | None = None
) -> tuple[Any, BaseException | None]:
    """One trial of a threaded MODE; the Ctrl-C (the tracer's, or a real signal ``arm``
    sets off as the other thread's step has its effect) comes in the main thread. The
    harness's own waits are a flag and joins a Ctrl-C cannot break (not an Event's set)."""
    shape, end = mode.split("-")
    rb, over, raised, began = Rollback(), [], [], []
    if box is not None:
        box.append(rb)
    main = threading.get_ident()

    def step(s: str) -> tuple[Any, Any]:
        return (lambda: world.append(s)), (lambda: world.append("undo " + s))

    def ends() -> None:  # (the block ends once the other thread's step's action runs, or
        while not began and not over:  # it is over: never before it is admitted)
            time.sleep(0.0002)
        if end == "fail":
            raise ValueError("the block fails")

    def effect(s: str) -> None:
        world.append(s)
        if arm is not None:
            arm()

    if shape == "mainstep":  # the block in a worker; its step "m" in the main thread

        def body() -> None:
            try:
                with rb:
                    rb.do("s1", *step("s1"))
                    opened.set()
                    ends()
            except BaseException as exc:
                raised.append(exc)

        def slow() -> None:  # m's action: returns once the block waits for it
            began.append(True)
            while rb._waiter is None and (worker.is_alive() or not opened.is_set()):
                time.sleep(0.0002)
            effect("m")

        opened = threading.Event()
        worker = _Worker(body)
        if box is not None:
            box.append(worker)
        worker.start()
        opened.wait(5)
        try:
            rb.do("m", slow, step("m")[1])
        except BaseException as exc:
            return rb, exc
        finally:
            sys.settrace(None)
            over.append(True)
            if not _joined(worker):
                raise Hang
        return rb, None

    def work() -> None:  # the worker's step "w": returns once the block waits for it
        def slow() -> None:
            began.append(True)
            while not _waits(main) and not over:
                time.sleep(0.0002)
            effect("w")

        try:
            rb.do("w", slow, step("w")[1])
        except BaseException as exc:
            raised.append(exc)

    worker = _Worker(work)
    if box is not None:
        box.append(worker)
    try:
        with rb:
            rb.do("s1", *step("s1"))
            worker.start()
            ends()
    except BaseException as exc:
        return rb, exc
    else:
        return rb, None
    finally:
        sys.settrace(None)
        over.append(True)
        if worker.ident is not None:  # (started)
            _joined(worker)


class _Worker(threading.Thread):
    """The other thread, which says itself when it has ended (``ended``): CPython 3.11's
    ``join`` interrupted by a Ctrl-C releases the thread's state lock although the thread
    still runs, and ``is_alive`` then says False (its ``_wait_for_tstate_lock``, bpo-45274's
    fix): the harness took a block still ending for one that had ended without an outcome
    (CI, under load: "no outcome" in 1 to 4 of 100 signal trials)."""

    def __init__(self, target: Any) -> None:
        super().__init__(daemon=True)
        self.work, self.ended = target, threading.Event()

    def run(self) -> None:
        try:
            self.work()
        finally:
            self.ended.set()


def _joined(worker: _Worker) -> bool:
    """Wait for ``worker`` to end (5 s at most), whatever Ctrl-C lands meanwhile: has it?
    Read from its own flag, polled (never ``join``, which a Ctrl-C breaks: ``_Worker``)."""
    for _ in range(5000):
        try:  # (a Ctrl-C landing here is the harness's: waited on)
            if worker.ended.is_set():
                return True
            time.sleep(0.001)
        except KeyboardInterrupt:
            pass
    return worker.ended.is_set()


def real_signals(shape: str, trials: int) -> list[str]:
    """A real signal heard as a Ctrl-C (SIGALRM, its handler ``default_int_handler``), a
    random 1..40 us after the other thread's step had its effect (attack32's F1, F2 were
    found so): the block ends with an outcome, the effect told, never a hang, and the
    KeyboardInterrupt (when it reached the block) is no other error."""
    signal.signal(signal.SIGALRM, signal.default_int_handler)
    draw = random.Random(47).random
    problems = []
    for trial in range(trials):
        world: list[str] = []
        box: list[Any] = []
        mode = f"{shape}-{('ok', 'fail')[trial % 2]}"
        arm = lambda: signal.setitimer(signal.ITIMER_REAL, 1e-6 + draw() * 40e-6)  # noqa: E731
        try:
            rb, raised = threaded(mode, world, arm, box)
        except Hang:
            problems.append(f"trial {trial} {mode}: hang, world {world}")
            continue
        except KeyboardInterrupt:  # (heard in the harness, past the block: a late one)
            rb, raised = box[0] if box else None, None
            if len(box) > 1 and not _joined(box[1]):
                problems.append(f"trial {trial} {mode}: hang, world {world}")
                continue
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
            time.sleep(0.001)  # (one still pending is heard here)
        except KeyboardInterrupt:
            pass
        if rb is None or rb.outcome is None:
            problems.append(f"trial {trial} {mode}: no outcome, world {world}")
            continue
        wanted = (KeyboardInterrupt, ValueError) if "fail" in mode else (KeyboardInterrupt,)
        if raised is not None and not isinstance(raised, wanted):
            problems.append(f"trial {trial} {mode}: {raised!r} for the Ctrl-C")
        outcome, effects = rb.outcome, [w for w in world if not w.startswith("undo ")]
        for s in effects:
            if f"undo {s}" not in world and s not in (*outcome.completed, *outcome.leaked):
                problems.append(f"trial {trial} {mode}: {s} done, named nowhere: {outcome}")
    return problems


def block(mode: str, world: list[str]) -> tuple[Any, BaseException | None]:
    if "-" in mode:
        return threaded(mode, world)
    watched = mode.endswith("+w")
    mode = mode.removesuffix("+w")
    kind = AsyncRollback if mode.startswith("a") else Rollback
    rb = kind(on_event=(lambda e: None) if watched else None)

    def step(s: str) -> tuple[Any, Any]:
        return (lambda: world.append(s)), (lambda: world.append("undo " + s))

    def failing() -> None:
        world.append("s3")
        raise TimeoutError("after its effect")

    async def async_body() -> None:
        async with rb:
            for s in ("s1", "s2", "s3"):
                await rb.do(s, *step(s))
            if mode == "afail":
                raise ValueError("the block fails")

    raised = None
    try:
        if kind is AsyncRollback:
            asyncio.run(async_body())
        else:
            with rb:
                for s in ("s1", "s2"):
                    rb.do(s, *step(s))
                if mode == "stepfail":
                    rb.do("s3", failing, lambda: world.append("undo s3"), register="before")
                else:
                    rb.do("s3", *step("s3"))
                if mode == "fail":
                    raise ValueError("the block fails")
    except BaseException as exc:
        raised = exc
    finally:
        sys.settrace(None)
    return rb, raised


class Hang(BaseException):
    pass


def check(mode: str, n: int) -> tuple[Any, list[str]] | None:
    """Trial ``n``: None once n is past the last instant; else where it fired and problems."""
    world: list[str] = []
    tracer = Tracer(n)
    signal.alarm(5)
    sys.settrace(tracer.glob)
    try:
        rb, raised = block(mode, world)
    except Hang:
        return tracer.fired, ["hang: the block's end waited 5 s"]
    finally:
        sys.settrace(None)
        signal.alarm(0)
    if isinstance(raised, Hang):
        return tracer.fired, ["hang: the block's end waited 5 s"]
    if tracer.fired is None:
        return None
    bad: list[str] = []
    done = [w for w in world if not w.startswith("undo ")]
    undone = [w[5:] for w in world if w.startswith("undo ")]
    bad += [f"undo {u} ran twice" for u in set(undone) if undone.count(u) > 1]
    if not isinstance(raised, KeyboardInterrupt):
        bad.append(f"the Ctrl-C was not re-raised: {raised!r}")
    outcome = rb.outcome
    name, _, kind = tracer.fired
    if outcome is None:
        if not (kind == "entry" and name in ENTRY_ALLOWED):
            bad.append(f"the block ended with no outcome; world {world}")
        return tracer.fired, bad
    left = [s for s in done if s not in undone]
    if outcome.status is Status.COMMITTED:
        if undone or left != done or "fail" in mode:
            bad.append(f"committed, yet undone {undone} (the block failed: {'fail' in mode})")
        if AFTER_COMMIT not in getattr(raised, "__notes__", ()) and "mainstep" not in mode:
            bad.append("committed, and the Ctrl-C does not say so")  # (mainstep: a step's)
        untold = [s for s in left if s not in outcome.completed and s not in outcome.leaked]
        if untold:
            bad.append(f"committed, yet {untold} done and named nowhere")
    elif outcome.status in (Status.ROLLED_BACK, Status.CANCELLED):
        if left:
            bad.append(f"{outcome.status.value} but {left} not undone")
    else:
        unreported = [s for s in left if s not in outcome.pending and s not in outcome.leaked]
        if unreported:
            bad.append(f"{outcome.status.value}: {unreported} left, not reported")
    return tracer.fired, bad


def main() -> None:
    if sys.argv[1] == "signals":  # usage: kbi_instants.py signals SHAPE TRIALS
        found = real_signals(sys.argv[2], int(sys.argv[3]))
        print(json.dumps({"tried": int(sys.argv[3]), "problems": found}))
        return
    mode, every, offset = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

    def on_alarm(*_: object) -> None:
        raise Hang

    signal.signal(signal.SIGALRM, on_alarm)
    counter = Tracer(0)
    sys.settrace(counter.glob)
    block(mode, [])
    total = counter.count
    tried, problems = [], []
    for n in range(1 + offset, total + 1, every):
        result = check(mode, n)
        assert result is not None, f"instant {n} of {total} never came"
        fired, bad = result
        tried.append(n)
        problems += [f"n={n} {fired}: {b}" for b in bad]
    print(json.dumps({"total": total, "tried": tried, "problems": problems}))


if __name__ == "__main__":
    main()
