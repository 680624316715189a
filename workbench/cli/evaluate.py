"""``workbench eval SPEC.yaml``: run an experiment from the shell and print its summary."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="run an experiment spec (YAML) and print the summary",
                       description="Run an experiment: dataset x variants x targets x repeats, scored, into the run "
                                   "history (reports/<experiment>/<run-id>/, listed by `workbench runs`). Re-running "
                                   "the same spec resumes its newest run (finished calls are kept, errors retried) "
                                   "and answers calls already paid for from the cache; --new starts a fresh run.")
    p.add_argument("spec", nargs="?", help="experiment YAML (default: the shipped sentiment demo)")
    p.add_argument("--out", "-o", help="run folder (default: the newest run of this experiment version in the "
                                       "history, to resume it, else a new one)")
    p.add_argument("--new", action="store_true", help="start a new run folder even if an earlier run of the same "
                                                      "spec could be resumed (the response cache still answers)")
    p.add_argument("--report", action="store_true", help="also write report.html into the run folder")
    p.add_argument("--sample", type=int, help="run on a reproducible sample of N cases")
    p.add_argument("--sample-seed", type=int, help="which cases --sample picks (default: the spec's sample_seed, 0)")
    p.add_argument("--repeats", type=int, help="override the number of repeats")
    p.add_argument("--target", action="append", help="override targets: PROFILE[:MODEL] (repeatable)")
    p.add_argument("--concurrency", type=int)
    p.add_argument("--budget", type=float, help="refuse to start above, and stop when spend crosses, this many USD")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the response cache")
    p.add_argument("--dry-run", action="store_true", help="plan and estimate cost only; send nothing")
    p.add_argument("--export", choices=["jsonl", "csv", "parquet"], action="append",
                   help="also write results.<fmt> into the run folder (repeatable)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=evaluate)


def _apply_overrides(exp, args):
    """The flags, applied through the experiment's own validation (a bad value names the flag)."""
    from ..experiment import apply_overrides

    return apply_overrides(exp, {
        "--sample": ("sample", args.sample),
        "--sample-seed": ("sample_seed", args.sample_seed),
        "--repeats": ("repeats", args.repeats),
        "--concurrency": ("concurrency", args.concurrency),
        "--target": ("targets", args.target),
        "--budget": ("budget_usd", args.budget),
    }, kind="flag")


def evaluate(args: argparse.Namespace) -> int:
    from ..examples import example_path
    from ..experiment import load_experiment
    from ..formatting import usd
    from ..harness import estimate_cost, plan

    exp = _apply_overrides(load_experiment(args.spec or example_path()), args)
    if args.dry_run:
        planned = plan(exp)
        est = estimate_cost(planned)
        n_targets = len({p.target.label for p in planned})
        print(f"{exp.name}: {len(planned)} calls ({len(exp.load_cases())} cases x {len(exp.variants)} variants "
              f"x {n_targets} target{'s' if n_targets != 1 else ''} x {exp.repeats} repeats)")
        print("estimated cost: " + ("unknown (a model has no price)" if est is None else f"up to {usd(est)}"))
        return 0
    from ..runs.headline import headline
    from ..runs.manifest import load_manifest
    from ..runs.notebook import run_experiment

    results = run_experiment(exp, args.out, source="eval", resume=not args.new, record=True, report=args.report,
                             cache=not args.no_cache, progress=not args.quiet)
    run_dir = results.run_dir or Path(".")
    for fmt in args.export or []:
        getattr(results, f"to_{fmt}")(run_dir / f"results.{fmt}")
    report = run_dir / "report.html"
    print()
    print(headline(results, load_manifest(run_dir), report=report if report.is_file() else None))
    if results.n_errors:
        import pandas as pd

        print(f"\n{results.n_errors} calls failed (first 5 below). Run the same command again to retry them; "
              "finished calls are kept and not paid again.")
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            print(results.errors().head(5).to_string(index=False))
    print(f"\nresults: {run_dir}")
    return 0 if results.status == "complete" else 1
