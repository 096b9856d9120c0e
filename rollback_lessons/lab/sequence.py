"""A choreography as a sequence diagram: one lane per participant, one arrow per message a
service handled, in the order handled; what the receiver did on the right, and where its
events went (its outbox, for the relay; or, naive, published straight away). A message its
inbox already had is dashed and grey (the redelivery is visible, and so is that it changed
nothing)."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch

from ..choreo.events import EventType
from ..choreo.run import Handled
from ..outcome import Outcome
from .drawing import FAIL, FONT, FORWARD, INK, PICTURE_WIDTH, PIVOT, SMALL, UNDO

E = EventType
GREY = "#777777"
LANES = ("guest", "room", "payment", "notification")
SENDER = {
    E.BOOKING_REQUESTED: "guest",
    E.CANCEL_REQUESTED: "guest",
    E.ROOM_RESERVED: "room",
    E.ROOM_CANCELLED: "room",
    E.PAYMENT_CHARGED: "payment",
    E.PAYMENT_FAILED: "payment",
    E.PAYMENT_CANCELLED: "payment",
    E.PAYMENT_REFUNDED: "payment",
    E.NOTIFICATION_FAILED: "notification",
    E.BOOKING_CONFIRMED: "notification",
}
"""Who publishes each event (the routing in ``choreo.events`` says who receives it)."""
KIND = {
    E.BOOKING_REQUESTED: (FORWARD, "an action's event"),
    E.ROOM_RESERVED: (FORWARD, "an action's event"),
    E.PAYMENT_CHARGED: (FORWARD, "an action's event"),
    E.BOOKING_CONFIRMED: (FORWARD, "an action's event"),
    E.PAYMENT_FAILED: (FAIL, "a failure (compensate!)"),
    E.NOTIFICATION_FAILED: (FAIL, "a failure (compensate!)"),
    E.PAYMENT_REFUNDED: (UNDO, "a compensation done"),
    E.CANCEL_REQUESTED: (PIVOT, "a cancellation"),
    E.ROOM_CANCELLED: (PIVOT, "a cancellation"),
    E.PAYMENT_CANCELLED: (PIVOT, "a cancellation"),
}
ROW = 0.42  # inches per message
X = {lane: 0.7 + 1.8 * i for i, lane in enumerate(LANES)}  # lane positions, in inches
DID_X = X["notification"] + 0.8


def _did(handled: Handled) -> str:
    if handled.reaction is None:
        return "nothing: its inbox had it"
    reaction = handled.reaction
    did = ", ".join(reaction.effects) or f"no effect ({reaction.state or 'unchanged'})"
    if not reaction.emit:
        return did
    where = "to its outbox" if handled.outbox else "published"
    return f"{did}; {', '.join(map(str, reaction.emit))} {where}"


def draw_sequence(log: Sequence[Handled], *, title: str = "") -> Figure:
    """The messages of ``log`` (``Choreography.log``), top to bottom."""
    rows = len(log)
    height = 1.0 + ROW * rows + 0.6 + (0.3 if title else 0)
    fig = Figure(figsize=(PICTURE_WIDTH, height), dpi=80)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, PICTURE_WIDTH)
    ax.set_ylim(height, 0)  # inches from the top
    ax.axis("off")
    top = 0.4 + (0.3 if title else 0)
    if title:
        ax.text(0.2, 0.3, title, fontsize=FONT, color=INK, va="center")
    for lane, x in X.items():
        ax.text(x, top, lane, fontsize=FONT, weight="bold", ha="center", va="center", color=INK)
        ax.plot([x, x], [top + 0.2, top + 0.3 + ROW * rows], color="#BBBBBB", lw=1.5, zorder=0)
    ax.text(DID_X, top, "what the receiver did", fontsize=FONT, va="center", color=INK)
    kinds: dict[str, tuple[str, str]] = {}
    for i, handled in enumerate(log):
        y = top + 0.55 + ROW * i
        colour, kind = KIND[handled.message.type]
        start, end = X[SENDER[handled.message.type]], X[handled.service]
        again = handled.reaction is None
        if not again:
            kinds[kind] = (colour, kind)
        arrow = FancyArrowPatch(
            (start, y),
            (end, y),
            arrowstyle="-|>",
            mutation_scale=14,
            lw=1.8,
            color=GREY if again else colour,
            linestyle="--" if again else "-",
            gid=f"{SENDER[handled.message.type]}->{handled.service}",
        )
        ax.add_patch(arrow)
        label = f"{handled.message.type} ({handled.message.booking})"
        ax.text(
            (start + end) / 2, y - 0.06, label, fontsize=SMALL, ha="center", va="bottom",
            color=GREY if again else INK,
        )  # fmt: skip
        ax.text(DID_X, y, _did(handled), fontsize=SMALL, va="center", color=INK)
    handles = [Line2D([], [], color=c, lw=2, label=k) for c, k in kinds.values()]
    if any(h.reaction is None for h in log):
        handles.append(Line2D([], [], color=GREY, lw=2, ls="--", label="delivered again"))
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, fontsize=SMALL + 1)
    return fig


# -- the same fault, orchestrated and choreographed, side by side ----------------------------

HALF = PICTURE_WIDTH / 2  # inches: each side of the pair, 460 px
RELAY = "relay: from the outbox"


def draw_compact(log: Sequence[Handled], *, title: str) -> Figure:
    """The sequence diagram at half width (the messages only, no column of what the
    receiver did), with a star where the relay published a service's outbox row."""
    x = {lane: 0.45 + 1.5 * i for i, lane in enumerate(LANES)}
    rows = len(log)
    top = 0.75
    height = top + 0.45 + ROW * rows + 0.95
    fig = Figure(figsize=(HALF, height), dpi=80)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, HALF)
    ax.set_ylim(height, 0)
    ax.axis("off")
    ax.text(0.1, 0.3, title, fontsize=FONT, weight="bold", color=INK, va="center")
    for lane, lx in x.items():
        ax.text(lx, top, lane, fontsize=FONT, weight="bold", ha="center", va="center", color=INK)
        ax.plot([lx, lx], [top + 0.2, top + 0.3 + ROW * rows], color="#BBBBBB", lw=1.5, zorder=0)
    kinds: dict[str, tuple[str, str]] = {}
    relayed = False
    for i, handled in enumerate(log):
        y = top + 0.55 + ROW * i
        colour, kind = KIND[handled.message.type]
        sender = SENDER[handled.message.type]
        start, end = x[sender], x[handled.service]
        again = handled.reaction is None
        if not again:
            kinds[kind] = (colour, kind)
        ax.add_patch(
            FancyArrowPatch(
                (start, y), (end, y), arrowstyle="-|>", mutation_scale=14, lw=1.8,
                color=GREY if again else colour, linestyle="--" if again else "-",
                gid=f"{sender}->{handled.service}",
            )
        )  # fmt: skip
        ax.text(
            (start + end) / 2, y - 0.06, str(handled.message.type), fontsize=SMALL,
            ha="center", va="bottom", color=GREY if again else INK,
        )  # fmt: skip
        if sender != "guest" and handled.outbox:
            relayed = True
            ax.plot([start], [y], marker="*", ms=12, color=INK, zorder=3, gid="relay")
    handles = [Line2D([], [], color=c, lw=2, label=k) for c, k in kinds.values()]
    if any(h.reaction is None for h in log):
        handles.append(Line2D([], [], color=GREY, lw=2, ls="--", label="delivered again"))
    if relayed:
        handles.append(Line2D([], [], color=INK, ls="", marker="*", ms=12, label=RELAY))
    fig.legend(handles=handles, loc="lower center", ncol=2, frameon=False, fontsize=SMALL + 1)
    return fig


