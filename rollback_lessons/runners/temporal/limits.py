"""Temporal's documented limits (docs.temporal.io/self-hosted-guide/defaults), checked
before a saga starts: a saga beyond them would never end (a workflow task that fails on
an oversized payload is retried for ever); and the record a run returns, fitted to one
payload (``result``). Plain data: the workflow imports it too."""

from __future__ import annotations

from typing import Any

from ..._words import counted
from ...errors import InvalidPipelineError, RollbackLessonsError
from ...outcome import RunRecord
from ..owed import all_undone, worst_record
from ..record_fit import FLOOR, fit, size
from ..wire import SagaPlan, record_data

PAYLOAD_LIMIT = 2 * 1024 * 1024
"""Bytes of one payload (a workflow's input or result, an activity's input): 2 MB."""
RECORD_LIMIT = PAYLOAD_LIMIT - 16 * 1024
"""Bytes a run's record is fitted to (``result``): a payload's own metadata counts too (a
record cut to 50 bytes under 2 MB was refused by the server, its workflow task failed
again and again)."""
ID_LIMIT = 1000
"""Bytes (UTF-8) of an identifier such as a workflow id (``limit.maxIDLength``: the server
measures a Go string, so ``é`` counts two, ``日`` three)."""
HISTORY_EVENTS_LIMIT = 51_200
"""Events in one workflow's history."""
ACTIVITY_SLOTS = 10_000
"""Activities the worker runs at once (temporalio's default: 100). A run playing a timing
(``completion``) starts a group's every action at once, each waiting for its turn: a group
wider than the slots stalled for good, the next turn's activity never taken (attack278 F4).
More than any run within the history limit can start (``worst_history``: a step's turn alone
is 2 workflow tasks); each waits on a thread of its own (``activities.Threads``)."""
WORKFLOW_TASK = 3
"""A workflow task's events (scheduled, started, completed): at worst one after each event
the workflow waits on."""
EVENTS_PER_ATTEMPT = 3 + WORKFLOW_TASK
"""An activity's events (scheduled, started, how it ended) and the workflow task that hears
it."""
UNDO_ATTEMPT = 2 * EVENTS_PER_ATTEMPT
"""An undo attempt's at worst: its activity, and once more if the server timed it out (the
workflow asks an undo whose end it never heard again: ``workflow._carry_out``)."""
DECIDED = 1 + WORKFLOW_TASK
"""A policy of one's own asked after an undo attempt failed (``deciding``): its local
activity's marker, and a workflow task if it outlasts the one that asked."""


def undo_attempt(plan: SagaPlan) -> int:
    """An undo attempt's events at worst under the plan's policy (``UNDO_ATTEMPT``, and
    ``DECIDED`` where the policy decides in code)."""
    return UNDO_ATTEMPT + (DECIDED if plan.policy.in_code else 0)


EVENTS_PER_WAIT = 2 + WORKFLOW_TASK
"""A retry's durable timer (started, fired or cancelled) and the workflow task that hears it."""
TURN = 2 * (2 + WORKFLOW_TASK)
"""An action's turn when the run plays a timing (``completion``): the Update ``turn``'s
accepted and completed events and the workflow task that accepts it (it completes in the
task that hears the step before it end); then the Update ``begin`` (its call begins), its
two events and its workflow task."""
RUN_EVENTS = 1 + WORKFLOW_TASK + 1
"""The run's own: started, its first workflow task, how it ended."""
A_CANCEL = 1 + WORKFLOW_TASK + 1
"""A cancel request, the workflow task that hears it, and the request to cancel the
activity it interrupts (a second request is the server's no-op)."""
A_PERSON = 2 + 1 + WORKFLOW_TASK + 2 + WORKFLOW_TASK
"""A halt's wait for a person: its timer, the answer (a Signal) and the workflow task that
takes it, the Update that tells its sender so (``answered``: accepted, completed) and its
workflow task."""
RESERVE = RUN_EVENTS - 1 + A_CANCEL
"""What a run keeps in hand to end once its last undo is decided: the workflow task that
returns the record and the completed event, and a cancel still to come."""


