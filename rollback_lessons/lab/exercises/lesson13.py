"""Lesson 13 exercises: an idempotent consumer, and the order of compensating events.

13.1 runs the learner's ``handle(db, message)`` as the payment service's consumer over
generated deliveries (one to four messages, some with the same booking and amount but
another id: a second room of the same booking; each delivered at least once, again right
away or after others; a crash inside the handler, which rolls its writes to ``db`` back,
or after it committed and before the queue forgot the message; other bookings' charges
already in ``db``) and checks that each message id is charged exactly once. It also
gives the same message to two new databases: a handler that remembers ids outside ``db``
charges only the first.
13.2 asks for the rule, ``compensations(chain, fault)``, over generated chains of services
(two to five, names the lesson never shows, some beginning alike: payout, payment) and
every fault: a service's step fails (the
failure travels back, so the services before it compensate, last first), or the guest
cancels after the whole chain acted (the cancellation travels forward, first first).
"""

from __future__ import annotations

import copy
import uuid
from collections import Counter
from typing import Any

from ..._words import counted
from ...choreo.events import EventType, Message
from . import (
    Exercise,
    Incorrect,
    attempted,
    call,
    forall,
    function,
    generator,
    names_list,
    register,
)
from .deliveries import World, fresh_db, make_message, size, worlds
from .ledger import Crash, Db, Ledger

CAUGHT = (
    "your handler caught the check's stand-in for a crash (a BaseException, caught by a bare "
    "except or an except BaseException), but a process that dies runs no except clause: the "
    "check rolled back its writes to db, as the crash does"
)


def _deliver(fn: Any, db: dict[str, Any], message: Message, where: str, caught: list[str]) -> bool:
    """Hand ``message`` to the handler; True if the process died in it. The crash is one
    whether or not the handler caught ``Crash``: nothing it did after happened, and its
    transaction never committed (``caught`` notes that it caught it, to say so)."""
    ledger = db.get("charges")
    try:
        call(fn, db, message, name="handle", where=where)
    except Crash:
        return True
    except Incorrect:  # (an error raised after the crash: the process was dead by then)
        if not getattr(ledger, "crashed", False):
            raise
    if getattr(ledger, "crashed", False):
        caught[:1] = [CAUGHT]
        return True
    return False


def _also(wrong: Incorrect, here: list[str]) -> Incorrect:
    """The failure, told with the note that the handler caught the crash only where it
    did so in that very run (learn81 F4: not on a duplicate with no crash in it)."""
    return Incorrect(str(wrong) + "".join(f" (Also: {note}.)" for note in here))


def _marks(given: Message, now: Message) -> list[str]:
    """What the handler wrote on the message object itself: ``message.handled``."""
    was, seen = vars(given), vars(now)
    marks = [f"message.{k}" for k in seen if k != "data" and (k not in was or seen[k] != was[k])]
    if isinstance(now.data, dict) and isinstance(given.data, dict):
        marks += [f"message.data[{k!r}]" for k in now.data if now.data[k] != given.data.get(k)]
    elif now.data != given.data:
        marks.append("message.data")
    return marks


