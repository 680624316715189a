"""The results viewer: a cases x variants grid of outputs, filters, cell details and diffs, and the statistics.

::

    ResultsViewer(results)                  # or ResultsViewer("path/to/run_dir")

Click a cell to see the messages as sent, the full output of every repeat, the scores with their explanations,
and a word diff against another variant's output on the same case. Below the grid: :meth:`Results.summary`
(mean score with its 95% confidence interval) and :meth:`Results.compare` (the paired comparison of two variants).
The grid logic lives in :mod:`workbench.widgets.cells`.
"""

from __future__ import annotations

from pathlib import Path

import ipywidgets as widgets
from traitlets import Int, Tuple, Unicode, observe

from ..errors import DataError, NotFoundError
from ..results import Results
from .cells import (
    FILTERS,
    KIND_BUTTON,
    KIND_MARK,
    CellKey,
    CellStatus,
    cell_detail_html,
    cell_statuses,
    filter_cases,
    filter_counts,
    flaky_keys,
    grid_html,
    latency_html,
    output_diff_html,
    output_text,
    summary_html,
)
from .fallback import StaticFallback, clip, esc, hide_snapshots_widget


def comparison_html(results: Results, a: str, b: str, scorer: str | None, target: str | None) -> str:
    """:meth:`Results.compare` of variants ``a`` and ``b`` (paired on cases): its sentence and numbers."""
    if not scorer:
        return ""
    if a == b:
        return '<div style="color:#888;font-size:12px">Pick two different variants to compare.</div>'
    try:
        c = results.compare(a, b, scorer=scorer, target=target)
    except Exception as e:
        return f'<div style="color:#b00;font-size:12px">comparison unavailable: {esc(e)}</div>'
    facts = (f"{c.n_pairs} paired cases · mean {esc(a)} {c.mean_a:.3g}, {esc(b)} {c.mean_b:.3g} · difference "
             f"{c.diff:+.3g} [{c.ci_low:+.3g}, {c.ci_high:+.3g}] · p = {c.p_value:.3g} ({esc(c.method)}) · "
             f"{esc(a)} better on {c.a_better}, {esc(b)} better on {c.b_better}, ties {c.ties}")
    return (f'<div class="wb-comparison" style="font:12px system-ui,sans-serif"><b>{esc(c.summary)}</b>'
            f'<div style="color:#555">{facts}</div></div>')


