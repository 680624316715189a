"""Pictures of tokens and costs: pure functions of the numbers in :mod:`workbench.tokens`, :mod:`workbench.images`
and :mod:`workbench.costs`.

Every view renders in a notebook (``_repr_html_`` / ``_repr_png_``) and as a self-contained HTML fragment
(``to_html()``: inline styles, images as base64 ``data:`` URLs, no scripts, nothing fetched), so a static report
shows exactly what the notebook showed.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TokenView": "token_view", "token_view": "token_view",
    "ImageView": "image_view", "image_view": "image_view",
    "tokens_chart": "cost_charts", "cost_chart": "cost_charts", "context_chart": "cost_charts",
    "figure_to_html": "cost_charts",
    "compare_models": "compare", "comparison_html": "compare", "style_comparison": "compare",
    "Chart": "cost_charts",
    "plot_scores": "eval_charts", "plot_cost_quality": "eval_charts", "plot_flakiness": "eval_charts",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:  # lazy: matplotlib and pandas load only when a chart or table is asked for
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'workbench.viz' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
