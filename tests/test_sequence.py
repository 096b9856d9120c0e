"""The choreography's sequence diagram (issue 28): one arrow per message handled, from its
sender's lane to its receiver's, a redelivery dashed; readable, nothing colliding."""

from matplotlib.patches import FancyArrowPatch

from rollback_lessons.choreo import EVERY_PATH, MemoryQueue, book
from rollback_lessons.lab.engines import to_png
from rollback_lessons.lab.png import read_report
from rollback_lessons.lab.quality import MIN_TEXT_PX
from rollback_lessons.lab.sequence import SENDER, draw_sequence
from rollback_lessons.worlds.choreography import relay_crash


def _arrows(fig):
    return [p for p in fig.axes[0].patches if isinstance(p, FancyArrowPatch)]


def test_every_message_is_an_arrow_from_its_sender_to_its_receiver_in_order():
    log = book(MemoryQueue(), EVERY_PATH).log
    fig = draw_sequence(log)
    arrows = _arrows(fig)
    assert len(arrows) == len(log)
    ys = []
    for arrow, handled in zip(arrows, log, strict=True):
        assert arrow.get_gid() == f"{SENDER[handled.message.type]}->{handled.service}"
        ys.append(arrow.get_path().vertices[:, 1].mean())
    assert ys == sorted(ys)  # inches from the top: in the order handled
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(legend) == len(set(legend)) == 4  # action, failure, compensation, cancellation


def test_a_redelivery_is_dashed_and_says_the_inbox_had_it():
    log = relay_crash().log
    fig = draw_sequence(log)
    styles = [a.get_linestyle() for a in _arrows(fig)]
    again = [i for i, h in enumerate(log) if h.reaction is None]
    assert again == [2]
    assert [s != "-" and s != "solid" for s in styles] == [i in again for i in range(len(log))]
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "nothing: its inbox had it" in texts
    assert "delivered again" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_the_pictures_are_readable_and_nothing_collides():
    for log in (book(MemoryQueue(), EVERY_PATH).log, relay_crash().log):
        report = read_report(to_png(draw_sequence(log, title="a title")))
        assert report["problems"] == []
        assert report["min_text_px"] >= MIN_TEXT_PX
        assert report["width_px"] == 920


def test_it_says_where_each_service_put_its_events():
    from rollback_lessons.choreo import NAIVE, SAFE

    for variant, where in ((SAFE, "to its outbox"), (NAIVE, "published")):
        fig = draw_sequence(book(MemoryQueue(), EVERY_PATH, variant).log)
        texts = [t.get_text() for t in fig.axes[0].texts]
        assert "reserve; RoomReserved " + where in texts
        assert "release" in texts  # nothing emitted: nothing said
