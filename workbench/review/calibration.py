"""Does a scorer agree with the people who reviewed the run - and would a changed judge rubric agree better?

- :func:`scorer_agreement`: a scorer's verdicts against the human ones, cell by cell (confusion matrix, accuracy,
  Cohen's kappa with its interval, the cells where they disagree: :mod:`workbench.agreement`).
- :func:`reviewer_agreement`: two reviewers against each other, on the cells both reviewed.
- :func:`calibrate`: score the reviewed cells again with a scorer - typically a :class:`JudgeScorer` with an edited
  rubric - and compare its verdicts with the people's. Nothing else is re-run; it costs one judge call per
  reviewed cell, on the judge's own profile (offline by default: the local model).

Labels are ``pass`` / ``fail``: a scorer's ``pass`` is a pass and every other verdict (fail, ambiguous, refused,
filtered) a fail - the rule every summary follows; a scorer *error* is no verdict, and that cell is left out of
the comparison and counted (``only_a``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..agreement import Agreement, agreement
from ..errors import DataError, NotFoundError
from ..records import HUMAN_SCORER, CellResult, HumanReview, Score
from .human import reviews_by_cell

if TYPE_CHECKING:  # pragma: no cover
    from ..results import Results
    from ..scorers.base import Scorer

CellId = tuple[str, str, str, int]  # case_id, variant, target, repeat


def cell_id(record: CellResult | HumanReview) -> CellId:
    return (record.case_id, record.variant, record.target, record.repeat)


def verdict_label(score: Score) -> str | None:
    """``pass`` / ``fail`` for agreement; None when the scorer failed (no verdict to compare)."""
    outcome = score.outcome
    if outcome == "error":
        return None
    return "pass" if outcome == "pass" else "fail"


def _reviews(results: Results) -> list[HumanReview]:
    from .store import read_reviews

    return read_reviews(results.run_dir)


def human_labels(results: Results, *, reviewer: str | None = None) -> dict[CellId, str]:
    """Each reviewed cell's human label: the reviewer's (``reviewer``), else the cell's latest review."""
    found = [r for r in _reviews(results) if reviewer is None or r.reviewer == reviewer]
    if reviewer is not None and not found:
        raise NotFoundError(f"no reviews by {reviewer!r} in {results.run_dir}; reviewers: "
                            f"{', '.join(sorted({r.reviewer for r in _reviews(results)})) or 'none yet'}")
    latest = {}
    for rs in reviews_by_cell(found).values():
        r = max(rs, key=lambda r: r.created_at)
        latest[cell_id(r)] = r.label
    return latest


def scorer_labels(records: Sequence[CellResult], scorer: str) -> dict[CellId, str]:
    out = {}
    for rec in records:
        for s in rec.scores:
            if s.scorer == scorer:
                label = verdict_label(s)
                if label is not None:
                    out[cell_id(rec)] = label
    return out


def _check_scorer(results: Results, scorer: str) -> None:
    names = [s for s in results.scorers if s != HUMAN_SCORER]
    if scorer not in names:
        raise NotFoundError(f"no scorer named {scorer!r} in these results; scorers: {', '.join(names) or 'none'}")


def scorer_agreement(results: Results, scorer: str, *, reviewer: str | None = None,
                     confidence: float = 0.95) -> Agreement:
    """How far ``scorer`` agrees with the human reviews (rows: human, columns: the scorer)."""
    _check_scorer(results, scorer)
    return agreement(human_labels(results, reviewer=reviewer), scorer_labels(results.records, scorer),
                     names=(reviewer or HUMAN_SCORER, scorer), labels=("pass", "fail"), confidence=confidence)


def reviewer_agreement(results: Results, a: str, b: str, *, confidence: float = 0.95) -> Agreement:
    """How far reviewer ``b`` agrees with reviewer ``a`` on the cells both reviewed."""
    if a == b:
        raise DataError(f"reviewer_agreement compares two different reviewers; got {a!r} twice")
    return agreement(human_labels(results, reviewer=a), human_labels(results, reviewer=b), names=(a, b),
                     labels=("pass", "fail"), confidence=confidence)


