"""The panel draws the runs one change away while the kernel waits for the learner (issue
24's speed: a change then finds its picture drawn), the same pictures a change draws
itself, and never for a state of services (their runs would act unasked)."""

from __future__ import annotations

import asyncio

import pytest
from conftest import lesson_worlds

from rollback_lessons.lab import ahead
from rollback_lessons.lab.timeline import Timeline
from rollback_lessons.lab.timeline_run import run_key
from rollback_lessons.lab.widgets import RollbackLab
from rollback_lessons.worlds import services
from rollback_lessons.worlds.examples import order_saga, order_state


def twin(lab: RollbackLab, other: RollbackLab, control: object) -> object:
    """``other``'s control at the place of ``lab``'s ``control``."""
    for mine, theirs in ((lab.actions, other.actions), (lab.undos, other.undos)):
        for name, c in mine.items():
            if c is control:
                return theirs[name]
    for name in ("policy", "register", "order", "first"):
        if getattr(lab, name) is control:
            return getattr(other, name)
    raise KeyError(control)


async def drawn_ahead(lab: RollbackLab) -> None:
    """Wait (the kernel's loop turning) until every run one change away is kept."""
    wanted = []
    for control, value in ahead.changes(lab):
        outcome = lab._run_saga((control, value), ahead=True)  # (no mail sent)
        wanted.append((run_key(outcome, None), lab.telling_frame(outcome, False)))
    for _ in range(2000):
        if all(index in lab.timeline.frames.peek(key) for key, index in wanted):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the runs one change away were not drawn ahead")


@pytest.mark.parametrize("world", list(lesson_worlds()))
def test_a_change_finds_its_picture_drawn_ahead_and_the_same_as_drawn_on_demand(world, monkeypatch):
    make_saga, make_state = lesson_worlds()[world]

    async def walk() -> None:
        lab = RollbackLab(make_saga(), state=make_state)
        plain = RollbackLab(make_saga(), state=make_state, draw_ahead=False)
        assert lab.draw_ahead and not plain.draw_ahead
        first = next(iter(lab.actions))
        lab.set_fault(first, "fail")
        plain.set_fault(first, "fail")
        await drawn_ahead(lab)
        built: list[object] = []
        original = Timeline._build_run

        def spy(timeline: Timeline, *args: object) -> None:
            built.append(timeline)
            original(timeline, *args)

        monkeypatch.setattr(Timeline, "_build_run", spy)
        for control, value in list(ahead.changes(lab)):
            other = twin(lab, plain, control)
            old = control.value
            built.clear()
            control.value = value  # as a click does
            assert lab.timeline not in built, f"{value}: drawn again, not ahead"
            other.value = value
            assert lab.picture == plain.picture, f"{value}: another picture than on demand"
            assert lab.view.value == plain.view.value
            control.value, other.value = old, old
        monkeypatch.undo()
        lab.show_frame(0)  # the run's other frames: its own artists again
        plain.show_frame(0)
        assert lab.picture == plain.picture

    asyncio.run(walk())


def test_a_panel_put_on_screen_draws_the_runs_one_change_away_while_it_is_read():
    async def shown() -> None:
        lab = RollbackLab(order_saga(), state=order_state)
        lab.set_fault("label", "fail")  # as a lesson's cell does before showing it
        lab._repr_mimebundle_()
        await drawn_ahead(lab)

    asyncio.run(shown())


def test_nothing_is_drawn_ahead_for_services_outside_a_kernel_or_over_a_newer_change():
    class Live(dict):  # a state of services with no rehearsal: their runs would act unasked
        pass

    world = RollbackLab(services.booking_saga(), state=lambda: Live(services.new_world("h", 9)))
    assert not world.draw_ahead
    lab = RollbackLab(order_saga(), state=order_state)
    lab.set_fault("label", "fail")  # no running loop (a script): nothing scheduled
    assert len(lab.timeline.frames._by) == 2  # the opening run and this one

    async def quick() -> None:
        lab.set_fault("pay", "fail")
        lab.set_fault("pay", "ok")  # changed again before the drawing started
        await asyncio.sleep(ahead.DELAY_S / 2)
        kept = len(lab.timeline.frames._by)
        lab.show_frame(0)  # a frame asked for: the drawing ahead stops
        await asyncio.sleep(ahead.DELAY_S * 2)
        assert len(lab.timeline.frames._by) == kept

    asyncio.run(quick())


