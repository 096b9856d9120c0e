"""Every relative link in the lessons and the README points at a file that exists."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def markdown_of(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return path.read_text()


@pytest.mark.parametrize("path", [*NOTEBOOKS, ROOT / "README.md"], ids=lambda p: p.name)
def test_relative_links_resolve(path):
    links = LINK.findall(markdown_of(path))
    local = [link for link in links if not re.match(r"[a-z]+://|mailto:|#", link)]
    missing = [link for link in local if not (path.parent / link.split("#")[0]).exists()]
    assert missing == []


def test_every_lesson_links_onward_and_start_here_lists_them_all():
    lessons = [p.name for p in NOTEBOOKS if p.name[:2] != "00"]
    start = markdown_of(ROOT / "notebooks" / "00_start_here.ipynb")
    readme = markdown_of(ROOT / "README.md")
    for name in lessons:
        assert f"({name})" in start
        assert f"(notebooks/{name})" in readme
    for path in NOTEBOOKS:
        assert LINK.search(markdown_of(path)), f"{path.name} links nowhere"
