"""attack68 L2: recover's write that fails (a full disk) carried only a saga's end, its undos
written done before: the line said "the undos it ran since its last write will run again"
when none would. Now it says what it undid is recorded, and that the next recover writes the
end; a write that carried an undo's outcome still says it will run again."""

from __future__ import annotations

import sqlite3

import pytest
from conftest import crash_at_first_undo

from rollback_lessons import Saga, Step
from rollback_lessons.durable.journal import Journal, JournalError
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry
from rollback_lessons.durable.writer import ENDS_ONLY, RERUN, UNRECORDED

registry = Registry()
ran: list[str] = []
UNDO = registry.add("end.undo", lambda step, idempotency_key=None: ran.append(step))


@pytest.mark.parametrize(("failing", "said"), [(2, ENDS_ONLY), (1, RERUN)])
def test_a_failed_write_says_whether_an_undo_will_run_again(tmp_path, monkeypatch, failing, said):
    """The write after the undo ran: 1st (its outcome: it runs again), 2nd (the end only)."""
    path = tmp_path / "j.db"
    crash_at_first_undo(path, Saga([Step("a", lambda s: None, UNDO.bind(step="a")),
                                    Step("z", lambda s: 1 / 0)]))  # fmt: skip
    ran.clear()
    real, after = Journal.write, []

    def write(self, *args, **kwargs):  # (a full disk at that write and its second try)
        if ran:
            after.append(args)
            if len(after) in (failing, failing + 1):
                raise sqlite3.OperationalError("database or disk is full")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Journal, "write", write)
    with Journal(path) as journal, pytest.raises(JournalError) as raised:
        recover(journal, registry)
    assert str(raised.value).endswith(f"; {said}")
    monkeypatch.setattr(Journal, "write", real)
    with Journal(path) as journal:
        report = recover(journal, registry)  # the next: the undo again only if said so
    assert [r.saga_id for r in report.recovered] == ["s"]
    assert ran == ["a", "a"] if said == RERUN else ran == ["a"]


@pytest.mark.parametrize(("cut", "unrecorded"), [(2, None), (1, UNRECORDED)])
def test_an_interrupt_whose_last_write_fails_says_whether_an_undo_is_unrecorded(
    tmp_path, monkeypatch, cut, unrecorded
):
    """The same, a Ctrl-C in that write, its second try (the clean-up's) failing: "not
    recorded ... will run again" only if it carried an undo's outcome."""
    path = tmp_path / "j.db"
    crash_at_first_undo(path, Saga([Step("a", lambda s: None, UNDO.bind(step="a")),
                                    Step("z", lambda s: 1 / 0)]))  # fmt: skip
    ran.clear()
    real, after = Journal.write, []

    def write(self, *args, **kwargs):
        if ran:
            after.append(args)
            if len(after) == cut:
                raise KeyboardInterrupt
            if len(after) == cut + 1:
                raise sqlite3.OperationalError("database or disk is full")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Journal, "write", write)
    with Journal(path) as journal, pytest.raises(KeyboardInterrupt) as raised:
        recover(journal, registry)
    assert getattr(raised.value, "unrecorded", None) == unrecorded
