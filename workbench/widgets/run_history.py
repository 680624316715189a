"""The run history in a notebook: every run under the history root, filtered, sorted, opened and compared.

::

    RunHistory()                       # the project's reports/ (or $WORKBENCH_REPORTS)
    RunHistory("path/to/reports", experiment="sentiment-demo")

Each row is one run, whatever started it (``workbench eval``, ``workbench run``, a notebook, the playground):
when it started, the experiment, what started it, its status, cases and calls, the best score with its
interval, how many answers were refused or ambiguous ("not answers"), and the cost. Tick runs, then **Open** one
(:meth:`RunHistory.open_run`: its results viewer appears below - the grid, cell details, diffs) or **Compare**
two or more (:meth:`RunHistory.compare`): the case sets and the overlap the comparison uses, the scores side
by side, the paired difference per variant, the cases whose outcome changed and the diff of their outputs. The
listing and the comparison are pure functions in :mod:`workbench.runs` (``list_runs``, ``filter_runs``,
``sort_runs``, ``compare_runs``); this widget only wires controls to them.
"""

from __future__ import annotations

from pathlib import Path

import ipywidgets as widgets
from traitlets import Tuple, Unicode, observe

from .. import formatting as fmt
from ..errors import DataError, NotFoundError
from ..runs.index import SORT_KEYS, filter_runs, headline_metric, list_runs, sort_runs
from ..runs.manifest import Manifest
from .cells import output_diff_html
from .fallback import StaticFallback, clip, esc, hide_snapshots_widget, html_table

ALL = "(all)"
COLUMNS = ("started", "experiment", "source", "run", "status", "calls", "best score [95% CI]", "not answers", "cost")
WIDTHS = {"started": "84px", "experiment": "minmax(80px, 1fr)", "source": "66px", "run": "minmax(104px, 1fr)",
          "status": "80px", "calls": "40px", "best score [95% CI]": "minmax(130px, 1.4fr)",
          "not answers": "minmax(70px, 0.6fr)", "cost": "70px"}


def run_row(run_dir: Path, m: Manifest) -> dict[str, str]:
    """One run as the table shows it (also the static snapshot's row)."""
    best = headline_metric(m)
    refused = sum(x.n_refused for x in m.headline())
    ambiguous = sum(x.n_ambiguous for x in m.headline())
    flags = ", ".join(f"{n} {what}" for what, n in (("refused", refused), ("ambiguous", ambiguous)) if n)
    return {
        "started": (m.started_at or "")[:16].replace("T", " "), "experiment": m.experiment,
        "source": m.source or "", "run": m.run_id, "status": m.status,
        "cases": fmt.count(m.dataset.n_cases) if m.dataset and m.dataset.n_cases is not None else fmt.MISSING,
        "calls": fmt.count(m.totals.calls),
        "best score [95% CI]": (f"{best.variant}: " + fmt.interval(best.mean, best.ci_low, best.ci_high,
                                                                   rate=fmt.is_rate(best.method))) if best else "",
        "not answers": flags, "refused": fmt.count(refused), "ambiguous": fmt.count(ambiguous),
        "cost": fmt.usd(m.totals.cost_usd),
    }


