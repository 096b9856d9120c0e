"""What ``recover`` tells: for each saga it recovered, its run record (``Recovery``); each
unfinished saga it left alone (``Skipped``); each saga the journal already showed ended for a
person (``Waiting``); all of them in a ``RecoveryReport``, printed as the CLI prints it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._words import counted
from ..events import KEPT, describe, one_line
from ..journal_end import DEAD_RAN_ON
from ..outcome import EARLY, RunRecord, Status, ran_on
from .files import _cell
from .records import NO_UNDO

if TYPE_CHECKING:
    from .as_claimed import Facts
    from .journal import Journal


_safe = one_line  # a line of the report as one line (a saga name a journal kept before
# names were checked may hold a line break)


@dataclass(frozen=True)
class Recovery(RunRecord):
    """What ``recover`` did for one saga: the run record of its resumed rollback (``leaked``:
    steps that started with their undo to be logged after them: they may have happened, and
    nothing undoes them), and why it was left for a person, if it was."""

    reason: str = ""
    no_undo: tuple[str, ...] = ()  # steps done with no undo (``done_steps``)
    ran_on: tuple[tuple[str, str], ...] = ()  # leaked steps given up as they ran: (step, why)

    @property
    def saga_id(self) -> str:
        return self.run_id or ""

    @property
    def kept(self) -> tuple[str, ...]:
        """The steps done with no undo, whose effect a rollback leaves standing by design
        (``Outcome.kept``); ``compensated`` lists only the undos recover ran, so the steps
        its owner undid before the crash are told apart by ``no_undo``, not by that."""
        return tuple(s for s in super().kept if s in self.no_undo)

    @property
    def undone(self) -> tuple[str, ...]:
        return self.compensated

    @property
    def for_a_person(self) -> bool:
        """Left for a person: halted (at its pivot, or by its policy), or a step that may
        have happened with nothing to undo it (leaked)."""
        return self.status is Status.HALTED or bool(self.leaked)

    def __str__(self) -> str:
        who = f"{_cell(self.saga_id)} ({_cell(self.name)})"  # quoted if it would break a line
        kept = f"; kept (no undo: its effect stands) {', '.join(self.kept)}" * bool(self.kept)
        ran = dict(self.ran_on)
        plain = [s for s in self.leaked if s not in ran]
        leaked = f"; leaked (may have happened, no undo logged) {', '.join(plain)}"
        leaked *= bool(plain)  # (on a halted line too: attack41 F2)
        leaked += "".join(f"; leaked {s} ({why})" for s, why in self.ran_on)
        if self.status is Status.HALTED:  # (its kept steps too: attack38 F4)
            return f"{who}: halted; {self.reason}{leaked}{kept}"
        dead = "; ".join(f"{d.step}: {describe(d.error)}" for d in self.dead_letters) or "-"
        undone = ", ".join(self.undone) or "-"
        text = f"{who}: {self.status}; undone {undone}; dead letters {dead}"
        if self.semantic:  # why a rollback with nothing failed is incomplete (attack41 F9)
            text += f"; compensated by a new action, not undone: {', '.join(self.semantic)}"
        return text + leaked + kept


def given_up(run: Any, m: Any, saga_id: str, facts: Facts) -> tuple[tuple[str, str], ...]:
    """The steps given up as their work ran on (``Facts.ran_on``) that the run's end never
    wrote ``leaked`` (a crash before it: attack100 F12, attack101 F2; recover said
    ``rolled_back``, exit 0, the work landing after its undo): undone or dead now, written
    leaked with ``recover``'s end, saying why, and the machine's ``leaked`` told."""
    dead = {d.step for d in m.dead_letters}
    ran = [s for s in facts.ran_on if s not in (*m.pending, *m.leaked)]
    told = tuple((s, DEAD_RAN_ON if s in dead else EARLY) for s in dict.fromkeys(ran))
    for step, why in told:  # (as the run's end writes it: ``JournalRun.ran_on``)
        run.ran_on(step, f"step {step!r}: {why}")
    m.leaked = [*m.leaked, *(s for s, _ in told)]
    return told


PENDING_RAN_ON = ran_on(dead=False)
"""What is said of a step given up as its work ran on whose undo a halt left pending."""


def ran_on_pending(journal: Journal, saga: Any) -> list[str]:
    """The steps of a halted saga given up as their work ran on whose undo is still pending
    (the halt left it for a person: attack100 F7, ``journal show`` said leaked 0, ``recover``
    named only the halt): leaked, as the run's outcome says."""
    if saga.status != "halted":
        return []
    ran = journal.ran_on(saga.id)
    return [u.step for u in journal.undos(saga.id) if u.state == "pending" and u.step in ran]


