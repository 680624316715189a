"""The Review widget: walk a run's calls one at a time and say what a person thinks of each.

::

    Review(results)                     # or Review("path/to/run_dir"); reviewer= defaults to WORKBENCH_REVIEWER
    Review(results, show="failed", scorer="label", blind=True)

Each call shows its messages as sent (tool calls and tool results too), the output (and its tool calls), the
case's expected answer and the scorers' verdicts (``blind=True`` hides both, so the reviewer is not anchored).
A verdict - pass/fail, or a value on the experiment's ``review: {scale: ...}`` - is saved at once, with the
comment and the corrected output if given, into the run folder (:class:`workbench.review.ReviewStore`); the
next call follows. Keys (type them in the small box under the buttons): ``p`` pass, ``f`` fail, digits for
the scale, ``n``/``b`` next/back, ``u`` undo, ``c`` comment, ``e`` correct the output, ``s`` save.

The selection and the keys are pure functions (:mod:`workbench.review.queue`, :mod:`workbench.review.keys`);
this class wires them to controls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ipywidgets as widgets
from traitlets import Bool, Int, Unicode, observe

from ..errors import DataError, WorkbenchError
from ..records import HUMAN_SCORER, CellResult, HumanReview
from ..results import Results
from ..review.keys import key_action, shortcut_help
from ..review.queue import REVIEW_FILTERS, CellId, cell_id, filter_counts, progress, review_queue
from ..review.spec import ReviewSpec
from ..review.store import ReviewStore, default_reviewer
from .cells import highlight, messages_html, output_text, tool_calls_html
from .fallback import StaticFallback, clip, esc, hide_snapshots_widget, html_table


def _load(run_dir: str | Path) -> Results:
    """A run folder's results with their experiment (its review scale, the cases' expected answers)."""
    from ..runs.layout import load_run

    if not Path(run_dir).is_dir():
        raise DataError(f"{run_dir} is not a run folder (it should hold results.sqlite)")
    results = load_run(run_dir)
    if results is None:
        raise DataError(f"{run_dir} holds no results (results.sqlite or results.jsonl): nothing to review")
    return results


def _expected_of(results: Results) -> dict[str, Any]:
    if results.experiment is None:
        return {}
    try:
        return {c.id: c.expected for c in results.experiment.load_cases()}
    except Exception:  # the dataset moved since the run: review without expected answers
        return {}


def review_cell_html(rec: CellResult, *, expected: Any = None, blind: bool = False, position: str = "") -> str:
    """One call as the reviewer sees it: messages, output, tool calls, expected answer and scores (unless blind)."""
    parts = [f'<div class="wb-review-cell" style="font:13px system-ui,sans-serif">'
             f'<div><b>{esc(rec.case_id)}</b> × <b>{esc(rec.variant)}</b> on {esc(rec.target)} · repeat {rec.repeat}'
             f'<span style="color:#888"> {esc(position)}</span></div>',
             '<div style="margin-top:4px;color:#555">messages as sent</div>', messages_html(rec.messages)]
    shown = next((s for s in rec.scores if s.scorer != HUMAN_SCORER and s.span), None) if not blind else None
    parts.append(f'<div style="margin-top:6px;color:#555">output · {esc(rec.outcome)}</div>'
                 f'<pre class="wb-review-output" style="white-space:pre-wrap;font-size:13px;margin:0;'
                 f'background:#f8f8f8;padding:6px">{highlight(output_text(rec), shown.span if shown else None)}</pre>')
    if rec.tool_calls:
        parts.append('<div style="color:#555">tool calls</div>' + tool_calls_html(rec.tool_calls))
    if not blind:
        if expected not in (None, "", []):
            parts.append(f'<div style="margin-top:4px">expected: <b>{esc(clip(expected, 300))}</b></div>')
        for s in rec.scores:
            if s.scorer == HUMAN_SCORER:
                continue
            expl = f" - {esc(clip(s.explanation, 200))}" if s.explanation else ""
            parts.append(f'<div class="wb-review-score" style="font-size:12px">{esc(s.scorer)}: '
                         f'<b>{esc(s.outcome)}</b>{expl}</div>')
    parts.append("</div>")
    return "".join(parts)


class Review(StaticFallback, widgets.VBox):
    """Review the calls of a run one at a time (see the module docstring). State: ``show`` (the filter),
    ``position`` (in the filtered queue), ``reviewer``, ``scorer`` (for failed/flaky/ambiguous), ``blind``."""

    show = Unicode("unreviewed", help=f"which calls to walk: {', '.join(REVIEW_FILTERS)}")
    position = Int(0, help="index of the shown call in the filtered queue")
    reviewer = Unicode("", help="who is reviewing (saved with every review)")
    scorer = Unicode("", help="the scorer that decides failed / flaky / ambiguous ('' = any)")
    sample_size = Int(20, help="how many calls the 'sample' filter picks")
    seed = Int(0, help="seed of the 'sample' filter")
    blind = Bool(False, help="hide the scorers' verdicts and the expected answer")
    advance = Bool(True, help="go to the next call after a verdict")

    def __init__(self, results: Results | str | Path, *, reviewer: str | None = None, show: str = "unreviewed",
                 scorer: str | None = None, blind: bool = False, sample_size: int = 20, seed: int = 0,
                 spec: ReviewSpec | None = None):
        if not isinstance(results, Results):
            results = _load(results)
        if results.run_dir is None:
            raise DataError("these results have no run folder to store reviews in: run with out=..., or load "
                            "them with Results.load(run_dir)")
        self.results = results
        self.store = ReviewStore(results.run_dir)
        self.spec = spec or (results.experiment.review if results.experiment is not None else None) or ReviewSpec()
        self.expected = _expected_of(results)
        self.queue: list[CellId] = []
        self.last_saved: HumanReview | None = None
        self._ready = self._syncing = False
        self._by_id = {cell_id(r): r for r in results.records}
        self._build_controls()
        super().__init__()
        self.add_class("wb-review")
        self.children = self._layout()
        with self.hold_trait_notifications():
            self.reviewer = reviewer or default_reviewer()
            self.blind, self.sample_size, self.seed = blind, sample_size, seed
            self.scorer = scorer or ""
            self.show = show
        self._ready = True
        self._rebuild_queue()

    # ------------------------------------------------------------------------------------------ controls
    def _build_controls(self) -> None:
        self.filter_toggle = widgets.ToggleButtons(options=list(REVIEW_FILTERS), value="unreviewed",
                                                   style={"button_width": "132px"})
        self.filter_toggle.add_class("wb-review-filter")
        names = [s for s in self.results.scorers if s != HUMAN_SCORER]
        self.scorer_pick = widgets.Dropdown(options=[("any scorer", "")] + [(n, n) for n in names], value="",
                                            description="judged by", disabled=not names)
        self.reviewer_box = widgets.Text(description="reviewer", continuous_update=False,
                                         layout=widgets.Layout(width="220px"))
        self.progress_html = widgets.HTML()
        self.progress_html.add_class("wb-review-progress")
        self.cell_html = widgets.HTML()
        self.cell_html.add_class("wb-review-detail")
        self.current_html = widgets.HTML()
        self.current_html.add_class("wb-review-current")
        self.pass_button = widgets.Button(description="Pass (p)", button_style="success", icon="check")
        self.pass_button.add_class("wb-review-pass")
        self.fail_button = widgets.Button(description="Fail (f)", button_style="danger", icon="times")
        self.fail_button.add_class("wb-review-fail")
        values = self.spec.values()
        self.scale_buttons = widgets.ToggleButtons(
            options=[(f"{v}" + (f" {self.spec.labels[v]}" if v in self.spec.labels else ""), v) for v in values],
            value=None, style={"button_width": "auto"}, layout=widgets.Layout(display="" if values else "none"))
        self.scale_buttons.add_class("wb-review-scale")
        self.back_button = widgets.Button(description="Back (b)", icon="chevron-left")
        self.next_button = widgets.Button(description="Next (n)", icon="chevron-right")
        self.undo_button = widgets.Button(description="Undo (u)", icon="undo")
        self.save_button = widgets.Button(description="Save (s)", icon="save")
        self.comment_box = widgets.Textarea(placeholder="comment (optional)", layout=widgets.Layout(width="100%"))
        self.comment_box.add_class("wb-review-comment")
        self.correction_box = widgets.Textarea(description="", layout=widgets.Layout(width="100%", height="90px"))
        self.correction_box.add_class("wb-review-correction")
        self.keys_box = widgets.Text(placeholder="click here, then type: " + shortcut_help(self.spec.scale),
                                     continuous_update=True, layout=widgets.Layout(width="100%"))
        self.keys_box.add_class("wb-review-keys")
        self.status_html = widgets.HTML()
        self.status_html.add_class("wb-review-status")

        self.filter_toggle.observe(self._filter_clicked, names="value")
        self.scorer_pick.observe(lambda c: setattr(self, "scorer", c["new"] or ""), names="value")
        self.reviewer_box.observe(lambda c: setattr(self, "reviewer", c["new"]), names="value")
        self.pass_button.on_click(lambda _: self.verdict("pass"))
        self.fail_button.on_click(lambda _: self.verdict("fail"))
        self.scale_buttons.observe(self._scale_clicked, names="value")
        self.back_button.on_click(lambda _: self.back())
        self.next_button.on_click(lambda _: self.next())
        self.undo_button.on_click(lambda _: self.undo())
        self.save_button.on_click(lambda _: self.save())
        self.keys_box.observe(self._typed, names="value")

    def _layout(self) -> list[widgets.Widget]:
        instructions = (f'<div style="font:13px system-ui,sans-serif;color:#333">{esc(self.spec.instructions)}</div>'
                        if self.spec.instructions else "")
        head = widgets.HTML(f'<div style="font:13px system-ui,sans-serif"><b>Review</b> · {esc(self.results.name)} '
                            f'({len(self.results)} calls)</div>{instructions}')
        label = widgets.HTML('<div style="font:12px system-ui,sans-serif;color:#555">corrected output (leave as it '
                             'is if the output is right; edit it to record what it should have been)</div>')
        return [hide_snapshots_widget(), head, self.filter_toggle, widgets.HBox([self.scorer_pick, self.reviewer_box]),
                self.progress_html, self.cell_html, self.current_html,
                widgets.HBox([self.pass_button, self.fail_button, self.scale_buttons]),
                self.keys_box, self.comment_box, label, self.correction_box,
                widgets.HBox([self.back_button, self.next_button, self.save_button, self.undo_button]),
                self.status_html]

    # ---------------------------------------------------------------------------------------------- state
    @observe("show")
    def _show_changed(self, change: dict) -> None:
        if change["new"] not in REVIEW_FILTERS:
            raise DataError(f"show={change['new']!r}: use one of {', '.join(REVIEW_FILTERS)}")
        if self.filter_toggle.value != change["new"]:
            self.filter_toggle.value = change["new"]
        self._rebuild_queue()

    @observe("scorer", "sample_size", "seed")
    def _selection_changed(self, change: dict) -> None:
        if change["name"] == "scorer" and self.scorer_pick.value != change["new"]:
            if change["new"] not in [v for _, v in self.scorer_pick.options]:
                raise DataError(f"scorer={change['new']!r}: not a scorer of this run "
                                f"({', '.join(v for _, v in self.scorer_pick.options if v) or 'none'})")
            self.scorer_pick.value = change["new"]
        self._rebuild_queue()

    @observe("reviewer")
    def _reviewer_changed(self, change: dict) -> None:
        if self.reviewer_box.value != change["new"]:
            self.reviewer_box.value = change["new"]
        self._rebuild_queue()

    @observe("blind")
    def _blind_changed(self, change: dict) -> None:
        self._render()

    @observe("position")
    def _position_changed(self, change: dict) -> None:
        self._load_cell()

    @property
    def mine(self) -> dict[CellId, HumanReview]:
        """This reviewer's current reviews, by cell."""
        return {r.cell: r for r in self.store.reviews(reviewer=self.reviewer or None)}

    def _rebuild_queue(self) -> None:
        if not self._ready or not self.reviewer.strip():
            return
        done = set(self.mine)
        order = list(dict.fromkeys(self.expected)) or None
        self.queue = review_queue(self.results.records, self.show, reviewed=done, scorer=self.scorer or None,
                                  sample_size=self.sample_size, seed=self.seed, order=order)
        self._update_counts(done)
        start = next((i for i, k in enumerate(self.queue) if k not in done), 0)
        if self.position != start:
            self.position = start  # loads the cell
        else:
            self._load_cell()

    def _update_counts(self, done: set[CellId] | None = None) -> None:
        """The filter buttons' counts (``unreviewed (13)``) for this reviewer's reviews now; the queue being
        walked stays as it is, so a saved verdict does not make the walk jump."""
        done = set(self.mine) if done is None else done
        counts = filter_counts(self.results.records, reviewed=done, scorer=self.scorer or None,
                               sample_size=self.sample_size, seed=self.seed)
        self._syncing = True  # new labels (counts) reset the toggle's value: that is not a click
        try:
            self.filter_toggle.options = [(f"{f} ({counts[f]})", f) for f in REVIEW_FILTERS]
            self.filter_toggle.value = self.show
        finally:
            self._syncing = False

    @property
    def current(self) -> CellResult | None:
        """The call on screen (None when the filter selects nothing)."""
        if not self.queue:
            return None
        return self._by_id.get(self.queue[min(self.position, len(self.queue) - 1)])

    @property
    def progress(self):
        """:class:`workbench.review.queue.Progress` of this reviewer over the queue and the run."""
        return progress(self.queue, self.mine, len(self.results))

    # ------------------------------------------------------------------------------------------- actions
    def verdict(self, verdict: str | None = None, *, value: float | None = None) -> HumanReview | None:
        """Save a review of the current call (pass/fail, or a value on the scale) with the comment and the
        corrected output, then go on to the next call (``advance``)."""
        rec = self.current
        if rec is None:
            self._say("Nothing to review with this filter.")
            return None
        try:
            review = self.store.add_review(
                rec, verdict=verdict, value=value, comment=self.comment_box.value,
                corrected_output=self.correction_box.value, reviewer=self.reviewer,
                scale=tuple(map(float, self.spec.scale)) if value is not None and self.spec.scale else None,
                pass_at=self.spec.threshold if value is not None else None)
        except WorkbenchError as e:
            self._say(f"not saved: {e}", error=True)
            return None
        self.last_saved = review
        self._reload()
        self._update_counts()
        what = review.verdict or f"{review.value:g}"
        self._say(f"saved: {rec.case_id} / {rec.variant} → {what}"
                  + (" with a corrected output" if review.corrected_output else ""))
        if self.advance and self.position < len(self.queue) - 1:
            self.position += 1
        else:
            self._render()
        return review

    def save(self) -> HumanReview | None:
        """Save the comment and correction again with this reviewer's current verdict (or value) of the call."""
        rec = self.current
        old = self.mine.get(cell_id(rec)) if rec is not None else None
        if old is None:
            self._say("Give a verdict first (p pass, f fail" + (", or a value" if self.spec.scale else "") + ").",
                      error=True)
            return None
        keep, self.advance = self.advance, False
        try:
            return self.verdict(old.verdict, value=old.value)
        finally:
            self.advance = keep

    def undo(self) -> None:
        """Withdraw this reviewer's review of the current call."""
        rec = self.current
        if rec is None or cell_id(rec) not in self.mine:
            self._say("This call has no review of yours to undo.")
            return
        self.store.clear(rec, reviewer=self.reviewer)
        self._reload()
        self._update_counts()
        self._say(f"review of {rec.case_id} / {rec.variant} withdrawn")
        self._load_cell()

    def _reload(self) -> None:
        """The results' ``human`` scores again from the store (the notebook's Results see the new review)."""
        self.results.reload_reviews()
        self._by_id = {cell_id(r): r for r in self.results.records}

    def refresh(self) -> None:
        """Read the reviews again (someone else, or a script, added some) and rebuild the queue."""
        self._reload()
        self._rebuild_queue()

    def next(self) -> None:
        self.position = min(self.position + 1, max(len(self.queue) - 1, 0))

    def back(self) -> None:
        self.position = max(self.position - 1, 0)

    def press(self, key: str) -> None:
        """What typing ``key`` in the shortcut box does."""
        action = key_action(key, self.spec.scale)
        if action is None:
            return
        if action.name in ("pass", "fail"):
            self.verdict(action.name)
        elif action.name == "value":
            self.verdict(value=action.value)
        elif action.name in ("next", "back", "undo", "save"):
            getattr(self, action.name)()
        elif action.name == "comment":
            self._focus(self.comment_box)
        elif action.name == "edit":
            self._focus(self.correction_box)

    def _typed(self, change: dict) -> None:
        text = change["new"]
        if not text:
            return
        self.keys_box.value = ""
        for key in text:
            self.press(key)

    def _filter_clicked(self, change: dict) -> None:
        if not self._syncing and change["new"] is not None:
            self.show = change["new"]

    def _scale_clicked(self, change: dict) -> None:
        if change["new"] is not None and not getattr(self, "_loading", False):
            self.verdict(value=change["new"])

    @staticmethod
    def _focus(w: widgets.Widget) -> None:
        focus = getattr(w, "focus", None)
        if callable(focus):  # ipywidgets 8: moves the browser's cursor there
            focus()

    # ---------------------------------------------------------------------------------------- rendering
    def _load_cell(self) -> None:
        rec = self.current
        mine = self.mine.get(cell_id(rec)) if rec is not None else None
        self._loading = True
        try:
            self.comment_box.value = mine.comment if mine else ""
            self.correction_box.value = (mine.corrected_output if mine and mine.corrected_output
                                         else (rec.output if rec is not None else ""))
            self.scale_buttons.value = (int(mine.value) if mine and mine.value is not None
                                        and int(mine.value) in self.spec.values() else None)
        finally:
            self._loading = False
        self._render()

    def _render(self) -> None:
        rec = self.current
        p = self.progress
        self.progress_html.value = (f'<div style="font:13px system-ui,sans-serif"><b>{esc(p.text())}</b>'
                                    f'<span style="color:#555"> · filter {esc(self.show)} · reviewer '
                                    f'{esc(self.reviewer)}</span></div>')
        for b in (self.pass_button, self.fail_button, self.save_button, self.undo_button):
            b.disabled = rec is None
        self.back_button.disabled = self.position <= 0
        self.next_button.disabled = self.position >= len(self.queue) - 1
        if rec is None:
            self.cell_html.value = f'<div style="color:#888">No calls match the filter {esc(self.show)}.</div>'
            self.current_html.value = ""
            self.refresh_static(debounce=1.0)
            return
        where = f"({self.position + 1} of {len(self.queue)} in this filter)"
        self.cell_html.value = review_cell_html(rec, expected=self.expected.get(rec.case_id), blind=self.blind,
                                                position=where)
        self.current_html.value = self._current_review_html(rec)
        self.refresh_static(debounce=1.0)

    def _current_review_html(self, rec: CellResult) -> str:
        reviews = [r for r in self.store.reviews() if r.cell == cell_id(rec) and r.experiment == rec.experiment]
        if not reviews:
            return '<div class="wb-review-state" style="font:12px system-ui,sans-serif;color:#888">not reviewed</div>'
        parts = []
        for r in reviews:
            value = f" ({r.value:g} on {r.scale[0]:g}-{r.scale[1]:g})" if r.value is not None and r.scale else ""
            who = "you" if r.reviewer == self.reviewer else r.reviewer
            fixed = " · corrected" if r.corrected_output else ""
            parts.append(f"<b>{esc(r.label)}</b>{esc(value)} by {esc(who)}{fixed}")
        return ('<div class="wb-review-state" style="font:12px system-ui,sans-serif">reviewed: '
                + "; ".join(parts) + "</div>")

    def _say(self, text: str, *, error: bool = False) -> None:
        colour = "#b00" if error else "#0d652d"
        self.status_html.value = f'<div style="font:12px system-ui,sans-serif;color:{colour}">{esc(text)}</div>'

    # ---------------------------------------------------------------------------------------- snapshot
    def static_html(self) -> str:
        reviews = self.store.reviews()
        head = (f'<div style="font:13px system-ui,sans-serif"><b>Review</b> · {esc(self.results.name)}: '
                f'{len({(r.experiment, *r.cell) for r in reviews})} of {len(self.results)} calls reviewed by '
                f'{len({r.reviewer for r in reviews})} reviewer(s)</div>')
        rows = [[r.case_id, r.variant, r.target, str(r.repeat), r.label + (f" ({r.value:g})" if r.value is not None
                 else ""), r.reviewer, clip(r.comment, 80), "yes" if r.corrected_output else ""]
                for r in reviews[:200]]
        table = html_table(["case", "variant", "target", "repeat", "verdict", "reviewer", "comment", "corrected"],
                           rows) if rows else ""
        return head + table

    def static_text(self) -> str:
        return f"<Review {self.results.name!r}: {self.progress.text()}>"