def agreements(results: Results, *, confidence: float = 0.95) -> list[Agreement]:
    """Every scorer against the human reviews, then every pair of reviewers (empty without reviews)."""
    reviews = _reviews(results)
    if not reviews:
        return []
    out = [scorer_agreement(results, s, confidence=confidence) for s in results.scorers if s != HUMAN_SCORER]
    people = sorted({r.reviewer for r in reviews})
    out += [reviewer_agreement(results, a, b, confidence=confidence)
            for i, a in enumerate(people) for b in people[i + 1:]]
    return out


# ------------------------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class Calibration:
    """A scorer re-run on the reviewed cells: its new scores and how they agree with the people."""

    scorer: str
    agreement: Agreement
    scores: Mapping[CellId, Score]
    before: Agreement | None = None  # the run's own scorer of that name, on the same cells, if it had one

    def summary(self) -> str:
        text = f"{self.scorer} re-run on {len(self.scores)} reviewed cells: {self.agreement.summary()}"
        if self.before is not None and self.before.kappa.defined and self.agreement.kappa.defined:
            delta = self.agreement.kappa.value - self.before.kappa.value
            text += f" Before: {self.before.kappa.describe()} (kappa {delta:+.2f})."
        return text

    def _repr_html_(self) -> str:
        from html import escape

        return (f'<div class="wb-calibration" style="font:13px system-ui,sans-serif"><p>{escape(self.summary())}</p>'
                f"{self.agreement.confusion.html()}</div>")


def _inputs(results: Results, records: Sequence[CellResult]) -> list[Any]:
    from ..scorers.base import ScoreInput

    cases = {}
    if results.experiment is not None:
        try:
            cases = {c.id: c for c in results.experiment.load_cases()}
        except Exception:  # the dataset moved since the run: score without expected values
            cases = {}
    out = []
    for rec in records:
        case = cases.get(rec.case_id)
        out.append(ScoreInput(output=rec.output, parsed=rec.parsed, expected=case.expected if case else None,
                              vars=dict(case.vars) if case else {}, case_id=rec.case_id, variant=rec.variant,
                              messages=rec.messages, outcome=rec.outcome))
    return out


async def _score_all(scorer: Scorer, inputs: Sequence[Any], concurrency: int) -> list[Score]:
    gate = asyncio.Semaphore(concurrency)

    async def one(inp: Any) -> Score:
        async with gate:
            return await scorer.ascore(inp)

    return list(await asyncio.gather(*(one(i) for i in inputs)))


def calibrate(results: Results, scorer: Scorer | Mapping[str, Any] | str, *, reviewer: str | None = None,
              concurrency: int = 4, confidence: float = 0.95) -> Calibration:
    """Score the reviewed cells with ``scorer`` (an instance or a spec, e.g. ``{"judge": {"rubric": ...}}``) and
    compare its verdicts with the human ones; ``before`` compares the run's own scorer of the same name."""
    from .._sync import run_sync
    from ..scorers import build_scorer

    built = build_scorer(scorer)
    humans = human_labels(results, reviewer=reviewer)
    if not humans:
        raise DataError(f"no reviewed cells in {results.run_dir}: review some cells first (the Review widget, or "
                        f"ReviewStore(run_dir).add_review(...)), then calibrate against them")
    records = [r for r in results.records if cell_id(r) in humans]
    scores = run_sync(_score_all(built, _inputs(results, records), max(1, concurrency)))
    by_cell = {cell_id(r): s for r, s in zip(records, scores)}
    labels = {k: lab for k, s in by_cell.items() if (lab := verdict_label(s)) is not None}
    now = agreement(humans, labels, names=(reviewer or HUMAN_SCORER, built.name), labels=("pass", "fail"),
                    confidence=confidence)
    before = None
    if built.name in results.scorers and built.name != HUMAN_SCORER:
        old = {k: v for k, v in scorer_labels(results.records, built.name).items() if k in humans}
        before = agreement(humans, old, names=(reviewer or HUMAN_SCORER, built.name), labels=("pass", "fail"),
                           confidence=confidence)
    return Calibration(built.name, now, by_cell, before)