def ran_on_said(error: str | None) -> str | None:
    """What a leaked row says of a step whose work ran on unwaited: undone before it ended
    (``EARLY``), or its undo failed (``DEAD_RAN_ON``); None for any other leaked row."""
    return next((why for why in (EARLY, DEAD_RAN_ON) if why in (error or "")), None)


def done_steps(facts: Facts, pivot: str | None) -> dict[str, Any]:
    """What the journal shows of a saga's steps done, for ``recover``'s record: ``completed``
    (their done event, or, written as they returned, their undo logged after them or their
    row with no undo counting its call, attack35 F4; in the order they ended), their
    ``kinds`` (a step with no row is a gate: only those write none), and ``no_undo``, those
    done with no undo (``kept`` once rolled back). ``facts``: the saga's, as claimed."""
    events = facts.steps
    done = list(dict.fromkeys(step for kind, step, _ in events if kind == "step_done"))
    after = {s for kind, s, d in events
             if kind == "step_start" and json.loads(d).get("register") == "after"}  # fmt: skip
    undo = {step: (compensation, state, n) for step, compensation, state, n, _ in facts.undos}
    done += [step for step, (compensation, state, n) in undo.items() if step not in done and (
        (compensation != NO_UNDO and state in RETURNED and step in after)
        or (compensation == NO_UNDO and state == "not_run" and n))]  # fmt: skip
    kinds = {s: "pivot" if s == pivot else "compensable" if s in undo else "gate" for s in done}
    no_undo = tuple(s for s in done if undo.get(s, ())[:2] == (NO_UNDO, "not_run") and s != pivot)
    return {"completed": tuple(done), "kinds": kinds, "no_undo": no_undo}


RETURNED = ("pending", "done", "dead")
"""The states of an undo logged after its step that say the step returned."""


@dataclass(frozen=True)
class Skipped:
    """An unfinished saga that ``recover`` left alone, and why."""

    saga_id: str
    name: str
    reason: str

    def __str__(self) -> str:
        return f"{_cell(self.saga_id)} ({_cell(self.name)}): left unfinished; {self.reason}"


@dataclass(frozen=True)
class Waiting:
    """A saga the journal already showed ended for a person (its run, or an earlier
    ``recover``, left it so, and whoever saw that outcome may be gone): halted, or with dead
    letters or a step leaked. Every ``recover`` names it until a person settles it
    (``Journal.settle``, ``rollback-lessons journal settle``)."""

    saga_id: str
    name: str
    status: str
    dead_letters: tuple[str, ...] = ()
    leaked: tuple[str, ...] = ()
    reason: str = ""  # why it halted, as its run or the recover that halted it said
    pending: tuple[str, ...] = ()  # the undos not run (a halt leaves them for a person)
    past_pivot: bool = False  # its pivot happened: those undos are never to run

    def __str__(self) -> str:
        what = [self.reason] if self.reason else []  # (attack40 F1, attack41 F1)
        left = "undos left, not to run (its pivot happened)" if self.past_pivot else "pending"
        what += [f"{left} {', '.join(self.pending)}"] if self.pending else []
        what += [f"dead letters {', '.join(self.dead_letters)}"] if self.dead_letters else []
        what += [f"leaked {', '.join(self.leaked)}"] if self.leaked else []
        why = f" ({'; '.join(what)})" if what else ""
        who = f"{_cell(self.saga_id)} ({_cell(self.name)})"
        return f"{who}: {self.status} earlier{why}; waits for a person"