def _tries(n: int, attempt: int = EVENTS_PER_ATTEMPT) -> int:
    """The events of ``n`` attempts of an action or an undo: every attempt, every wait."""
    return n * attempt + (n - 1) * EVENTS_PER_WAIT


def worst_history(plan: SagaPlan, completion: bool = False) -> int:
    """The events a run of ``plan`` writes at worst: every step's action retried as its
    RetryPolicy allows (each waiting for its ``turn`` when the run plays a timing,
    ``completion``), every undo attempt as the undo policy allows (each perhaps asked
    twice), a person asked about each undo (when the plan waits for one), a cancel. What a
    policy that decides in code or a person answering "retry" add is not bounded here: the
    workflow asks ``no_room`` before each such retry (and stops retrying where there is none).
    Signals nobody asked for, and workflow tasks a lost worker makes the server retry,
    are beyond any count (``no_room`` and ``no_room_forward`` read the real history)."""
    policy = plan.policy.retry
    undo = _tries(policy.max_attempts if policy is not None else 1, undo_attempt(plan))
    if plan.halt_wait != 0:
        undo += A_PERSON
    total = RUN_EVENTS + A_CANCEL
    for step in plan.steps:
        n = step.retry.max_attempts if step.retry is not None else 1
        total += _tries(n, EVENTS_PER_ATTEMPT + (TURN if completion else 0))
        total += undo if step.has_undo else 0
    return total


def no_room(plan: SagaPlan, length: int, undos_left: int) -> str | None:
    """Why an undo may not be retried, or None if it may: is there room in a history of
    ``length`` events (the plan's ``history_limit`` at most) for another round of it (a
    retry's timer or a person's answer, and its attempt) and, after it, one attempt of each
    of the ``undos_left`` undos still to run and the run's end? Where there is not, the
    machine stops retrying (``Machine.undo_failed``'s ``limit``): the server would terminate
    the run mid-rollback, its effects held."""
    limit = plan.history_limit or HISTORY_EVENTS_LIMIT
    attempt = undo_attempt(plan)
    cost = attempt + max(EVENTS_PER_WAIT, A_PERSON if plan.halt_wait != 0 else 0)
    if length + WORKFLOW_TASK + cost + undos_left * attempt + RESERVE <= limit:
        return None
    return (
        f"not retried: the workflow's history is near Temporal's limit of {limit} events "
        "(the server would terminate it mid-rollback, its effects held)"
    )


def no_room_forward(plan: SagaPlan, length: int, undos: int, running: int = 1) -> str | None:
    """Why the run may not go on forward, or None if it may: before another step starts,
    is there room in a history of ``length`` events for the ``running`` steps' attempts and
    then one attempt of each of the ``undos`` of the steps done and the run's end? The count
    checked before the start (``worst_history``) says yes for every run of the plan; what
    it cannot know is a Signal nobody asked for (the server writes each one, and the
    workflow task it wakes, whatever the workflow does with it). Where there is no room the
    run stops going forward and is undone while it still can be, rather than be terminated
    by the server mid-run, its effects held."""
    limit = plan.history_limit or HISTORY_EVENTS_LIMIT
    need = WORKFLOW_TASK + running * EVENTS_PER_ATTEMPT + undos * undo_attempt(plan) + RESERVE
    if length + need <= limit:
        return None
    return (
        f"stopped going forward: the workflow's history is near Temporal's limit of {limit} "
        "events (Signals nobody asked for filled it); what was done is undone while there "
        "is room"
    )


class TemporalLimitExceeded(InvalidPipelineError):
    """The saga does not fit one of Temporal's limits; the message names it."""


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


