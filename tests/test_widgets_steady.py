"""The panel never moves or grows while a run plays (issue 24, newuser8's finding 3: lesson
04's result box wrapped to five rows at one frame and the panel grew 17 px), and a panel
made again does not leave the old one's widgets alive in the kernel."""

from __future__ import annotations

import re

import pytest
from conftest import lesson_worlds
from ipywidgets.widgets import widget as widget_module

from rollback_lessons.explore import single_faults
from rollback_lessons.faults import UNDO_FAULTS
from rollback_lessons.lab.panel_controls import view_px
from rollback_lessons.lab.panel_html import LOG_PX, under_px
from rollback_lessons.lab.widgets import RollbackLab
from rollback_lessons.worlds import examples, services

UNSAFE = ["verify_card", "reserve_room", "send_email", "charge_card"]  # lesson 04's bad order


def worlds() -> dict:
    """Lessons 02-06's panels' worlds: the lesson sagas, 04's unsafe order, 06's services."""
    out = dict(lesson_worlds())
    out["booking (04, unsafe order)"] = (
        lambda: examples.booking_saga(UNSAFE, allow_unsafe_order=True),
        examples.booking_state,
    )
    out["services (06)"] = (services.booking_saga, lambda: services.new_world("127.0.0.1", 9))
    return out


def parts(view: str) -> tuple[int, int, str]:
    """The picture's height, the side column's (as the view fixes it) and the row under."""
    picture = int(re.search(r"class='rl-image'[^>]*height='(\d+)'", view).group(1))  # type: ignore[union-attr]
    side = int(re.search(r"class='rl-side' style='height:(\d+)px'", view).group(1))  # type: ignore[union-attr]
    return picture, side, view.split("<div class='rl-row rl-under'")[1][:40]


@pytest.mark.parametrize("world", list(worlds()))
def test_every_view_of_every_run_has_the_same_fixed_heights(world):
    """issue 24 (panel15): the reserve was a line-count estimate and the panel still moved
    (04: 605 <-> 620 px). Now the sizes are fixed by construction: at every frame of every
    run one fault away, the side column is exactly the picture's height, the row under
    it is the fixed one (``under_px`` of the picture's), and no hidden reserve is drawn."""
    make_saga, make_state = worlds()[world]
    lab = RollbackLab(make_saga(), state=make_state)
    last = lab.saga.names[-1]
    seen = set()
    for step, fault in single_faults(lab.saga):
        faults = [(step, fault.value)]
        if fault.value in UNDO_FAULTS and step != last:
            faults.append((last, "fail"))  # so that the undo runs
        lab.open_run(faults)
        for index in range(lab.frame_count):
            view = lab.view_html(index)
            picture, side, under = parts(view)
            assert side == picture, (world, faults, index)
            assert "rl-reserve" not in view
            seen.add((picture, under))
    assert len(seen) == 1, seen  # one picture height, one row under it, for every view
    [(picture, under)] = seen
    high = under_px(picture, view_px(lab))
    assert f"style='height:{high}px'" in under and high >= LOG_PX


def live_widgets() -> int:
    return len(widget_module._instances)


def test_a_panel_made_again_closes_the_old_ones_widgets():
    make_saga, make_state = lesson_worlds()["booking"]
    RollbackLab(make_saga(), state=make_state)
    after_first = live_widgets()
    for _ in range(4):
        lab = RollbackLab(make_saga(), state=make_state)
        lab.set_fault("charge_card", "fail")
    assert live_widgets() == after_first
    assert lab.view.comm is not None  # the newest panel still lives


def test_a_grid_and_the_isolation_panel_made_again_do_not_grow_the_registry():
    from rollback_lessons.explore import explore
    from rollback_lessons.lab.grid import ExplorerGrid
    from rollback_lessons.lab.interleave import IsolationLab

    make_saga, make_state = lesson_worlds()["order"]
    exploration = explore(make_saga(), make_state)
    counts = []
    for _ in range(3):
        ExplorerGrid(exploration, make_state)
        IsolationLab("dirty read")
        counts.append(live_widgets())
    assert counts[1:] == counts[:1] * 2


def test_a_panel_made_again_stops_the_old_play_in_the_browser_before_closing_it(monkeypatch):
    """A Play ticks in the browser: closed while playing there, each tick syncs a model
    whose comm is gone (a page error). The browser may play what the kernel thinks stopped,
    so the stop is sent either way, before the close (JupyterLab keeps their order)."""
    from comm import DummyComm

    sent: list[tuple[str, str, dict]] = []

    def record(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        sent.append((self.comm_id, msg_type, data or {}))

    monkeypatch.setattr(DummyComm, "publish_msg", record)
    make_saga, make_state = lesson_worlds()["booking"]
    playing = RollbackLab(make_saga(), state=make_state)
    playing.toggle_play()
    assert playing.play.playing
    ids = [playing.play.model_id]
    still = RollbackLab(make_saga(), state=make_state)  # the kernel thinks it stopped
    ids.append(still.play.model_id)
    RollbackLab(make_saga(), state=make_state)
    for model_id in ids:
        mine = [(kind, data) for comm, kind, data in sent if comm == model_id]
        assert mine[-1][0] == "comm_close", mine[-3:]
        stop = {"method": "update", "state": {"playing": False}, "buffer_paths": []}
        assert ("comm_msg", stop) in mine[:-1], mine[-3:]


def test_a_panel_shown_in_another_cell_too_is_left_alive_when_its_cell_runs_again(monkeypatch):
    """Its view there stays, and the saved lesson keeps the models it needs: closed, the
    other cell's output would reopen as "model not found". Shown only where it was made,
    its cell's new output replaces it: closed."""
    from rollback_lessons.lab import reuse

    cell = ["A"]
    monkeypatch.setattr(reuse, "_cell", lambda: cell[0])
    make_saga, make_state = lesson_worlds()["booking"]
    alone = RollbackLab(make_saga(), state=make_state)
    alone._repr_mimebundle_()  # shown in A, where it was made
    elsewhere = RollbackLab(make_saga(), state=make_state)
    assert alone.view.comm is None and alone.play.comm is None
    elsewhere._repr_mimebundle_()
    cell[0] = "B"
    elsewhere._repr_mimebundle_()  # the learner's `lab` in a cell of their own
    cell[0] = "A"
    newest = RollbackLab(make_saga(), state=make_state)
    assert elsewhere.view.comm is not None and elsewhere.play.comm is not None
    newest._repr_mimebundle_()
    RollbackLab(make_saga(), state=make_state)  # the one left alive is not closed later either
    assert elsewhere.view.comm is not None and newest.view.comm is None
