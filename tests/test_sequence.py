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


def test_the_same_fault_both_ways_is_one_readable_picture_with_the_relay_marked():
    from matplotlib.lines import Line2D

    from rollback_lessons.lab.png import size
    from rollback_lessons.lab.sequence import RELAY, draw_compact
    from rollback_lessons.worlds.choreography import BOUNCES, both_ways

    picture = both_ways()
    report = read_report(picture)
    assert report["problems"] == [] and report["min_text_px"] >= MIN_TEXT_PX
    assert size(picture)[0] == report["width_px"] == 920  # two halves of 460 px
    log = relay_crash(BOUNCES).log
    fig = draw_compact(log, title="t")
    relayed = [line for line in fig.axes[0].get_lines() if line.get_gid() == "relay"]
    from_services = [h for h in log if SENDER[h.message.type] != "guest"]
    assert len(relayed) == len(from_services) > 0  # every event a service sent, via the relay
    again = [a for a in _arrows(fig) if a.get_linestyle() not in ("-", "solid")]
    assert len(again) == sum(h.reaction is None for h in log) == 1
    legend = fig.legends[0]
    labels = [t.get_text() for t in legend.get_texts()]
    assert RELAY in labels and "delivered again" in labels
    assert len(labels) == len(set(labels))
    glyphs = [(h.get_color(), h.get_marker(), h.get_linestyle()) for h in legend.legend_handles
              if isinstance(h, Line2D)]  # fmt: skip
    assert len(glyphs) == len(set(glyphs))  # one entry per colour and mark