def check_id(run_id: str, whence: str, then: str) -> None:
    """A workflow id is at most ``ID_LIMIT`` bytes in UTF-8, as the server counts it: one
    over is refused here in one line, naming the limit (the saga's start, ``handle_for``)."""
    _check_identifier(run_id, f"the workflow id ({{}} bytes in UTF-8, {whence})", then)


def check_task_queue(name: object) -> None:
    """A task queue's name (None: a new one), refused before anything starts: a non-empty
    str of at most ``ID_LIMIT`` bytes (attack206 F2: one over was taken, and every run then
    said the server "did not start it in time. Try again", which could never work)."""
    if name is None:
        return
    if type(name) is not str or not name:
        raise TypeError(f"task_queue must be a non-empty str, got {name!r}")
    what = "the task queue's name ({} bytes in UTF-8)"
    _check_identifier(name, what, "give task_queue a shorter one")


def _check_identifier(text: str, what: str, then: str) -> None:
    """An identifier over ``ID_LIMIT`` bytes (a Go string's length: ``é`` counts two),
    refused as ``what`` (its ``{}`` the bytes found), then what to do."""
    if (found := len(text.encode("utf-8", "surrogatepass"))) > ID_LIMIT:
        said = what.replace("{}", str(found), 1)
        raise TemporalLimitExceeded(
            f"{said} is over Temporal's limit of {ID_LIMIT} bytes for identifiers: {then}"
        )


def check_plan(plan: SagaPlan, input_size: int, history_limit: int = HISTORY_EVENTS_LIMIT,
               completion: bool = False) -> None:  # fmt: skip
    """Refuse a plan that cannot run within Temporal's limits: its workflow id, the history
    of its worst run (``worst_history``: a run that reaches ``history_limit`` is terminated
    by the server, nothing undone), its input (``input_size`` bytes), the record of a run
    that undoes every step (any run that rolls back everything records at least that), and
    the record of the worst run its policies allow (``owed.worst_record``: each error's text
    cut to ``FLOOR``, as ``result`` cuts at most), so that a run its counts bound returns its
    Outcome: never "refused" once the saga ran (attack76 F2)."""
    check_id(plan.run_id, "from the saga's name", "name the saga shorter")
    worst = worst_history(plan, completion)
    if worst > history_limit:
        raise TemporalLimitExceeded(
            f"a run of its {counted(len(plan.steps), 'step')} can write {worst} events (every "
            f"retry and undo attempt, their timers and workflow tasks), over Temporal's limit of "
            f"{history_limit} events in a workflow's history (the server would terminate it "
            f"mid-run, nothing undone): {_ways(plan, 'fewer max_attempts', 'fewer steps')}"
        )
    if input_size > PAYLOAD_LIMIT:
        raise TemporalLimitExceeded(
            f"the saga's plan is {_mb(input_size)}, over Temporal's payload limit of "
            f"{_mb(PAYLOAD_LIMIT)}: {_ways(plan, 'shorter step names', 'fewer steps')}"
        )
    least = size(record_data(all_undone(plan.specs(), plan.undo_order)))
    if least > PAYLOAD_LIMIT:
        raise TemporalLimitExceeded(
            f"the record of a rollback of this saga is at least {_mb(least)}, over "
            f"Temporal's payload limit of {_mb(PAYLOAD_LIMIT)} (every step's name is in "
            f"each of its events): {_ways(plan, 'shorter step names', 'fewer steps')}"
        )
    worst = size(record_data(worst_record(plan.specs(), _undo_attempts(plan), _Failed(),
                                          plan.undo_order)))  # fmt: skip
    if worst > RECORD_LIMIT:
        raise TemporalLimitExceeded(
            f"the record of its worst run (every retry and undo attempt its policies allow, "
            f"each error's text cut to {FLOOR} characters) is {_mb(worst)}, over Temporal's "
            f"payload limit of {_mb(PAYLOAD_LIMIT)} (every step's name is in each of its "
            f"events): {_ways(plan, 'shorter step names', 'fewer steps', 'fewer max_attempts')}"
        )


