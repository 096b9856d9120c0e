"""A person asked by a halted saga on Temporal: the workflow's side (a part of
``workflow.SagaWorkflow``, kept apart so that each module stays readable).

The question is read by a Query (``question``); the answer comes by a Signal (``resolve``)
that names its question and carries the sender's id. The workflow takes only the first
answer to the question it waits on, and says which it took: the Update ``answered``
returns, once the question is settled, the id of the answer taken ("" for none: the wait
ended first). Its sender learns it was taken; any other sender is refused (the client's
``SagaHandle.resolve``), so of two answers at once exactly one counts and the other is
refused, never accepted and dropped. The order of the Signals in the history decides,
so a replay decides the same.

While it waits, the history can fill with Signals nobody asked for (the server writes each
one, and the workflow task it wakes). The wait obeys the room rule every other wait of the
rollback obeys (``no_room``, asked through ``room``): where another round of the undo would
not fit, the person is no longer waited for, no answer is taken, and the undos are left
pending (``halted``) with a note naming the limit, rather than the run be terminated by the
server mid-rollback."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ...operations import ANSWERS


class PersonAsked:
    """The questions a halted saga asks a person, and the answers it takes."""

    waiting: list[str]  # undos a person is asked about now (a halt), the one asked first
    answer: str | None
    asked: int  # the number of the latest question asked (1, 2, ...)
    settled: dict[int, str]  # each question's answer taken, by its sender's id ("": none)
    cancel_heard: bool  # the workflow was cancelled during the undos
    room: Callable[[], str | None]  # why no other round of the undo fits (None: it does)

    def _person_init(self) -> None:
        self.waiting, self.answer, self.asked, self.settled = [], None, 0, {}
        self.cancel_heard = False
        self.room = lambda: None

    @workflow.query(name="pending")
    def pending(self) -> list[str]:
        """The undos left for a person while the saga waits for one (empty otherwise)."""
        return list(self.waiting)

    @workflow.query(name="question")
    def question(self) -> dict[str, Any]:
        """The question a person is asked now (its number and the undos at stake), empty
        when none is: what an answer must name."""
        return {"number": self.asked, "undos": list(self.waiting)} if self.waiting else {}

    @workflow.signal(name="resolve")
    def resolve(self, answer: str, number: int = 0, step: str = "", said: str = "") -> None:
        """A person's answer to question ``number`` (about ``step``'s undo): "retry" the
        undo, it was "fixed" by hand, or "leave" it; ``said``: its sender's id. Taken only
        while that very question waits, only the first, before any cancel, and only while
        there is room in the history for what it leads to: a duplicate (a double click, a
        client's retry), an answer to another question or one naming none is not taken (its
        sender is told: ``answered``)."""
        if not self.waiting or self.answer is not None or answer not in ANSWERS:
            return
        if self.cancel_heard:  # a cancel heard first ended the wait: nothing is taken
            return
        if number == self.asked and step == self.waiting[0] and self.room() is None:
            self.answer, self.settled[number] = answer, said

    @workflow.update(name="answered")
    async def answered(self, number: int) -> str:
        """The id of the answer question ``number`` took ("" if none), once it is settled."""
        await workflow.wait_condition(lambda: number in self.settled)
        return self.settled[number]

    @answered.validator
    def _asked_already(self, number: int) -> None:
        if not 0 < number <= self.asked:
            raise ValueError(f"question {number} was never asked")

    @workflow.query(name="taken")
    def taken(self, number: int) -> str | None:
        """``answered`` for a run that is over: the id of the answer question ``number``
        took ("" none), None if it is not settled."""
        return self.settled.get(number)

    async def _ask_a_person(
        self, left: tuple[str, ...], wait: float | None, cancelled: bool = False
    ) -> tuple[str | None, str]:
        """Wait (up to ``wait`` seconds; None: for as long as it takes) for an answer. A
        cancelled run waits for no one (``cancelled``: before the question, or a cancel of
        the workflow during the wait), and a history with no room left (``room``) ends the
        wait too: the answer taken ("leave" if the wait ran out; None if none was taken
        because of a cancel or no room), and why there was no room ("" if there was)."""
        if wait is not None and wait <= 0:
            return "leave", ""  # as in process: halted at once, for a person to pick up
        if cancelled:
            return None, ""
        self.asked += 1
        number = self.asked
        self.waiting, self.answer = list(left), None
        full = ""
        try:
            timeout = timedelta(seconds=wait) if wait is not None else None

            def over() -> bool:
                nonlocal full
                full = "" if self.answer is not None else (self.room() or "")
                return self.answer is not None or self.cancel_heard or bool(full)

            await workflow.wait_condition(over, timeout=timeout)
        except TimeoutError:
            pass  # (an answer heard with the timer's firing still counts)
        finally:
            self.waiting = []
            self.settled.setdefault(number, "")  # none taken: every sender is refused
        if self.answer is None and (self.cancel_heard or full):
            return None, full
        return self.answer or "leave", full
