"""Two actors on shared records, interleaved step by step: what a saga's lack of isolation
lets others see, and the countermeasures (lesson 10).

A saga here is the engine's own ``Rollback``: its steps are ``rb.do(...)`` calls, and its
undos run (newest first) when a step fails. Each actor is a generator that yields after
every atomic thing it does, so a *schedule* ("ABBA...") decides who moves next: no
threads, and every interleaving can be enumerated (``interleavings``) and checked.

Scenarios (``SCENARIOS``), each with and without its countermeasure:

- ``last room``: Ann's booking holds the last room (or is refused if none is free), then her
  card is declined and the room is released; Bob asks meanwhile. A room held twice (fewer
  than 0 free) is an anomaly whenever it happens (``Scenario.always``). *Dirty read*: Bob
  is told "sold out" for a room that ends up free. Countermeasures: a *semantic lock* (the
  hold is ``PENDING``; Bob waits), a *pessimistic view* (charge the card before holding
  the room).
- ``bonus and deposit``: a saga adds a bonus of 50, then fails; its undo restores the
  balance it saved. A deposit of 30 lands in between. *Lost update*: the undo erases the
  deposit. Countermeasures: *commutative updates* (undo by subtracting 50), *reread value*
  (the undo checks the balance is what it wrote, else leaves it to a person).
- ``statement``: a report reads the balance twice while the bonus saga runs and is undone.
  *Fuzzy read*: the two reads differ. Countermeasure: a semantic lock the report respects.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..rollback import Rollback

Actor = Callable[[dict[str, Any]], Iterator[str]]


class Declined(Exception):
    """The card is declined: a business failure, so the saga compensates."""


class NotEligible(Exception):
    """The account is not eligible for the bonus after all."""


class SoldOut(Exception):
    """No room is free: a booking is refused before it holds anything."""


class Changed(Exception):
    """The record is not what this saga wrote: restoring it would erase someone's work."""


# -- last room: dirty read -------------------------------------------------------------------


def ann_books(*, lock: bool = False, pessimistic: bool = False) -> Actor:
    """Ann's booking: hold the room, charge the card (declined), so the hold is released.
    ``lock``: the hold is PENDING until the saga ends. ``pessimistic``: the card first."""

    def hold(world: dict[str, Any]) -> None:
        if world["rooms free"] <= 0:  # a hold is a booking's check and take in one turn
            raise SoldOut("no room is free")
        world["rooms free"] -= 1
        world["holds"].append("ann (pending)" if lock else "ann")

    def release(world: dict[str, Any]) -> None:
        world["rooms free"] += 1
        world["holds"].remove("ann (pending)" if lock else "ann")

    def charge(world: dict[str, Any]) -> None:
        raise Declined("Ann's card is declined")

    def actor(world: dict[str, Any]) -> Iterator[str]:
        with Rollback(name="ann") as rb:
            if pessimistic:  # the step that may fail first: nothing to see before it
                rb.do("charge_card", lambda: charge(world))
            rb.do("hold_room", lambda: hold(world), undo=lambda: release(world))
            yield "Ann: hold the last room"
            rb.do("charge_card", lambda: charge(world))

    return actor


def bob_asks(*, respects_lock: bool = False) -> Actor:
    """Bob asks for a room: booked if one is free, else "sold out". Respecting the lock,
    he waits while someone's hold is PENDING, and asks again."""

    def actor(world: dict[str, Any]) -> Iterator[str]:
        while (
            respects_lock
            and world["rooms free"] == 0
            and any("pending" in h for h in world["holds"])
        ):
            yield "Bob: a hold is pending, wait"
        if world["rooms free"] > 0:
            world["rooms free"] -= 1
            world["holds"].append("bob")
            world["bob was told"] = "booked"
        else:
            world["bob was told"] = "sold out"
        yield f"Bob: told {world['bob was told']!r}"

    return actor


def dirty_read(world: dict[str, Any]) -> str | None:
    """Bob was turned away, yet the room is free in the end."""
    if world["bob was told"] == "sold out" and world["rooms free"] > 0:
        return "Bob was told 'sold out', but the room is free in the end"
    return None


def oversold(world: dict[str, Any]) -> str | None:
    """More rooms held than there are: whatever happens next, this is wrong."""
    if world["rooms free"] < 0:
        return f"the room is oversold ({world['rooms free']} free, held by {_held(world)})"
    return None


def _held(world: dict[str, Any]) -> str:
    return " and ".join(world["holds"]) or "nobody"


# -- bonus and deposit: lost update ------------------------------------------------------


