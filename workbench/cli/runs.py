"""``workbench run``, ``workbench rerun``, ``workbench report`` and ``workbench runs``: notebooks as reproducible runs,
and the run history.

Each run writes ``reports/<experiment>/<run-id>/`` (see reports/README.md), ends with its headline (scores with
intervals per variant, the paired verdict, the spend) and the last line on stdout is the path of what it wrote
(the report; the index for a sweep), so scripts can pick it up. ``workbench runs`` lists every run in the history,
whatever started it (eval, run, a notebook, the playground).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import EXIT_OK, EXIT_RUN_FAILED


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser(
        "run", help="execute a notebook through papermill into reports/<experiment>/<run-id>/ with a report",
        description="Execute NOTEBOOK with papermill. Writes the executed notebook, report.html, the results "
                    "(Parquet and JSONL) and manifest.json into reports/<experiment>/<run-id>/, updates "
                    "reports/index.html, and prints the report's path last.")
    r.add_argument("notebook", help="the notebook, e.g. notebooks/03_evaluate.ipynb")
    r.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"), default=[],
                   help="set a parameter (repeatable); VALUE is read as JSON/None/True/False, else text")
    r.add_argument("--sweep", action="append", default=[], metavar="NAME=V1,V2",
                   help="run every combination of these values (repeatable: a grid)")
    r.add_argument("--jobs", "-j", type=int, default=1, help="sweep runs at once (each in its own process and kernel)")
    _common(r)
    r.add_argument("--cell-timeout", type=float, default=None, help="seconds a cell may run (default: no limit)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars (the calls and the cells)")
    r.set_defaults(func=cmd_run)

    rr = sub.add_parser("rerun", help="re-execute a run from its manifest and check it reproduces the results",
                        description="Execute the run described by MANIFEST again (same notebook, parameters and "
                                    "spec) into a new run folder; with the response cache the results table must "
                                    "come out identical, and the command fails if it does not.")
    rr.add_argument("manifest", help="a run's manifest.json (or its folder)")
    _common(rr)
    rr.add_argument("--no-progress", action="store_true", help="no papermill progress bar")
    rr.set_defaults(func=cmd_rerun)

    rp = sub.add_parser("report", help="rebuild a run folder's manifest.json and report.html")
    rp.add_argument("run_dir", help="a run folder (reports/<experiment>/<run-id>), or a folder holding results.sqlite")
    rp.set_defaults(func=cmd_report)

    ls = sub.add_parser("runs", help="list every run in the history (reports/) and rebuild reports/index.html",
                        description="List every run in the history, newest first, whatever started it (workbench "
                                    "eval / run, a notebook, the playground, workbench.run() from Python), and "
                                    "rebuild reports/index.html. Finished runs without a manifest get one.")
    ls.add_argument("--reports", default=None, help="the history folder (default: $WORKBENCH_REPORTS or the "
                                                    "project's reports/)")
    ls.add_argument("--experiment", default=None, help="only this experiment")
    ls.add_argument("--source", default=None, help="only runs started this way: eval, run, sweep, rerun, notebook, "
                                                   "playground or python")
    ls.add_argument("--sort", default="newest", choices=["newest", "oldest", "best score", "cost"],
                    help="order of the list (default: newest first)")
    ls.set_defaults(func=cmd_runs)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reports", default=None,
                   help="the reports folder (default: $WORKBENCH_REPORTS or the project's reports/)")
    p.add_argument("--kernel", default=None, help="kernel name (default: the notebook's; python3 = this environment)")


def _params(pairs: list[list[str]]) -> dict:
    from ..runs import parse_value

    return {name: parse_value(value) for name, value in pairs}


def _fail(outcome) -> int:
    from ..runs import NotebookFailed
    from ..runs.manifest import load_manifest

    m = load_manifest(outcome.manifest)
    raise NotebookFailed(outcome.failure or f"run {outcome.run_id}: {outcome.status}", m.failure, outcome.run_dir)


def cmd_run(args: argparse.Namespace) -> int:
    from ..runs import RunError, RunSpec, execute_run, parse_sweep, run_sweep

    params = _params(args.parameter)
    grid = parse_sweep(args.sweep)
    if args.jobs < 1:
        raise RunError("--jobs must be 1 or more.")
    if not grid:
        outcome = execute_run(RunSpec(Path(args.notebook), params, Path(args.reports) if args.reports else None,
                                      kernel_name=args.kernel, cell_timeout=args.cell_timeout,
                                      progress=not args.no_progress))
        _print_outcome(outcome)
        if outcome.failure:
            return _fail(outcome)
        _print_headline(outcome)
        print(outcome.report)
        return 0

    clash = sorted(set(grid) & set(params))
    if clash:
        raise RunError(f"{', '.join(clash)} is given both with -p and --sweep; use one.")
    grid_text = " x ".join(f"{k}={v}" for k, v in grid.items())
    outcomes = run_sweep(args.notebook, params, grid, jobs=args.jobs, reports_dir=args.reports,
                         kernel_name=args.kernel, cell_timeout=args.cell_timeout, on_done=_print_outcome,
                         on_start=lambda n: print(f"sweep: {n} runs ({grid_text}), {args.jobs} at a time",
                                                  file=sys.stderr))
    for o in outcomes:
        if o.run_id != "-":
            print(o.report)
    failed = [o for o in outcomes if not o.ok]
    from ..runs import reports_root

    index = (Path(args.reports).resolve() if args.reports else reports_root()) / "index.html"
    if failed:
        for o in failed:
            if o.run_id != "-":
                print(f"error: {o.failure or o.status}", file=sys.stderr)
    print(index)
    return EXIT_RUN_FAILED if failed else EXIT_OK


def _print_outcome(o) -> None:
    if o.run_id == "-":  # a sweep point that could not start
        print(f"FAILED {o.failure}", file=sys.stderr)
        return
    print(f"{'ok    ' if o.ok else 'FAILED'} {o.experiment}/{o.run_id}: {o.status}", file=sys.stderr)


def _print_headline(o) -> None:
    """What the run learned (scores, the paired verdict, spend), when its notebook ran an experiment."""
    from ..runs.headline import headline
    from ..runs.layout import load_results
    from ..runs.manifest import load_manifest

    try:
        results = load_results(o.run_dir)
        if results is None or not len(results):
            return
        print(headline(results, load_manifest(o.manifest)))
    except Exception as e:  # the report's path still comes: a headline bug must not hide it
        print(f"(no headline: {e})", file=sys.stderr)


def cmd_rerun(args: argparse.Namespace) -> int:
    from ..runs import rerun

    outcome = rerun(args.manifest, reports_dir=args.reports, progress=not args.no_progress, kernel_name=args.kernel)
    _print_outcome(outcome)
    if outcome.failure:
        return _fail(outcome)
    from ..runs.manifest import load_manifest

    m = load_manifest(outcome.manifest)
    if m.rerun is not None:
        if m.rerun.identical:
            print(f"reproduced: the results table is identical to run {m.rerun.of_run}", file=sys.stderr)
        elif m.rerun.identical is False:
            print(f"NOT reproduced: the results table differs from run {m.rerun.of_run}:", file=sys.stderr)
            for d in m.rerun.differences:
                print(f"  - {d}", file=sys.stderr)
    print(outcome.report)
    return EXIT_RUN_FAILED if (m.rerun and m.rerun.identical is False) else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from ..runs import rebuild_report

    outcome = rebuild_report(args.run_dir)
    print(outcome.report)
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from ..formatting import count, interval, is_rate, usd
    from ..runs import RunError, list_runs, reports_root, update_index
    from ..runs.finalize import adopt_runs
    from ..runs.index import headline_metric, sort_runs

    root = Path(args.reports).resolve() if args.reports else reports_root()
    if args.reports and not root.is_dir():  # a mistyped folder is not a new, empty history
        raise RunError(f"--reports {args.reports}: no such folder. Give the folder `workbench run` writes to "
                       "(default: ./reports).")
    adopt_runs(root)
    runs = sort_runs(list_runs(root, experiment=args.experiment, source=args.source), args.sort)
    for _run_dir, m in runs:
        best = headline_metric(m)
        metric = f"best {best.variant} {interval(best.mean, best.ci_low, best.ci_high, rate=is_rate(best.method))}" \
            if best else ""
        flags = [f"{n} {what}" for what, n in (("ambiguous", sum(x.n_ambiguous for x in m.headline())),
                                               ("refused", sum(x.n_refused for x in m.headline()))) if n]
        if flags:
            metric += f" ({', '.join(flags)})"
        print(f"{(m.started_at or '')[:19]:<19}  {m.experiment:<20} {m.run_id:<24} {m.source or '-':<10} "
              f"{m.status:<22} {count(m.totals.calls):>5} calls  {usd(m.totals.cost_usd):>10}  {metric}")
    if not runs:
        print(f"no runs in {root}" + (" matching the filters" if args.experiment or args.source else ""),
              file=sys.stderr)
    print(update_index(root))
    return 0