class ResultsViewer(StaticFallback, widgets.VBox):
    """A grid of cases x variants with filters (``show``: all, failed, ambiguous, refused, filtered, flaky), a
    detail panel for the
    selected cell (``selected``: case id, variant, target), diffs, and the summary and paired comparison."""

    show = Unicode("all", help="which cases the grid lists: all, failed, ambiguous, refused, filtered or flaky")
    scorer = Unicode("", help="the scorer that decides pass/fail")
    target = Unicode("", help="the target whose cells are shown")
    selected = Tuple((), help="the selected cell: (case_id, variant, target)")
    page = Int(0)

    def __init__(self, results: Results | str | Path, *, page_size: int = 20, scorer: str | None = None):
        if not isinstance(results, Results):
            results = Results.load(results)
        self.results = results
        self.page_size = page_size
        self.variants = list(results.variants) or list(dict.fromkeys(r.variant for r in results.records))
        self.targets = list(results.targets)
        self.cases = _cases(results)
        self._labels = _case_labels(results)
        self.statuses: dict[CellKey, CellStatus] = {}
        self.cell_buttons: dict[CellKey, widgets.Button] = {}

        scorers = list(results.scorers)
        self.filter_toggle = widgets.ToggleButtons(options=[(f, f) for f in FILTERS], value="all",
                                                   style={"button_width": "104px"})
        self.filter_toggle.add_class("wb-filter")
        self.scorer_pick = widgets.Dropdown(options=scorers or [""], value=(scorer or (scorers[0] if scorers else "")),
                                            description="scorer", disabled=not scorers)
        self.target_pick = widgets.Dropdown(options=self.targets or [""], description="target",
                                            disabled=len(self.targets) < 2)
        self.grid = widgets.GridBox(layout=widgets.Layout(
            grid_template_columns=f"minmax(160px, 240px) repeat({max(1, len(self.variants))}, minmax(140px, 1fr))",
            grid_gap="2px", width="100%"))
        self.grid.add_class("wb-results-grid")
        self.prev_button = widgets.Button(icon="chevron-left", layout=widgets.Layout(width="36px"))
        self.next_button = widgets.Button(icon="chevron-right", layout=widgets.Layout(width="36px"))
        self.page_label = widgets.HTML()
        self.detail = widgets.HTML()
        self.detail.add_class("wb-detail")
        self.diff_pick = widgets.Dropdown(options=[], description="diff vs")
        self.diff = widgets.HTML()
        self.diff.add_class("wb-diff")
        self.summary = widgets.HTML()
        self.summary.add_class("wb-summary")
        self.latency = widgets.HTML(latency_html(results))
        self.latency.add_class("wb-latency")
        self.compare_a = widgets.Dropdown(options=self.variants, description="compare",
                                          value=self.variants[0] if self.variants else None)
        self.compare_b = widgets.Dropdown(options=self.variants, description="with",
                                          value=self.variants[-1] if self.variants else None)
        self.comparison = widgets.HTML()
        super().__init__()
        self.add_class("wb-results-viewer")
        head = widgets.HTML(f'<div style="font:13px system-ui,sans-serif"><b>{esc(results.name)}</b>: {len(results)} '
                            f'calls, {len(self.cases)} cases x {len(self.variants)} variants '
                            f'({esc(results.status)})</div>')
        self.children = [
            hide_snapshots_widget(), head, widgets.HBox([self.filter_toggle, self.scorer_pick, self.target_pick]),
            self.grid, widgets.HBox([self.prev_button, self.page_label, self.next_button]),
            widgets.HTML("<b>Cell</b>"), self.detail, self.diff_pick, self.diff,
            widgets.HTML("<b>Summary</b>"), self.summary, self.latency, widgets.HBox([self.compare_a, self.compare_b]),
            self.comparison,
        ]
        self.filter_toggle.observe(lambda c: setattr(self, "show", c["new"]), names="value")
        self.scorer_pick.observe(lambda c: setattr(self, "scorer", c["new"] or ""), names="value")
        self.target_pick.observe(lambda c: setattr(self, "target", c["new"] or ""), names="value")
        self.prev_button.on_click(lambda _: self._turn(-1))
        self.next_button.on_click(lambda _: self._turn(+1))
        self.diff_pick.observe(lambda _: self._render_diff(), names="value")
        self.compare_a.observe(lambda _: self._render_comparison(), names="value")
        self.compare_b.observe(lambda _: self._render_comparison(), names="value")
        with self.hold_trait_notifications():
            self.scorer = self.scorer_pick.value or ""
            self.target = self.target_pick.value or ""
        self._recompute()

    # ------------------------------------------------------------------------------------------- state
    @observe("scorer")
    def _scorer_changed(self, change: dict) -> None:
        if self.scorer_pick.value != change["new"] and change["new"] in self.scorer_pick.options:
            self.scorer_pick.value = change["new"]
        self._recompute()

    @observe("target")
    def _target_changed(self, change: dict) -> None:
        if self.target_pick.value != change["new"] and change["new"] in self.target_pick.options:
            self.target_pick.value = change["new"]
        self.page = 0
        self._recompute()  # the filter counts are per target

    @observe("show")
    def _show_changed(self, change: dict) -> None:
        if change["new"] not in FILTERS:
            raise DataError(f"show={change['new']!r}: use one of {', '.join(FILTERS)}")
        if self.filter_toggle.value != change["new"]:
            self.filter_toggle.value = change["new"]
        self.page = 0
        self._render_grid()

    @observe("page")
    def _page_changed(self, change: dict) -> None:
        self._render_grid()

    @observe("selected")
    def _selected_changed(self, change: dict) -> None:
        self._render_detail()

    def _recompute(self) -> None:
        scorer = self.scorer or None
        self.statuses = cell_statuses(self.results.records, scorer, flaky_keys(self.results, scorer))
        counts = filter_counts(self.statuses, self.target or None)
        self.filter_toggle.options = [(f"{f} ({counts[f]})", f) for f in FILTERS]
        self.filter_toggle.value = self.show
        self._render_grid()
        self.summary.value = summary_html(self.results, scorer)
        self._render_comparison()
        self._render_detail()

    # -------------------------------------------------------------------------------------------- grid
    @property
    def visible_cases(self) -> list[str]:
        """Case ids the current filter lists (all pages)."""
        wanted = set(filter_cases(self.statuses, self.show, self.target or None))
        return [c for c in self.cases if c in wanted]

    @property
    def n_pages(self) -> int:
        return max(1, -(-len(self.visible_cases) // self.page_size))

    def _turn(self, step: int) -> None:
        self.page = max(0, min(self.n_pages - 1, self.page + step))

    def _render_grid(self) -> None:
        cases = self.visible_cases
        page = min(self.page, self.n_pages - 1)
        shown = cases[page * self.page_size:(page + 1) * self.page_size]
        header = [widgets.HTML("<b>case</b>")] + [widgets.HTML(f"<b>{esc(v)}</b>") for v in self.variants]
        children: list[widgets.Widget] = list(header)
        self.cell_buttons = {}
        labels = self._labels
        for cid in shown:
            children.append(widgets.HTML(f'<div style="font:12px/1.3 system-ui,sans-serif;padding-top:4px">'
                                         f'<b>{esc(cid)}</b> '
                                         f'<span style="color:#555">{esc(clip(labels.get(cid, ""), 90))}</span></div>'))
            for v in self.variants:
                key = (cid, v, self.target)
                st = self.statuses.get(key)
                if st is None:
                    children.append(widgets.HTML('<span style="color:#999">-</span>'))
                    continue
                children.append(self._cell_button(key, st))
        if not shown:
            children.append(widgets.HTML(f'<span style="color:#888">No {esc(self.show)} cells.</span>'))
        old = self.grid.children
        self.grid.children = children
        for w in old:  # the previous page's widgets are gone for good
            w.close()
        self.page_label.value = (f'<span style="font-size:12px">page {page + 1} of {self.n_pages} · '
                                 f'{len(cases)} cases</span>')
        self.prev_button.disabled = page == 0
        self.next_button.disabled = page >= self.n_pages - 1
        if (not self.selected or tuple(self.selected) not in self.cell_buttons) and self.cell_buttons:
            self.selected = next(iter(self.cell_buttons))
        self.refresh_static(debounce=1.0)

    def _cell_button(self, key: CellKey, st: CellStatus) -> widgets.Button:
        first_line = output_text(st.first).strip().splitlines()[0] if output_text(st.first).strip() else "(empty)"
        mark = KIND_MARK.get(st.kind, "")
        b = widgets.Button(description=mark + clip(first_line, 38), tooltip=clip(output_text(st.first), 400),
                           button_style=KIND_BUTTON[st.kind], layout=widgets.Layout(width="auto"))
        b.add_class("wb-cell-button")
        b.add_class(f"wb-{st.kind}")
        b.on_click(lambda _b, key=key: self.select(*key))
        self.cell_buttons[key] = b
        return b

    def select(self, case_id: str, variant: str, target: str | None = None) -> None:
        """Show one cell in the detail panel (what clicking it does)."""
        key = (str(case_id), variant, target or self.target or (self.targets[0] if self.targets else ""))
        if key not in self.statuses:
            raise NotFoundError(f"No cell for case {case_id!r}, variant {variant!r}, target {key[2]!r}.")
        self.selected = key

    # ------------------------------------------------------------------------------------------ detail
    def _render_detail(self) -> None:
        st = self.statuses.get(tuple(self.selected)) if self.selected else None
        if st is None:
            self.detail.value = '<span style="color:#888">Click a cell to see its messages and output.</span>'
            self.diff_pick.options, self.diff.value = [], ""
            return
        self.detail.value = cell_detail_html(st)
        case_id, variant, target = st.key
        others = [v for v in self.variants if v != variant and (case_id, v, target) in self.statuses]
        current = self.diff_pick.value
        self.diff_pick.options = others
        if others:
            self.diff_pick.value = current if current in others else others[0]
        self._render_diff()

    def _render_diff(self) -> None:
        if not self.selected or not self.diff_pick.value:
            self.diff.value = ""
            return
        case_id, variant, target = self.selected
        a = self.statuses.get((case_id, variant, target))
        b = self.statuses.get((case_id, self.diff_pick.value, target))
        if a is None or b is None:
            self.diff.value = ""
            return
        self.diff.value = output_diff_html(output_text(a.first), output_text(b.first), variant, self.diff_pick.value)

    def _render_comparison(self) -> None:
        if self.compare_a.value is None or self.compare_b.value is None:
            self.comparison.value = ""
            return
        self.comparison.value = comparison_html(self.results, self.compare_a.value, self.compare_b.value,
                                                self.scorer or None, self.target or None)

    # ---------------------------------------------------------------------------------------- snapshot
    def static_html(self) -> str:
        counts = filter_counts(self.statuses, self.target or None)
        head = (f'<div style="font:13px system-ui,sans-serif"><b>{esc(self.results.name)}</b>: {len(self.results)} '
                f'calls · ' + " · ".join(f"{k} {v}" for k, v in counts.items()) + "</div>")
        cases = self.visible_cases
        shown = set(cases)
        records = [r for r in self.results.records
                   if r.case_id in shown and (not self.target or r.target == self.target)]
        flaky = {k for k, s in self.statuses.items() if s.flaky}
        grid = grid_html(records, cases, self.variants, self.scorer or None, flaky=flaky, limit=300, pending="-")
        return head + grid + self.summary.value + self.latency.value + self.comparison.value

    def static_text(self) -> str:
        return f"<ResultsViewer {self.results.name!r}: {len(self.results)} calls>"


def _cases(results: Results) -> list[str]:
    ids = list(dict.fromkeys(r.case_id for r in results.records))
    if results.experiment is not None:
        try:
            order = [c.id for c in results.experiment.load_cases()]
        except Exception:  # the dataset may have moved since the run: keep the records' order
            return ids
        known = set(ids)
        return [c for c in order if c in known] + [c for c in ids if c not in set(order)]
    return ids


def _case_labels(results: Results) -> dict[str, str]:
    """A short text of each case's inputs (from the experiment's dataset, else the last user message)."""
    labels: dict[str, str] = {}
    if results.experiment is not None:
        try:
            from .editing import case_label

            labels = {c.id: case_label(c) for c in results.experiment.load_cases()}
        except Exception:
            labels = {}
    for r in results.records:
        if r.case_id not in labels:
            users = [m for m in r.messages if m.get("role") == "user"]
            content = users[-1].get("content") if users else ""
            labels[r.case_id] = content if isinstance(content, str) else ""
    return labels
