"""The harness: run an experiment's matrix of calls - every cell, concurrently, paced per target, stored as it finishes.

A *run* of the harness is one execution of the matrix (case x variant x target x repeat) into a run folder.
(A *notebook run* - papermill executing a notebook into ``reports/`` - is :mod:`workbench.runs`.)

Pipeline, one module per stage (in the manner of papermill's ``execute``)::

    plan      (plan.py)     render every request, check variables, resolve targets and providers, key cells
    -> gate   (run.py)      open the run store, skip finished cells, refuse a plan over budget
    -> execute(execute.py)  asyncio workers; cache, limiter (ratelimit.py), retries, scoring, group commit
    -> Results(run.py)      status and totals in the store; a :class:`~workbench.results.Results` over the cells

Nothing finished is lost: each cell is committed to the run store when it completes, and the response cache
means a re-run never pays for a finished call twice.
"""

from .execute import Executor, RunProgress, parse_json_output
from .plan import PlannedCell, estimate, estimate_cost, estimate_planned, plan, request_params, resolve_providers
from .run import RunHandle, arun, default_run_dir, run, start

__all__ = [
    "run", "arun", "start", "RunHandle", "RunProgress", "plan", "estimate", "estimate_cost", "estimate_planned",
    "PlannedCell", "request_params", "resolve_providers", "default_run_dir", "parse_json_output", "Executor",
]
