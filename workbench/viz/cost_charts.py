"""Charts of tokens and cost (matplotlib): input/output tokens and dollars per variant and model, context-window use.

Each function takes a plain DataFrame (one row per variant x model, the shape of
``MatrixEstimate.summary(by=("variant", "model"))`` or a results summary) and returns a :class:`Chart` - a
matplotlib ``Figure`` built without pyplot (no global state, safe in threads and scripts) that shows itself in
a notebook and turns into an inline ``<img>`` for static HTML.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

INPUT_COLOUR, OUTPUT_COLOUR, OVER_COLOUR = "#4c72b0", "#dd8452", "#c44e52"


class Chart(Figure):
    """A matplotlib Figure that renders itself as PNG in a notebook and as inline HTML in a report."""

    def png(self, dpi: int = 110) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        return buf.getvalue()

    def _repr_png_(self) -> bytes:
        return self.png()

    def to_html(self, alt: str = "chart") -> str:
        return figure_to_html(self, alt)


def figure_to_html(fig: Figure, alt: str = "chart") -> str:
    """Any matplotlib figure as a self-contained ``<img>`` (base64 PNG)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}" style="max-width:100%">'


def _require(df, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        from ..errors import DataError

        raise DataError(f"{what} needs the column(s) {missing}; the DataFrame has {list(df.columns)}.")


def _bars(df, group: str, series: str) -> list[tuple[str, Any]]:
    """One bar per (group, series) pair in first-seen order: (tick label, rows)."""
    keys = [group] + ([series] if series in df.columns else [])
    out = []
    for key, rows in df.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        out.append(("\n".join(map(str, key)), rows))
    return out


def _usd(v: float) -> str:
    """Dollars with three significant digits, however small ($0.0000190), as people read prices."""
    from ..formatting import usd

    return usd(v)


def _positions(bars: list[tuple[str, Any]]) -> np.ndarray:
    """x positions with a gap between groups, so bars of one variant stand together."""
    xs, x, previous = [], 0.0, None
    for label, _ in bars:
        first = label.split("\n")[0]
        if previous is not None and first != previous:
            x += 0.5
        xs.append(x)
        x, previous = x + 1.0, first
    return np.array(xs)


def tokens_chart(df, group: str = "variant", series: str = "model", *, title: str = "Tokens") -> Chart:
    """Stacked input / output tokens, one bar per ``group`` x ``series`` (e.g. variant x model).

    Needs ``input_tokens`` and ``output_tokens`` (or ``max_output_tokens``) columns.
    """
    out_col = "output_tokens" if "output_tokens" in df.columns else "max_output_tokens"
    _require(df, [group, "input_tokens", out_col], "tokens_chart")
    bars = _bars(df, group, series)
    x = _positions(bars)
    inp = np.array([rows["input_tokens"].sum() for _, rows in bars], dtype=float)
    out = np.array([rows[out_col].sum() for _, rows in bars], dtype=float)
    fig = Chart(figsize=(max(4.5, 0.9 * len(bars) + 1.5), 3.8))
    ax = fig.add_subplot()
    ax.bar(x, inp, 0.8, color=INPUT_COLOUR, label="input")
    ax.bar(x, out, 0.8, bottom=inp, color=OUTPUT_COLOUR, label=out_col.replace("_", " "))
    for xi, total in zip(x, inp + out):
        ax.annotate(f"{total:,.0f}", (xi, total), ha="center", va="bottom", fontsize=7, xytext=(0, 2),
                    textcoords="offset points")
    ax.set_xticks(x, [label for label, _ in bars], fontsize=8)
    ax.set_ylabel("tokens")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.margins(y=0.15)
    return fig


def cost_chart(df, group: str = "variant", series: str = "model", usd: str | None = None, *,
               title: str = "Cost", as_of: str | None = None) -> Chart:
    """Dollars per ``group`` and ``series`` from the ``usd`` column (default: the first of usd, total_usd_max,
    usd_max, cost_usd). The prices' date goes in the title (``as_of`` or an ``as_of`` column)."""
    usd = usd or next((c for c in ("usd", "total_usd_max", "usd_max", "cost_usd") if c in df.columns), "usd")
    _require(df, [group, usd], "cost_chart")
    bars = _bars(df, group, series)
    x = _positions(bars)
    values = [float(rows[usd].sum()) for _, rows in bars]
    fig = Chart(figsize=(max(4.5, 0.9 * len(bars) + 1.5), 3.8))
    ax = fig.add_subplot()
    drawn = ax.bar(x, values, 0.8, color=INPUT_COLOUR)
    ax.bar_label(drawn, labels=[_usd(v) for v in values], fontsize=7, padding=2)
    if as_of is None and "as_of" in df.columns and len(df):
        as_of = ", ".join(sorted(set(map(str, df["as_of"].dropna()))))
    ax.set_xticks(x, [label for label, _ in bars], fontsize=8)
    ax.set_ylabel(f"USD ({usd})")
    ax.set_title(title + (f" (prices as of {as_of})" if as_of else ""))
    ax.margins(y=0.2)
    return fig


def context_chart(df, label: str = "model", *, title: str = "Context window use") -> Chart:
    """Share of each model's context window taken by input plus (max) output; over 100% is drawn red.

    Needs ``context_window``, ``input_tokens`` and ``output_tokens`` or ``max_output_tokens``.
    """
    out_col = "output_tokens" if "output_tokens" in df.columns else "max_output_tokens"
    _require(df, [label, "input_tokens", out_col, "context_window"], "context_chart")
    labels = [str(v) for v in df[label]]
    inp = (df["input_tokens"] / df["context_window"] * 100).to_numpy(dtype=float)
    out = (df[out_col] / df["context_window"] * 100).to_numpy(dtype=float)
    fig = Chart(figsize=(6.0, 0.45 * len(labels) + 1.2))
    ax = fig.add_subplot()
    y = np.arange(len(labels))
    ax.barh(y, inp, color=INPUT_COLOUR, label="input")
    ax.barh(y, out, left=inp, color=[OVER_COLOUR if a + b > 100 else OUTPUT_COLOUR for a, b in zip(inp, out)],
            label=out_col.replace("_", " "))
    for yi, total, window in zip(y, inp + out, df["context_window"]):
        ax.annotate(f"{total:.1f}% of {int(window):,}", (total, yi), va="center", fontsize=7, xytext=(3, 0),
                    textcoords="offset points")
    ax.axvline(100, color="#555", linewidth=1, linestyle="--")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel("% of context window")
    ax.set_title(title)
    ax.set_xlim(0, max(110.0, float(np.nanmax(inp + out)) * 1.25 if len(labels) else 110.0))
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    return fig
