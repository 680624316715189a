"""``workbench eval SPEC.yaml``: run an experiment from the shell, print its summary, and check its gates.

The gates (the spec's ``gates:`` plus every ``--gate``) and the baseline (``--baseline``) are validated and found
before anything is sent; after the run, :func:`workbench.gates.evaluate_gates` checks them and the command writes
``gates.json`` into the run folder, and ``--junit`` / ``--summary-md`` files for CI. The exit code says what
happened (see ``workbench eval --help`` and docs/ci.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import EXIT_BAD_INPUT, EXIT_GATE_FAILED, EXIT_OK, EXIT_RUN_FAILED, exit_code_for, exit_codes_help

GATE_HELP = ("a quality gate (repeatable), added to the spec's gates: SUBJECT >= or <= THRESHOLD [for VARIANT] "
             "[on TARGET], e.g. 'label >= 0.9', 'label.ci_low >= 0.8 for json-schema', 'cost <= 0.50', "
             "'latency_p95 <= 3s', 'error_rate <= 0.02', 'label >= baseline'")

EPILOG = """gates (docs/experiment-spec.md#gates):
  label >= 0.9                      mean score of scorer `label`, checked for each variant x target
  label.ci_low >= 0.8               the lower bound of its 95% interval (does not flap on a small set)
  label >= 0.9 for json-schema      one variant (`on local` for one target)
  cost <= 0.50                      USD at list prices, the whole run (for/on: part of it)
  latency_p95 <= 3s                 95th percentile latency of the answered calls
  error_rate <= 0.02                share of calls that failed
  label >= baseline                 no significant regression against --baseline (paired, shared cases)

"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="run an experiment spec (YAML), print the summary, check its gates",
                       description="Run an experiment: dataset x variants x targets x repeats, scored, into the run "
                                   "history (reports/<experiment>/<run-id>/, listed by `workbench runs`). Re-running "
                                   "the same spec resumes its newest run (finished calls are kept, errors retried) "
                                   "and answers calls already paid for from the cache; --new starts a fresh run. "
                                   "With gates, exit 3 when one fails (CI: docs/ci.md).",
                       epilog=EPILOG + exit_codes_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
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
    p.add_argument("--concurrency", type=int, help="calls in flight at once, per run (default: the spec's)")
    p.add_argument("--budget", type=float, help="refuse to start above, and stop when spend crosses, this many USD")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the response cache")
    p.add_argument("--resend-changed", action="store_true",
                   help="the run folder holds finished cells sent with another request (endpoint, api-version, "
                        "deployment, body): send those cells again into it instead of refusing")
    p.add_argument("--dry-run", action="store_true", help="plan and estimate cost only; send nothing")
    p.add_argument("--export", choices=["jsonl", "csv", "parquet"], action="append",
                   help="also write results.<fmt> into the run folder (repeatable)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    b = p.add_argument_group("Batch API (half price, done within 24 h; `workbench batch status|resume|cancel RUN`)")
    b.add_argument("--batch", action="store_true",
                   help="submit the calls to the provider's Batch API instead of sending them now (targets marked "
                        "batch-capable: `batch = true` or `batch_deployments` in the profile)")
    b.add_argument("--poll-interval", type=float, metavar="SECONDS",
                   help="seconds between batch status checks (default 60, as Azure asks)")
    b.add_argument("--batch-max-lines", type=int, metavar="N",
                   help="at most N requests per batch file (default: the provider's limit, 50,000 / 100,000)")
    b.add_argument("--no-wait", action="store_true",
                   help="with --batch: return once submitted; collect later with `workbench batch resume RUN`")
    g = p.add_argument_group("gates and CI")
    g.add_argument("--gate", action="append", metavar="GATE", help=GATE_HELP)
    g.add_argument("--baseline", metavar="PATH|RUN_ID|last-on-main",
                   help="the run to compare with: a run folder or results.jsonl, a run id, or the last run on a "
                        "branch (last-on-main); without a `>= baseline` gate, every scorer gets one")
    g.add_argument("--junit", metavar="FILE", help="write JUnit XML: one test case per gate and scope")
    g.add_argument("--junit-cases", action="store_true",
                   help="also one JUnit test case per case (informational: the exit code follows the gates)")
    g.add_argument("--summary-md", metavar="FILE", help="write a Markdown summary for a pull-request comment")
    p.set_defaults(func=evaluate)


def _apply_overrides(exp, args):
    """The flags, applied through the experiment's own validation (a bad value names the flag)."""
    from ..experiment import apply_overrides

    gates = [*exp.gates, *args.gate] if args.gate else None
    return apply_overrides(exp, {
        "--sample": ("sample", args.sample),
        "--sample-seed": ("sample_seed", args.sample_seed),
        "--repeats": ("repeats", args.repeats),
        "--concurrency": ("concurrency", args.concurrency),
        "--target": ("targets", args.target),
        "--budget": ("budget_usd", args.budget),
        "--gate": ("gates", gates),
    }, kind="flag")


def _with_regression_gates(exp, baseline_given: bool):
    """``--baseline`` without a gate naming it compares every scorer: what someone passing a baseline means."""
    if not baseline_given or any(g.against_baseline for g in exp.gates):
        return exp
    from ..gates.evaluate import regression_gates
    from ..scorers import scorer_name

    return exp.replace(gates=[*exp.gates, *regression_gates(scorer_name(s) for s in exp.scorers)])


def evaluate(args: argparse.Namespace) -> int:
    from ..examples import example_path
    from ..experiment import load_experiment

    if args.junit_cases and not args.junit:
        from ..errors import DataError

        raise DataError("--junit-cases adds test cases to the --junit file: give --junit FILE too.")
    exp = _apply_overrides(load_experiment(args.spec or example_path()), args)
    exp = _with_regression_gates(exp, bool(args.baseline))
    baseline, baseline_info = None, None
    if args.baseline:  # found (or refused) before anything is sent
        from ..runs.baseline import find_baseline

        baseline, baseline_info = find_baseline(args.baseline, experiment=exp.name)
    if args.dry_run:
        return _dry_run(exp, baseline_info, batch=args.batch)
    results = _run(exp, args)
    if results.status == "batch in progress":  # --no-wait: nothing to summarise or gate yet
        from ..batch import batch_status

        print(batch_status(results.run_dir))
        print(f"\nsubmitted; collect the answers with: workbench batch resume {results.run_dir}")
        return EXIT_OK
    _print_summary(results)
    report = None
    if exp.gates:
        from ..gates import evaluate_gates

        report = evaluate_gates(results, baseline=baseline, baseline_info=baseline_info)
        if results.run_dir:
            report.write(results.run_dir / "gates.json")
        print("\n" + report.text())
    _write_ci_files(args, exp, results, report)
    print(f"\nresults: {results.run_dir or Path('.')}")
    return _exit_code(exp, results, report)


def _dry_run(exp, baseline_info, batch: bool = False) -> int:
    from ..formatting import plural, usd
    from ..harness import estimate_cost, plan

    planned = plan(exp)
    est = estimate_cost(planned)
    n_targets = len({p.target.label for p in planned})
    print(f"{exp.name}: {plural(len(planned), 'call')} ({plural(len(exp.load_cases()), 'case')} x "
          f"{plural(len(exp.variants), 'variant')} x {plural(n_targets, 'target')} x "
          f"{plural(exp.repeats, 'repeat')})")
    print("estimated cost: " + ("unknown (a model has no price)" if est is None else f"up to {usd(est)}"))
    if batch and est is not None:
        from ..errors import WorkbenchError
        from ..harness import estimate_planned

        try:
            print(f"as a batch (--batch, batch prices): up to {usd(estimate_planned(planned, batch=True).usd)}")
        except WorkbenchError as e:
            print(f"as a batch: unknown ({e})")
    for gate in exp.gates:
        print(f"gate: {gate.label}")
    if baseline_info is not None:
        print(f"baseline: {baseline_info.describe()} ({baseline_info.calls} calls)")
    return EXIT_OK


def _run(exp, args):
    """Run the matrix into the run history (resuming this version's newest run unless ``--new``), recorded with its
    manifest like every other run; on a failure, still leave CI files saying why."""
    from ..errors import WorkbenchError
    from ..runs.notebook import run_experiment

    try:
        results = run_experiment(exp, args.out, source="eval", resume=not args.new, record=True,
                                 report=args.report, cache=not args.no_cache, progress=not args.quiet,
                                 resend_changed=args.resend_changed, **_batch_options(args))
    except WorkbenchError as e:
        _write_failure_files(args, exp.name, str(e), bad_input=exit_code_for(e) == EXIT_BAD_INPUT)
        raise
    run_dir = results.run_dir or Path(".")
    for fmt in args.export or []:
        getattr(results, f"to_{fmt}")(run_dir / f"results.{fmt}")
    return results


def _batch_options(args) -> dict[str, Any]:
    """``mode``, ``batch`` and ``wait`` for :func:`workbench.harness.run` from the batch flags (refused without
    --batch, so a flag never silently does nothing)."""
    from ..errors import DataError

    given = [flag for flag, value in (("--poll-interval", args.poll_interval), ("--batch-max-lines",
                                                                             args.batch_max_lines),
                                      ("--no-wait", args.no_wait or None)) if value is not None]
    if not args.batch:
        if given:
            raise DataError(f"{given[0]} is for batch runs: add --batch, or leave it out.")
        return {}
    if args.poll_interval is not None and args.poll_interval < 0:
        raise DataError(f"--poll-interval {args.poll_interval:g}: give seconds between checks, 0 or more.")
    if args.batch_max_lines is not None and args.batch_max_lines < 1:
        raise DataError(f"--batch-max-lines {args.batch_max_lines}: a batch file holds at least 1 request.")
    from ..batch import DEFAULT_POLL_S, BatchSettings

    settings = BatchSettings(poll_interval_s=DEFAULT_POLL_S if args.poll_interval is None else args.poll_interval,
                             max_lines=args.batch_max_lines)
    return {"mode": "batch", "batch": settings, "wait": not args.no_wait}


def _print_summary(results) -> None:
    """The run's headline (scores with intervals, refusals and hedges, the paired verdict, the spend), and the
    first failed calls."""
    from ..errors import WorkbenchError
    from ..runs.headline import headline
    from ..runs.manifest import load_manifest

    report = results.run_dir / "report.html" if results.run_dir else None
    try:
        manifest = load_manifest(results.run_dir) if results.run_dir else None
    except WorkbenchError:  # a run recorded without a manifest: the headline from the results alone
        manifest = None
    print()
    print(headline(results, manifest, report=report if report is not None and report.is_file() else None))
    if results.n_errors:
        from ..formatting import plural
        from ..safe_text import terminal_text

        print(f"\n{plural(results.n_errors, 'call')} failed (first 5 below). Run the same command again to "
              "retry them; finished calls are kept and not paid again.")
        for r in results.first_errors(5):  # from the ledger; a server's message reaches the terminal: escaped
            print(terminal_text(f"  case {r.case_id}, variant {r.variant}, target {r.target}, repeat {r.repeat}: "
                                f"{r.error_type}: {r.error_message}"))


def _write_ci_files(args, exp, results, report) -> None:
    from ..gates import evaluate_gates

    if not (args.junit or args.summary_md):
        return
    if report is None:
        report = evaluate_gates(results, [])
    if args.junit:
        from ..gates.junit import to_junit

        _write(args.junit, to_junit(report, results, cases=args.junit_cases))
    if args.summary_md:
        from ..gates.markdown import to_markdown

        _write(args.summary_md, to_markdown(report))


def _write_failure_files(args, experiment: str, message: str, *, bad_input: bool) -> None:
    from ..secrets import redact

    if args.junit:
        from ..gates.junit import failure_junit

        _write(args.junit, failure_junit(experiment, redact(message), bad_input=bad_input))
    if args.summary_md:
        from ..gates.markdown import failure_markdown

        _write(args.summary_md, failure_markdown(experiment, redact(message), bad_input=bad_input))


def _write(path: str, text: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, "utf-8")
    print(f"wrote {target}")


def _exit_code(exp, results, report: Any) -> int:
    """1 when the run did not finish cleanly (unless an error_rate gate says how many failed calls are fine),
    else 3 when a gate failed, else 0."""
    tolerated = results.status == "complete with errors" and any(g.metric == "error_rate" for g in exp.gates)
    if results.status != "complete" and not tolerated:
        return EXIT_RUN_FAILED
    if report is not None and not report.passed:
        return EXIT_GATE_FAILED
    return EXIT_OK
