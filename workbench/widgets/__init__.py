"""Notebook widgets: thin controls over the workbench's pure functions.

- :class:`Playground` - prompt variants side by side, live token/cost estimates, runs that never block the kernel,
  save/load as an experiment spec.
- :class:`CostExplorer` - text or an image against several models: the token view, the image's tile/patch grid
  and the cost table.
- :class:`ResultsViewer` - a cases x variants grid with filters, cell details, output diffs, the summary with
  confidence intervals and the paired comparison.
- :class:`Review` - walk a run's calls one at a time and record human verdicts, corrections and comments
  (keyboard shortcuts, filters, progress), stored in the run folder as the ``human`` score.
- :class:`RunHistory` - every run in the history: filter, sort, open one, compare two (case sets, scores,
  the cases whose outcome changed, output diffs).

Each is an ``ipywidgets.VBox`` whose state lives in traitlets and plain attributes; each also publishes a static
HTML snapshot next to its live view, so an HTML export (nbconvert, reports) shows tables instead of a blank box.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "Playground": "playground", "VariantEditor": "variant_card",
    "CostExplorer": "cost_explorer",
    "ResultsViewer": "results_viewer",
    "Review": "review",
    "RunHistory": "run_history",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