def bonus_saga(*, undo: str | Callable[[dict[str, Any]], Any] = "restore") -> Actor:
    """Add a bonus of 50, then check eligibility (it fails), so the bonus is undone.
    ``undo``: "restore" the saved balance, "commute" (subtract 50), "reread" (restore
    only if the balance is still what this saga wrote; else leave it to a person), or a
    function of the world (lesson 10's exercise)."""

    def add(world: dict[str, Any], saved: dict[str, int]) -> None:
        saved["before"] = world["balance"]
        world["balance"] += 50
        saved["wrote"] = world["balance"]

    def take_back(world: dict[str, Any], saved: dict[str, int]) -> None:
        if callable(undo):
            undo(world)
        elif undo == "commute":
            world["balance"] -= 50
        elif undo == "reread" and world["balance"] != saved["wrote"]:
            raise Changed(f"balance is {world['balance']}, not the {saved['wrote']} written")
        else:
            world["balance"] = saved["before"]

    def check(world: dict[str, Any]) -> None:
        raise NotEligible("not eligible for the bonus")

    def actor(world: dict[str, Any]) -> Iterator[str]:
        saved: dict[str, int] = {}
        rb = Rollback(name="bonus")
        try:
            with rb:
                rb.do("add_bonus", lambda: add(world, saved), undo=lambda: take_back(world, saved))
                yield "Saga: add bonus 50"
                rb.do("check_eligibility", lambda: check(world))
        finally:
            if rb.outcome is not None and rb.outcome.dead_letters:
                world["for a person"] = [str(d.error) for d in rb.outcome.dead_letters]

    return actor


def deposit(amount: int = 30) -> Actor:
    def actor(world: dict[str, Any]) -> Iterator[str]:
        world["balance"] += amount
        yield f"Deposit: +{amount}"

    return actor


def lost_update(world: dict[str, Any], start: int = 100, deposited: int = 30) -> str | None:
    """The deposit is gone, and no one was told."""
    if world["balance"] != start + deposited and not world.get("for a person"):
        return f"the balance is {world['balance']}: the deposit of {deposited} is lost"
    return None


# -- statement: fuzzy read -----------------------------------------------------------------


def locked_bonus_saga() -> Actor:
    """The bonus saga that marks the account PENDING while it runs (a semantic lock)."""
    inner = bonus_saga(undo="commute")

    def actor(world: dict[str, Any]) -> Iterator[str]:
        world["account"] = "pending"
        try:
            yield from inner(world)
        finally:
            world["account"] = "open"

    return actor


def statement(*, respects_lock: bool = False) -> Actor:
    """A report reads the balance for the opening line and again for the closing line."""

    def actor(world: dict[str, Any]) -> Iterator[str]:
        reads = world.setdefault("statement read", [])
        for line in ("opening", "closing"):
            while respects_lock and world.get("account") == "pending":
                yield "Report: account pending, wait"
            reads.append(world["balance"])
            yield f"Report: read {line} balance {world['balance']}"

    return actor


def fuzzy_read(world: dict[str, Any]) -> str | None:
    reads = world.get("statement read", [])
    if len(set(reads)) > 1:
        return f"the report read the balance twice and got {reads[0]} and {reads[1]}"
    return None


# -- running an interleaving ---------------------------------------------------------------


WAIT = ", wait"
"""An actor's label ends so when it cannot go on yet (a lock it respects): until another
actor moves, its turns pass to the other (it is blocked, not busy)."""


@dataclass
class Turn:
    actor: str
    did: str
    records: dict[str, Any]


@dataclass
class Trace:
    """One interleaving: who did what, the records after each turn, and how it ended."""

    schedule: str  # the actors' initials, one per turn
    turns: list[Turn] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # actor -> the error that ended it
    world: dict[str, Any] = field(default_factory=dict)
    anomaly: str | None = None


Check = Callable[[dict[str, Any]], str | None]


@dataclass(frozen=True)
class Scenario:
    title: str
    start: dict[str, Any]
    actors: dict[str, Callable[[], Actor]]  # by name; a schedule names them by initial
    anomaly: Check  # judged on the world at the end
    shown: tuple[str, ...]  # the records the picture follows
    always: Check | None = None  # must hold after every turn; its first breach is the anomaly

    def initial(self, name: str) -> str:
        return name[0]