class RunHistory(StaticFallback, widgets.VBox):
    """Every run in the history (see the module docstring). ``query`` filters by text (experiment, run id,
    notebook, source, parameters), ``experiment`` and ``source`` by value, ``sort`` orders the rows
    (:data:`~workbench.runs.index.SORT_KEYS`); ``selected`` holds the ticked run ids."""

    query = Unicode("", help="show runs whose experiment, id, notebook, source or parameters contain this")
    experiment = Unicode("", help="only this experiment ('' for all)")
    source = Unicode("", help="only runs started this way: eval, run, sweep, notebook, playground, python")
    sort = Unicode("newest", help="newest, oldest, best score or cost")
    selected = Tuple((), help="the ticked run ids")

    def __init__(self, root: str | Path | None = None, *, experiment: str | None = None, page_size: int = 30):
        from ..runs.layout import reports_root

        self.root = Path(root).resolve() if root is not None else reports_root()
        self.page_size = page_size
        self.runs: list[tuple[Path, Manifest]] = []
        self.checkboxes: dict[str, widgets.Checkbox] = {}
        self.comparison = None  # the last RunComparison shown
        self.opened = None  # the ResultsViewer of the last run opened

        self.query_box = widgets.Text(placeholder="filter: experiment, run id, notebook…",
                                      layout=widgets.Layout(width="240px"))
        self.experiment_pick = widgets.Dropdown(description="experiment", layout=widgets.Layout(width="250px"))
        self.source_pick = widgets.Dropdown(description="source", layout=widgets.Layout(width="180px"))
        self.sort_pick = widgets.Dropdown(options=list(SORT_KEYS), value="newest", description="sort",
                                          layout=widgets.Layout(width="170px"))
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh",
                                             layout=widgets.Layout(width="100px"))
        self.open_button = widgets.Button(description="Open", icon="folder-open", button_style="primary",
                                          tooltip="show the ticked run's results below")
        self.compare_button = widgets.Button(description="Compare", icon="columns", button_style="info",
                                             tooltip="compare the ticked runs (the first ticked is the baseline)")
        self.open_button.add_class("wb-open")
        self.compare_button.add_class("wb-compare")
        self.status = widgets.HTML()
        self.table = widgets.GridBox(layout=widgets.Layout(grid_gap="0 6px", width="100%", align_items="center",
                                                           overflow="auto"))
        self.table.add_class("wb-run-table")
        self.detail = widgets.VBox()
        self.detail.add_class("wb-run-detail")
        self.case_pick = widgets.Dropdown(description="diff of", layout=widgets.Layout(width="460px"))
        self.case_diff = widgets.HTML()
        super().__init__()
        self.add_class("wb-run-history")
        self.children = [
            hide_snapshots_widget(),
            widgets.HTML(f'<div style="font:13px system-ui,sans-serif"><b>Run history</b> '
                         f'<span style="color:#666">{esc(self.root)}</span></div>'),
            widgets.HBox([self.query_box, self.experiment_pick, self.source_pick, self.sort_pick,
                          self.refresh_button], layout=widgets.Layout(flex_flow="row wrap")),
            self.table, widgets.HBox([self.open_button, self.compare_button, self.status]), self.detail,
        ]
        self.query_box.observe(lambda c: setattr(self, "query", c["new"]), names="value")
        self.experiment_pick.observe(lambda c: setattr(self, "experiment", "" if c["new"] == ALL else c["new"] or ""),
                                     names="value")
        self.source_pick.observe(lambda c: setattr(self, "source", "" if c["new"] == ALL else c["new"] or ""),
                                 names="value")
        self.sort_pick.observe(lambda c: setattr(self, "sort", c["new"]), names="value")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.open_button.on_click(lambda _: self._safely(self.open_run))
        self.compare_button.on_click(lambda _: self._safely(self.compare))
        self.case_pick.observe(lambda _: self._render_case_diff(), names="value")
        self.refresh()
        if experiment:
            self.experiment = experiment

    # ------------------------------------------------------------------------------------------ listing
    def refresh(self) -> None:
        """Read the history again (finished runs that have no manifest yet get one first)."""
        from ..runs.finalize import adopt_runs

        adopt_runs(self.root)
        self.runs = list_runs(self.root)
        experiments = sorted({m.experiment for _, m in self.runs})
        sources = sorted({m.source for _, m in self.runs if m.source})
        with self.hold_trait_notifications():
            self.experiment_pick.options = [ALL, *experiments]
            self.experiment_pick.value = self.experiment if self.experiment in experiments else ALL
            self.source_pick.options = [ALL, *sources]
            self.source_pick.value = self.source if self.source in sources else ALL
        self._render_table()

    @property
    def rows(self) -> list[tuple[Path, Manifest]]:
        """The runs the filters show, in the chosen order."""
        shown = filter_runs(self.runs, query=self.query, experiment=self.experiment or None,
                            source=self.source or None)
        return sort_runs(shown, self.sort)

    @observe("query", "experiment", "source", "sort")
    def _filters_changed(self, change: dict) -> None:
        name, new = change["name"], change["new"]
        if name == "sort" and new not in SORT_KEYS:
            raise DataError(f"sort={new!r}: use one of {', '.join(SORT_KEYS)}")
        pick = {"query": self.query_box, "experiment": self.experiment_pick, "source": self.source_pick,
                "sort": self.sort_pick}[name]
        value = new if name in ("query", "sort") else (new or ALL)
        if pick.value != value and (name in ("query", "sort") or value in pick.options):
            pick.value = value
        self._render_table()

    @observe("selected")
    def _selected_changed(self, change: dict) -> None:
        for run_id, box in self.checkboxes.items():
            want = run_id in change["new"]
            if box.value != want:
                box.value = want
        n = len(change["new"])
        self.open_button.disabled = n != 1
        self.compare_button.disabled = n < 2

    @property
    def columns(self) -> list[str]:
        """The table's columns: the experiment only when the history holds more than one."""
        several = len({m.experiment for _, m in self.runs}) > 1
        return [c for c in COLUMNS if c != "experiment" or several]

    def _render_table(self) -> None:
        rows = self.rows[: self.page_size]
        columns = self.columns
        self.table.layout.grid_template_columns = "26px " + " ".join(WIDTHS[c] for c in columns)
        head = [widgets.HTML("")] + [widgets.HTML(f"<b>{esc(c)}</b>") for c in columns]
        children: list[widgets.Widget] = list(head)
        old_boxes, self.checkboxes = self.checkboxes, {}
        for run_dir, m in rows:
            box = widgets.Checkbox(value=m.run_id in self.selected, indent=False,
                                   layout=widgets.Layout(width="24px"))
            box.observe(lambda c, rid=m.run_id: self._tick(rid, c["new"]), names="value")
            self.checkboxes[m.run_id] = box
            children.append(box)
            row = run_row(run_dir, m)
            for c in columns:
                style = "color:#b34700" if c == "not answers" else ""
                children.append(widgets.HTML(f'<span style="font:12px/1.3 system-ui,sans-serif;{style}" '
                                             f'title="{esc(run_dir)}">{esc(clip(row[c], 60))}</span>'))
        old = self.table.children
        self.table.children = children
        for w in old:
            w.close()
        for box in old_boxes.values():
            box.close()
        total = len(self.rows)
        more = f" (first {len(rows)} shown)" if total > len(rows) else ""
        self.status.value = (f'<span style="font:12px system-ui,sans-serif;color:#555">{total} of {len(self.runs)} '
                             f'runs{more} · tick one to open, two or more to compare</span>')
        self.selected = tuple(r for r in self.selected if r in self.checkboxes)
        self._selected_changed({"new": self.selected})
        self.refresh_static(debounce=0.5)

    def _tick(self, run_id: str, on: bool) -> None:
        ticked = [r for r in self.selected if r != run_id] + ([run_id] if on else [])
        self.selected = tuple(ticked)

    def _run(self, run_id: str) -> tuple[Path, Manifest]:
        for run_dir, m in self.runs:
            if m.run_id == run_id:
                return run_dir, m
        raise NotFoundError(f"No run {run_id!r} in {self.root}; runs: {', '.join(m.run_id for _, m in self.runs[:8])}")

    def _safely(self, action) -> None:
        try:
            action()
        except Exception as e:  # a widget click must not raise into the void: say it where the user looks
            self.detail.children = [widgets.HTML(f'<div style="color:#b00;font-size:12px">{esc(e)}</div>')]

    # ------------------------------------------------------------------------------------------ actions
    def open_run(self, run_id: str | None = None):
        """Show one run's results viewer below the table (the ticked run by default); returns the viewer."""
        from .results_viewer import ResultsViewer

        run_id = run_id or (self.selected[0] if self.selected else None)
        if run_id is None:
            raise DataError("Tick a run to open.")
        run_dir, m = self._run(run_id)
        from ..runs.layout import load_results

        results = load_results(run_dir)
        if results is None:
            raise DataError(f"Run {run_id} has no results to show (status {m.status}).")
        self.opened = ResultsViewer(results)
        report = run_dir / "report.html"
        where = (f'report: <code>{esc(report)}</code>' if report.is_file()
                 else f'no report yet: <code>workbench report {esc(run_dir)}</code> writes one')
        self.detail.children = [widgets.HTML(f'<div style="font:12px system-ui,sans-serif;margin-top:8px"><b>'
                                             f'{esc(m.experiment)} · {esc(m.run_id)}</b> ({esc(m.source or "")}, '
                                             f'{esc(m.status)}) · {where}</div>'), self.opened]
        return self.opened

    def compare(self, run_ids: tuple[str, ...] | list[str] | None = None):
        """Compare runs (the ticked ones by default; the first is the baseline); returns the RunComparison."""
        from ..runs.compare import compare_runs

        ids = list(run_ids or self.selected)
        if len(ids) < 2:
            raise DataError("Tick two or more runs to compare.")
        self.comparison = cmp = compare_runs([self._run(r)[0] for r in ids])
        changed = cmp.case_changes[cmp.case_changes["change"] != "same"] if len(cmp.case_changes) else cmp.case_changes
        self.case_pick.options = [(f"{r.case_id} · {r.variant} · {r.change} ({r.before} → {r.after})",
                                   (r.case_id, r.variant, r.target)) for r in changed.itertuples()]
        if self.case_pick.options:
            self.case_pick.index = 0  # the first changed case's diff, at once
        self.detail.children = [widgets.HTML(comparison_html(cmp)), self.case_pick, self.case_diff]
        self._render_case_diff()
        self.refresh_static()
        return cmp

    def _render_case_diff(self) -> None:
        cmp, key = self.comparison, self.case_pick.value
        if cmp is None or key is None:
            self.case_diff.value = ""
            return
        row = cmp.case_changes.set_index(["case_id", "variant", "target"]).loc[key]
        a, b = cmp.runs[0][1].run_id, cmp.runs[1][1].run_id
        self.case_diff.value = output_diff_html(str(row["output_a"]), str(row["output_b"]), a, b)

    # ---------------------------------------------------------------------------------------- snapshot
    def static_html(self) -> str:
        rows = [run_row(d, m) for d, m in self.rows[: self.page_size]]
        body = html_table(self.columns, [[r[c] for c in self.columns] for r in rows]) if rows else \
            '<div style="color:#888">No runs yet.</div>'
        extra = comparison_html(self.comparison) if self.comparison is not None else ""
        return (f'<div style="font:13px system-ui,sans-serif"><b>Run history</b>: {len(self.rows)} runs</div>'
                + body + extra)

    def static_text(self) -> str:
        return f"<RunHistory {self.root}: {len(self.runs)} runs>"


