"""A lesson run elsewhere than under nbval (Run All in JupyterLab, in the browser tests)
checked against its committed outputs by strict nbval's own rules, so that the lesson need
not be run a second time in a kernel of nbval's own (issue 26).

The rules are nbval's, taken from nbval itself, not copied: its collector reads the lesson
(each cell's options: ``# NBVAL_IGNORE_OUTPUT`` and the rest, comments or tags), and each
cell is compared by its item's own ``compare_outputs`` (every output type and MIME type
nbval compares: stdout, stderr, text/plain, text/html, text/markdown, an error's name and
value; the keys nbval skips, images, metadata and widget ids, skipped alike), both sides'
streams coalesced by nbval's ``coalesce_streams``, the sanitizing patterns of
``tests/nbval_sanitize.cfg``. As under nbval: an error output fails its cell unless marked
``NBVAL_RAISES_EXCEPTION``, a committed cell that was never run but has outputs fails, and
it is compared with nothing. Stricter than nbval, as a run in JupyterLab can be: each code
cell ran once, in order, in one fresh kernel (its execution counts 1, 2, 3 ...), and an
output that came after its cell ended (nbval drops it) is compared too. A lesson with a
cell nbval skips (``NBVAL_SKIP``) or lets raise cannot be checked so (Run All runs the one
and stops at the other): ``runnable`` says so, and such a lesson keeps its nbval run."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbval.plugin import (
    IPyNbFile,
    coalesce_streams,
    find_comment_markers,
    find_metadata_tags,
    get_sanitize_patterns,
)

SANITIZE = Path(__file__).resolve().parent / "nbval_sanitize.cfg"


def nbval_cells(session: pytest.Session, lesson: Path) -> list:
    """nbval's own items for the lesson's code cells (its options read as nbval reads them),
    with the sanitizing patterns of ``SANITIZE``; no kernel is started."""
    collector = IPyNbFile.from_parent(session, path=lesson)
    collector.sanitize_patterns.update(get_sanitize_patterns(SANITIZE.read_text()))
    return list(collector.collect())


def runnable(lesson: Path) -> bool:
    """Whether Run All runs the lesson as nbval does: no cell skipped or allowed to raise
    (its options read by nbval's own readers of tags and comments)."""
    for cell in nbformat.read(lesson, as_version=4).cells:
        if cell.cell_type == "code":
            options = dict(find_metadata_tags(cell.metadata))
            options.update(find_comment_markers(cell.source))
            if options.get("skip") or options.get("check_exception"):
                return False
    return True


def differences(session: pytest.Session, lesson: Path, run: dict) -> list[str]:
    """Where ``run`` (the lesson's notebook JSON after Run All in a fresh kernel) fails
    strict nbval against the lesson's committed outputs: one message per failing cell,
    nbval's own words; empty if it passes."""
    ran = [c for c in nbformat.from_dict(run).cells if c.cell_type == "code"]
    cells = nbval_cells(session, lesson)
    if [c.source for c in ran] != [item.cell.source for item in cells]:
        return [f"{lesson.name}: the run's code cells are not the lesson's"]
    found: list[str] = []
    for n, (item, cell) in enumerate(zip(cells, ran, strict=True), start=1):
        where = f"{lesson.name} cell {item.cell_num}"
        if item.options["skip"] or item.options["check_exception"]:
            found.append(f"{where}: nbval skips it or lets it raise; Run All cannot do the same")
            continue
        if cell.execution_count != n:
            found.append(f"{where}: execution count {cell.execution_count}, not {n}")
        outputs = coalesce_streams([nbformat.from_dict(dict(o)) for o in cell.outputs])
        errors = [o for o in outputs if o.output_type == "error"]
        if errors:
            found.append(
                f"{where}: Cell execution caused an exception: "
                f"{errors[0].ename}: {errors[0].evalue}"
            )
            continue
        unrun = item.cell.execution_count is None
        if unrun and item.cell.outputs:
            found.append(f"{where}: Unrun reference cell has outputs")
        elif item.options["check"] and not unrun:
            stored = coalesce_streams([nbformat.from_dict(dict(o)) for o in item.cell.outputs])
            if not item.compare_outputs(outputs, stored):
                found.append(
                    f"{where}: Cell outputs differ\n" + "\n".join(item.comparison_traceback)
                )
    return found
