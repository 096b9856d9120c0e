"""Every picture stored in a lesson, checked without redrawing it: each PNG carries its own
report (png.read_report), measured on the figure when it was drawn. None is wider than a
notebook's output area at 1366x768 with the file browser open (so it is shown 1:1), none
has text under 12 px, and none has a value cut, texts colliding or an arrow over a label."""

import base64
import json
from pathlib import Path

import pytest

from rollback_lessons.lab.png import read_report, size
from rollback_lessons.lab.quality import MIN_TEXT_PX, SCREEN_WIDTH_PX

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9]*.ipynb"))


def pictures(path: Path):
    for n, cell in enumerate(json.loads(path.read_text())["cells"]):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data:
                yield n, base64.b64decode(data["image/png"])
            if "image/gif" in data:
                yield n, base64.b64decode(data["image/gif"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_stored_picture_reads_at_its_size_and_reports_nothing_wrong(path):
    bad = []
    for cell, picture in pictures(path):
        if picture.startswith(b"GIF8"):  # the panel's frames, played: as wide as they are
            width = int.from_bytes(picture[6:8], "little")
            if width > SCREEN_WIDTH_PX:
                bad.append(f"cell {cell}: a GIF {width} px wide")
            continue
        report = read_report(picture)
        if report is None:
            bad.append(f"cell {cell}: a picture without its report")
            continue
        if size(picture)[0] > SCREEN_WIDTH_PX:
            bad.append(f"cell {cell}: {size(picture)[0]} px wide, shown smaller than drawn")
        if report["min_text_px"] < MIN_TEXT_PX:
            bad.append(f"cell {cell}: text of {report['min_text_px']} px")
        bad += [f"cell {cell}: {p}" for p in report["problems"]]
    assert bad == []


def test_the_check_reads_what_a_picture_says_about_itself():
    from matplotlib.figure import Figure

    from rollback_lessons.lab.png import figure_png

    fig = Figure(figsize=(4, 2), dpi=80)
    fig.text(0.5, 0.5, "small", fontsize=8)
    fig.text(0.5, 0.5, "on top", fontsize=8)
    report = read_report(figure_png(fig, cut_values=["x: 'a long value'"]))
    assert report["min_text_px"] == round(8 * 80 / 72, 2) < MIN_TEXT_PX
    assert "cut value: x: 'a long value'" in report["problems"]
    assert any(p.startswith("overlap") for p in report["problems"])
