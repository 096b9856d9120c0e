"""attack178 F1, at the machine: a rollback cut as an undo waits to retry was noted "during
the undo of b" (none ran: its attempt had failed, the next not begun), and the journal kept
the saga as though b's undo might run on. Where the rollback is, as it is cut, is the
machine's to say (``Machine.whereabouts``), the same on every engine."""

from __future__ import annotations

import pytest

from rollback_lessons import RetryPolicy, Saga, Step, UndoPolicy, VirtualClock
from rollback_lessons.machine import Machine


class CutInTheWait(VirtualClock):
    """A clock whose waits are cut by a Ctrl-C (as a person's would be, in the backoff)."""

    def sleep(self, seconds: float) -> None:
        raise KeyboardInterrupt


def _saga(world: list[str]) -> Saga:
    def refuses(s: object) -> None:
        raise ValueError("no seats")

    def undo_b(s: object) -> None:
        world.append("undo b tried")
        raise OSError("the refund service is down")

    return Saga([Step("a", lambda s: world.append("a"), lambda s: world.append("undo a")),
                 Step("b", lambda s: world.append("b"), undo_b),
                 Step("c", refuses)], name="wait-cut")  # fmt: skip


def test_a_ctrl_c_as_an_undo_waits_to_retry_says_where_it_was():
    world: list[str] = []
    policy = UndoPolicy(RetryPolicy(3, initial_delay=5), then="halt")
    with pytest.raises(KeyboardInterrupt) as raised:
        _saga(world).run({}, policy=policy, clock=CutInTheWait())
    assert world == ["a", "b", "undo b tried"]
    assert raised.value.__notes__ == [
        "rollback: rollback interrupted by KeyboardInterrupt as the undo of b waited to "
        "retry; not known to be undone: b, a"
    ], raised.value.__notes__


@pytest.mark.parametrize(
    ("phase", "said", "runs_on"),
    [
        ("undo", "during the undo of b", "b"),
        ("wait", "as the undo of b waited to retry", None),
        ("ask", "as a person was asked about the undo of b", None),
        ("retry", "before attempt 2 of the undo of b began", None),  # (handed out: 184 F1)
    ],
)
def test_the_machine_says_where_its_rollback_is(phase, said, runs_on):
    policy = UndoPolicy(RetryPolicy(2, initial_delay=1), then="halt")
    m, op = Machine.resume_rollback([("a", 0), ("b", 0)], policy=policy)
    assert op.step == "b"
    assert m.undo_begins() is None
    if phase == "retry":  # (an engine's: each undo handed out, told as it is called)
        m.undo_failed(OSError("down"))
        m.told_as_called = True
        assert m.resume().step == "b"  # (attempt 2 handed out, not called)
    elif phase != "undo":
        m.undo_failed(OSError("down"))  # (a wait to retry)
        if phase == "ask":
            m.resume()
            assert m.undo_begins() is None
            m.undo_failed(OSError("down"))  # (out of tries: a person is asked)
    assert m.whereabouts() == (said, runs_on)
    m.cut(KeyboardInterrupt(), by="a stop")
    assert m.interrupted_where == f"{said} (a stop)" and m.interrupted_undo == runs_on