def comparison_html(cmp) -> str:
    """A :class:`~workbench.runs.compare.RunComparison` as HTML: case-set warnings, scores side by side, paired
    differences and the cases whose outcome changed."""
    parts = ['<div class="wb-run-comparison" style="font:12px system-ui,sans-serif;margin-top:8px">']
    names = " vs ".join(esc(m.run_id) for _, m in cmp.runs)
    parts.append(f"<b>Comparing {names}</b> (the first is the baseline)")
    for w in cmp.warnings:
        parts.append(f'<div style="background:#fff8c5;border-left:4px solid #9a6700;padding:4px 6px;margin:4px 0">'
                     f'{esc(w)}</div>')
    if not cmp.warnings and cmp.shared_cases is not None:
        parts.append(f'<div style="color:#555">Same {cmp.shared_cases} cases in every run: the comparison is '
                     f'paired case by case.</div>')
    wide = cmp.scores_wide()
    if len(wide):
        flat = wide.reset_index()
        cols = [str(c) for c in flat.columns]
        parts.append("<div style='margin-top:6px'><b>Scores</b> (" + esc(cmp.scores_basis) + ")</div>")
        parts.append(html_table(cols, [[str(v) for v in row] for row in flat.itertuples(index=False)]))
    if len(cmp.paired):
        parts.append("<div style='margin-top:6px'><b>Paired differences</b></div><ul style='margin:2px 0'>")
        for r in cmp.paired.itertuples():
            parts.append(f"<li>{esc(r.variant)} ({esc(r.target)}): {esc(r.summary)}</li>")
        parts.append("</ul>")
    changes = cmp.case_changes
    if len(changes):
        counts = changes["change"].value_counts().to_dict()
        parts.append("<div style='margin-top:6px'><b>Cases</b>: " + " · ".join(
            f"{esc(k)} {v}" for k, v in sorted(counts.items())) + "</div>")
        moved = changes[changes["change"] != "same"].head(40)
        if len(moved):
            rows = [[r.case_id, r.variant, r.change, r.before, r.after, clip(r.output_a, 80), clip(r.output_b, 80)]
                    for r in moved.itertuples()]
            parts.append(html_table(["case", "variant", "change", "before", "after", "output before", "output after"],
                                    rows))
    parts.append("</div>")
    return "".join(parts)


__all__ = ["RunHistory", "comparison_html", "run_row"]
