"""``workbench batch status|resume|cancel RUN``: the batches of a run folder started with ``workbench eval --batch``.

``status`` reads the run ledger only (nothing is sent). ``resume`` carries on after Ctrl-C, a closed laptop or
kill -9: half-done submissions are completed (never submitted twice), open batches are polled until they end,
ended ones are merged. ``cancel`` asks the provider to stop the open batches and merges what they finished.
"""

from __future__ import annotations

import argparse

from . import EXIT_OK, EXIT_RUN_FAILED, exit_codes_help


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("batch", help="status, resume or cancel the Batch API jobs of a run (eval --batch)",
                       description="The Batch API jobs of a run folder started with `workbench eval SPEC --batch`.",
                       epilog=exit_codes_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="batch_action", metavar="ACTION", required=True,
                               help="status, resume or cancel (each takes the run folder)")
    st = actions.add_parser("status", help="each batch's status and counts (reads the run folder; sends nothing)")
    st.add_argument("run", help="the run folder (the `results:` line of `workbench eval`)")
    st.set_defaults(func=status)
    for name, what in (("resume", "finish submitting, poll until every batch ends, merge the answers"),
                       ("cancel", "cancel the open batches; their finished part is merged and kept")):
        a = actions.add_parser(name, help=what, description=what)
        a.add_argument("run", help="the run folder")
        a.add_argument("--poll-interval", type=float, metavar="SECONDS",
                       help="seconds between status checks (default: as the run was started; Azure: 60 or more)")
        a.add_argument("--no-wait", action="store_true", help="check once, merge what has ended, and return")
        a.add_argument("--no-cache", action="store_true", help="do not write merged answers to the response cache")
        a.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
        a.set_defaults(func=resume if name == "resume" else cancel)


def _poll_interval(args) -> float | None:
    if args.poll_interval is not None and args.poll_interval < 0:
        from ..errors import DataError

        raise DataError(f"--poll-interval {args.poll_interval:g}: give seconds between checks, 0 or more.")
    return args.poll_interval


def status(args: argparse.Namespace) -> int:
    from ..batch import batch_status

    print(batch_status(args.run))
    return EXIT_OK


def _report(results, source: str) -> int:
    from ..batch import batch_status

    if results.status != "batch in progress":
        _write_manifest(results, source)
    print(batch_status(results.run_dir))
    info = results.info
    if info.get("online_cost_usd") is not None:
        from ..formatting import usd

        print(f"batch cost {usd(info['batch_cost_usd'])} (at online prices {usd(info['online_cost_usd'])}; saved "
              f"{usd(info['saving_usd'])})")
    print(f"status: {results.status}\nresults: {results.run_dir}")
    return EXIT_OK if results.status == "complete" else EXIT_RUN_FAILED


def _write_manifest(results, source: str) -> None:
    """The run joins the run history once its batches are merged, as `workbench eval` would have done."""
    import sys

    from ..errors import WorkbenchError
    from ..records import utcnow
    from ..runs.finalize import write_run_manifest

    try:
        write_run_manifest(results, started_at=None, finished_at=utcnow(), duration_s=None, source=source)
    except (WorkbenchError, OSError) as e:  # provenance must not fail a merged run
        print(f"warning: the run's manifest.json was not written ({e})", file=sys.stderr)


def resume(args: argparse.Namespace) -> int:
    from ..batch import resume as resume_batches

    return _report(resume_batches(args.run, poll_interval_s=_poll_interval(args), wait=not args.no_wait,
                                  progress=not args.quiet, cache=not args.no_cache), "workbench batch resume")


def cancel(args: argparse.Namespace) -> int:
    from ..batch import cancel as cancel_batches

    return _report(cancel_batches(args.run, poll_interval_s=_poll_interval(args), wait=not args.no_wait,
                                  progress=not args.quiet, cache=not args.no_cache), "workbench batch cancel")
