"""The playground's output grid: one row per case (and target), one column per variant, every cell clickable.

A cell shows its output as it streams in, then its badges; clicking it opens its details in a row right below
(clicking it again closes them). The grid only displays: what a cell says comes from :mod:`.cells`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets
from traitlets import Tuple, observe

from .cells import CellKey
from .fallback import esc

# Layout rules that inline styles cannot express (a cell's whole area is its button; wrapping cards).
GRID_CSS = """
.wb-grid-box{width:100%;box-sizing:border-box}
.wb-grid-box>.widget-html,.wb-grid-box>.widget-box{min-width:0}
.wb-cell{position:relative;border:1px solid #ddd;border-radius:3px;padding:4px 6px;min-height:40px;
  box-sizing:border-box;overflow:hidden}
.wb-cell .widget-html-content{font:12px/1.35 system-ui,sans-serif;white-space:pre-wrap;word-break:break-word}
.wb-cell-open{position:absolute !important;inset:0;width:100% !important;height:100% !important;margin:0 !important;
  opacity:0;cursor:pointer}
.wb-cell-open:focus-visible{opacity:.12}
.wb-cell:hover{border-color:#1976d2}
.wb-cell.wb-selected{outline:2px solid #1976d2}
.wb-cell.wb-pass{background:#e6f4ea}.wb-cell.wb-fail,.wb-cell.wb-error{background:#fce8e6}
.wb-cell.wb-flaky{background:#fef7e0}.wb-cell.wb-filtered{background:#f3e8fd}
.wb-cursor{animation:wb-blink 1s steps(2) infinite;color:#1976d2}
@keyframes wb-blink{50%{opacity:0}}
.wb-grid-head .widget-html-content{font:600 12px system-ui,sans-serif}
.wb-case-label .widget-html-content{font:12px/1.3 system-ui,sans-serif;white-space:normal;word-break:break-word}
.wb-detail{grid-column:1 / -1;border:1px solid #1976d2;border-radius:3px;padding:6px;background:#fafcff;
  box-sizing:border-box;min-width:0}
.wb-detail .widget-html-content{white-space:normal}
.wb-stale-banner .widget-html-content{font:12px system-ui,sans-serif;color:#8a5300}
.wb-grid.wb-stale .wb-cell{opacity:.55}
"""


class _Cell(widgets.Box):
    """One grid cell: its HTML, under a transparent button that covers the whole cell."""

    def __init__(self, key: CellKey, on_click: Callable[[CellKey], None]):
        self.key = key
        self.body = widgets.HTML()
        self.button = widgets.Button(tooltip="show this cell's details", layout=widgets.Layout(width="100%"))
        self.button.add_class("wb-cell-open")
        self.button.on_click(lambda _: on_click(key))
        self.kind = ""
        super().__init__([self.body, self.button], layout=widgets.Layout(min_width="0"))
        self.add_class("wb-cell")

    def show(self, html: str, kind: str) -> None:
        if kind != self.kind:
            if self.kind:
                self.remove_class(f"wb-{self.kind}")
            self.add_class(f"wb-{kind}")
            self.kind = kind
        if self.body.value != html:
            self.body.value = html


class OutputGrid(widgets.VBox):
    """The grid of cells (see the module docstring). ``detail_html(key)`` says what a clicked cell shows."""

    selected = Tuple((), help="the cell whose details are open: (case_id, variant, target), or ()")

    def __init__(self, detail_html: Callable[[CellKey], str]):
        self._detail_html = detail_html
        self.banner = widgets.HTML()
        self.banner.add_class("wb-stale-banner")
        self.table = widgets.GridBox(layout=widgets.Layout(grid_gap="4px", width="100%"))
        self.table.add_class("wb-grid-box")
        self.detail = widgets.HTML(layout=widgets.Layout(grid_column="1 / -1"))
        self.detail.add_class("wb-detail")
        self.cells: dict[CellKey, _Cell] = {}
        self._rows: list[tuple[widgets.Widget, list[_Cell]]] = []
        self._head: list[widgets.Widget] = []
        super().__init__([self.banner, self.table], layout=widgets.Layout(width="100%"))
        self.add_class("wb-grid")

    def reset(self, rows: Sequence[tuple[str, str, str]], variants: Sequence[str]) -> None:
        """Lay out empty cells: ``rows`` are ``(case_id, target, label_html)``, one column per variant."""
        old = [c for c in self.cells.values()] + [label for label, _ in self._rows] + self._head
        self.selected = ()
        n = max(1, len(variants))
        self.table.layout.grid_template_columns = f"minmax(90px, 200px) repeat({n}, minmax(150px, 1fr))"
        self._head = [widgets.HTML("case")] + [widgets.HTML(esc(v)) for v in variants]
        for h in self._head:
            h.add_class("wb-grid-head")
        self.cells, self._rows = {}, []
        for case_id, target, label in rows:
            label_w = widgets.HTML(label)
            label_w.add_class("wb-case-label")
            row = []
            for v in variants:
                cell = _Cell((case_id, v, target), self._clicked)
                self.cells[cell.key] = cell
                row.append(cell)
            self._rows.append((label_w, row))
        self._layout()
        for w in old:
            w.close()

    def show(self, key: CellKey, html: str, kind: str) -> None:
        cell = self.cells.get(key)
        if cell is not None:
            cell.show(html, kind)
            if self.selected and tuple(self.selected) == key:
                self.detail.value = self._detail_html(key)

    def _clicked(self, key: CellKey) -> None:
        self.selected = () if self.selected and tuple(self.selected) == key else key

    def open_cell(self, case_id: str, variant: str, target: str | None = None) -> None:
        """Open a cell's details (what clicking it does); ``target`` may be left out with one target."""
        for key in self.cells:
            if key[0] == str(case_id) and key[1] == variant and (target is None or key[2] == target):
                self.selected = key
                return
        raise KeyError(f"no cell for case {case_id!r}, variant {variant!r}")

    @observe("selected")
    def _selected_changed(self, change: dict[str, Any]) -> None:
        for key in (change["old"], change["new"]):
            cell = self.cells.get(tuple(key)) if isinstance(key, tuple) and key else None
            if cell is not None:
                (cell.add_class if key == change["new"] else cell.remove_class)("wb-selected")
        self.detail.value = self._detail_html(tuple(change["new"])) if change["new"] else ""
        self._layout()

    def _layout(self) -> None:
        if not self._rows:  # no run yet: no empty header either
            self.table.children = []
            return
        children: list[widgets.Widget] = list(self._head)
        for label, row in self._rows:
            children += [label, *row]
            if self.selected and any(c.key == tuple(self.selected) for c in row):
                children.append(self.detail)
        self.table.children = children

    def set_stale(self, stale: bool, message: str = "") -> None:
        """Mark the outputs as older than the prompts (after an edit), or fresh again."""
        (self.add_class if stale else self.remove_class)("wb-stale")
        self.banner.value = f"⚠ {esc(message)}" if stale else ""

    @property
    def stale(self) -> bool:
        return "wb-stale" in self._dom_classes

