"""Confidence intervals for means and pass rates - the arithmetic under :mod:`workbench.stats`, with no pandas or
scipy, so a summary can be computed straight from a run's ledger (``workbench eval`` prints one without loading
a table library; numpy is imported only when a bootstrap is needed).

- pass rates (0/1 values): the **Wilson** score interval - unlike the textbook ``p ± 1.96·se`` it stays inside
  [0, 1] and keeps its coverage at 0/10 or 10/10;
- other scores: a seeded **percentile bootstrap** (deterministic, so a report does not change when re-run);
- several values for one case (repeats) are not independent evidence: the interval is computed over per-case
  means (:func:`clustered_ci`), so ten repeats of twenty cases do not pretend to be 200.

:func:`workbench.stats.summarize` (a DataFrame) and :func:`summarize_values` (plain rows) are the same
computation through the same functions, so the notebook and the command line print the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from statistics import NormalDist
from typing import Any, NamedTuple

from .errors import DataError


class CI(NamedTuple):
    """A mean with its confidence interval and how it was computed."""

    mean: float
    low: float
    high: float
    method: str  # "wilson" | "bootstrap" | "exact" (one value or all values equal) | "none" (no data)
    n: int


def z_value(confidence: float) -> float:
    """The two-sided normal quantile for ``confidence`` (1.96 at 0.95)."""
    if not 0 < confidence < 1:
        raise DataError(f"confidence must be between 0 and 1 (e.g. 0.95), got {confidence!r}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_ci(successes: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``successes / n``; ``(nan, nan)`` when ``n == 0``.

    E.g. 8 of 10 -> (0.490, 0.943) at 95%: the honest width of a ten-case eval.
    """
    if n < 0 or successes < 0 or successes > n:
        raise DataError(f"wilson_ci needs 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return (math.nan, math.nan)
    z = z_value(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # clamp the float noise at the edges: 0/n has low exactly 0, n/n has high exactly 1
    return (max(0.0, centre - half) if successes else 0.0, min(1.0, centre + half) if successes < n else 1.0)


def finite(values: Iterable[Any]) -> list[float]:
    """The values as floats, without the missing ones (None, NaN, and anything that is not a number)."""
    out = []
    for v in values:
        if v is None or isinstance(v, str) and not v.strip():
            continue
        try:
            x = float(v)
        except (TypeError, ValueError):
            continue
        if not math.isnan(x):
            out.append(x)
    return out


def is_binary(x: Sequence[float]) -> bool:
    return len(x) > 0 and all(v == 0 or v == 1 for v in x)


def mean(x: Sequence[float]) -> float:
    return math.fsum(x) / len(x) if len(x) else math.nan


def resample_stat(values, statistic: Callable[..., Any], n_resamples: int, rng):
    """``statistic`` over ``n_resamples`` bootstrap resamples (numpy arrays), in chunks to bound memory."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    n = len(values)
    out = np.empty(n_resamples)
    chunk = max(1, min(n_resamples, 4_000_000 // max(n, 1)))
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        sample = values[rng.integers(0, n, size=(size, n))]
        try:
            out[start:start + size] = statistic(sample, axis=1)
        except TypeError:  # a statistic without an axis argument
            out[start:start + size] = [statistic(row) for row in sample]
    return out


def bootstrap_ci(values: Iterable[float], statistic: Callable[..., Any] | None = None, n_resamples: int = 2000,
                 confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` (default: the mean); missing values are dropped; seeded,
    so reports are reproducible. One value (or all equal) gives a zero-width interval; none gives NaNs."""
    x = finite(values)
    z_value(confidence)
    if not x:
        return (math.nan, math.nan)
    import numpy as np

    statistic = statistic or np.mean
    arr = np.asarray(x, dtype=float)
    if len(x) == 1 or all(v == x[0] for v in x):
        v = float(statistic(arr))
        return (v, v)
    boot = resample_stat(arr, statistic, n_resamples, np.random.default_rng(seed))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha])
    return (float(low), float(high))


def mean_ci(values: Iterable[float], confidence: float = 0.95, *, n_resamples: int = 2000, seed: int = 0) -> CI:
    """Mean with an interval: **Wilson** when every value is 0 or 1 (a pass rate), **bootstrap** otherwise.

    Wilson is exact-ish and stable for proportions at any n; the bootstrap makes no assumption about the
    shape of graded scores (judge grades, similarities). Missing values (scorer errors) are dropped.
    """
    x = finite(values)
    if not x:
        return CI(math.nan, math.nan, math.nan, "none", 0)
    m = mean(x)
    if is_binary(x):
        low, high = wilson_ci(math.fsum(x), len(x), confidence)
        return CI(m, low, high, "wilson", len(x))
    low, high = bootstrap_ci(x, None, n_resamples, confidence, seed)
    return CI(m, low, high, "bootstrap" if low != high else "exact", len(x))