def _probe(fn: Any, caught: list[str]) -> None:
    """A crash inside the handler, then the redelivery (a new object, as from the queue);
    then that same object to a new database. The id is drawn afresh each time (never
    shown), so nothing remembered from an earlier check can hold it: what the handler
    remembers outside ``db`` shows."""
    first = Message(EventType.ROOM_RESERVED, "b5", {"amount": 150}, id=uuid.uuid4().hex[:8])
    db: dict[str, Any] = Db(charges=Ledger())
    call(fn, db, first, name="handle", where="On a new database")
    if list(db.get("charges", ())) != [("b5", 150)]:
        shown = repr(db.get("charges")).replace(repr(first.id), "message.id")  # drawn afresh
        raise Incorrect(
            f"one message (b5, 150) to a new database: db['charges'] became "
            f"{shown}, not [('b5', 150)]: each message asks to charge "
            "(message.booking, message.data['amount'])"
        )
    sent = Message(EventType.ROOM_RESERVED, "b5", {"amount": 150}, id=uuid.uuid4().hex[:8])
    db = Db(charges=Ledger())
    db["charges"].crash_next = True
    here: list[str] = []  # (CAUGHT, if the handler caught this crash)
    if _deliver(fn, db, copy.deepcopy(sent), "On a new database", here):
        db = Db(charges=Ledger())  # rolled back to what it was: nothing
    caught[:] = caught or here
    if isinstance(db.get("charges"), Ledger):
        db["charges"].crash_next = False
    message = copy.deepcopy(sent)  # redelivered: a new object, as from the queue
    call(fn, db, message, name="handle", where="On a new database, after a crash")
    if not db["charges"]:
        raise _also(
            Incorrect(
                "a message (b5, 150) to a new database: a crash inside your handler rolled "
                "back its writes to db, then the queue delivered the message again, and your "
                "handler charged nothing: it marked the message handled outside db (in "
                "something that outlives the call, such as a global or a default argument), "
                "where the rollback does not reach, so b5 is never charged. Mark it in db, so "
                "the mark commits, or rolls back, with the charge."
            ),
            here,
        )
    again: dict[str, Any] = Db(charges=Ledger())
    call(fn, again, message, name="handle", where="On a second new database")
    if again["charges"]:
        return
    marks = _marks(sent, message)
    if marks:  # (learn81 F5: told where this handler keeps its memory)
        raise Incorrect(
            "a message (b5, 150) charged on one new database was not charged on a second new "
            f"one, given the same message object: your handler marks that object ({marks[0]}), "
            "outside db, and the mark outlived the database, so it skipped a message this db "
            "never charged. The other way round, the queue hands each delivery as a new "
            "object, with no mark, so a message delivered again is charged again. Keep the "
            "inbox in db, where it is committed with the charge."
        )
    raise Incorrect(
        "a message (b5, 150) charged on one new database was not charged on a second new "
        "one: your handler remembers message ids outside db (in something that outlives the "
        "call, such as a global or a default argument), and that memory outlived the "
        "database, so it skipped a message this db never charged. The other way round, a "
        "restarted service forgets that memory while its db keeps the charges, so a message "
        "redelivered after a restart is charged again. Keep the inbox in db, where it is "
        "committed with the charge."
    )


def _check_handle(handle: Any) -> str:
    fn = function(handle, "handle(db, message)")
    attempted(fn, Db(charges=Ledger()), make_message(generator("scratch"), "b0", 1))
    caught: list[str] = []  # (CAUGHT, once the handler caught a crash: told on a pass)
    tried = _deliveries(fn, caught)
    return (
        f"each message charged once in {tried} runs of deliveries with duplicates, redeliveries "
        "after other messages, crashes inside and after your handler, and second rooms "
        "at the same price." + "".join(f" (Note: {note}.)" for note in caught)
    )


def _deliveries(fn: Any, caught: list[str]) -> int:
    """The probe, then every world: how many were tried."""
    _probe(fn, caught)

    def holds(world: World) -> None:
        here: list[str] = []  # (CAUGHT, if the handler caught a crash in this world)
        try:
            _deliver_all(fn, world, here)
        except Incorrect as wrong:
            raise _also(wrong, here) from None
        caught[:] = caught or here

    return forall(worlds(), holds, size=size)


def _deliver_all(fn: Any, world: World, caught: list[str]) -> None:
    """Every delivery of ``world``, crashes and all; then what ``db`` holds is judged."""
    db = fresh_db(world)
    for d in world.deliveries:
        # each delivery a new object, as a queue gives (a relay rebuilds it from JSON)
        message = copy.deepcopy(world.messages[d.message])
        saved = copy.deepcopy(db)
        if d.crash == "inside":
            db["charges"].crash_next = True
        if _deliver(fn, db, message, f"In {world.story()}", caught):
            db = saved  # the transaction never committed
            db["charges"].crash_next = False
            continue
        charges = db.get("charges")
        if not isinstance(charges, list):
            raise Incorrect(
                f"In {world.story()}: db['charges'] is now {charges!r}; add the charge "
                "to the list, do not replace it"
            )
        if isinstance(charges, Ledger):  # no crash came: nothing was added to the list
            charges.crash_next = False
    _judge(world, db)


