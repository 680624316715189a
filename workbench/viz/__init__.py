"""Pictures of tokens and costs: pure functions of the numbers in :mod:`workbench.tokens`, :mod:`workbench.images`
and :mod:`workbench.costs`.

Every view renders in a notebook (``_repr_html_`` / ``_repr_png_``) and as a self-contained HTML fragment
(``to_html()``: inline styles, images as base64 ``data:`` URLs, no scripts, nothing fetched), so a static report
shows exactly what the notebook showed.
"""

from __future__ import annotations

from .._lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
