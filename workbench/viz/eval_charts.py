"""Charts of evaluation results (matplotlib): scores with their intervals, cost against quality, flakiness.

Pure functions of the results DataFrame (one row per call) or of the tables :mod:`workbench.stats` makes from
it; each returns a matplotlib ``Figure`` built without pyplot - no global state, nothing shown twice in a
notebook, safe in threads and report scripts. The figure renders itself in a notebook (``_repr_png_``) and
as an inline ``<img>`` (``to_html()``) for static reports. Pass ``ax=`` to draw into a figure of your own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .. import stats
from ..errors import DataError
from .cost_charts import Chart

__all__ = ["EvalChart", "plot_scores", "plot_cost_quality", "plot_flakiness", "STATUS_COLOURS"]

PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
STATUS_COLOURS = {"stable_pass": "#55a868", "flaky": "#dd8452", "stable_fail": "#c44e52", "error": "#8c8c8c"}
STATUS_LABELS = {"stable_pass": "stable pass", "flaky": "flaky", "stable_fail": "stable fail", "error": "error"}


# One chart type for the whole package: a Figure that is a PNG in notebooks and an inline <img> in reports.
EvalChart = Chart


def _canvas(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = EvalChart(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _keys(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def _summary(data: pd.DataFrame, value: str, by: Sequence[str]) -> pd.DataFrame:
    """Accept a :func:`stats.summarize` table as is, or summarise raw results."""
    if {"mean", "ci_low", "ci_high"} <= set(data.columns):
        return data
    return stats.summarize(data, value=value, by=tuple(by))


def _label(row: pd.Series, keys: Sequence[str]) -> str:
    return " / ".join(str(row[k]) for k in keys if k in row.index)


def _unit_interval(values: np.ndarray) -> bool:
    finite = values[np.isfinite(values)]
    return len(finite) > 0 and bool(np.all((finite >= 0) & (finite <= 1)))


# --------------------------------------------------------------------------------------------- scores


def plot_scores(data: pd.DataFrame, value: str = "score", by: str | Sequence[str] = ("variant", "target"), *,
                ax: Axes | None = None, title: str | None = None) -> Figure:
    """Mean score per variant (bars grouped by target) with confidence-interval error bars.

    ``data`` is the results frame (``value`` names the scorer: ``"exact"`` or ``"score.exact"``) or a
    :func:`workbench.stats.summarize` table. The first ``by`` column is the x axis, the second the bar
    colour. Each bar is labelled with its mean and n, so a tall bar on three cases is not mistaken for
    evidence.
    """
    keys = _keys(by)
    table = _summary(data, value, keys)
    if table.empty:
        raise DataError("plot_scores: there are no scored rows to plot")
    x_key, hue_key = keys[0], (keys[1] if len(keys) > 1 else None)
    groups = list(dict.fromkeys(table[x_key].astype(str)))
    hues = list(dict.fromkeys(table[hue_key].astype(str))) if hue_key else [""]
    methods = set(map(str, table.get("method", pd.Series(dtype=str)).dropna()))
    rate = bool(methods) and all(m.startswith("wilson") for m in methods)  # pass rates read as percentages
    fig, ax = _canvas(ax, (max(4.5, 0.9 * len(groups) * max(1, len(hues)) + 1.8), 3.4))
    width = 0.8 / len(hues)
    for j, hue in enumerate(hues):
        part = table if hue_key is None else table[table[hue_key].astype(str) == hue]
        xs, means, lows, highs, ns = [], [], [], [], []
        for _, row in part.iterrows():
            xs.append(groups.index(str(row[x_key])) + (j - (len(hues) - 1) / 2) * width)
            means.append(row["mean"])
            lows.append(row["ci_low"])
            highs.append(row["ci_high"])
            ns.append(row.get("n", np.nan))
        m, lo, hi = (np.asarray(v, dtype=float) for v in (means, lows, highs))
        yerr = np.vstack([np.nan_to_num(m - lo), np.nan_to_num(hi - m)]).clip(min=0)
        bars = ax.bar(xs, np.nan_to_num(m), width=width * 0.95, yerr=yerr, capsize=3,
                      color=PALETTE[j % len(PALETTE)], label=hue or None, error_kw={"elinewidth": 1})
        for bar, mean, top, n in zip(bars, m, hi, ns):
            shown = f"{mean:.0%}" if rate else f"{mean:.2f}"
            text = "n/a" if np.isnan(mean) else shown + ("" if pd.isna(n) else f"\nn={int(n)}")
            y = np.nanmax([mean, top, 0]) if not np.isnan(mean) else 0
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, y), xytext=(0, 2), textcoords="offset points",
                        ha="center", va="bottom", fontsize=7)
    ax.set_xticks(
        range(len(groups)), groups, rotation=20 if len(groups) > 4 else 0, ha="right" if len(groups) > 4 else "center"
    )
    all_values = table[["mean", "ci_low", "ci_high"]].to_numpy(float)
    if _unit_interval(all_values):
        ax.set_ylim(0, 1.15)
    method = ", ".join(sorted(set(map(str, table.get("method", pd.Series(dtype=str)).dropna()))))
    ax.set_ylabel(f"{value} pass rate (bars: 95% CI)" if rate else f"mean {value} (bars: 95% CI)")
    if rate:
        ax.yaxis.set_major_formatter(lambda y, _: f"{y:.0%}")
    if method:
        ax.text(
            1.0,
            -0.12,
            f"intervals: {method}",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=7,
            color="#666666",
        )
    ax.set_xlabel(x_key)
    if hue_key and len(hues) > 1:
        ax.legend(title=hue_key, fontsize=8, title_fontsize=8, frameon=False)
    ax.set_title(title or f"{value} by {' and '.join(keys)}")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    return fig


# ------------------------------------------------------------------------------------- cost vs quality


def plot_cost_quality(
    data: pd.DataFrame,
    cost: str = "cost_usd",
    quality: str = "mean",
    *,
    value: str = "score",
    label: str | Sequence[str] = ("variant", "target"),
    ax: Axes | None = None,
    title: str | None = None,
    log_cost: bool | None = None,
) -> Figure:
    """Cost against quality, one labelled point per row, the Pareto front marked and connected.

    ``data``: a :func:`workbench.stats.summarize` table (``mean``, ``cost_usd``) or raw results (summarised
    by ``label`` using scorer ``value``). Points on the front (nothing both cheaper and better) are filled;
    the others are hollow. Quality intervals are drawn when present. ``log_cost`` defaults to on when costs
    span more than two orders of magnitude (e.g. a local model next to gpt-4o).
    """
    keys = _keys(label)
    table = data if quality in data.columns else _summary(data, value, keys)
    for column in (cost, quality):
        if column not in table.columns:
            raise DataError(f"plot_cost_quality needs a {column!r} column; the table has {list(table.columns)}")
    table = table.reset_index(drop=True)
    front = stats.pareto_front(table, cost=cost, quality=quality)
    c = pd.to_numeric(table[cost], errors="coerce").to_numpy(float)
    q = pd.to_numeric(table[quality], errors="coerce").to_numpy(float)
    fig, ax = _canvas(ax, (6.5, 4.5))
    if {"ci_low", "ci_high"} <= set(table.columns):
        lo, hi = table["ci_low"].to_numpy(float), table["ci_high"].to_numpy(float)
        yerr = np.vstack([np.nan_to_num(q - lo), np.nan_to_num(hi - q)]).clip(min=0)
        ax.errorbar(c, q, yerr=yerr, fmt="none", ecolor="#999999", elinewidth=1, capsize=2, zorder=1)
    on = front.to_numpy()
    ax.scatter(
        c[~on], q[~on], s=45, facecolors="white", edgecolors=PALETTE[0], linewidths=1.5, zorder=2, label="dominated"
    )
    ax.scatter(c[on], q[on], s=55, color=PALETTE[3], zorder=3, label="Pareto front")
    order = np.argsort(c[on], kind="stable")
    ax.plot(c[on][order], q[on][order], color=PALETTE[3], linewidth=1.2, alpha=0.7, zorder=2, drawstyle="steps-post")
    for i, row in table.iterrows():
        if np.isfinite(c[i]) and np.isfinite(q[i]):
            ax.annotate(
                _label(row, keys) or str(i),
                (c[i], q[i]),
                xytext=(5, 4),
                textcoords="offset points",
                fontsize=7,
                fontweight="bold" if on[i] else "normal",
            )
    positive = c[np.isfinite(c) & (c > 0)]
    if log_cost is None:
        log_cost = len(positive) == np.isfinite(c).sum() and len(positive) > 1 and positive.max() / positive.min() > 100
    if log_cost:
        ax.set_xscale("log")
    ax.set_xlabel(f"{cost} (lower is better)")
    ax.set_ylabel(f"{quality} (higher is better)")
    ax.set_title(title or "Cost vs quality")
    ax.legend(fontsize=8, frameon=False, loc="best")
    ax.grid(alpha=0.3)
    return fig


# ---------------------------------------------------------------------------------------------- flakiness


def plot_flakiness(
    data: pd.DataFrame,
    by: str | Sequence[str] = "variant",
    *,
    passed: str = "passed",
    case: str = "case_id",
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Per variant: how many cases pass every repeat, fail every repeat, or flip between the two.

    ``data`` is the results frame (``passed`` names the scorer) or a :func:`workbench.stats.flakiness`
    table. Cases are counted per (case, variant, target), so with two targets each case counts twice; use
    ``by=("variant", "target")`` to see them apart.
    """
    keys = _keys(by)
    table = (
        data
        if "status" in data.columns
        else stats.flakiness(
            data, passed=passed, case=case, by=[k for k in ("variant", "target") if k in data.columns] or keys
        )
    )
    missing = [k for k in keys if k not in table.columns]
    if missing:
        raise DataError(f"plot_flakiness: no column {missing} to group by; columns: {list(table.columns)}")
    counts = table.groupby(keys, sort=False)["status"].value_counts().unstack(fill_value=0)
    statuses = [s for s in STATUS_COLOURS if s in counts.columns and (s != "error" or counts[s].any())]
    counts = counts.reindex(columns=statuses, fill_value=0)
    names = [" / ".join(map(str, k)) if isinstance(k, tuple) else str(k) for k in counts.index]
    fig, ax = _canvas(ax, (6.5, max(2.2, 0.5 * len(names) + 1.4)))
    left = np.zeros(len(names))
    for status in statuses:
        widths = counts[status].to_numpy(float)
        bars = ax.barh(names, widths, left=left, color=STATUS_COLOURS[status], label=STATUS_LABELS[status])
        for bar, w in zip(bars, widths):
            if w > 0:
                ax.text(
                    bar.get_x() + w / 2,
                    bar.get_y() + bar.get_height() / 2,
                    f"{int(w)}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white",
                )
        left += widths
    ax.invert_yaxis()
    ax.set_xlabel("cases")
    ax.set_title(title or "Stable pass / flaky / stable fail across repeats")
    ax.legend(fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    return fig
