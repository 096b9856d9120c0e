"""The pipelines the lessons use. Each models a real dependency, so mistakes really show."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from ..saga import Parallel, Saga, State, Step

# -- lesson 02: later steps depend on earlier ones ------------------------------------


def make_folder(state: State) -> None:
    state["folders"].append("report")


def remove_folder(state: State) -> None:
    if any(f.startswith("report/") for f in state["files"]):
        raise OSError("cannot remove 'report': directory not empty")
    state["folders"].remove("report")


def write_file(state: State) -> None:
    if "report" not in state["folders"]:
        raise FileNotFoundError("no folder 'report' to write into")
    state["files"].append("report/summary.txt")


def delete_file(state: State) -> None:
    state["files"].remove("report/summary.txt")


def publish(state: State) -> None:
    state["published"] = True


def folder_state() -> dict[str, Any]:
    return {"folders": [], "files": [], "published": False}


def folder_saga() -> Saga:
    """mkdir, then a file in it, then publish: a folder cannot go while its file is in it."""
    return Saga(
        [
            Step("make_folder", make_folder, remove_folder, label="mkdir report/"),
            Step("write_file", write_file, delete_file, label="write report/summary.txt"),
            Step("publish", publish, lambda s: s.update(published=False), label="publish it"),
        ],
        name="folder",
    )


def open_account(state: State) -> None:
    state["accounts"]["acct-1"] = 0


def close_account(state: State) -> None:
    balance = state["accounts"]["acct-1"]
    if balance:
        raise RuntimeError(f"cannot close acct-1: balance is {balance}, not 0")
    del state["accounts"]["acct-1"]


def deposit(state: State) -> None:
    state["accounts"]["acct-1"] += 100


def _take_back(state: State) -> None:
    state["accounts"]["acct-1"] -= 100


def notify_customer(state: State) -> None:
    state["notified"] = True


def account_state() -> dict[str, Any]:
    return {"accounts": {}, "notified": False}


def account_saga(undo_deposit: Any = None) -> Saga:
    """Open an account, deposit 100, notify: an account only closes once it is empty.
    ``undo_deposit`` is the deposit's undo (exercise 02.1 asks for one; None: the
    lesson's own, unnamed here so that help() does not answer the exercise)."""
    return Saga(
        [
            Step("open_account", open_account, close_account, label="open acct-1"),
            Step(
                "deposit",
                deposit,
                _take_back if undo_deposit is None else undo_deposit,
                label="deposit 100",
            ),
            Step("notify", notify_customer, lambda s: s.update(notified=False), label="notify"),
        ],
        name="account",
    )


def create_user(state: State) -> None:
    state["users"].append("ada")


def delete_user(state: State) -> None:
    state["users"].remove("ada")


def grant_admin(state: State) -> None:
    if "ada" not in state["users"]:
        raise LookupError("no user 'ada' to make admin")
    state["grants"].append(("ada", "admin"))


def revoke_admin(state: State) -> None:
    if "ada" not in state["users"]:  # like a real API: the user is looked up first
        raise LookupError("no user 'ada' to revoke admin from")
    state["grants"].remove(("ada", "admin"))


def user_state() -> dict[str, Any]:
    return {"users": [], "grants": [], "welcomed": False}


def user_saga() -> Saga:
    """Create a user, make them admin, welcome them: a grant refers to its user."""
    return Saga(
        [
            Step("create_user", create_user, delete_user, label="create user ada"),
            Step("grant_admin", grant_admin, revoke_admin, label="make ada admin"),
            Step(
                "send_welcome",
                lambda s: s.update(welcomed=True),
                lambda s: s.update(welcomed=False),
                label="welcome ada",
            ),
        ],
        name="user",
    )


# -- lessons 03 to 05: a small order pipeline ------------------------------------------


def order_state() -> dict[str, Any]:
    return {"stock": 5, "reserved": 0, "paid": 0, "label": None}


def order_saga() -> Saga:
    """Reserve stock, take payment, print a shipping label."""

    def reserve(s: State) -> None:
        s["stock"] -= 1
        s["reserved"] += 1

    def release(s: State) -> None:
        s["stock"] += 1
        s["reserved"] -= 1

    return Saga(
        [
            Step("reserve", reserve, release, label="reserve 1 item"),
            Step("pay", lambda s: s.update(paid=30), lambda s: s.update(paid=0), label="take 30"),
            Step(
                "label",
                lambda s: s.update(label="LBL-1"),
                lambda s: s.update(label=None),
                label="print label",
            ),
        ],
        name="order",
    )


# -- lesson 04: an irreversible step ----------------------------------------------------

KEY = "booking-1"  # the idempotency key this booking charges and refunds under
PRICE = 120


