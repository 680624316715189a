"""What a run learned, in a few lines of text: scores with their intervals per variant, the paired verdict, the
spend, and where the report is. ``workbench run`` and ``workbench eval`` (and so ``make demo``) end with it.

A pure function of :class:`~workbench.results.Results` (and the run's :class:`~workbench.runs.manifest.Manifest`
when there is one), numbers written by :mod:`workbench.formatting` like everywhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .. import formatting as fmt
from ..secrets import redact

if TYPE_CHECKING:  # pragma: no cover
    from ..results import Results
    from .manifest import Manifest

MAX_SCORERS = 3  # more scorers than this: the report has them all


def headline(results: Results, manifest: Manifest | None = None, *, report: str | Path | None = None) -> str:
    """The end-of-run summary as text (no trailing newline)."""
    lines = [_title(results, manifest)]
    for scorer in results.scorers[:MAX_SCORERS]:
        lines += _scores(results, scorer)
    if results.scorers:
        lines += _verdicts(results, results.scorers[0])
    lines.append(_spend(results, manifest))
    if len(results.scorers) > MAX_SCORERS:
        lines.append(f"  (+{len(results.scorers) - MAX_SCORERS} more scorers in the report)")
    if report is not None:
        lines.append(f"report: {report}")
    return redact("\n".join(lines))


def _title(results: Results, m: Manifest | None) -> str:
    parts = [results.name]
    if m is not None:
        parts.append(m.run_id)
    parts.append(results.status)
    calls = f"{fmt.count(len(results))} calls"
    if m is not None and m.duration_s:
        calls += f" in {fmt.seconds(m.duration_s)}"
    parts.append(calls)
    if results.n_errors:
        parts.append(f"{fmt.count(results.n_errors)} errors")
    return " · ".join(parts)


def _scores(results: Results, scorer: str) -> list[str]:
    try:  # from the ledger without pandas: the end of a 20,000-call run must not load every record
        table = results.summary_rows(scorer)
    except Exception as e:  # the headline must never hide the report's path
        return [f"  {scorer}: not summarised ({e})"]
    order = {v: i for i, v in enumerate(results.variants)}
    records = sorted(table, key=lambda r: (order.get(r["variant"], len(order)), str(r["target"])))
    rows = [fmt.summary_row(r) for r in records]
    if not rows:
        return []
    rate = any(fmt.is_rate(r.get("method")) for r in table)
    several_targets = len({r["target"] for r in rows}) > 1
    names = [r["variant"] + (f" @ {r['target']}" if several_targets else "") for r in rows]
    width = max(len(n) for n in names)
    out = [f"  {scorer} ({'pass rate' if rate else 'mean score'} with 95% CI):"]
    for name, r in zip(names, rows):
        notes = [f"{r[k]} {k if k != 'errors' or r[k] != '1' else 'error'}" for k in ("ambiguous", "refused", "errors")
                 if r[k] not in ("0", fmt.MISSING)]
        extra = f"  ({', '.join(notes)})" if notes else ""
        out.append(f"    {name:<{width}}  {r['score [95% CI]']:<20} n={r['n']}{extra}")
    return out


def _verdicts(results: Results, scorer: str) -> list[str]:
    from .report import comparisons

    try:
        rows = comparisons(results, scorer)
    except Exception as e:
        return [f"  paired comparison unavailable: {e}"]
    several = len({r["target"] for r in rows}) > 1
    return [f"  paired{' @ ' + r['target'] if several else ''}: {r['summary']}" for r in rows]


def _spend(results: Results, m: Manifest | None) -> str:
    totals = m.totals if m is not None else None
    sums = results.totals()  # SQL over a run folder's ledger: no record parsed
    calls = len(results)
    cached = totals.cache_hits if totals is not None else sums["cache_hits"]
    tokens = sums["prompt_tokens"] + sums["completion_tokens"]
    if sums["cost_usd"] is None and calls:
        cost = "cost unknown (a model has no price)"
    else:
        # the ledger's spend: what this folder paid for, whichever process sent each call
        spent = results.info.get("spent_usd")
        if spent is None:
            spent = sums["spent_usd"] or 0.0
        worth = sums["cost_usd"] or 0.0
        cost = f"spent {fmt.usd(spent)}"
        if abs(worth - spent) > 1e-12:
            cost += f" (all calls at list prices: {fmt.usd(worth)})"
        if worth == 0 and calls:
            cost += " - a free model"
    as_of = f" · prices as of {totals.prices_as_of}" if totals is not None and totals.prices_as_of else ""
    return (f"  {cost} · {fmt.count(tokens)} tokens · {fmt.count(calls - cached)} calls sent, "
            f"{fmt.count(cached)} from the cache{as_of}")


__all__ = ["headline"]
