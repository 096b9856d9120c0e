"""A lesson cell run before the cells it needs says which cell to run first.

Importing ``rollback_lessons.lab`` in a notebook installs one IPython handler for
``NameError``: when a cell uses a name it has not got, and a cell of the notebook defines
that name, the learner reads first which cell that is (the heading it sits under and its
first line, whole) and how to run the cells above, then the error in one line: no
traceback, since nothing in it is theirs to fix. A name no cell defines (a typo) gets the
plain error. Outside IPython nothing is installed.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

from ..errors import RollbackLessonsError

RUN_ABOVE = "Run → Run All Above Selected Cell"


class RunTheCellsAbove(RollbackLessonsError):
    """A panel was made before the cells it needs had run."""

    def __init__(self, message: str) -> None:
        super().__init__(f"{message}. Run the cells above this one first ({RUN_ABOVE}).")


def bound_names(source: str) -> set[str]:
    """The names a cell binds at its top level (assignments, defs, imports, loops)."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return set()
    found: set[str] = set()

    def targets(node: ast.AST) -> None:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name):
                found.add(sub.id)

    def visit(body: list[ast.stmt]) -> None:
        for stmt in body:
            if isinstance(stmt, ast.Assign):
                for t in stmt.targets:
                    targets(t)
            elif isinstance(stmt, ast.AnnAssign | ast.AugAssign):
                targets(stmt.target)
            elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                found.add(stmt.name)
            elif isinstance(stmt, ast.Import | ast.ImportFrom):
                for alias in stmt.names:
                    found.add((alias.asname or alias.name).split(".")[0])
            elif isinstance(stmt, ast.For | ast.AsyncFor):
                targets(stmt.target)
                visit(stmt.body)
            elif isinstance(stmt, ast.With | ast.AsyncWith):
                for item in stmt.items:
                    if item.optional_vars is not None:
                        targets(item.optional_vars)
                visit(stmt.body)
            elif isinstance(stmt, ast.If | ast.While):
                visit(stmt.body)
                visit(stmt.orelse)
            elif isinstance(stmt, ast.Try):
                visit(stmt.body)
                visit(stmt.orelse)
                visit(stmt.finalbody)
            for sub in ast.walk(stmt):
                if isinstance(sub, ast.NamedExpr):
                    targets(sub.target)

    visit(tree.body)
    return found


def first_line(source: str) -> str:
    """A cell's first line of code: not a comment (``# NBVAL_IGNORE_OUTPUT``, which opens
    every panel cell, means nothing to a learner) nor a blank; a cell of comments only:
    its first line."""
    lines = [ln for ln in source.splitlines() if ln.strip()]
    return next((ln for ln in lines if not ln.lstrip().startswith("#")), lines[0] if lines else "")


def where_defined(cells: list[dict[str, Any]], name: str, running: str | None) -> str | None:
    """Which cell of the notebook defines ``name`` (not the one running), said so that a
    learner finds it: the heading above it and its first line of code."""
    heading = ""
    for cell in cells:
        source = "".join(cell.get("source", ""))
        if cell.get("cell_type") == "markdown":
            for line in source.splitlines():
                if line.startswith("#"):
                    heading = line.lstrip("#").strip()
            continue
        if cell.get("cell_type") != "code" or source.strip() == (running or "").strip():
            continue
        if name in bound_names(source):
            first = first_line(source)
            where = f' under "{heading}"' if heading else ""
            return f"the cell{where} that starts `{first.strip()}`"
    return None


def notebook_cells(shell: Any) -> list[dict[str, Any]] | None:
    """The cells of the notebook this kernel serves, as saved (``None`` if not found)."""
    session = shell.user_ns.get("__session__") or os.environ.get("JPY_SESSION_NAME")
    if not session:
        return None
    path = Path(session)
    if not path.is_absolute():
        path = Path.cwd() / path.name
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return cells if isinstance(cells, list) else None


def hint(shell: Any, error: NameError, running: str | None) -> str | None:
    """The line to add to a NameError raised by a lesson cell, or ``None``."""
    name = getattr(error, "name", None)
    if not name:
        return None
    cells = notebook_cells(shell)
    if cells is None:
        return None
    where = where_defined(cells, name, running)
    if where is None:
        return None  # no cell defines it: a typo, say nothing more
    return lines(
        f"`{name}` is made by a cell that has not run yet in this kernel: {where}. "
        f"Run the cells above this one first ({RUN_ABOVE}), then this one again."
    )


WIDTH = 88  # characters: JupyterLab's error box breaks a longer line anywhere, mid-word too


def lines(text: str, width: int = WIDTH) -> str:
    """``text`` in lines of at most ``width`` characters, broken between words only, and
    never inside a `quoted` span or the menu path (JupyterLab's error output breaks
    lines anywhere: "Ru" / "n All Above", seen by newuser7)."""
    keep = "\x00"
    parts = text.replace(RUN_ABOVE, RUN_ABOVE.replace(" ", keep)).split("`")
    joined = "`".join(p.replace(" ", keep) if i % 2 else p for i, p in enumerate(parts))
    wrapped = textwrap.fill(joined, width, break_long_words=False, break_on_hyphens=False)
    return wrapped.replace(keep, " ")


def _is_cell(filename: str) -> bool:
    """A notebook cell's code (ipykernel names it /tmp/ipykernel_<pid>/<hash>.py)."""
    return "ipykernel_" in filename or filename.startswith("<ipython-input")


def _handler(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> Any:
    """IPython shows nothing for a custom handler: it shows the error itself (as the kernel
    sends any error: name, value, traceback). With a hint, the hint comes first and the
    error follows in one line, instead of a traceback that buries it."""
    import linecache

    stb = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
    last = tb
    while last is not None and last.tb_next is not None:
        last = last.tb_next
    filename = last.tb_frame.f_code.co_filename if last is not None else ""
    line = None
    if isinstance(value, NameError) and _is_cell(filename):  # not raised inside a library
        line = hint(shell, value, "".join(linecache.getlines(filename)))
    if line:
        stb = [line, f"{etype.__name__}: {value}"]
    shell._showtraceback(etype, value, stb)
    return stb


def install() -> None:
    """In IPython (a notebook's kernel), add the hint to NameErrors; elsewhere nothing."""
    if "IPython" not in sys.modules:
        return
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or getattr(shell, "_rollback_lessons_guard", False):
        return
    if shell.custom_exceptions:  # somebody else's handler: leave it alone
        return
    shell.set_custom_exc((NameError,), _handler)
    shell._rollback_lessons_guard = True