def test_lesson_06s_services_draw_ahead_on_their_rehearsal_and_send_no_mail():
    """Issue 24's speed: lesson 06's panel drew nothing ahead (its world sends real mail),
    150 ms p95 to the picture painted at load 3. Its world's rehearsal holds the mail back:
    the runs one change away are drawn on it, no mail leaves for them, and each change's
    own run (on the real world, its mail sent) finds its picture drawn, the picture drawn
    on demand."""
    from rollback_lessons.worlds.mailserver import MailServer

    server = MailServer().start()
    try:

        async def walk() -> None:
            world = lambda: services.new_world(server.host, server.port)  # noqa: E731
            lab = RollbackLab(services.booking_saga(), state=world)
            plain = RollbackLab(services.booking_saga(), state=world, draw_ahead=False)
            assert lab.draw_ahead
            lab.set_fault("charge_card", "fail_after_effect")  # as the lesson opens it
            plain.set_fault("charge_card", "fail_after_effect")
            before = len(server.messages)
            await drawn_ahead(lab)
            assert len(server.messages) == before  # the rehearsals sent nothing
            for control, value in list(ahead.changes(lab)):
                old = control.value
                sent = len(server.messages)
                control.value = value  # as a click does: the real run
                other = twin(lab, plain, control)
                other.value = value
                mails = len(server.messages) - sent  # (the two panels' runs)
                assert lab.picture == plain.picture, f"{value}: another picture than on demand"
                assert mails == 2 * len(lab.outcome.state_after["emails sent"]), value
                key = run_key(lab.outcome, None)
                assert lab.frame in lab.timeline.frames.peek(key)
                control.value, other.value = old, old

        asyncio.run(walk())
    finally:
        server.stop()


def test_a_click_that_comes_while_a_run_is_drawn_ahead_waits_for_that_drawing_only(monkeypatch):
    """newuser15: lesson 12's changes back to a dropdown's first option came while the runs
    one change away from the last change were drawn ahead, and took 81 ms against 52 (the
    slowest 82-149 ms): the next drawing, queued at once, ran before the click's message
    (the loop polls its sockets after what is ready), and the next, and so on. A click's
    message that comes during a drawing is handled once that drawing ends."""
    import socket

    drawn: list[bool] = []
    waited: list[int] = []
    original = ahead.draw_for

    def spy(lab: RollbackLab, control: object, value: str) -> bool:
        did = original(lab, control, value)
        if did:
            drawn.append(did)
            if len(drawn) == 1:
                sender.send(b"x")  # the click's message comes during this drawing
        return did

    monkeypatch.setattr(ahead, "draw_for", spy)
    receiver, sender = socket.socketpair()

    async def walk() -> None:
        loop = asyncio.get_running_loop()
        clicked = asyncio.Event()

        def on_message() -> None:  # as the kernel reads a comm message and handles it
            receiver.recv(1)
            loop.remove_reader(receiver)
            waited.append(len(drawn))
            lab.set_fault("label", "ok")  # back to the first option
            clicked.set()

        lab = RollbackLab(order_saga(), state=order_state)
        lab.set_fault("label", "fail")  # the runs one change away from this: drawn ahead
        loop.add_reader(receiver, on_message)
        await asyncio.wait_for(clicked.wait(), 30)

    try:
        asyncio.run(walk())
    finally:
        receiver.close()
        sender.close()
    assert waited == [1], f"the click waited for {waited[0] - 1} more drawings"