def clustered_ci(values: Sequence[float], cases: Sequence[Any] | None, confidence: float = 0.95,
                 n_resamples: int = 2000, seed: int = 0) -> CI:
    """:func:`mean_ci` of scored ``values``; when a case has several of them (repeats), the interval is over
    per-case means (in order of first appearance) and ``n`` counts cases. The point estimate stays the mean of
    every value."""
    if cases is None or len(set(cases)) == len(cases):
        return mean_ci(values, confidence, n_resamples=n_resamples, seed=seed)
    groups: dict[Any, list[float]] = {}
    for case, v in zip(cases, values):
        groups.setdefault(case, []).append(float(v))
    ci = mean_ci([mean(g) for g in groups.values()], confidence, n_resamples=n_resamples, seed=seed)
    return CI(mean(finite(values)), ci.low, ci.high, ci.method + " (case means)", ci.n)


class _Group:
    """One group's running summary: its scored values (8 bytes each), the per-case means as cases go by, the
    error and verdict counts and the sums. Cases arrive sorted within the group (the table's order), so a case's
    repeats are adjacent and no case id is kept."""

    def __init__(self) -> None:
        from array import array

        self.values, self.case_means = array("d"), array("d")
        self.errors = 0
        self.repeated = False  # some case has more than one scored value
        self.case: Any = _NO_CASE
        self.case_values: list[float] = []
        self.verdicts: dict[str, int] = {}
        self.sums: dict[str, list[float]] = {}

    def add(self, case: Any, value: Any) -> None:
        v = finite([value])
        if not v:
            self.errors += 1
            return
        self.values.append(v[0])
        if case != self.case:
            if self.case is not _NO_CASE and case < self.case:
                raise DataError("summarize_values needs the rows sorted by case within each group")
            self._close_case()
            self.case = case
        self.case_values.append(v[0])

    def _close_case(self) -> None:
        if self.case_values:
            self.repeated = self.repeated or len(self.case_values) > 1
            self.case_means.append(mean(self.case_values))
            self.case_values = []

    def ci(self, confidence: float, n_resamples: int, seed: int) -> CI:
        self._close_case()
        if not self.repeated:
            return mean_ci(self.values, confidence, n_resamples=n_resamples, seed=seed)
        ci = mean_ci(self.case_means, confidence, n_resamples=n_resamples, seed=seed)
        return CI(mean(self.values), ci.low, ci.high, ci.method + " (case means)", ci.n)


_NO_CASE = object()


def summarize_values(rows: Iterable[tuple], keys: Sequence[str], *, confidence: float = 0.95,
                     n_resamples: int = 2000, seed: int = 0) -> list[dict[str, Any]]:
    """The rows of :func:`workbench.stats.summarize` from plain tuples ``(group key, case, value, sums[,
    verdict])``, one per call in the table's order (sorted by case): ``sums`` holds the per-group sums to report
    (cost, tokens; None is skipped, a group with none at all reports NaN); with verdicts, ``n_ambiguous`` and
    ``n_refused`` are counted as ``summarize`` counts them.

    Computed as the rows stream by, with :func:`clustered_ci`'s rule: memory is 8 bytes per scored value (the
    bootstrap needs them) and nothing per case, so a summary of 200k calls needs no table in memory.
    """
    groups: dict[tuple, _Group] = {}
    with_verdicts = False
    for key, case, value, sums, *verdict in rows:
        g = groups.get(key)
        if g is None:
            g = groups[key] = _Group()
        g.add(case, value)
        if verdict and verdict[0] is not None:
            with_verdicts = True
            g.verdicts[verdict[0]] = g.verdicts.get(verdict[0], 0) + 1
        for name, x in sums.items():
            acc = g.sums.setdefault(name, [])
            if x is not None and not (isinstance(x, float) and math.isnan(x)):
                acc.append(float(x))
                if len(acc) > 64:  # keep the sum exact without keeping every term
                    acc[:] = [math.fsum(acc)]
    out = []
    for key, g in groups.items():
        ci = g.ci(confidence, n_resamples, seed)
        row: dict[str, Any] = dict(zip(keys, key))
        row.update(n=len(g.values), n_errors=g.errors, n_cases=ci.n, mean=ci.mean, ci_low=ci.low,
                   ci_high=ci.high, method=ci.method)
        if with_verdicts:
            row.update(n_ambiguous=g.verdicts.get("ambiguous", 0), n_refused=g.verdicts.get("refused", 0))
        for name, acc in g.sums.items():
            row[name] = math.fsum(acc) if acc else math.nan
        out.append(row)
    return out
