"""The comparison table: the same prompts on several models - their tokens, and dollars per 1,000 calls."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..config import resolve_model
from ..costs import PriceTable, PriceUnknown, load_prices, token_cost
from ..errors import DataError
from ..tokens import count_messages

Prompt = str | Sequence[Mapping[str, Any]]


def _messages(prompt: Prompt) -> list[Mapping[str, Any]]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def compare_models(
    prompts: Mapping[str, Prompt] | Sequence[Prompt],
    models: Sequence[str],
    *,
    output_tokens: int | Mapping[str, int] = 0,
    calls: int = 1000,
    batch: bool = False,
    deployments: Mapping[str, str] | None = None,
    prices: PriceTable | None = None,
):
    """One row per prompt x model: input tokens (exact), the assumed output tokens, USD per call and per
    ``calls`` calls, and context-window use.

    ``prompts`` are strings (sent as one user message) or message lists, named by a mapping's keys.
    ``output_tokens`` is the output each call is assumed to produce (one number, or one per prompt name).
    A model without a price, or one that cannot take a prompt (an image for a text model), gets NaN and a note
    rather than a misleading 0.
    """
    import pandas as pd

    named = dict(prompts) if isinstance(prompts, Mapping) else {f"prompt {i + 1}": p for i, p in enumerate(prompts)}
    table = prices or load_prices()
    rows = []
    for name, prompt in named.items():
        out = output_tokens.get(name, 0) if isinstance(output_tokens, Mapping) else int(output_tokens)
        for model in models:
            info = resolve_model(model, deployments)
            row: dict[str, Any] = {"prompt": name, "model": info.name, "encoding": info.encoding,
                                   "input_tokens": math.nan, "output_tokens": out, "usd_per_call": math.nan,
                                   f"usd_per_{calls}_calls": math.nan, "context_used": math.nan, "as_of": table.as_of,
                                   "note": ""}
            try:
                n = count_messages(_messages(prompt), info).total
                row["input_tokens"] = n
                row["context_used"] = (n + out) / info.context_window
                cost = token_cost(info, n, out, batch=batch, prices=table)
                row.update({"usd_per_call": cost.usd, f"usd_per_{calls}_calls": cost.usd * calls, "as_of": cost.as_of})
            except PriceUnknown:
                row["note"] = "no price (add it to a price override file)"
            except DataError as e:
                row["note"] = str(e)
            rows.append(row)
    df = pd.DataFrame(rows)
    df.attrs.update({"calls": calls, "as_of": table.as_of, "batch": batch, "source": table.source})
    return df


def style_comparison(df):
    """A pandas Styler: thousands separators, dollars, a bar on the per-1,000-calls cost, the prices' date."""
    calls = df.attrs.get("calls", 1000)
    per = f"usd_per_{calls}_calls"
    fmt = {"input_tokens": "{:,.0f}", "output_tokens": "{:,.0f}", "usd_per_call": "${:,.6f}", per: "${:,.2f}",
           "context_used": "{:.1%}"}
    styler = df.style.format({k: v for k, v in fmt.items() if k in df.columns}, na_rep="-").hide(axis="index")
    if per in df.columns and df[per].notna().any():
        styler = styler.bar(subset=[per], color="#9ecae1")
    caption = f"Dollars per {calls:,} calls at list prices as of {df.attrs.get('as_of', '?')}"
    if df.attrs.get("batch"):
        caption += " (Batch API)"
    return styler.set_caption(html.escape(caption))


def comparison_html(df) -> str:
    """The styled table as an HTML fragment for a static report."""
    return style_comparison(df).to_html()