def booking_state(key: str = KEY, price: int = PRICE) -> dict[str, Any]:
    """One booking: its card, its idempotency key and price, and what happened so far
    (charges and refunds by key: other bookings' may be there too)."""
    return {
        "card": "4242 valid",
        "key": key,
        "price": price,
        "room": None,
        "charges": {},
        "refunds": {},
        "emails": [],
    }


def booking_as_seen(state: Mapping[str, Any]) -> dict[str, Any]:
    """The booking as its customer sees it: money charged net of refunds (a refund is a
    new record beside its charge, not the charge erased), the room, the emails."""
    keys = set(state["charges"]) | set(state["refunds"])  # a refund of nothing is money out
    charged = {k: state["charges"].get(k, 0) - state["refunds"].get(k, 0) for k in keys}
    return {
        "card": state["card"],
        "room": state["room"],
        "charged": {k: v for k, v in charged.items() if v},
        "emails": list(state["emails"]),
        "points": state.get("points", 0),
    }


def booking_restored(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Is the booking world as it was? (For the explorer: ``restored=booking_restored``.)"""
    return booking_as_seen(before) == booking_as_seen(after)


def verify_card(state: State) -> None:
    """A gate: it reads the card and changes nothing, so it has nothing to undo."""
    if not state["card"].endswith("valid"):
        raise ValueError(f"card {state['card']!r} was declined")


def reserve_room(state: State) -> None:
    state["room"] = "held"


def release_room(state: State) -> None:
    state["room"] = None


def charge_card(state: State) -> None:
    state["charges"].setdefault(state["key"], state["price"])  # a key never charges twice


def refund_charge(state: State) -> None:
    """Idempotent: refunds only what was charged under the booking's key, and only once."""
    key = state["key"]
    if key in state["charges"] and key not in state["refunds"]:
        state["refunds"][key] = state["charges"][key]


def send_email(state: State) -> None:
    state["emails"].append("Your booking is confirmed")


def award_points(state: State) -> None:
    """The loyalty service, after the email: it can only be retried, never undone.

    ``state["loyalty_down"]`` says for how many calls the service still answers 503.
    """
    if state.get("loyalty_down", 0) > 0:
        state["loyalty_down"] -= 1
        raise ConnectionError("loyalty service unavailable (503)")
    state["points"] = state.get("points", 0) + 120


BOOKING_STEPS: dict[str, Callable[[Callable[[State], Any]], Step]] = {
    "verify_card": lambda _: Step(
        "verify_card", verify_card, kind="gate", label="check the card (a gate)"
    ),
    "reserve_room": lambda _: Step("reserve_room", reserve_room, release_room, label="hold a room"),
    "charge_card": lambda refund: Step(
        "charge_card", charge_card, refund, register="before", label="charge 120"
    ),
    "send_email": lambda _: Step("send_email", send_email, kind="pivot", label="confirm by email"),
    "award_points": lambda _: Step(
        "award_points", award_points, kind="retriable", label="add loyalty points"
    ),
}
SAFE_BOOKING_ORDER = ("verify_card", "reserve_room", "charge_card", "send_email")


def booking_saga(
    order: tuple[str, ...] | list[str] = SAFE_BOOKING_ORDER,
    *,
    refund: Callable[[State], Any] = refund_charge,
    **options: Any,
) -> Saga:
    """The booking steps in ``order``; ``allow_unsafe_order=True`` to build a bad order."""
    unknown = [name for name in order if name not in BOOKING_STEPS]
    if unknown:
        raise ValueError(f"unknown booking steps {unknown}; the steps are {list(BOOKING_STEPS)}")
    return Saga([BOOKING_STEPS[name](refund) for name in order], name="booking", **options)


def chain_state() -> dict[str, Any]:
    return {"done": []}


def graph_saga(steps: int = 8, branches: int = 3) -> Saga:
    """``chain_saga``'s steps as a graph: the first, then ``branches`` branches at once
    (the steps between shared out in turn), then the last (``make bench``'s explored graph)."""
    chain = chain_saga(steps).steps
    middle = chain[1:-1]
    split = [list(middle[b::branches]) for b in range(branches)]
    return Saga([chain[0], Parallel(*split), chain[-1]], name=f"graph of {steps}")


def chain_saga(steps: int = 12) -> Saga:
    """``steps`` steps, each putting its number on a list and its undo taking it off; odd
    ones log their undo first (it must then be harmless). Too many faults to try them all
    (lesson 11's hypothesis property)."""

    def do(i: int, state: State) -> None:
        state["done"].append(i)

    def undo(i: int, state: State) -> None:
        if i in state["done"]:  # logged first: its step may never have happened
            state["done"].remove(i)

    return Saga(
        [
            Step(f"s{i}", partial(do, i), partial(undo, i), register="before" if i % 2 else "after")
            for i in range(steps)
        ],
        name=f"chain of {steps}",
    )