def _ways(plan: SagaPlan, *ways: str) -> str:
    """The ways out a refusal gives, "a, b, or c": "fewer steps" only to a saga of more than
    one (a 1-step saga was told "fewer steps": attack87 F3)."""
    kept = [w for w in ways if w != "fewer steps" or len(plan.steps) > 1]
    return kept[0] if len(kept) == 1 else ", ".join(kept[:-1]) + ", or " + kept[-1]


class _Failed(Exception):
    """The failure a worst run is sized with: its repr as long as a text cut to ``FLOOR``."""

    def __init__(self) -> None:
        super().__init__("x" * (FLOOR - len("_Failed('')")))


def _undo_attempts(plan: SagaPlan) -> int:
    retry = plan.policy.retry
    return retry.max_attempts if retry is not None else 1


TOO_LARGE = "OutcomeTooLarge"
"""The type of the failure a workflow ends with when its record cannot be returned."""


def result(record: RunRecord) -> dict[str, Any]:
    """What the workflow returns: the record as data, its error texts cut to fit one
    payload where it is over (``record_fit.fit``); one over even then (its names fill it:
    a policy that retries in code, a person answering "retry", which no start check
    bounds) raises ``OutcomeTooLarge``, which says how the run ended (checked before it is
    returned: an oversized result would fail its workflow task again and again)."""
    data = fit(record_data(record), RECORD_LIMIT, "Temporal")
    found = size(data)
    if found > RECORD_LIMIT:
        raise OutcomeTooLarge(
            record.run_id or "", found, str(record.status), record.completed,
            record.compensated, tuple(d.step for d in record.dead_letters), record.pending,
            record.leaked,
        )  # fmt: skip
    return data


class OutcomeTooLarge(RollbackLessonsError):
    """The saga RAN on Temporal, to its end (it is not to be started again: not a
    ``TemporalLimitExceeded``, which is a refusal before the start), but its record is over
    Temporal's payload limit even with each error text cut to ``FLOOR``: the Outcome
    cannot be returned. Its fields say how it ended, as the machine counted: ``status``
    (``committed``, ``rolled_back``, ...), ``completed``, ``compensated`` (undone),
    ``dead_letters`` (the steps whose undo finally failed), ``pending``, ``leaked``, and
    ``in_effect``: what is still in effect (done and not undone)."""

    def __init__(self, run_id: str, found: int, status: str, completed: tuple[str, ...] = (),
                 compensated: tuple[str, ...] = (), dead_letters: tuple[str, ...] = (),
                 pending: tuple[str, ...] = (), leaked: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.run_id, self.found, self.status = run_id, found, status
        self.completed, self.compensated = tuple(completed), tuple(compensated)
        self.dead_letters, self.pending = tuple(dead_letters), tuple(pending)
        self.leaked = tuple(leaked)
        every = (*completed, *dead_letters, *pending, *leaked)
        self.in_effect = tuple(s for s in dict.fromkeys(every) if s not in compensated)
        names = lambda steps: ", ".join(steps) or "none"  # noqa: E731
        super().__init__(
            f"saga {run_id} ran to its end on Temporal, {status}, but its record is "
            f"{_mb(found)}, over Temporal's payload limit of {_mb(PAYLOAD_LIMIT)} even with "
            f"each error text cut to {FLOOR} characters: its Outcome cannot be returned (it "
            "ran: do not start it again). Done: "
            f"{names(self.completed)}; undone: {names(self.compensated)}; dead letters: "
            f"{names(self.dead_letters)}; pending: {names(self.pending)}; not undone: "
            f"{names(self.leaked)}; so still in effect: {names(self.in_effect)}"
        )

    def data(self) -> dict[str, Any]:
        """Its fields as data (the workflow's failure carries them: ``handle.outcome``)."""
        keys = ("run_id", "found", "status", "completed", "compensated", "dead_letters",
                "pending", "leaked")  # fmt: skip
        return {k: getattr(self, k) for k in keys}
