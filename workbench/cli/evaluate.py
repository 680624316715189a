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
    p.add_argument("--concurrency", type=int)
    p.add_argument("--budget", type=float, help="refuse to start above, and stop when spend crosses, this many USD")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the response cache")
    p.add_argument("--resend-changed", action="store_true",
                   help="the run folder holds finished cells sent with another request (endpoint, api-version, "
                        "deployment, body): send those cells again into it instead of refusing")
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
    from ..examples import example_path
    from ..experiment import load_experiment
    from ..harness import estimate_cost, plan, run

    exp = _apply_overrides(load_experiment(args.spec or example_path()), args)
    if args.dry_run:
        planned = plan(exp)
        est = estimate_cost(planned)
        n_targets = len({p.target.label for p in planned})
        print(f"{exp.name}: {len(planned)} calls ({len(exp.load_cases())} cases x {len(exp.variants)} variants "
              f"x {n_targets} target{'s' if n_targets != 1 else ''} x {exp.repeats} repeats)")
        print("estimated cost: " + ("unknown (a model has no price)" if est is None else f"up to ${est:.4f}"))
        return 0
    results = run(exp, out=args.out, cache=not args.no_cache, progress=not args.quiet,
                  resend_changed=args.resend_changed)
    run_dir = results.run_dir or Path(".")
    for fmt in args.export or []:
        getattr(results, f"to_{fmt}")(run_dir / f"results.{fmt}")
    _print_summary(exp.name, results)
    print(f"\nresults: {run_dir}")
    return 0 if results.status == "complete" else 1


def _print_summary(name: str, results) -> None:
    """The run's totals, each scorer's means with their intervals, and the first errors - read from the run's
    ledger without loading its records or a table library (memory and time stay flat in the run's size)."""
    from ..formatting import SUMMARY_HEADERS, summary_row, usd

    # totals from the run ledger: the whole folder, whichever process (or earlier run) made each call
    print(f"\n{name}: {len(results)} calls, status {results.status}; "
          f"{results.info.get('cache_hits', 0)} from cache, {results.n_errors} errors, cost "
          f"{usd(results.total_cost)} (paid for in this folder: {usd(results.info.get('spent_usd', 0.0))})")
    for scorer in results.scorers:
        rows = [summary_row(r) for r in results.summary_rows(scorer)]
        print(f"\n{scorer} (mean with 95% CI)")
        print(text_table(rows, list(SUMMARY_HEADERS)))
    if results.n_errors:
        print(f"\n{results.n_errors} calls failed (first 5 below). Run the same command again to retry them; "
              "finished calls are kept and not paid again.")
        for r in results.first_errors(5):
            print(f"  case {r.case_id}, variant {r.variant}, target {r.target}, repeat {r.repeat}: "
                  f"{r.error_type}: {r.error_message}")


def text_table(rows: list[dict[str, str]], columns: list[str]) -> str:
    """Rows of formatted text as a plain table: the first two columns left-aligned, the numbers right-aligned."""
    body = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in body]) for i, c in enumerate(columns)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(columns)] + [line(row) for row in body])
