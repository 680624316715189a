"""Notebook runs: execute a notebook through papermill into a run folder, with a manifest and a report.

A *notebook run* is one papermill execution of a notebook with parameters; the matrix of API calls a notebook
starts inside it is a harness run (:mod:`workbench.harness`). One module per stage, in the manner of
papermill's ``execute``::

    execute_run(RunSpec)  =  resolve (parameters.py: parameters, experiment name; layout.py: run id, folder)
                          -> execute (execute.py: papermill, redacted on every save; kernels.py: ipc kernels)
                          -> finalize_run (finalize.py: results export -> manifest.json -> report.html -> index)

A run writes ``reports/<experiment>/<run-id>/`` - the one run history every run joins, whatever started it
(:mod:`workbench.history`; layout.py): ``notebook.ipynb`` (executed, secrets redacted, kept when a cell fails),
``report.html`` (report.py, with notebook_html.py for the notebook part), ``results.parquet`` +
``results.jsonl``, ``manifest.json`` (manifest.py) and the harness's ``results.sqlite``. Runs made outside
papermill - ``workbench eval``, a notebook run interactively, the playground - are recorded the same way by
:func:`record_run` (finalize.py); :func:`adopt_runs` gives a finished run from plain Python its manifest.
:func:`run_sweep` runs a parameter grid in parallel worker processes and :func:`rerun` executes a run again
from its manifest (sweep.py), checking that it reproduced the same results table (reproduce.py).
:func:`list_runs` and :func:`update_index` are the run history (index.py); :func:`compare_runs` puts runs
side by side, on their shared cases (compare.py); :func:`headline` is a run's end-of-run summary (headline.py).

The notebook side (``notebooks/03_evaluate.ipynb``) uses :func:`resolve_experiment`, :func:`estimate` and
:func:`run_experiment` (notebook.py), so the notebook stays short and every step is importable and testable.
"""

from ..errors import NotebookFailed, RunError
from .compare import RunComparison, compare_runs, ensure_runs, latest_runs
from .execute import RunSpec, execute_notebook, execute_run, redact_notebook
from .finalize import RunOutcome, adopt_runs, finalize_run, rebuild_report, record_run
from .headline import headline
from .index import filter_runs, list_runs, sort_runs, update_index
from .kernels import isolated_kernel_manager_class
from .layout import load_results, new_run_id, reports_root
from .notebook import estimate, load_providers, readable, resolve_experiment, run_experiment
from .parameters import grid_points, notebook_parameters, parse_sweep, parse_value
from .reproduce import compare_tables, stable_table
from .sweep import rerun, run_sweep

__all__ = [
    "RunSpec", "RunOutcome", "RunError", "NotebookFailed", "RunComparison", "reports_root", "resolve_experiment",
    "load_providers", "estimate", "run_experiment", "execute_run", "execute_notebook", "finalize_run", "rerun",
    "run_sweep", "rebuild_report", "update_index", "list_runs", "latest_runs", "compare_runs", "ensure_runs",
    "stable_table", "compare_tables", "parse_value", "parse_sweep", "grid_points", "notebook_parameters",
    "redact_notebook", "isolated_kernel_manager_class", "load_results", "new_run_id", "record_run", "adopt_runs",
    "filter_runs", "sort_runs", "headline", "readable",
]
