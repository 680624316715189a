"""Statistics people can trust: every number comes with its uncertainty, and comparisons are paired.

Pure functions over numbers and over the results DataFrame the harness writes (one row per call)::

    case_id, variant, target, repeat, output, outcome, error_type, cost_usd, prompt_tokens,
    completion_tokens, latency_s, score.<scorer>, passed.<scorer>

``score.<scorer>`` is NaN where the scorer failed on that cell; such cells are *excluded* from means and
counted separately (``n_errors``), never silently treated as fails. Column names are parameters with these
defaults; ``value="exact"`` is read as ``score.exact`` and ``passed="exact"`` as ``passed.exact``, and the
defaults ``"score"``/``"passed"`` pick the only scorer when there is just one.

Methods, and why:

- pass rates (0/1 data): the **Wilson** score interval - unlike the textbook ``p ± 1.96·se`` it stays inside
  [0, 1] and keeps its coverage at 0/10 or 10/10, which small prompt-engineering datasets hit all the time;
- other scores: a seeded **percentile bootstrap** (deterministic, so a report does not change when re-run);
- repeats of a case are not independent evidence: with several rows per case, intervals are computed over
  per-case means (a cluster bootstrap in effect), so ten repeats of twenty cases do not pretend to be 200;
- comparisons pair variants on the same cases: **McNemar's exact test** on the discordant pairs with a
  Newcombe interval for pass rates, a **paired bootstrap** otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from .errors import DataError
from .intervals import CI, bootstrap_ci, clustered_ci, is_binary, mean_ci, resample_stat, wilson_ci, z_value

__all__ = [
    "CI", "PairedComparison", "wilson_ci", "bootstrap_ci", "mean_ci", "summarize", "pass_at_k", "pass_hat_k",
    "repeat_metrics", "flakiness", "paired_comparison", "newcombe_paired_ci", "pareto_front", "resolve_column",
]

# ------------------------------------------------------------------------------------------- intervals


# CI, wilson_ci, bootstrap_ci and mean_ci live in intervals.py (no pandas or scipy: the command line and the
# ledger's summaries use them too); they are part of this module's API as before.
_z = z_value
_resample_stat = resample_stat
_is_binary = is_binary


# ---------------------------------------------------------------------------------------------- columns


def resolve_column(df: pd.DataFrame, name: str, prefix: str) -> str:
    """The column meant by ``name``: itself, ``<prefix>.<name>``, or - for the bare prefix - the only one.

    ``resolve_column(df, "exact", "score") -> "score.exact"``; raises :class:`DataError` listing the choices.
    """
    if name in df.columns:
        return name
    if f"{prefix}.{name}" in df.columns:
        return f"{prefix}.{name}"
    choices = [c for c in df.columns if str(c).startswith(prefix + ".")]
    if name == prefix and len(choices) == 1:
        return choices[0]
    hint = f"; choose one of {', '.join(choices)}" if choices else ""
    raise DataError(f"the results have no column {name!r}{hint}")


def _check_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{what}: the results have no column {', '.join(map(repr, missing))} "
                        f"(columns: {', '.join(map(str, df.columns))})")


def _as_float(series: pd.Series) -> pd.Series:
    """Scores or pass flags as floats with NaN for missing (bool / boolean-with-NA / object all work)."""
    if series.dtype == object or str(series.dtype) == "boolean":
        series = series.map(lambda v: np.nan if v is None or v is pd.NA else v)
    return pd.to_numeric(series, errors="coerce").astype(float)


def _by(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def _groups(df: pd.DataFrame, by: list[str]):
    if not by:
        yield (), df
        return
    for key, group in df.groupby(by, sort=False, dropna=False):
        yield (key if isinstance(key, tuple) else (key,)), group


# ---------------------------------------------------------------------------------------------- summary


def summarize(df: pd.DataFrame, value: str = "score", by: str | Sequence[str] | None = ("variant", "target"), *,
              case: str | None = "case_id", confidence: float = 0.95, cost: str = "cost_usd",
              tokens: Sequence[str] = ("prompt_tokens", "completion_tokens"), n_resamples: int = 2000,
              seed: int = 0, verdict: str | None = None) -> pd.DataFrame:
    """One row per group: ``n``, ``n_errors``, ``mean``, ``ci_low``, ``ci_high``, ``method`` (+ cost, tokens).

    - ``n`` counts scored rows; rows whose value is NaN (scorer error, failed call) are left out of the mean
      and counted in ``n_errors``.
    - With a verdict column (``verdict``; by default ``verdict.<scorer>`` next to ``score.<scorer>``),
      ``n_ambiguous`` and ``n_refused`` count the answers that hedged between labels or declined: they are in
      ``n`` and in the mean as fails, and counted so a reader sees why.
    - When a group has several rows for the same ``case`` (repeats), the interval is computed over per-case
      means, because repeats of one case are not independent; ``n_cases`` says how many there were.
      Wilson is used when those per-case values are all 0/1, the bootstrap otherwise (see :func:`mean_ci`).
    - ``cost`` and ``tokens`` columns, when present, are summed per group (failed calls cost money too).
    """
    col = resolve_column(df, value, "score")
    keys = _by(by)
    _check_columns(df, keys, "summarize")
    verdicts = verdict if verdict is not None else _verdict_column(df, col)
    rows = []
    for key, group in _groups(df, keys):
        values = _as_float(group[col])
        ok = values.notna()
        ci = _clustered_ci(values[ok], group.loc[ok, case] if case and case in group.columns else None,
                           confidence, n_resamples, seed)
        row: dict[str, Any] = dict(zip(keys, key))
        row.update(n=int(ok.sum()), n_errors=int((~ok).sum()), n_cases=ci.n, mean=ci.mean, ci_low=ci.low,
                   ci_high=ci.high, method=ci.method)
        if verdicts and verdicts in group.columns:
            seen = group[verdicts]
            row.update(n_ambiguous=int((seen == "ambiguous").sum()), n_refused=int((seen == "refused").sum()))
        for extra in (cost, *tokens):
            if extra and extra in group.columns:
                present = pd.to_numeric(group[extra], errors="coerce").dropna().tolist()
                row[extra] = math.fsum(present) if present else math.nan  # as intervals.summarize_values
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        out = pd.DataFrame(columns=[*keys, "n", "n_errors", "n_cases", "mean", "ci_low", "ci_high", "method"])
    return out


def _verdict_column(df: pd.DataFrame, score_column: str) -> str | None:
    """``verdict.<scorer>`` for ``score.<scorer>``, when the results have it."""
    if score_column.startswith("score."):
        name = "verdict." + score_column[len("score."):]
        return name if name in df.columns else None
    return None


def _clustered_ci(values: pd.Series, cases: pd.Series | None, confidence: float, n_resamples: int,
                  seed: int) -> CI:
    return clustered_ci(values.tolist(), None if cases is None else cases.tolist(), confidence, n_resamples, seed)


# ---------------------------------------------------------------------------------------------- repeats


def _check_nck(n: int, c: int, k: int) -> None:
    if not (0 <= c <= n) or k < 1:
        raise DataError(f"need 0 <= c <= n and k >= 1, got n={n}, c={c}, k={k}")
    if k > n:
        raise DataError(f"k={k} is larger than the number of samples n={n}: run at least k repeats")


def pass_at_k(n: int, c: int, k: int) -> float:
    """pass@k: the chance that at least one of k samples passes, estimated without bias from n samples with
    c passes (Chen et al. 2021, "Evaluating Large Language Models Trained on Code"): 1 - C(n-c,k) / C(n,k)."""
    _check_nck(n, c, k)
    if n - c < k:
        return 1.0
    # the product form avoids huge binomials: C(n-c,k)/C(n,k) = prod_{i=n-c+1..n} (1 - k/i)
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_hat_k(n: int, c: int, k: int) -> float:
    """pass^k: the chance that all of k samples pass - a reliability measure (Yao et al. 2024, tau-bench):
    C(c,k) / C(n,k)."""
    _check_nck(n, c, k)
    if c < k:
        return 0.0
    return float(special.comb(c, k, exact=True) / special.comb(n, k, exact=True))


def _pass_counts(df: pd.DataFrame, passed: str, case: str, by: list[str]) -> pd.DataFrame:
    col = resolve_column(df, passed, "passed")
    _check_columns(df, [case, *by], "repeats")
    flags = _as_float(df[col])
    frame = df[[*by, case]].assign(_p=flags)
    counts = frame.groupby([*by, case], sort=False, dropna=False)["_p"].agg(n="count", c="sum").reset_index()
    counts["n_errors"] = frame.groupby([*by, case], sort=False, dropna=False)["_p"].apply(
        lambda s: int(s.isna().sum())).to_numpy()
    counts["c"] = counts["c"].round().astype(int)
    return counts


def repeat_metrics(df: pd.DataFrame, passed: str = "passed", case: str = "case_id",
                   by: str | Sequence[str] | None = ("variant", "target"), ks: Sequence[int] = (1, 3, 5)
                   ) -> pd.DataFrame:
    """Per group: ``pass@k`` (any of k attempts passes) and ``pass^k`` (all k pass), averaged over cases.

    Each case contributes the unbiased estimate from its own n attempts and c passes; cases with fewer than
    k scored attempts are left out of that k (``n_cases@k`` says how many counted) - NaN when none had k.
    ``pass@1 == pass^1`` is the plain pass rate. Errors (NA pass flags) are not attempts.
    """
    keys = _by(by)
    counts = _pass_counts(df, passed, case, keys)
    rows = []
    for key, group in _groups(counts, keys):
        row: dict[str, Any] = dict(zip(keys, key))
        scored = group[group["n"] > 0]
        row.update(n_cases=int(len(scored)), min_repeats=int(scored["n"].min()) if len(scored) else 0,
                   max_repeats=int(scored["n"].max()) if len(scored) else 0)
        for k in ks:
            eligible = scored[scored["n"] >= k]
            at = [pass_at_k(int(n), int(c), k) for n, c in zip(eligible["n"], eligible["c"])]
            hat = [pass_hat_k(int(n), int(c), k) for n, c in zip(eligible["n"], eligible["c"])]
            row[f"pass@{k}"] = float(np.mean(at)) if at else math.nan
            row[f"pass^{k}"] = float(np.mean(hat)) if hat else math.nan
            row[f"n_cases@{k}"] = len(at)
        rows.append(row)
    return pd.DataFrame(rows)


def flakiness(df: pd.DataFrame, passed: str = "passed", case: str = "case_id",
              by: str | Sequence[str] | None = ("variant", "target")) -> pd.DataFrame:
    """Per case and group: ``n``, ``n_passed``, ``pass_rate`` and ``status``.

    ``stable_pass`` (every scored attempt passed), ``stable_fail`` (none did), ``flaky`` (some did), or
    ``error`` (no attempt could be scored). With one repeat nothing can be flaky: run repeats to see it.
    """
    keys = _by(by)
    counts = _pass_counts(df, passed, case, keys)
    status = np.select([counts["n"] == 0, counts["c"] == counts["n"], counts["c"] == 0],
                       ["error", "stable_pass", "stable_fail"], default="flaky")
    return pd.DataFrame({
        **{k: counts[k] for k in (*keys, case)},
        "n": counts["n"].astype(int), "n_passed": counts["c"], "n_errors": counts["n_errors"],
        "pass_rate": np.where(counts["n"] > 0, counts["c"] / counts["n"].where(counts["n"] > 0, 1), np.nan),
        "status": status,
    })


# ------------------------------------------------------------------------------------------ comparisons


@dataclass(frozen=True)
class PairedComparison:
    """``b`` compared with ``a`` on the same cases; ``diff = mean_b - mean_a``."""

    a: str
    b: str
    n_pairs: int
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    method: str  # "mcnemar exact" | "paired bootstrap" | "none"
    confidence: float
    a_better: int  # pairs where a scored higher (binary: a passed, b failed - discordant)
    b_better: int  # pairs where b scored higher (binary: b passed, a failed - discordant)
    ties: int
    n_unpaired: int  # cases that only one of the two has a value for (left out)
    summary: str

    @property
    def discordant(self) -> int:
        return self.a_better + self.b_better

    @property
    def significant(self) -> bool:
        return self.p_value < 1 - self.confidence

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired_comparison(df: pd.DataFrame, a: str, b: str, value: str = "score", case: str = "case_id",
                      variant: str = "variant", *, within: str | Sequence[str] | None = None,
                      confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0) -> PairedComparison:
    """Is ``b`` better than ``a``? Pair them on the same cases and test the difference.

    - ``variant`` is the column holding ``a`` and ``b`` (use ``variant="target"`` to compare two models).
    - Rows are paired on ``case`` plus ``within``; by default ``within`` is the other of variant/target when
      it has several values, so comparing two variants across two models pairs each (case, model).
    - Repeats are averaged per pair first. If every pair's values are then 0/1, it is a pass-rate comparison:
      McNemar's exact test (a binomial test on the discordant pairs) and Newcombe's interval for the
      difference of paired proportions. Otherwise a paired bootstrap of the mean difference, with a
      two-sided p-value from the bootstrap distribution shifted to the null.
    - NaN values (scorer errors) are dropped before pairing; pairs missing either side are counted in
      ``n_unpaired`` and left out.
    """
    col = resolve_column(df, value, "score")
    _check_columns(df, [case, variant], "paired_comparison")
    pair_keys = [case, *_within(df, variant, within)]
    present = set(df[variant].astype(str).unique())
    for name in (a, b):
        if str(name) not in present:
            raise DataError(f"no rows with {variant} == {name!r}; {variant}s: {', '.join(sorted(present))}")
    rows = df[df[variant].astype(str).isin([str(a), str(b)])].assign(_v=lambda d: _as_float(d[col]))
    rows = rows[rows["_v"].notna()]
    means = rows.groupby([*pair_keys, variant], sort=False)["_v"].mean().unstack(variant)
    means = means.reindex(columns=[a, b])
    both = means.dropna()
    n_unpaired = int(len(means) - len(both))
    xa, xb = both[a].to_numpy(float), both[b].to_numpy(float)
    if len(both) == 0:
        return _result(a, b, xa, xb, math.nan, math.nan, math.nan, "none", confidence, n_unpaired, pair_keys)
    if _is_binary(xa) and _is_binary(xb):
        low, high, p = _mcnemar(xa, xb, confidence)
        method = "mcnemar exact"
    else:
        low, high, p = _paired_bootstrap(xb - xa, confidence, n_resamples, seed)
        method = "paired bootstrap"
    return _result(a, b, xa, xb, low, high, p, method, confidence, n_unpaired, pair_keys)


def _within(df: pd.DataFrame, variant: str, within: str | Sequence[str] | None) -> list[str]:
    if within is not None:
        keys = _by(within)
        _check_columns(df, keys, "paired_comparison within")
        return keys
    other = {"variant": "target", "target": "variant"}.get(variant)
    if other and other in df.columns and df[other].nunique(dropna=False) > 1:
        return [other]
    return []


def _mcnemar(xa: np.ndarray, xb: np.ndarray, confidence: float) -> tuple[float, float, float]:
    n = len(xa)
    n11 = int(np.sum((xa == 1) & (xb == 1)))
    n10 = int(np.sum((xa == 1) & (xb == 0)))  # a passed, b failed
    n01 = int(np.sum((xa == 0) & (xb == 1)))  # b passed, a failed
    n00 = n - n11 - n10 - n01
    discordant = n10 + n01
    p = 1.0 if discordant == 0 else float(stats.binomtest(n01, discordant, 0.5).pvalue)
    low, high = newcombe_paired_ci(n11, n10, n01, n00, confidence)
    return low, high, p


def newcombe_paired_ci(n11: int, n10: int, n01: int, n00: int, confidence: float = 0.95) -> tuple[float, float]:
    """Interval for ``p_b - p_a`` from a paired 2x2 table (Newcombe 1998, method 10, the "square-and-add"
    interval: Wilson intervals of the two rates combined with their estimated correlation).
    ``n11``: both passed; ``n10``: a passed and b failed; ``n01``: the reverse; ``n00``: both failed.

    Unlike the Wald interval it stays inside [-1, 1] and behaves at 0 or all discordant pairs.
    """
    n = n11 + n10 + n01 + n00
    if n == 0:
        return (math.nan, math.nan)
    pa, pb = (n11 + n10) / n, (n11 + n01) / n
    la, ua = wilson_ci(n11 + n10, n, confidence)
    lb, ub = wilson_ci(n11 + n01, n, confidence)
    denom = (n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00)
    # Newcombe's estimate of the correlation between the two rates, shrunk towards 0 by n/2 when positive
    cross = n11 * n00 - n10 * n01
    cross = cross - n / 2 if cross > n / 2 else (0.0 if cross >= 0 else cross)
    phi = cross / math.sqrt(denom) if denom else 0.0
    d = pb - pa
    low = d - math.sqrt(max(0.0, (pb - lb) ** 2 - 2 * phi * (pb - lb) * (ua - pa) + (ua - pa) ** 2))
    high = d + math.sqrt(max(0.0, (ub - pb) ** 2 - 2 * phi * (ub - pb) * (pa - la) + (pa - la) ** 2))
    return (max(-1.0, low), min(1.0, high))


def _paired_bootstrap(d: np.ndarray, confidence: float, n_resamples: int, seed: int) -> tuple[float, float, float]:
    observed = float(d.mean())
    if np.all(d == d[0]):
        return observed, observed, (1.0 if observed == 0 else 0.0)
    rng = np.random.default_rng(seed)
    boot = _resample_stat(d, np.mean, n_resamples, rng)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha])
    # p-value: how often a world where the true difference is 0 (the bootstrap shifted by -observed)
    # gives a mean difference at least as far from 0 as the one observed; +1 keeps it above 0
    extreme = int(np.sum(np.abs(boot - observed) >= abs(observed) - 1e-12))
    return float(low), float(high), (extreme + 1) / (n_resamples + 1)


def _result(a: str, b: str, xa: np.ndarray, xb: np.ndarray, low: float, high: float, p: float, method: str,
            confidence: float, n_unpaired: int, pair_keys: list[str]) -> PairedComparison:
    n = len(xa)
    mean_a = float(xa.mean()) if n else math.nan
    mean_b = float(xb.mean()) if n else math.nan
    diff = mean_b - mean_a
    a_better, b_better = int(np.sum(xa > xb)), int(np.sum(xb > xa))
    comparison = PairedComparison(
        a=str(a), b=str(b), n_pairs=n, mean_a=mean_a, mean_b=mean_b, diff=diff, ci_low=float(low),
        ci_high=float(high), p_value=float(p), method=method, confidence=confidence, a_better=a_better,
        b_better=b_better, ties=n - a_better - b_better, n_unpaired=n_unpaired, summary="",
    )
    scale = 100.0 if np.all((xa >= 0) & (xa <= 1) & (xb >= 0) & (xb <= 1)) else 1.0
    unit = "points" if scale == 100 else "(mean difference)"
    plural = "" if n == 1 else "s"
    unit_name = f"paired case{plural}" if pair_keys[1:] == [] else f"paired ({', '.join(pair_keys)}) cell{plural}"
    object.__setattr__(comparison, "summary", _sentence(comparison, scale, unit, unit_name))
    return comparison


def _sentence(c: PairedComparison, scale: float, unit: str, pairs: str) -> str:
    """One plain-English sentence: who wins, by how much, how sure, on how much evidence."""
    if c.n_pairs == 0:
        return f"No comparison: {c.a} and {c.b} share no scored cases."
    pct = round(c.confidence * 100)
    num = (lambda v: f"{v * scale:.0f}") if scale == 100 else (lambda v: f"{v:.3g}")
    ci = f"{pct}% CI {num(c.ci_low)} to {num(c.ci_high)}"
    evidence = f"{ci}, {_p(c.p_value)}, on {c.n_pairs} {pairs}"
    if c.n_unpaired:  # cases only one side has: the comparison is on the overlap, and says so
        evidence += f"; {c.n_unpaired} unpaired left out"
    size = f"{num(abs(c.diff))} {unit}"
    if c.diff == 0:
        return f"{c.b} and {c.a} score the same ({evidence})."
    winner, loser = (c.b, c.a) if c.diff > 0 else (c.a, c.b)
    if c.significant:
        return f"{winner} beats {loser} by {size} ({evidence})."
    return f"No clear winner: {winner} leads {loser} by {size}, but the difference is not significant ({evidence})."


def _p(p: float) -> str:
    if math.isnan(p):
        return "p=n/a"
    if p < 0.001:
        return "p<0.001"
    return f"p={p:.2g}" if p < 0.1 else f"p={p:.2f}"


# ---------------------------------------------------------------------------------------------- pareto


def pareto_front(df: pd.DataFrame, cost: str = "cost_usd", quality: str = "mean") -> pd.Series:
    """True for rows no other row beats: nothing cheaper-or-equal that is at least as good and strictly
    better in one of the two. Rows with a missing cost or quality are never on the front; identical points
    are both on it. Works on :func:`summarize` output (``mean``, ``cost_usd``)."""
    _check_columns(df, [cost, quality], "pareto_front")
    c = pd.to_numeric(df[cost], errors="coerce").to_numpy(float)
    q = pd.to_numeric(df[quality], errors="coerce").to_numpy(float)
    valid = ~(np.isnan(c) | np.isnan(q))
    on_front = np.zeros(len(df), dtype=bool)
    for i in np.flatnonzero(valid):
        others = valid & (c <= c[i]) & (q >= q[i]) & ((c < c[i]) | (q > q[i]))
        on_front[i] = not others.any()
    return pd.Series(on_front, index=df.index, name="pareto")
