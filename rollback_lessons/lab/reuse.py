"""A panel made again replaces the one it repeats: the old one's widgets are closed, so a
kernel where a learner re-runs a panel cell does not keep every earlier panel alive (with
JupyterLab's widget saveState on, each one also grew the saved lesson by ~54 KB)."""

from __future__ import annotations

from typing import Any

import ipywidgets as w

# by kind, cell and name: the panel made last and its widgets
_LIVE: dict[tuple[str, ...], tuple[Any, list[w.Widget]]] = {}


def _cell() -> str:
    """The notebook cell being run: its id (JupyterLab sends it with each execute request),
    else its code (nbclient sends no id: two cells of a lesson differ, a re-run does not);
    "" outside a kernel."""
    try:
        from IPython import get_ipython

        kernel = getattr(get_ipython(), "kernel", None)
        parent = kernel.get_parent() if kernel is not None else {}
        parent = parent or {}
        cell = parent.get("metadata", {}).get("cellId") or parent.get("content", {}).get("code")
        return str(cell or "")
    except Exception:  # no kernel, an older one: no cell to tell apart
        return ""


def widgets_of(*roots: Any) -> list[w.Widget]:
    """Every widget under ``roots`` (widgets, or lists, tuples, dicts of them), with the
    widgets their synced traits hold (children, layout, style, ...)."""
    found: dict[int, w.Widget] = {}
    todo = list(roots)
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            todo.extend(item.values())
        elif isinstance(item, list | tuple):
            todo.extend(item)
        elif isinstance(item, w.Widget) and id(item) not in found:
            found[id(item)] = item
            todo.extend(getattr(item, name, None) for name in item.keys)
    return list(found.values())


def retire(widgets: list[w.Widget]) -> None:
    """Close ``widgets``, each Play among them stopped first. A Play ticks in the browser,
    on its model, not its view: a Play closed while playing goes on ticking there, and
    each tick syncs a model whose comm is gone ("Syncing error: no comm channel defined",
    a page error every interval). Stopped first, always sent (the browser may still play
    what the kernel thinks stopped): JupyterLab applies each update before it handles the
    next message, so the Play is still by the time its comm closes."""
    for play in (widget for widget in widgets if isinstance(widget, w.Play)):
        play.playing = False
        play.send_state("playing")
    for widget in widgets:
        widget.close()


def shown(panel: Any) -> None:
    """``panel`` goes on screen in the cell being run (its ``_repr_mimebundle_``)."""
    vars(panel).setdefault("_shown_in", set()).add(_cell())


def replace(panel: Any, *name: str) -> None:
    """Close the widgets of the panel of the same kind and ``name`` made before in this
    cell (by id, where the kernel knows it), and remember ``panel``'s in its place. One
    shown in another cell too (a learner's ``lab`` in a cell of their own) is left alive:
    its view there stays, and saved, the lesson holds the models that view needs (closed,
    it would reopen as "model not found")."""
    key = (type(panel).__name__, _cell(), *name)
    old = _LIVE.pop(key, None)
    if old is not None and vars(old[0]).get("_shown_in", set()) <= {key[1]}:
        retire(old[1])
    _LIVE[key] = (panel, widgets_of(*vars(panel).values()))
