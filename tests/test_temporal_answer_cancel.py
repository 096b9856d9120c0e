"""A person's answer and a cancel sent at the same instant to a saga halted on Temporal
(attack162 F1): the answer was taken, then every call of the undo of b was refused by the
saga's own runner ("not hosted in this process"): the saga never ended, its effects held.

The cancel's workflow task returned the run (``hosted.retire``, in the workflow's code), but
the server refused that return (the answer came within the same task) and the workflow ran
on, replayed: the answer counts, and its calls must still find their run here."""

from __future__ import annotations

import asyncio

from rollback_lessons import Saga, Status, Step

CANCELLED = "the undo of b: a person no longer waited for: its caller cancelled the run"


def _saga(name: str, world: list[str]) -> Saga:
    """a, b (its undo fails once: a person is asked), c (injected to fail)."""
    tries = {"b": 0}

    def undo_b(state) -> None:
        tries["b"] += 1
        world.append("undo b")
        if tries["b"] == 1:
            raise ConnectionError("bank down")

    return Saga([Step("a", lambda s: world.append("a"), lambda s: world.append("undo a")),
                 Step("b", lambda s: world.append("b"), undo_b),
                 Step("c", lambda s: world.append("c"))], name=name)  # fmt: skip


async def _asked(handle):
    while (asked := await handle.pending()) is None:
        await asyncio.sleep(0.02)
    return asked


async def _answer(handle, asked, word) -> str:
    from rollback_lessons.runners.temporal import AnswerRefused

    try:
        await handle.resolve(asked, word)
        return "taken"
    except AnswerRefused:
        return "refused"


def _one_story(said: str, outcome, world: list[str]) -> None:
    """Whichever came first, the run ended, and told what it did: the answer counted (b
    retried, a undone) or the cancel did (halted, both left, the README's note)."""
    if said == "taken":
        assert outcome.status is Status.ROLLED_BACK and outcome.compensated == ("b", "a")
        assert world == ["a", "b", "undo b", "undo b", "undo a"]
    else:
        assert outcome.status is Status.HALTED and outcome.pending == ("b", "a")
        assert CANCELLED in outcome.notes and world == ["a", "b", "undo b"]


def test_an_answer_and_a_cancel_sent_together_end_the_saga_as_one_or_the_other(on_temporal):
    async def scenario(runner):
        ends = []
        for trial in range(8):  # (it broke in about one trial in three)
            world: list[str] = []
            handle = await runner.start_saga(_saga(f"together{trial}", world), {},
                                             inject={"c": "fail"}, policy="halt",
                                             halt_wait=6)  # fmt: skip
            asked = await _asked(handle)
            said, _ = await asyncio.gather(_answer(handle, asked, "retry"), handle.cancel())
            ends.append((said, await asyncio.wait_for(handle.outcome(), 15), world))
        return ends

    for said, outcome, world in on_temporal(scenario):
        _one_story(said, outcome, world)


def test_a_run_whose_return_the_server_refused_is_still_hosted_for_its_calls(on_temporal):
    """The instant made certain: the run retired here as its workflow's return would, the
    workflow still running (as after a return the server refused). The answer's undo runs."""
    from rollback_lessons.runners import hosted

    async def scenario(runner):
        world: list[str] = []
        handle = await runner.start_saga(_saga("refused_return", world), {},
                                         inject={"c": "fail"}, policy="halt",
                                         halt_wait=30)  # fmt: skip
        asked = await _asked(handle)
        hosted.retire(handle.run_id)
        said = await _answer(handle, asked, "retry")
        return said, await asyncio.wait_for(handle.outcome(), 15), world

    said, outcome, world = on_temporal(scenario)
    assert said == "taken"
    _one_story(said, outcome, world)
