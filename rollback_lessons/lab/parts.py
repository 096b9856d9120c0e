"""The parts of a static picture beside and under its lanes: the state table (before and
now, each value wrapped whole onto its cell's lines; a value too long for them is cut and
reported) and the event log (one line per event, the current one marked)."""

from __future__ import annotations

from typing import Any

from matplotlib.patches import Rectangle

from .drawing import _CHAR, CURRENT, HIGHLIGHT, SMALL, TABLE_FONT, value_text, wrap


class TableAndLog:
    """Mixed into ``Timeline``: it sets ``fig``, ``chars``, ``state_keys``, ``table_lines``,
    ``log_rows``, ``bottom``, ``log_h``, ``cut``, ``_cells`` and ``_log_texts``."""

    fig: Any
    chars: tuple[int, int, int]
    state_keys: tuple[str, ...]
    table_lines: int
    log_rows: int
    bottom: float
    log_h: float
    cut: list[str]
    _cells: list[tuple[Any, Any, Any]]
    _log_texts: list[tuple[Any, Any]]

    def _update(self, index: int) -> None:  # pragma: no cover - Timeline's
        raise NotImplementedError

    def _build_table(self, inches: float, table: float, top: float, bottom: float) -> None:
        self.tax = self.fig.add_axes((1 - (table + 0.05) / inches, bottom, table / inches,
                                      top - bottom))  # fmt: skip
        tax = self.tax
        tax.set_axis_off()
        height_in = (top - bottom) * self.fig.get_figheight()
        tax.set_xlim(0, table)
        tax.set_ylim(height_in, 0)  # inches from the top
        key_w = self.chars[0] * _CHAR + 0.2
        self.columns = (0.0, key_w, key_w + self.chars[1] * _CHAR + 0.2)
        cell: dict[str, Any] = {"fontsize": SMALL + 1, "va": "top", "family": TABLE_FONT,
                                "linespacing": 1.15}  # fmt: skip
        for x, text in zip(self.columns, ("state", "before", "now"), strict=True):
            tax.text(x, 0.02, text, fontsize=SMALL + 1, fontweight="bold", va="top")
        row_h = 0.21 * self.table_lines + 0.08
        for row, key in enumerate(self.state_keys):
            y = 0.3 + row * row_h
            lines = wrap(str(key), self.chars[0])
            if len(lines) > self.table_lines:
                self.cut.append(f"state key {key}")
            tax.text(0.0, y, "\n".join(lines[: self.table_lines]), **cell)
            mark = Rectangle((self.columns[2] - 0.05, y - 0.04), table - self.columns[2] + 0.05,
                             row_h, color=HIGHLIGHT, lw=0, zorder=2)  # fmt: skip
            tax.add_patch(mark)
            self._cells.append(
                (tax.text(self.columns[1], y, "", **cell),
                 tax.text(self.columns[2], y, "", zorder=3, **cell), mark)
            )  # fmt: skip

    def _build_log(self, inches: float, height: float) -> None:
        """One line per event under the lanes; a frame shows the events so far."""
        top = (self.bottom + self.log_h - 0.3) / height
        low = self.bottom / height
        self.lax = self.fig.add_axes((0.012, low, 0.976, top - low))
        lax = self.lax
        lax.set_axis_off()
        lax.set_xlim(0, 1)
        lax.set_ylim(self.log_rows, 0)
        self.log_chars = int((0.976 * inches - 0.1) / ((SMALL) * 0.602 / 72))
        self.fig.text(0.012, top + 0.12 / height, "event log", fontsize=SMALL + 1,
                      fontweight="bold", va="bottom")  # fmt: skip
        for row in range(self.log_rows):
            band = lax.add_patch(Rectangle((0, row), 1, 1, color=CURRENT, lw=0, zorder=1))
            text = lax.text(0.005, row + 0.5, "", fontsize=SMALL, family=TABLE_FONT,
                            va="center", zorder=2)  # fmt: skip
            self._log_texts.append((text, band))

    def _cell_text(self, key: str, value: Any, column: int) -> str:
        """A value wrapped onto its cell's lines; what does not fit is cut with "…" and
        recorded (a picture reports it)."""
        lines = wrap(value_text(value), self.chars[column])
        if len(lines) > self.table_lines:
            lines = lines[: self.table_lines]
            lines[-1] = lines[-1][: max(self.chars[column] - 1, 1)] + "…"
            entry = f"{key}: {value_text(value)}"
            if entry not in self.cut:
                self.cut.append(entry)
        return "\n".join(lines)

    def state_cells(self, index: int) -> list[tuple[str, str, str, bool]]:
        """(key, before, now, highlighted) as frame ``index`` shows them."""
        self._update(index)
        return [
            (key, b.get_text(), a.get_text(), mark.get_visible())
            for key, (b, a, mark) in zip(self.state_keys, self._cells, strict=True)
        ]
