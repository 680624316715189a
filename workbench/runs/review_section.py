"""The report's "Human review" section: how much of the run people reviewed, and how far each scorer (and each
pair of reviewers) agrees with them. A pure function of the results and the run folder's reviews; None when
nobody reviewed anything, so runs without reviews show no section. Tables come back as rows: the report renders
them (this module does not import the report)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from ..formatting import percent

if TYPE_CHECKING:  # pragma: no cover
    from ..agreement import Agreement
    from ..results import Results

MAX_DISAGREEMENTS = 20


def _ci(low: float, high: float, as_percent: bool) -> str:
    if low != low or high != high:  # NaN: no interval
        return ""
    return f" [{percent(low)}, {percent(high)}]" if as_percent else f" [{low:.2f}, {high:.2f}]"


def _agreement_row(a: Agreement) -> dict[str, Any]:
    k = a.kappa
    return {"rater": a.b, "against": a.a, "cells": a.n,
            "agreement": (percent(a.accuracy) + _ci(a.accuracy_low, a.accuracy_high, True)) if a.n else "–",
            "kappa [95% CI]": f"{k.value:.2f}{_ci(k.low, k.high, False)}" if k.defined else "undefined",
            "disagreements": len(a.disagreements),
            "not compared": a.only_a + a.only_b}


def review_section(results: Results) -> dict[str, Any] | None:
    """Coverage, the agreement rows, each scorer's confusion matrix and the first disagreements (rows)."""
    from ..review.calibration import agreements
    from ..review.store import read_reviews

    reviews = read_reviews(results.run_dir)
    if not reviews:
        return None
    cells = {(r.experiment, *r.cell) for r in reviews}
    people = sorted({r.reviewer for r in reviews})
    labels = [r.label for r in reviews]
    found = agreements(results)
    outputs = {(r.case_id, r.variant, r.target, r.repeat): r.output for r in results.records}
    comments = {r.cell: r.comment for r in sorted(reviews, key=lambda r: r.created_at)}  # the latest per cell
    rows = [{"rater": a.b, "human": a.a, "case": d.key[0], "variant": d.key[1], "target": d.key[2],
             "repeat": d.key[3], "human says": d.a, "rater says": d.b,
             "output": (outputs.get(d.key) or "")[:160], "comment": comments.get(d.key, "")[:160]}
            for a in found for d in a.disagreements][:MAX_DISAGREEMENTS]
    stale = sum(1 for r in results.records for s in r.scores if s.scorer == "human" and s.metadata.get("stale"))
    return {
        "n_reviewed": len(cells), "n_calls": len(results), "coverage": percent(len(cells) / max(len(results), 1)),
        "reviewers": people, "n_reviews": len(reviews), "n_pass": labels.count("pass"),
        "n_fail": labels.count("fail"), "n_corrected": sum(1 for r in reviews if r.corrected_output),
        "n_stale": stale,
        "agreement": [_agreement_row(a) for a in found],
        "matrices": [(f"{a.b} vs {a.a}", Markup(a.confusion.html())) for a in found if a.n],
        "disagreements": rows,
        "n_disagreements": sum(len(a.disagreements) for a in found),
        "method": found[0].kappa.method if found else "",
    }
