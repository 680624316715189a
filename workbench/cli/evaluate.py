"""``workbench eval SPEC.yaml``: run an experiment from the shell and print its summary."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="run an experiment spec (YAML) and print the summary",
                       description="Run an experiment: dataset x variants x targets x repeats, scored. "
                                   "Re-running the same spec resumes it and answers finished calls from the cache.")
    p.add_argument("spec", nargs="?", help="experiment YAML (default: the shipped sentiment demo)")
    p.add_argument("--out", "-o", help="run folder (default: one per experiment version under the workbench home)")
    p.add_argument("--sample", type=int, help="run on a reproducible sample of N cases")
    p.add_argument("--repeats", type=int, help="override the number of repeats")
    p.add_argument("--target", action="append", help="override targets: PROFILE[:MODEL] (repeatable)")
    p.add_argument("--concurrency", type=int, help="calls in flight at once, per run (default: the spec's)")
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
        "--repeats": ("repeats", args.repeats),
        "--concurrency": ("concurrency", args.concurrency),
        "--target": ("targets", args.target),
        "--budget": ("budget_usd", args.budget),
    }, kind="flag")


def evaluate(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..examples import example_path
    from ..experiment import load_experiment
    from ..formatting import plural, usd
    from ..harness import estimate_cost, plan, run

    exp = _apply_overrides(load_experiment(args.spec or example_path()), args)
    if args.dry_run:
        planned = plan(exp)
        est = estimate_cost(planned)
        n_targets = len({p.target.label for p in planned})
        print(f"{exp.name}: {plural(len(planned), 'call')} ({plural(len(exp.load_cases()), 'case')} x "
              f"{plural(len(exp.variants), 'variant')} x {plural(n_targets, 'target')} x "
              f"{plural(exp.repeats, 'repeat')})")
        print("estimated cost: " + ("unknown (a model has no price)" if est is None else f"up to {usd(est)}"))
        return 0
    results = run(exp, out=args.out, cache=not args.no_cache, progress=not args.quiet)
    run_dir = results.run_dir or Path(".")
    for fmt in args.export or []:
        getattr(results, f"to_{fmt}")(run_dir / f"results.{fmt}")
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(f"\n{exp.name}: {plural(len(results), 'call')}, status {results.status}; "
              f"{results.info.get('cache_hits', 0)} from cache, {plural(results.n_errors, 'error')}, "
              f"{usd(results.total_cost)}")
        for name in results.scorers:
            table = results.summary(name)
            cols = [c for c in ("variant", "target", "n", "mean", "ci_low", "ci_high") if c in table.columns]
            print(f"\n{name} (mean with 95% CI)")
            print(table[cols].to_string(index=False, float_format=lambda x: f"{x:.3f}"))
        if results.n_errors:
            print(f"\n{plural(results.n_errors, 'call')} failed (first 5 below). Run the same command again to "
                  "retry them; finished calls are kept and not paid again.")
            print(results.errors().head(5).to_string(index=False))
    print(f"\nresults: {run_dir}")
    return 0 if results.status == "complete" else 1
