"""Human review of a run, in the notebook: reviews stored in the run folder, surfaced as a ``human`` score,
agreement of scorers (and reviewers) with the people, and a calibration loop for judge rubrics::

    spec.py         ReviewSpec: the experiment's ``review:`` section (a scale, instructions) - light
    store.py        ReviewStore(run_dir): add_review / clear / reviews / history, keyed by the logical cell
    human.py        human_score, attach_reviews: reviews as the ``human`` score of results and exports
    queue.py        review_queue (filters: unreviewed, failed, disagreeing, flaky, ambiguous, sample), progress
    keys.py         the widget's keyboard shortcuts, as data
    calibration.py  scorer_agreement, reviewer_agreement, agreements, calibrate (re-run a judge rubric)

The widget is :class:`workbench.widgets.Review`; the statistics are :mod:`workbench.agreement`.
"""

from __future__ import annotations

from .._lazy import lazy_exports
from .spec import ReviewSpec

_EXPORTS = {
    "ReviewStore": "store", "read_reviews": "store", "default_reviewer": "store",
    "human_score": "human", "attach_reviews": "human",
    "review_queue": "queue", "progress": "queue", "REVIEW_FILTERS": "queue",
    "scorer_agreement": "calibration", "reviewer_agreement": "calibration", "agreements": "calibration",
    "calibrate": "calibration", "Calibration": "calibration",
}

__all__ = ["ReviewSpec", *sorted(_EXPORTS)]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
