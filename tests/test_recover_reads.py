"""What ``recover`` reads of the sagas it claimed, it reads at once after the claim, not
saga by saga (``make bench``: five to six queries a saga were a fifth of its time); and an
event's details the journal stores are the JSON they always were, encoded once when they
recur."""

from __future__ import annotations

import json

from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry, compensation
from rollback_lessons.events import stored

registry = Registry()


@compensation("reads.noop", registry)
def noop(n: int) -> None:
    pass


def _reads_to_recover(path: str, count: int) -> int:
    """The SELECTs ``recover`` makes to recover ``count`` sagas a dead process left."""
    with Journal(path) as journal:
        saga = ("INSERT INTO sagas (id, name, status, owner_pid, owner_host, started)"
                " VALUES (?, 'r', 'running', 99999, 'elsewhere', 0)")  # fmt: skip
        undo = ("INSERT INTO undos (saga_id, position, step, compensation, args)"
                " VALUES (?, ?, ?, 'reads.noop', '{\"n\": 1}')")  # fmt: skip
        rows = []
        for n in range(count):
            rows += [(saga, (f"d{n}",)), *((undo, (f"d{n}", p, f"s{p}")) for p in (1, 2))]
        journal.write(rows)
        said: list[str] = []
        journal._con.set_trace_callback(said.append)
        reports = recover(journal, registry, force=True)
        journal._con.set_trace_callback(None)
        assert len(reports) == count and not journal.unfinished()
    return sum(s.lstrip().upper().startswith("SELECT") for s in said)


def test_recover_reads_what_it_claimed_at_once_not_saga_by_saga(tmp_path):
    few = _reads_to_recover(str(tmp_path / "few.db"), 10)
    many = _reads_to_recover(str(tmp_path / "many.db"), 30)
    assert (many - few) / 20 <= 1, (few, many)  # (its leaked steps, read once it is undone)


def test_an_events_details_are_stored_as_json_whatever_recurs():
    for details in ({"attempt": 1}, {"attempt": True}, {"attempt": 1.0}, {"a": 0.0},
                    {"a": -0.0}, {"l": [1]}, {"a": None, "b": "x"}, {"attempt": 1}):  # fmt: skip
        assert stored(details) == json.dumps(details)
        assert stored(details) == json.dumps(details)  # (the second time: as the first)