def halt_of(journal: Journal, saga_id: str) -> tuple[str, tuple[str, ...]]:
    """Why a halted saga halted, from its events (its ``halted`` event's reason, or the undo
    its policy halted at: which, and its error), and the undos it left pending, the one it
    halted at first, then newest first."""
    rows = journal._rows(
        "SELECT kind, step, details FROM events WHERE saga_id = ?"
        " AND kind IN ('halted', 'undo_failed') ORDER BY seq DESC", (saga_id,),
    )  # fmt: skip
    reason, at = "", None
    for kind, step, details in rows:
        said = json.loads(details)
        if kind == "halted" and said.get("reason"):  # (and what its run said to finish)
            kept = said.get(KEPT) if isinstance(said.get(KEPT), dict) else {}
            forward = f"; forward {kept['forward']}" if kept.get("forward") else ""
            reason = str(said["reason"]) + forward
            break
        if kind == "undo_failed" and said.get("then") == "halt":
            reason = f"the undo of {step} failed ({said.get('error')}) and the undo policy "
            reason, at = reason + "halts for a person", step
            break
    left = [u.step for u in journal.undos(saga_id) if u.state == "pending"][::-1]
    ended = journal._rows(
        "SELECT details FROM events WHERE saga_id = ? AND kind = 'rollback_done'"
        " ORDER BY seq DESC LIMIT 1", (saga_id,),
    )  # fmt: skip
    kept = json.loads(ended[0][0]).get(KEPT) if ended else None  # (as its run said them:
    order = kept.get("left") if isinstance(kept, dict) else None
    if isinstance(order, list):  # a graph's undo order is not the rows': attack42 F8)
        left.sort(key=lambda s: order.index(s) if s in order else len(order))
    return reason, tuple(sorted(left, key=lambda s: s != at))


@dataclass(frozen=True)
class RecoveryReport:
    """Every saga recovered, every unfinished saga left alone (``skipped``), and every saga
    the journal showed ended for a person before (``waiting``; not in ``str``, which tells
    what this recover did: the CLI prints them too)."""

    recovered: tuple[Recovery, ...] = ()
    skipped: tuple[Skipped, ...] = field(default=())
    waiting: tuple[Waiting, ...] = field(default=())

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.recovered)

    def __len__(self) -> int:
        return len(self.recovered)

    def __str__(self) -> str:
        lines = [_safe(str(r)) for r in self.recovered] + [_safe(str(s)) for s in self.skipped]
        lines.append(f"recovered {counted(len(self.recovered), 'saga')}, left {len(self.skipped)}")
        return "\n".join(lines)


def waiting_in(
    journal: Journal, but: set[str] | frozenset[str] = frozenset()
) -> tuple[Waiting, ...]:
    """The sagas ``journal`` shows ended needing a person (halted, or with dead letters or a
    step leaked) and not settled by one, but those in ``but`` (the ones this recover just
    ended: told already)."""
    from .settle import NOT_SETTLED, WAITS

    sagas = journal.sagas(f"WHERE {WAITS} AND {NOT_SETTLED}")
    found = []
    for saga in sagas:
        if saga.id in but:
            continue
        undos = journal.undos(saga.id)  # (read once)
        dead = tuple(u.step for u in undos if u.state == "dead")
        said = {u.step: why for u in undos if (why := ran_on_said(u.error)) is not None}
        leaked = tuple(  # (a step with no undo too; one undone as it ran on, said: 96 F8)
            f"{step} ({said[step]})" if step in said else step for step in journal.leaked(saga.id)
        ) + tuple(f"{step} ({PENDING_RAN_ON})" for step in ran_on_pending(journal, saga))
        halt = halt_of(journal, saga.id) if saga.status == "halted" else ("", ())
        past = saga.pivot_state == "done"
        found.append(Waiting(saga.id, saga.name, saga.status, dead, leaked, *halt, past))
    return tuple(found)


def corrected(facts: Facts) -> list[str]:
    """The saga's semantic undos (corrections) done before this recover, in the order they
    ran: the world is not as it was, so the saga is ``rollback_incomplete`` (attack42 F15)."""
    return [str(u[0]) for u in facts.undos[::-1] if u[2] == "done" and u[4] == 1]


def halted_at(facts: Facts) -> tuple[str, str] | None:
    """The step at whose failed undo the run's undo policy halted for a person, with the
    error, when that is the last thing its rollback recorded (the halt's own end never
    written: a crash, a failed write or a Ctrl-C between the two); None otherwise (a
    person's answer, another attempt, an undo done: a later event)."""
    last = facts.last_undo
    details = json.loads(last[1]) if last is not None and last[0] is not None else None
    if not isinstance(details, dict) or details.get("then") != "halt":
        return None
    return str(last[0]), str(details.get("error", ""))  # type: ignore[index]
