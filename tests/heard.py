"""What a saga's observers hear on an engine, against ``saga.run`` (issue 25, attack25's F6
and F8): its ``on_event`` callback and a handler of the ``rollback_lessons`` logger, for the
saga a, b, c whose c fails with an error whose ``repr`` and ``str`` raise."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from rollback_lessons import Outcome, Saga, Step


class BadRepr(Exception):
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    def __str__(self) -> str:
        raise RuntimeError("no str")


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def abc(world: list[str], on_event: Callable[[Any], None]) -> Saga:
    def act(name: str) -> Callable[[Any], None]:
        def action(state: Any) -> None:
            world.append(f"do {name}")
            if name == "c":
                raise BadRepr

        return action

    def undo(name: str) -> Callable[[Any], None]:
        return lambda state: world.append(f"undo {name}")

    return Saga([Step(n, act(n), undo(n)) for n in "abc"], name="heard", on_event=on_event)


def hear(run: Callable[[Saga], Outcome], ki_at: int = 0) -> dict[str, Any]:
    """Run the saga with ``run``; what the callback and the logger heard, the world's calls,
    and the outcome (or the exception raised). ``ki_at``: the callback raises
    KeyboardInterrupt at that event (a Ctrl-C landing in it)."""
    heard: list[Any] = []
    world: list[str] = []

    def on_event(event: Any) -> None:
        heard.append(event)
        if len(heard) == ki_at:
            raise KeyboardInterrupt

    handler = Records()
    log = logging.getLogger("rollback_lessons")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        got: Any = run(abc(world, on_event))
    except KeyboardInterrupt as exc:
        got = exc
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    return {
        "got": got,
        "heard": heard,
        "logged": [
            (r.seq, r.event, r.step, r.details, r.levelno, r.getMessage(), r.run, r.run_id)  # type: ignore[attr-defined]
            for r in handler.records
        ],
        "world": world,
    }


def told(events: list[Any]) -> list[tuple[Any, ...]]:
    return [(e.seq, str(e.kind), e.step, dict(e.details)) for e in events]


def heard_as_in_process(
    run: Callable[[Saga], Outcome], ki_at: int = 0, **options: Any
) -> dict[str, Any]:
    """Assert that on_event and the logger hear on the engine (``run``) what they hear in
    process (``saga.run({}, **options)``): each event once, in order, the same fields; an
    error whose repr raises said as ``saga.run`` says it (F8). With ``ki_at``: the same
    world, events and notes."""
    local, remote = hear(lambda s: s.run({}, **options), ki_at), hear(run, ki_at)
    assert told(remote["heard"]) == told(local["heard"])
    assert [r[:6] for r in remote["logged"]] == [r[:6] for r in local["logged"]]
    assert remote["world"] == local["world"]
    if ki_at:
        assert isinstance(remote["got"], KeyboardInterrupt)
        assert getattr(remote["got"], "__notes__", []) == getattr(local["got"], "__notes__", [])
        return remote
    outcome = remote["got"]
    assert told(remote["heard"]) == told(outcome.events)  # the outcome's events, as told
    run_ids = {e.run_id for e in remote["heard"]} | {r[7] for r in remote["logged"]}
    assert run_ids == {outcome.run_id}
    assert {r[6] for r in remote["logged"]} == {"heard"}
    assert len(remote["heard"]) == len(remote["logged"]) == 15
    assert "error=<BadRepr (its repr failed)>" in remote["logged"][7][5]  # (F8)
    return remote
