"""Finish, after a crash, the rollback of every saga a journal shows unfinished.

A saga cut short going forward is rolled back too, never resumed: a journal keeps the
undos (registered names, JSON arguments), not the steps' code, their inputs or the caller
waiting for the result, so undoing is all that can be done from it. (DBOS and Temporal keep
the workflow itself and its inputs, and resume it forward; lesson 07 shows both.)

What ``recover`` promises, whatever the operator or the next crash does:

- **Registries.** It runs an undo only by its registered name. A saga with a compensation
  the given registry does not know, or cannot call with the journalled arguments (the
  check ``bind`` makes), is left unfinished and reported, so a later run with
  the right registry can still finish it; nothing is imported, nothing falls back. A
  registry whose lookup raises stops it (``RegistryFailed``): nothing claimed if asked while
  claiming; asked before an undo, that saga left unfinished, what ran before recorded.
- **Claims.** It claims each saga (its pid, host, process start time, PID namespace and
  boot, in one SQLite transaction) before touching it. A saga whose process still runs, or
  that a running ``recover`` claimed, is left alone and reported; a claim or owner that is
  dead (or a reused pid) is taken over. ``force`` also takes over what cannot be checked
  from here (another host; the same host name in another PID namespace or boot; an owner
  written before schema 7 not seen running here). The saga's owner never crashes on a
  take-over: it stops writing.
- **Pivots.** A saga whose irreversible step started (and may have happened) is never
  compensated across it: it becomes ``halted``, for a person, as it would in process. One
  whose pivot refused before any effect (``refused``) is rolled back, as in process.
- **Policy and order.** The run's undo policy and undo order, kept in the journal, decide
  here as they did before the crash (a graph's from its dependencies and the order its
  steps started and ended, kept too): a retry waits and retries, a halt leaves the rest
  pending for a person (a halt the journal recorded before the crash, too: never another
  attempt). A saga journalled before they were kept (schema 3) is recovered
  with policy continue, and its record says so in a note.
- **One machine.** It is a driver of the saga machine (``machine.py``), which it resumes in
  its rollback from the journal: which undo runs next, what a failure leads to, the status
  and the events are the machine's, as in process. This file only reads, runs and writes.
- **Records.** Each undo's result is committed before the next undo runs (in batches when
  there are more undos than ``batch``). An undo that ran just before a crash runs again,
  which its idempotency key (``"<saga id>:<step>"``) makes harmless; none is reported that
  was not recorded.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from .._checks import check_flag
from ..calls import own_cancel
from ..events import Event, EventKind, describe, text_of
from ..machine import Machine, pivot_at_stake
from ..operations import Ask, Finished, RunUndo, Wait
from ..outcome import RECORD_FIELDS
from ..policies import CONTINUE
from ..schedule import GraphMachine
from . import as_claimed
from .cleanup import cleaned
from .exclusive import RecoveryNested, recovering  # noqa: F401 (RecoveryNested: its name)
from .journal import Journal, JournalError, JournalUnusable, policy_of
from .owner import me, unreachable
from .records import Claimed, JournalRun, SagaRecord, UndoRecord
from .registry import Registry, default_registry, unfit
from .report import (  # noqa: F401 (its names, as before)
    Recovery,
    RecoveryReport,
    Skipped,
    Waiting,
    _safe,
    corrected,
    done_steps,
    given_up,
    halted_at,
    waiting_in,
)
from .undo_call import file_id, run_undo, text_cut, type_name
from .writer import Writer


class RecoveryInterrupted(JournalError):
    """An undo ended the process's work during ``recover`` (``sys.exit``, or another
    BaseException that is not a Ctrl-C: an asyncio ``CancelledError``, a library's own): an
    interrupt, not a failure; what ran is recorded, the rest left for the next ``recover``.
    ``exited``: the ``SystemExit`` it was, if it was one (the CLI keeps its failure code)."""

    exited: SystemExit | None = None


class RegistryFailed(JournalError):
    """The registry raised when asked for a compensation (one backed by a service that is
    down, say): recover stops there, the saga left unfinished for the next recover; asked
    while claiming, nothing at all is claimed (the claim's transaction is rolled back).
    ``exited``: the ``sys.exit`` that cut it, if one did (the CLI keeps its failure code)."""

    exited: SystemExit | None = None


def _ask(registry: Registry, lookup: Callable[[str], Any], name: str, then: str) -> Any:
    """``lookup(name)``, a question to ``registry`` about compensation ``name``; if it
    raises, a ``RegistryFailed`` that says so in one line (``then``: what was left)."""
    try:
        return lookup(name)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # (GeneratorExit, sys.exit too: one line, nothing claimed;
        # and a name it had at the claim, gone at its undo: attack45 F4, a traceback)
        who = f"the registry ({type(registry).__name__})"  # (a sys.exit: attack49 L2)
        said = f"raised {describe(exc)}" if not isinstance(exc, SystemExit) else (
            f"was cut by sys.exit({exc.code!r}) (its own, or a signal handler's)")  # fmt: skip
        failed = RegistryFailed(f"{who} {said} when asked for compensation {name!r}; {then}")
        failed.exited = exc if isinstance(exc, SystemExit) else None  # (143: attack50 F3)
        raise failed from None


def _decide(saga: SagaRecord, force: bool, journal: Journal) -> str | None:
    """None to claim the saga; otherwise why it is left alone (a saga its living owner let
    go, a Ctrl-C having cut its run, is taken: ``Journal.released``)."""
    pid, host, _, space = me()
    claimer = (saga.claim_pid, saga.claim_host, saga.claim_space)
    if saga.claim_pid is not None and claimer != (pid, host, space):  # (another process's
        # claim; this process's own are this recover's: one at a time, _one_at_a_time)
        alive = saga.claim_alive()
        if alive:
            return (  # (or keeping it, a call of its undo left running: attack186 F3)
                f"being recovered by process {saga.claim_pid}, still running (or kept by it "
                "while a call of an undo it left running may still land, until it ends)"
            )
        if alive is None and not force:
            return (
                f"claimed by process {saga.claim_pid}, which "
                f"{unreachable(saga.claim_host, saga.claim_space)}: it cannot be checked "
                "from here; --force takes it over"
            )
    alive = saga.owner_alive()
    if alive and not journal.released(saga):
        return saga.running()  # (wait for it; or, its program hidden: recover as its user)
    if alive is None and not force:
        return (
            f"its process {saga.owner_pid} {unreachable(saga.owner_host, saga.owner_space)}: it "
            "cannot be checked from here; --force takes it over once you know it stopped"
        )
    return None


def recover(
    journal: Journal,
    registry: Registry | None = None,
    *,
    force: bool = False,
    batch: int = 500,
) -> RecoveryReport:
    """Finish the rollback of every saga that did not end; returns what was done and left.

    Each undo not yet done runs as the run's policy says, in its undo order; done ones are
    skipped. See the
    module's docstring for what is promised about registries, claims, pivots and records.
    If it stops midway (taken over, a registry that fails, a Ctrl-C), the exception's
    ``recovered`` holds the sagas it finished before, as the CLI prints them.
    """
    if not isinstance(journal, Journal):
        raise TypeError(f"recover needs a Journal (Journal(path)), got {journal!r}")
    if journal.readonly or journal.closed:
        raise JournalUnusable(
            f"{journal!r} is {'closed' if journal.closed else 'opened read-only'}: recover "
            "writes to it (open it with Journal(path)); nothing was claimed"
        )
    if registry is not None and not isinstance(registry, Registry):
        raise TypeError(
            f"recover's registry must be a Registry (compensation names -> functions, "
            f"registered with @compensation), got {type(registry).__name__}; nothing was claimed"
        )
    registry = registry if registry is not None else default_registry
    check_flag(force, "force")
    if type(batch) is not int or batch < 1:
        raise ValueError(f"batch must be an int >= 1, got {batch!r}")
    report, held = None, recovering(journal)
    try:
        with held:  # (one recover of a journal file at a time; none nested)
            report = _recover(journal, registry, force, batch)
    except BaseException as exc:  # (a Ctrl-C as it let the file go: let go of here, attack55
        held.let_go()  # F3; done all the same, and told: attack49 F4)
        if report is not None:
            with contextlib.suppress(Exception):
                exc.recovered, exc.unfinished = report.recovered, ()  # type: ignore[attr-defined]
        raise
    return report


def _recover(journal: Journal, registry: Registry, force: bool, batch: int) -> RecoveryReport:
    """``recover``, its arguments checked, holding its journal's lock."""
    damage = journal.quick_check("integrity_check")  # (its log checked as it was opened)
    if damage != "ok":
        raise JournalError(
            f"{journal.path} is damaged ({damage}); no undo was run. "
            "Restore it from a copy, or finish its sagas by hand"
        )

    def known(name: str) -> bool:
        then = "nothing was claimed or undone; run recover again when it answers"
        return bool(_ask(registry, lambda n: bool(n in registry), name, then))  # (its bool
        # and its attribute asked inside: attack271 F1, a traceback)

    def decide(saga: SagaRecord, pending: list[UndoRecord]) -> str | None:
        unknown = sorted({u.compensation for u in pending if not known(u.compensation)})
        if pivot_at_stake(saga.pivot_state):  # (halted, no undo run: any registry will do)
            return _decide(saga, force, journal)
        if unknown:
            return (
                f"the registry has no compensation named {', '.join(map(repr, unknown))}; "
                "run recover again with the registry that registers them"
            )
        misfit = {u.compensation: why for u in pending if (why := fits(u))}  # (attack84 F5)
        if misfit:
            name, why = next(iter(misfit.items()))
            return (
                f"the registry's compensation {name!r} cannot be called with the arguments "
                f"the journal kept ({why}); run recover again with the registry that can"
            )
        return _decide(saga, force, journal)

    def fits(undo: UndoRecord) -> str | None:
        """Why the registry's compensation cannot take the journalled arguments (the check
        ``bind`` makes: a deploy changed its parameters), or None; asked before any claim."""
        then = "nothing was claimed or undone; run recover again when it answers"
        fn = _ask(registry, lambda n: registry.resolve(n), undo.compensation, then)
        return unfit(fn, undo.args)

    claimed: list[Claimed] | None = None  # (not known if a Ctrl-C cut the claim's return)
    writer = Writer(journal, 1)
    try:  # one transaction: who holds each saga, and what is left of it, read together
        claimed, skipped = journal.claim(decide)
        facts = as_claimed.read(journal)  # (each saga's, as claimed: before any undo)
        total = sum(len(c.pending) for c in claimed)
        writer.every = batch if total > batch else 1
        for c in claimed:
            run = JournalRun(journal, c.saga.id, c.saga.name, new=False, gen=c.gen)
            writer.fences[c.saga.id] = c.gen
            report = _resume(run, c, facts.get(c.saga.id) or as_claimed.Facts(), registry, writer)
            writer.finished(run, report)
        writer.flush()  # (and an interrupt after it, as it reads which wait for a person:
        waiting = waiting_in(journal, but={r.saga_id for r in writer.recorded})  # F5)
        skips = tuple(Skipped(s.id, s.name, why) for s, why in skipped)  # (in the try: F4)
        result = RecoveryReport(tuple(writer.recorded), skips, waiting)
    except BaseException as exc:  # (what ran written, claims given back, ``exc`` told)
        cleaned(journal, writer, exc, claimed)
        raise
    return result


FALLBACK = (
    "the journal does not say which undo policy the run had (written before schema 4): "
    "recover used policy continue (one attempt each, then a dead letter)"
)


def _stopped(
    exc: BaseException, who: str, event: bool = False, error: BaseException | None = None
) -> BaseException:
    """What ends recover when ``who`` (an undo, or the write of an ``event``) is cut: a
    Ctrl-C stays one (the CLI's one line, exit 130); any other, one line saying the saga
    is left for the next recover. A Ctrl-C in an undo (its call, or as it returned) says
    so on the CLI's line: that undo's done is not written, it runs again (attack75 F3).
    ``error``: the undo's error, whose own repr raised ``exc`` (``text_cut``): that said,
    no Ctrl-C (nobody sent one: attack91 F5), its exit status the interrupt's (2, a Ctrl-C's
    too; a sys.exit's failure code kept)."""
    if error is not None:
        raised = text_of(exc, repr, "its repr failed", BaseException)
        stopped = RecoveryInterrupted(
            f"{who} raised {type_name(error)}, whose repr raised {raised} (an interrupt; no "
            "Ctrl-C was sent): recover stopped there; the saga is left unfinished, that undo "
            "pending, for the next recover, which stops there again until the compensation "
            "or its error is fixed"
        )
        stopped.exited = exc if isinstance(exc, SystemExit) else None
        return stopped
    if isinstance(exc, KeyboardInterrupt):
        if not event:  # (no call here: the attribute is set, whatever lands next)
            again = "not recorded done: it runs again next time (same idempotency key)"
            exc.during = f" during {who}, {again}"  # type: ignore[attr-defined]
        return exc
    exit_ = f"sys.exit({exc.code!r})" if isinstance(exc, SystemExit) else ""
    what = text_of(exc, repr, "its repr failed", BaseException)  # (its repr may raise: F5)
    what += "" if isinstance(exc, Exception) else " (an interrupt)"
    if event:
        what = f"{exit_ or what} {who}"
    elif exit_:  # (the undo's own, or a signal handler's as it ran: attack45 L7)
        what = f"{exit_} was called during {who}"
    else:
        what = f"{who} raised {what}"
    stopped = RecoveryInterrupted(
        f"{what}: recover stopped there; the saga is left unfinished, the undos not recorded "
        "done pending, for the next recover"
    )
    if isinstance(exc, SystemExit):  # (its failure code kept: 143 says SIGTERM)
        stopped.exited = exc
    return stopped


def _machine(journal: Journal, saga: SagaRecord) -> Callable[..., tuple[Machine, Any]]:
    """What takes up ``saga``'s rollback: a list's ``Machine``, or a graph's ``GraphMachine``
    told its dependencies and the order its steps started and ended (its events)."""
    if (after := saga.after()) is None:
        return Machine.resume_rollback
    events = journal.events(saga.id)
    started = list(dict.fromkeys(str(e.step) for e in events if e.kind == EventKind.STEP_START))
    ended = [str(e.step) for e in events if e.kind in (EventKind.STEP_DONE, EventKind.STEP_FAILED)]
    return partial(GraphMachine.resume_rollback, after=after, started=started, ended=ended)


def _after_pivot(saga: SagaRecord, facts: as_claimed.Facts) -> tuple[str, ...]:
    """The steps after the pivot the journal knows, to name those to finish forward: a
    graph's every step (its shape is kept), a list's those it saw begin (one never begun was
    never written)."""
    begun = dict.fromkeys(step for kind, step, _ in facts.steps if kind == "step_start")
    known = list(saga.after() or begun)
    return tuple(known[known.index(saga.pivot) + 1 :]) if saga.pivot in known else ()


def _resume(
    run: JournalRun, claimed: Claimed, facts: as_claimed.Facts, registry: Registry, writer: Writer
) -> Recovery:
    """Drive the machine through the saga's rollback, from where the crash left it: run each
    undo it answers, tell it how the undo went, and write down what it records. Before each
    undo, the claim is checked: a recover taken over runs no other."""
    saga, pending, intents = claimed.saga, claimed.pending, claimed.intents
    writer.current, writer.run = saga.id, run
    by_step = {u.step: u for u in pending}
    undo: UndoRecord | None = None
    failed: list[tuple[str | None, str]] = []  # the last undo that failed, and why

    def write(seq: int, kind: str, step: str | None, details: dict[str, Any]) -> None:
        run.event(Event(seq, kind, step, details))
        if kind == EventKind.UNDO_FAILED:
            failed[:] = [(step, str(details.get("error", "")))]
        if undo is None:  # each attempt is counted once, as the run counts them
            return
        if kind == EventKind.UNDO_DONE and details.get("by_hand"):  # (one that ran: at once)
            run.undo_done(undo.position, 0, flush=False)
        elif kind == EventKind.UNDO_FAILED and details["then"] == "dead_letter":
            run.undo_dead(undo.position, 1, details["error"], flush=False)
        elif kind == EventKind.UNDO_FAILED:  # retried after a wait, or left for a person
            run.undo_retried(undo.position, flush=False)

    done = done_steps(facts, saga.pivot)  # (as claimed, before any undo)
    pivot: tuple[Any, ...] | None = None
    if saga.pivot is not None and saga.pivot_state is not None:
        finished = list(done["completed"])  # (the steps after it the journal shows done)
        after = finished[finished.index(saga.pivot) + 1 :] if saga.pivot in finished else []
        later = _after_pivot(saga, facts)  # (a sibling done before it: done, attack101 F1)
        after += [s for s in later if s in finished and s not in after]
        later += tuple(s for s in facts.forward if s not in later)  # (as its run named them)
        whole = saga.after() is not None or bool(facts.forward)
        pivot = (saga.pivot, saga.pivot_state, tuple(after), later, whole)
    policy = policy_of(saga.policy)
    halt = halted_at(facts)  # the policy's halt, its end unwritten: honoured
    if halt is not None and halt[0] in by_step:
        failed[:] = [halt]
    m, op = _machine(run.journal, saga)(
        [(u.step, u.attempts) for u in pending],
        leaked=[u.step for u in intents],
        dead=as_claimed.dead_letters(run.journal, saga),
        pivot=pivot,
        policy=policy if policy is not None else CONTINUE,
        undo_order=saga.undo_order,
        semantic=[u.step for u in pending if u.semantic],
        corrected=corrected(facts),  # (done before: rollback_incomplete)
        # each step's own undo timeout (schema 5) wins over the policy's, as in process
        timeouts={u.step: u.timeout for u in pending if u.timeout is not None},
        cancelled=as_claimed.cancelled_by(
            facts.started, saga.error
        ),  # its caller's cancel: ends cancelled
        halted_at=failed[0][0] if failed else None,
        name=saga.name,
        run_id=saga.id,
        first_seq=claimed.last_seq,
        watch=write,
    )
    if policy is None:  # journalled before policies were kept (schema 3 and older)
        m.notes = [FALLBACK]
    for intent in intents:  # (its claim marks it being recovered; halted at its pivot too)
        run.add(
            "UPDATE undos SET state = 'leaked' WHERE saga_id = ? AND position = ?",
            (saga.id, intent.position),
        )
    while not isinstance(op, Finished):
        if type(op) is Wait:  # the run's policy retries after a backoff
            time.sleep(op.seconds)
            op = m.resume()
            continue
        if type(op) is Ask:  # the run's policy halts: no person here, so it stays pending
            op = m.answer("leave")
            continue
        assert type(op) is RunUndo
        undo = by_step[op.step]
        # before EVERY attempt, whatever came before it (a wait, the last write): a recover
        # taken over meanwhile runs nothing more (cheap: the row is read only if another
        # connection has written since this one claimed)
        run.journal.holds(saga.id, claimed.gen)
        fn = _ask(
            registry,
            lambda n: registry.resolve(n),
            undo.compensation,
            f"recover stopped before the undo of {undo.step!r} (saga {saga.id!r}); the saga is "
            "left unfinished, that undo pending, for the next recover",
        )
        ran = run.undo_done(undo.position, 1, flush=None)  # (made before the call, kept
        try:  # with a C call as it returns: no Python call between for a Ctrl-C: attack49 F1)
            run_undo(fn, undo, op.timeout, run, (file_id(run.journal.path), saga.id))  # (F4)
        except Exception as exc:
            try:  # (an error whose repr raises an interrupt as it is told: named, F5)
                op = m.undo_failed(exc)
            except BaseException as cut:
                if not text_cut(cut, exc):
                    raise
                who = f"the undo of {undo.step!r} (saga {saga.id!r})"
                raise _stopped(cut, who, error=exc) from None
        except BaseException as exc:  # sys.exit, CancelledError, a library's own (an undo's own
            if not own_cancel(exc):  # CancelledError, no task cancelled, is a failure, as in
                raise _stopped(exc, f"the undo of {undo.step!r} (saga {saga.id!r})") from None
            op = m.undo_failed(exc)  # process: attack174 F1, it stopped every recover)
        else:  # (written down at once: a Ctrl-C from here on never runs it again, F8)
            run._pending.append(ran)
            op = m.undo_ok()
        writer.undo_ran(run)
    if m.interruption is not None:  # in an event's write (attack45 F2: it was swallowed,
        where = f"came {m.interrupted_where} (saga {saga.id!r})"  # the saga ended halted)
        raise _stopped(m.interruption, where, event=True) from None
    late = [s for s in run.journal.leaked(saga.id) if s not in m.leaked]  # (its owner's)
    if late:  # a step that landed after it was undone (``--force``): never rolled_back
        m.leaked = [*m.leaked, *late]
        m.notes = [*m.notes, f"returned after the take-over, may stand: {', '.join(late)}"]
    ran_on = given_up(run, m, saga.id, facts)  # (given up as they ran, its end unwritten)
    record = op.record
    reason = m.reason
    if m.halted and not reason and failed:  # halted by the undo policy: which, why, what
        step, why = failed[0]  # is left (nobody answers in recover: the undos stay pending)
        reason = (
            f"the undo of {step} failed ({why}) and the undo policy halts for a person; "
            f"pending: {', '.join(m.pending) or '-'}"
        )
    fields = {k: getattr(record, k) for k in RECORD_FIELDS}
    report = Recovery.build(**{**fields, **done}, reason=reason, ran_on=ran_on)
    writer.final = (  # (with its report: a Ctrl-C as that is made leaves the saga unfinished,
        "UPDATE sagas SET status = CASE WHEN ?1 IN ('rolled_back', 'cancelled') AND EXISTS"
        " (SELECT 1 FROM undos WHERE saga_id = ?4 AND state = 'leaked')"  # as said: attack49
        " THEN 'rollback_incomplete' ELSE ?1 END, ended = ?2, error = COALESCE(error, ?3)"
        " WHERE id = ?4",  # F2; and if the owner reports a leak first: not rolled_back)
        (str(record.status), time.time(), reason or "recovered after a crash", saga.id),
    )
    return report