def side_by_side_png(outcome: Outcome, log: Sequence[Handled]) -> bytes:
    """The conductor's run (drawn as lessons 02 and 06 draw a run) and the choreography's
    messages, one picture: each half checked as every picture is (its report: the smaller
    text, the problems of both), then put side by side, top-aligned, on white."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from .png import encode_png
    from .quality import report
    from .timeline import Timeline

    timeline = Timeline(
        outcome.steps, kinds=outcome.kinds, labels=outcome.labels, width=HALF, table=False
    )
    timeline.load(outcome)
    left = timeline.show(timeline.frame_count - 1)
    timeline.title.set_text(f"orchestrated (Saga.run): {outcome.status}")
    booking = log[0].message.booking if log else ""
    right = draw_compact(log, title=f"choreographed ({booking}): its messages")
    FigureCanvasAgg(right)
    reports = [report(left), report(right)]  # (they lay the figures out, paint nothing)
    for fig in (left, right):
        fig.canvas.draw()  # type: ignore[attr-defined]
    pixels = [np.asarray(f.canvas.buffer_rgba()) for f in (left, right)]  # type: ignore[attr-defined]
    height = max(p.shape[0] for p in pixels)
    both = np.full((height, sum(p.shape[1] for p in pixels), 4), 255, np.uint8)
    at = 0
    for p in pixels:
        both[: p.shape[0], at : at + p.shape[1]] = p
        at += p.shape[1]
    return encode_png(
        both,
        {
            "min_text_px": min(r["min_text_px"] for r in reports),
            "width_px": int(both.shape[1]),
            "problems": [f"{side}: {p}" for side, r in zip(("left", "right"), reports, strict=True)
                         for p in r["problems"]],
        },
    )  # fmt: skip