def _judge(world: World, db: dict[str, Any]) -> None:
    got = Counter(tuple(c) if isinstance(c, list | tuple) else c for c in db["charges"])
    for charge in world.before:
        got[charge] -= 1
        if got[charge] < 0:
            raise Incorrect(
                f"In {world.story()}: the charge {charge} of another booking, in db before, "
                "is gone: the handler adds a charge and removes none"
            )
    want = Counter((m.booking, m.data["amount"]) for m in world.messages)
    strange = sorted((c for c in got if got[c] > 0 and c not in want), key=str)
    if strange:
        raise Incorrect(
            f"In {world.story()}: db['charges'] got {strange[0]!r}, which no message asks for: "
            "each message asks to charge (message.booking, message.data['amount'])"
        )
    for payload in sorted(set(got) | set(want), key=str):
        ids = [i for i, m in enumerate(world.messages) if (m.booking, m.data["amount"]) == payload]
        names = ", ".join(world.messages[i].id for i in ids)
        if got[payload] > want[payload]:
            again = [
                j
                for j, d in enumerate(world.deliveries)
                if d.message in ids and any(e.message == d.message for e in world.deliveries[:j])
            ]
            late = any(
                world.deliveries[j - 1].message != world.deliveries[j].message for j in again
            )
            why = (
                ": a redelivery can come after other messages, not only right after the first"
                if late
                else ": a message delivered again must change nothing"
                if again
                else ""
            )
            raise Incorrect(
                f"In {world.story()}: {payload} was charged {got[payload]} times, for "
                f"{counted(want[payload], 'message id')} ({names}){why}"
            )
        if got[payload] < want[payload]:
            if len(ids) > 1:
                why = (
                    f": {names} carry the same booking and amount with different ids (two "
                    "rooms, two charges); a duplicate is the same message id, not the same "
                    "content"
                )
            else:
                why = ": each message id must be charged once"
            raise Incorrect(
                f"In {world.story()}: {payload} was charged "
                f"{counted(got[payload], 'time')}, for "
                f"{counted(want[payload], 'message id')} ({names}){why}"
            )


LESSON_IMPORTS = (
    "from IPython.display import Image\n"
    "from rollback_lessons.choreo.explore import explore_choreography\n"
    "from rollback_lessons.lab.engines import to_png\n"
    "from rollback_lessons.lab.sequence import draw_sequence\n"
    "from rollback_lessons.worlds.choreography import "
    "both_ways, dual_write, killed, overtaken, relay_crash, side_by_side\n"
    "from rollback_lessons.lab.exercises import lesson13\n"
)
"""What lesson 13 has imported before its exercises (``Exercise.setup``: a test compares
it with the notebook)."""

q1 = Exercise(
    id="13.1",
    setup=LESSON_IMPORTS,
    title="Make a consumer idempotent",
    checker=_check_handle,
    answer_names=("handle",),
    stops="the payment service's process stops there, as at a Ctrl-C, and the queue "
    "delivers the message again",
    hints=(
        "What tells a redelivery from a new message? Two rooms of one booking at one price "
        "have the same content; only the message id says they are two.",
        "A duplicate can come right away, after other messages, or after a crash: remember "
        "every id handled, not only the last.",
        "Where you remember it matters: a crash rolls back what the handler wrote to db, "
        "and nothing else. Remember the id in db, beside the charge, so both commit or "
        "neither does.",
    ),
    solution_code=(
        "# exercise: 13.1\n"
        "def handle(db, message):\n"
        '    inbox = db.setdefault("inbox", set())\n'
        "    if message.id in inbox:\n"
        "        return\n"
        '    db["charges"].append((message.booking, message.data["amount"]))\n'
        "    inbox.add(message.id)"
    ),
)


# -- 13.2: the order of the compensating events ----------------------------------------------

_SERVICES = (
    ("flight", "book_seat", "cancel_seat"),
    ("hotel", "reserve", "release"),
    ("car", "rent", "return_car"),
    ("payment", "charge", "refund"),
    ("insurance", "insure", "void_policy"),
    ("loyalty", "award_points", "revoke_points"),
    ("email", "confirm", "cancel_notice"),
)
_ALIKE = (
    (("payout", "schedule_payout", "cancel_payout"), "payment"),
    (("carpool", "join_pool", "leave_pool"), "car"),
    (("inspection", "book_inspection", "cancel_inspection"), "insurance"),
)
"""Services whose names begin as another's does (learn81 F2: a fault is told by its
whole name), each with the one it looks like."""
LESSON_CHAIN = (
    ("room", "reserve", "release"),
    ("payment", "charge", "refund"),
    ("notification", "confirm", "cancel_notice"),
)
CANCEL = "cancelled"