def run(scenario: Scenario, schedule: str = "") -> Trace:
    """Play ``schedule`` (an actor's initial per turn). A finished or blocked actor's turn
    passes to the other; past the schedule, the actors left run to their end in turn."""
    world = copy.deepcopy(scenario.start)
    running = {name: make()(world) for name, make in scenario.actors.items()}
    by_initial = {scenario.initial(name): name for name in running}
    trace = Trace("")
    blocked: set[str] = set()
    wanted = [by_initial[c] for c in schedule]
    breach: str | None = None
    while running:
        name = wanted.pop(0) if wanted else next(iter(running))
        free = [n for n in running if n not in blocked]
        if name not in running or (name in blocked and free):
            name = free[0] if free else next(iter(running))
        try:
            did = next(running[name])
        except StopIteration:
            del running[name]
            continue
        except Exception as exc:  # the saga failed; its Rollback has run its undos
            del running[name]
            trace.failed[name] = f"{type(exc).__name__}: {exc}"
            stepped = any(t.actor == name and not t.did.endswith(WAIT) for t in trace.turns)
            if getattr(exc, "__notes__", None):
                ended = "an undo failed"
            else:
                ended = "undos ran" if stepped else "nothing to undo"
            did = f"{name}: fails: {exc} ({ended})"
        if did.endswith(WAIT):
            blocked.add(name)
        else:
            blocked.clear()
        trace.schedule += scenario.initial(name)
        records = {key: copy.deepcopy(world.get(key)) for key in scenario.shown}
        trace.turns.append(Turn(name, did, records))
        if scenario.always and breach is None:
            breach = scenario.always(world)
            if breach:
                breach = f"turn {len(trace.turns)}: {breach}"
    trace.world = world
    trace.anomaly = breach or scenario.anomaly(world)
    return trace


def interleavings(scenario: Scenario) -> list[Trace]:
    """Every interleaving of the actors' turns, each once (in order of its schedule)."""
    found: dict[str, Trace] = {}
    initials = [scenario.initial(name) for name in scenario.actors]

    def explore(prefix: str) -> None:
        trace = run(scenario, prefix)
        if len(prefix) >= len(trace.schedule):
            found.setdefault(trace.schedule, trace)
            return
        for initial in initials:
            explore(prefix + initial)

    explore("")
    return [found[k] for k in sorted(found)]


SCENARIOS: dict[str, Scenario] = {
    "dirty read": Scenario(
        "Ann's booking holds the last room while Bob asks",
        {"rooms free": 1, "holds": [], "bob was told": None},
        {"Ann": ann_books, "Bob": bob_asks},
        dirty_read,
        ("rooms free", "holds", "bob was told"),
        oversold,
    ),
    "dirty read, semantic lock": Scenario(
        "The hold is PENDING, and Bob waits while it is",
        {"rooms free": 1, "holds": [], "bob was told": None},
        {"Ann": lambda: ann_books(lock=True), "Bob": lambda: bob_asks(respects_lock=True)},
        dirty_read,
        ("rooms free", "holds", "bob was told"),
        oversold,
    ),
    "dirty read, pessimistic view": Scenario(
        "Ann's card is charged before the room is held",
        {"rooms free": 1, "holds": [], "bob was told": None},
        {"Ann": lambda: ann_books(pessimistic=True), "Bob": bob_asks},
        dirty_read,
        ("rooms free", "holds", "bob was told"),
        oversold,
    ),
    "lost update": Scenario(
        "A bonus saga fails and restores the balance it saved; a deposit lands meanwhile",
        {"balance": 100},
        {"Saga": bonus_saga, "Deposit": deposit},
        lost_update,
        ("balance", "for a person"),
    ),
    "lost update, commutative undo": Scenario(
        "The undo subtracts the bonus instead of restoring a saved value",
        {"balance": 100},
        {"Saga": lambda: bonus_saga(undo="commute"), "Deposit": deposit},
        lost_update,
        ("balance", "for a person"),
    ),
    "lost update, reread value": Scenario(
        "The undo restores only a balance still as it left it; else a person decides",
        {"balance": 100},
        {"Saga": lambda: bonus_saga(undo="reread"), "Deposit": deposit},
        lost_update,
        ("balance", "for a person"),
    ),
    "fuzzy read": Scenario(
        "A report reads the balance twice while the bonus saga runs and is undone",
        {"balance": 100, "account": "open"},
        {"Saga": lambda: bonus_saga(undo="commute"), "Report": statement},
        fuzzy_read,
        ("balance", "statement read"),
    ),
    "fuzzy read, semantic lock": Scenario(
        "The saga marks the account PENDING; the report waits while it is",
        {"balance": 100, "account": "open"},
        {"Saga": locked_bonus_saga, "Report": lambda: statement(respects_lock=True)},
        fuzzy_read,
        ("balance", "account", "statement read"),
    ),
}
