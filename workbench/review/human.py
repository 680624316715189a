"""Reviews as a score: each reviewed cell gets a ``human`` :class:`~workbench.records.Score` (``score.human``,
``passed.human``, ``verdict.human`` in results and exports), so every summary, gate, chart and comparison that
works on a scorer works on the people's verdicts too.

- The cell's latest review counts (any reviewer); every reviewer's verdict is in ``metadata["reviews"]``.
- ``value`` is 1/0 for a pass/fail verdict, or the scale value mapped onto 0..1 (``(v - low) / (high - low)``);
  ``passed`` is the verdict, or ``value >= pass_at`` on the reviewer's scale.
- A review of an *earlier* output (the cell was re-sent and answered differently) does not judge this one: its
  score has no value and says so (verdict ``error``, counted apart from the mean), until someone reviews again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence

from ..records import HUMAN_SCORER, CellResult, HumanReview, Score
from .store import output_sha256


def _value(review: HumanReview) -> float:
    if review.verdict is not None:
        return 1.0 if review.verdict == "pass" else 0.0
    low, high = review.scale  # type: ignore[misc]  # validated: a value comes with its scale
    return (float(review.value) - low) / (high - low)  # type: ignore[arg-type]


def _answer(review: HumanReview) -> str:
    if review.value is not None:
        shown = f"{review.value:g}/{review.scale[1]:g}"  # type: ignore[index]
        return f"{review.verdict} ({shown})" if review.verdict else shown
    return str(review.verdict)


def human_score(reviews: Sequence[HumanReview], output: str | None = None) -> Score | None:
    """The ``human`` score of one cell from its current reviews (None without any). ``output``: the cell's output
    now, to tell a review of this output from one of an earlier answer."""
    if not reviews:
        return None
    latest = max(reviews, key=lambda r: r.created_at)
    meta = {
        "reviewer": latest.reviewer, "reviewed_at": latest.created_at, "comment": latest.comment,
        "corrected_output": latest.corrected_output, "review_value": latest.value,
        "review_scale": list(latest.scale) if latest.scale else None,
        "reviews": [{"reviewer": r.reviewer, "verdict": r.label, "value": r.value, "at": r.created_at}
                    for r in sorted(reviews, key=lambda r: r.created_at)],
    }
    who = f"reviewed by {latest.reviewer} at {latest.created_at}"
    stale = output is not None and latest.output_sha256 is not None and latest.output_sha256 != output_sha256(output)
    if stale:
        meta["stale"] = True
        return Score(scorer=HUMAN_SCORER, value=None, passed=None, verdict="error", answer=_answer(latest),
                     error="StaleReview: the review judged an earlier output of this cell (it was sent again and "
                           "answered differently); review it again",
                     explanation=f"{who}, of an earlier output", metadata=meta)
    ok = latest.passed
    comment = f": {latest.comment}" if latest.comment else ""
    fixed = "; corrected output given" if latest.corrected_output else ""
    return Score(scorer=HUMAN_SCORER, value=_value(latest), passed=ok, verdict="pass" if ok else "fail",
                 answer=_answer(latest), explanation=f"{who}{comment}{fixed}", evidence=latest.comment or None,
                 metadata=meta)


def reviews_by_cell(reviews: Iterable[HumanReview]) -> dict[tuple[str, str, str, str, int], list[HumanReview]]:
    """``(experiment, case_id, variant, target, repeat)`` -> the cell's current reviews."""
    out: dict[tuple[str, str, str, str, int], list[HumanReview]] = defaultdict(list)
    for r in reviews:
        out[(r.experiment, *r.cell)].append(r)
    return dict(out)


def attach_reviews(records: Iterable[CellResult], reviews: Iterable[HumanReview]) -> list[CellResult]:
    """``records`` with their ``human`` score set from ``reviews`` (replacing any earlier one; records without a
    review lose a stale ``human`` score). Idempotent; records without reviews are returned as they are."""
    return list(iter_with_reviews(records, reviews_by_cell(reviews)))


def iter_with_reviews(records: Iterable[CellResult],
                      by_cell: dict[tuple[str, str, str, str, int], list[HumanReview]]) -> Iterator[CellResult]:
    """:func:`attach_reviews` one record at a time (a run folder's records are read a page at a time)."""
    for rec in records:
        found = by_cell.get((rec.experiment, rec.case_id, rec.variant, rec.target, rec.repeat))
        had = any(s.scorer == HUMAN_SCORER for s in rec.scores)
        if not found and not had:
            yield rec
            continue
        scores = [s for s in rec.scores if s.scorer != HUMAN_SCORER]
        score = human_score(found or [], rec.output)
        yield rec.replace(scores=scores + ([score] if score else []))