def expected(chain: tuple[tuple[str, str, str], ...], fault: str) -> list[str]:
    """A failure travels back: the services before it compensate, last first. The guest's
    cancellation travels forward from the first service: each compensates, first first."""
    if fault == CANCEL:
        return [undo for _, _, undo in chain]
    at = [name for name, _, _ in chain].index(fault)
    return [undo for _, _, undo in reversed(chain[:at])]


def chains() -> list[tuple[tuple[str, str, str], ...]]:
    rng = generator("13.2")
    found: list[tuple[tuple[str, str, str], ...]] = [LESSON_CHAIN]
    for _ in range(40):
        found.append(tuple(rng.sample(_SERVICES, rng.randint(2, 5))))
    rng = generator("13.2 alike")  # (drawn apart: the chains above stay those drawn before)
    by_name = {s[0]: s for s in _SERVICES}
    for alike, like in _ALIKE:
        for pair in ((alike, by_name[like]), (by_name[like], alike)):  # each one first
            chain = rng.sample([s for s in _SERVICES if s[0] != like], rng.randint(0, 3))
            at = sorted(rng.sample(range(len(chain) + 2), 2))
            for i, service in zip(at, pair, strict=True):
                chain.insert(i, service)
            found.append(tuple(chain))
    return found


def _shown(chain: tuple[tuple[str, str, str], ...]) -> str:
    return " -> ".join(f"{name} ({action})" for name, action, _ in chain)


def _check_rule(compensations: Any) -> str:
    fn = function(compensations, "compensations(chain, fault)")
    attempted(fn, list(LESSON_CHAIN), "payment")
    cases = [(chain, fault) for chain in chains() for fault in [n for n, _, _ in chain] + [CANCEL]]

    def holds(case: tuple[tuple[tuple[str, str, str], ...], str]) -> None:
        chain, fault = case
        answer = call(
            fn, [tuple(s) for s in chain], fault, name="compensations", where=_where(chain, fault)
        )
        undos = [undo for _, _, undo in chain]
        got = names_list(answer, undos, f"{_where(chain, fault)}, your answer")
        want = expected(chain, fault)
        if got == want:
            return
        said = f"{_where(chain, fault)}, your answer is {got}, not {want}"
        if answer is None:  # (learn220 F1: a forgotten return was told "your answer is []")
            said = (
                f"{_where(chain, fault)}, compensations returned None (read as none: is a "
                f"`return` missing?), not {want}"
            )
        if sorted(got) == sorted(want):
            if fault == CANCEL:
                raise Incorrect(
                    f"{said}: the guest's CancelRequested goes to the first service, which "
                    "compensates and tells the next: a cancellation travels forward"
                )
            raise Incorrect(
                f"{said}: the failing service tells the one before it, which compensates "
                "and tells the one before it: a failure travels back, last first"
            )
        if fault != CANCEL and undos[[n for n, _, _ in chain].index(fault)] in got:
            raise Incorrect(f"{said}: {fault}'s own step failed, so it has nothing to compensate")
        raise Incorrect(f"{said}: the services that acted compensate, each once")

    tried = forall(cases, holds, size=lambda case: (len(case[0]), case[0] != LESSON_CHAIN))
    return (
        f"the right compensations in the right order for {tried} faults: every failure "
        "point and the guest's cancellation, in chains of two to five services."
    )


def _where(chain: tuple[tuple[str, str, str], ...], fault: str) -> str:
    if fault == CANCEL:
        return f"In {_shown(chain)}, all done, then the guest cancels"
    return f"In {_shown(chain)}, when {fault}'s step fails"


q2 = Exercise(
    id="13.2",
    setup=LESSON_IMPORTS,
    title="Order the compensating events",
    checker=_check_rule,
    answer_names=("compensations",),
    stops="the program asking your rule stops there, as at a Ctrl-C",
    hints=(
        "Follow the events: who publishes the failure, and who hears it first?",
        "A failure is published by the service that failed, to the one before it in the "
        "chain; the guest's cancellation goes where the guest's request went.",
        "Each service that compensates publishes the next event, which goes on the way the "
        "first one went: a failure back towards the start of the chain, a cancellation on "
        "towards its end.",
    ),
    solution_code=(
        "# exercise: 13.2\n"
        "def compensations(chain, fault):\n"
        "    undos = [undo for service, action, undo in chain]\n"
        '    if fault == "cancelled":\n'
        "        return undos\n"
        "    failed = [service for service, action, undo in chain].index(fault)\n"
        "    return undos[:failed][::-1]"
    ),
)

register(q1, q2)
