"""Finish a run folder: export the results, write the manifest and the report, update the index.

Never loses a run: a report that cannot be built becomes a fallback page that says why, and
``workbench report`` rebuilds it later from the folder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RunError
from ..records import utcnow
from ..secrets import redact, redact_obj
from .manifest import (
    MANIFEST_FILE,
    DatasetInfo,
    Failure,
    Manifest,
    NotebookInfo,
    Totals,
    environment_lock,
    git_info,
    load_manifest,
    metrics_of,
    package_versions,
    prices_as_of,
    register_env_secrets,
    spec_sha256,
    targets_of,
    totals_of,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..results import Results


from .index import update_index
from .layout import (
    EXPERIMENT_FILE,
    NOTEBOOK_FILE,
    REPORT_FILE,
    RESULTS_JSONL,
    RESULTS_PARQUET,
    RUN_LOCAL_PARAMETERS,
    RUN_STORE_FILE,
    atomic_write,
    load_results,
    read_experiment_info,
    write_experiment_info,
)
from .reproduce import check_reproduction

log = logging.getLogger("workbench.runs")


@dataclass
class RunOutcome:
    run_id: str
    experiment: str
    run_dir: Path
    report: Path
    manifest: Path
    status: str
    ok: bool
    failure: str | None = None
    reproduced: bool | None = None


def export_results(results: Results, run_dir: Path) -> dict[str, str]:
    """``results.jsonl`` (typed records, reloadable with ``Results.from_jsonl``) and ``results.parquet``."""
    # Streamed, a record at a time (and the table built in pages from the redacted file): the end of a large
    # run must not hold every record in memory at once.
    files: dict[str, str] = {}
    tmp = run_dir / f".{RESULTS_JSONL}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for r in results.iter_records():
            f.write(redact(r.model_dump_json()) + "\n")
    tmp.replace(run_dir / RESULTS_JSONL)
    files["results_jsonl"] = RESULTS_JSONL
    try:
        from ..results import read_jsonl, records_frame, write_parquet

        tmp = run_dir / f".{RESULTS_PARQUET}.tmp"
        write_parquet(records_frame(read_jsonl(run_dir / RESULTS_JSONL)), tmp)
        tmp.replace(run_dir / RESULTS_PARQUET)
        files["results"] = RESULTS_PARQUET
    except Exception as e:  # pyarrow missing or a column it cannot store: the JSONL still has everything
        log.warning("results.parquet not written: %s", e)
    return files


def build_manifest(run_dir: Path, *, run_id: str, experiment: str, notebook: NotebookInfo,
                   parameters: Mapping[str, Any], effective: Mapping[str, Any] | None,
                   results: Results | None, info: Mapping[str, Any],
                   started_at: str | None, finished_at: str | None, duration_s: float | None,
                   failure: Failure | None, sweep: Mapping[str, Any] | None = None,
                   git_dir: Path | None = None, source: str | None = None) -> Manifest:
    """The manifest of a finished (or failed) run. Pure apart from reading package versions and git (of
    ``git_dir``; by default the notebook's folder, else the run folder)."""
    if failure is not None:
        status = "failed"
    elif results is None:
        status = "complete" if not info else "no results"  # a notebook without an experiment has none
    else:
        status = results.status
    spec = info.get("spec")
    ds = info.get("dataset") or {}
    batch = batch_of(run_dir) if results is not None else None
    return Manifest(
        mode="batch" if batch else "online", batch=batch,
        run_id=run_id, experiment=experiment, status=status, notebook=notebook, source=source,
        parameters={k: v for k, v in parameters.items() if k not in RUN_LOCAL_PARAMETERS},
        effective_parameters=dict(effective) if effective is not None else None,
        started_at=started_at, finished_at=finished_at, duration_s=duration_s,
        spec=spec, spec_sha256=spec_sha256(spec), fingerprint=info.get("fingerprint"), base_dir=info.get("base_dir"),
        dataset=DatasetInfo(**ds) if ds else None,
        targets=targets_of(results, info.get("identities")) if results is not None else [],
        totals=totals_of(results, prices_as_of()) if results is not None else Totals(prices_as_of=prices_as_of()),
        metrics=metrics_of(results) if results is not None else [],
        results_status=results.status if results is not None else None,
        failure=failure, git=git_info(git_dir or (Path(notebook.path).parent if notebook.path else run_dir)),
        packages=package_versions(), environment_lock=environment_lock(), sweep=dict(sweep) if sweep else None,
    )


def batch_of(run_dir: Path) -> dict[str, Any] | None:
    """What the batch engine recorded in the run's ledger (batch ids, counts, saving); None for an online run."""
    from ..ledger import FILENAME, RunLedger

    if not (Path(run_dir) / FILENAME).is_file():
        return None
    ledger = RunLedger(run_dir)
    try:
        return ledger.get_meta("batch") if ledger.get_meta("mode") == "batch" else None
    finally:
        ledger.close()


def write_run_manifest(results: Results, *, started_at: str | None, finished_at: str | None,
                       duration_s: float | None, source: str = "workbench eval") -> Path:
    """The manifest of a harness run started outside a notebook (``workbench eval``), written into its run folder
    so the run joins the run history: its git branch and commit are what ``--baseline last-on-main`` looks for.
    The git work tree is the spec's folder (where the prompts live), not the run folder."""
    exp, run_dir = results.experiment, Path(results.run_dir or ".")
    info: dict[str, Any] = {}
    if exp is not None:
        ds = exp.load_cases()
        info = {"spec": exp.to_dict(), "fingerprint": exp.fingerprint(), "base_dir": str(exp.base_dir),
                "dataset": {"name": ds.name, "source": ds.source, "sha256": ds.sha256, "n_cases": len(ds)}}
    manifest = build_manifest(run_dir, run_id=run_dir.name, experiment=results.name,
                              notebook=NotebookInfo(path="", name=f"({source}, no notebook)"), parameters={},
                              effective=None, results=results, info=info, started_at=started_at,
                              finished_at=finished_at, duration_s=duration_s, failure=None,
                              git_dir=exp.base_dir if exp is not None else None, source="eval")
    manifest.files = {"store": RUN_STORE_FILE, "manifest": MANIFEST_FILE}
    return Manifest.model_validate(redact_obj(manifest.model_dump(mode="json"))).write(run_dir)


def finalize_run(run_dir: str | Path, *, run_id: str, experiment: str, notebook: NotebookInfo,
                 parameters: Mapping[str, Any], effective: Mapping[str, Any] | None = None,
                 started_at: str | None = None, finished_at: str | None = None,
                 duration_s: float | None = None, failure: Failure | None = None,
                 sweep: Mapping[str, Any] | None = None, rerun_of: Path | None = None,
                 reports_dir: Path | None = None, source: str | None = None, report: bool = True,
                 results: Results | None = None, index: bool = True, git_dir: Path | None = None) -> RunOutcome:
    """Export the results, write the manifest and (``report``) the report, update the index (``index``).

    ``results``: the run's results when the caller has them (else they are loaded from the folder)."""
    run_dir = Path(run_dir)
    register_env_secrets()
    info = read_experiment_info(run_dir)
    if results is None:
        results = load_results(run_dir, info)
    files = {"notebook": NOTEBOOK_FILE} if (run_dir / NOTEBOOK_FILE).is_file() else {}
    if results is not None:
        files.update(export_results(results, run_dir))
        files["store"] = RUN_STORE_FILE
    manifest = build_manifest(run_dir, run_id=run_id, experiment=experiment, notebook=notebook, parameters=parameters,
                              effective=effective, results=results, info=info, started_at=started_at,
                              finished_at=finished_at,
                              duration_s=duration_s, failure=failure, sweep=sweep, source=source, git_dir=git_dir)
    if rerun_of is not None:
        manifest.rerun = check_reproduction(Path(rerun_of), run_dir)
    files["manifest"] = MANIFEST_FILE
    if report or (run_dir / REPORT_FILE).is_file():  # an old report is rebuilt, never left stale
        files["report"] = REPORT_FILE
    manifest.files = files
    manifest = Manifest.model_validate(redact_obj(manifest.model_dump(mode="json")))  # the report shows it too
    manifest.write(run_dir)
    if "report" in files:
        write_report(run_dir, manifest, results)
    if index:
        update_index(reports_dir or run_dir.parent.parent)
    message = None
    if failure is not None:
        message = (f"Run {run_id} failed in {failure.describe()}. The partial notebook is "
                   f"{run_dir / NOTEBOOK_FILE}; the report {run_dir / REPORT_FILE} says the same.")
    return RunOutcome(run_id=run_id, experiment=experiment, run_dir=run_dir, report=run_dir / REPORT_FILE,
                      manifest=run_dir / MANIFEST_FILE, status=manifest.status, ok=manifest.ok, failure=message,
                      reproduced=manifest.rerun.identical if manifest.rerun else None)


def begin_run(run_dir: str | Path, *, experiment: str, source: str, fingerprint: str | None = None,
              notebook: NotebookInfo | None = None, parameters: Mapping[str, Any] | None = None) -> Path:
    """A manifest saying the run has started (status ``running``), so the history lists it - and knows what
    started it - before it ends; :func:`finalize_run` replaces it."""
    run_dir = Path(run_dir)
    m = Manifest(run_id=run_dir.name, experiment=experiment, status="running", source=source,
                 notebook=notebook or NotebookInfo(path="", name=""), fingerprint=fingerprint,
                 parameters=dict(parameters or {}), started_at=utcnow(), packages=package_versions())
    return Manifest.model_validate(redact_obj(m.model_dump(mode="json"))).write(run_dir)


def record_run(results: Results, *, source: str, notebook: NotebookInfo | None = None,
               parameters: Mapping[str, Any] | None = None, report: bool = False, index: bool = True,
               reports_dir: Path | None = None) -> RunOutcome:
    """Write the manifest (and with ``report`` the report) of a run made outside ``workbench run`` - by
    ``workbench eval``, a notebook run interactively, the playground - so it joins the history like any other.

    The run's times come from its ledger; its spec, dataset hash and provider identities from
    ``experiment.json`` (written here from ``results.experiment`` when the run did not write one)."""
    if results.run_dir is None:
        raise RunError("These results have no run folder: run them with workbench.run(out=...) to record them.")
    run_dir = Path(results.run_dir)
    if not (run_dir / EXPERIMENT_FILE).is_file():
        if results.experiment is not None:
            write_experiment_info(results.experiment, run_dir, {}, source=source)
        else:
            _experiment_info_from_ledger(run_dir, source)
    return _record(run_dir, results=results, source=source, notebook=notebook, parameters=parameters,
                   report=report, index=index, reports_dir=reports_dir)


def record_failure(run_dir: str | Path, error: BaseException, *, source: str, notebook: NotebookInfo | None = None,
                   parameters: Mapping[str, Any] | None = None) -> RunOutcome:
    """The manifest of a run that stopped with ``error`` before it returned results (refused by its budget, a
    target that cannot be reached, Ctrl-C): the history shows it as failed, with why, instead of "running"."""
    failure = Failure(ename=type(error).__name__, evalue=redact(str(error))[:4000])
    return _record(Path(run_dir), results=None, source=source, notebook=notebook, parameters=parameters,
                   report=False, index=True, reports_dir=None, failure=failure)


def _record(run_dir: Path, *, results: Results | None, source: str, notebook: NotebookInfo | None,
            parameters: Mapping[str, Any] | None, report: bool, index: bool, reports_dir: Path | None,
            failure: Failure | None = None) -> RunOutcome:
    from ..history import history_root

    started, finished = _ledger_times(run_dir)
    previous = _previous_manifest(run_dir)
    root = Path(reports_dir) if reports_dir else history_root()
    in_history = run_dir.resolve().parent.parent == root.resolve()  # an --out elsewhere has no index to update
    experiment = (results.name if results is not None else None) or (previous.experiment if previous else None)
    notebook = notebook or (previous.notebook if previous and previous.notebook.name else None) \
        or NotebookInfo(path="", name=_SOURCE_NAMES.get(source, source))
    exp = results.experiment if results is not None else None
    # the git work tree that holds the prompts: the notebook's, else the spec's folder (what a baseline on a
    # branch looks for), never the history folder
    git_dir = None if notebook.path or exp is None else exp.base_dir
    return finalize_run(run_dir, run_id=run_dir.name, experiment=experiment or run_dir.parent.name,
                        notebook=notebook, git_dir=git_dir,
                        parameters=dict(parameters or (previous.parameters if previous else {})),
                        started_at=(previous.started_at if previous else None) or started,
                        finished_at=finished or utcnow(), duration_s=_duration(started, finished or utcnow()),
                        source=source, report=report, results=results, index=index and in_history,
                        reports_dir=root, failure=failure)


_SOURCE_NAMES = {"eval": "(workbench eval)", "notebook": "(a notebook, run interactively)",
                 "playground": "(the playground)", "python": "(workbench.run from Python)"}


def adopt_runs(reports_dir: str | Path | None = None) -> list[Path]:
    """Give every finished run folder that has a ledger but no manifest (a ``workbench.run()`` from Python, a
    run whose process ended before it could write one) its manifest, so it is listed with its numbers.
    Returns the folders adopted; runs still in progress are left alone."""
    from ..history import history_root, read_identity, run_dirs

    root = Path(reports_dir) if reports_dir else history_root()
    adopted = []
    for run_dir in run_dirs(root):
        if (run_dir / MANIFEST_FILE).is_file():
            continue
        try:
            ident = read_identity(run_dir)
            status = ident.get("status")
            if not status or status == "running":
                continue
            results = load_results(run_dir)
            if results is None:
                continue
            record_run(results, source=ident.get("source") or "python", index=False, reports_dir=root)
        except Exception as e:  # one damaged folder must not hide the others
            log.warning("could not adopt %s: %s", run_dir, redact(e))
            continue
        adopted.append(run_dir)
    return adopted


def _experiment_info_from_ledger(run_dir: Path, source: str) -> None:
    """What the ledger knows of its experiment (the spec and its fingerprint), as ``experiment.json``: enough
    for the manifest to name the version of the experiment, so a later run of it can resume this folder."""
    from ..ledger import RunLedger

    if not (run_dir / RUN_STORE_FILE).is_file():
        return
    store = RunLedger(run_dir)
    try:
        spec, fingerprint = store.get_meta("experiment"), store.get_meta("fingerprint")
    finally:
        store.close()
    if spec:
        info = {"schema_version": 1, "experiment": spec.get("name"), "source": source, "spec": spec,
                "fingerprint": fingerprint}
        atomic_write(run_dir / EXPERIMENT_FILE, json.dumps(redact_obj(info), indent=2, default=str))


def _ledger_times(run_dir: Path) -> tuple[str | None, str | None]:
    from ..ledger import RunLedger

    if not (run_dir / RUN_STORE_FILE).is_file():
        return None, None
    store = RunLedger(run_dir)
    try:
        return store.get_meta("started_at"), store.get_meta("finished_at")
    finally:
        store.close()


def _previous_manifest(run_dir: Path) -> Manifest | None:
    try:
        return load_manifest(run_dir)
    except Exception:  # none yet, or unreadable: start afresh
        return None


def _duration(started: str | None, finished: str | None) -> float | None:
    from datetime import datetime

    try:
        return round((datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds(), 3)
    except (TypeError, ValueError):
        return None


def write_report(run_dir: Path, manifest: Manifest, results: Results | None = None) -> Path:
    from .report import build_report

    nb = None
    if (run_dir / NOTEBOOK_FILE).is_file():
        try:
            nb = json.loads((run_dir / NOTEBOOK_FILE).read_text("utf-8"))
        except ValueError:
            nb = None
    try:
        html = build_report(results, manifest, nb)
    except Exception as e:  # a report bug must not lose the run: say so in the page, rebuild it later
        log.exception("report for %s could not be built", run_dir)
        html = _fallback_report(manifest, e)
    path = run_dir / REPORT_FILE
    atomic_write(path, html)
    return path


def _fallback_report(m: Manifest, error: BaseException) -> str:
    from html import escape

    from .report import CSP

    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" '
            f'content="{CSP}"><title>{escape(m.experiment)} {escape(m.run_id)}</title></head><body>'
            f"<h1>{escape(m.experiment)} · {escape(m.run_id)}</h1><p>Status: {escape(m.status)}</p>"
            f"<p>The report could not be built: {escape(redact(f'{type(error).__name__}: {error}'))}. The results, "
            f"the executed notebook and manifest.json are in this folder; rebuild the report with "
            f"<code>workbench report {escape(m.run_id)}</code>'s folder once fixed.</p></body></html>")


def rebuild_report(run_dir: str | Path) -> RunOutcome:
    """``workbench report RUN_DIR``: the manifest (kept if present) and report.html again from the folder."""
    run_dir = Path(run_dir).resolve()
    if not run_dir.is_dir():
        raise RunError(f"{run_dir} is not a run folder.")
    register_env_secrets()
    if (run_dir / MANIFEST_FILE).is_file():
        old = load_manifest(run_dir)
        return finalize_run(run_dir, run_id=old.run_id, experiment=old.experiment, notebook=old.notebook,
                            parameters=old.parameters, effective=old.effective_parameters,
                            started_at=old.started_at, finished_at=old.finished_at,
                            duration_s=old.duration_s, failure=old.failure, sweep=old.sweep, source=old.source,
                            git_dir=Path(old.base_dir) if old.base_dir and not old.notebook.path else None,
                            rerun_of=Path(old.rerun.of_dir) if old.rerun and old.rerun.of_dir else None)
    if not (run_dir / RUN_STORE_FILE).is_file() and not (run_dir / RESULTS_JSONL).is_file():
        raise RunError(f"{run_dir} holds no results (results.sqlite) and no manifest.json: nothing to report.")
    started, finished = _ledger_times(run_dir)
    return finalize_run(run_dir, run_id=run_dir.name, experiment=run_dir.parent.name,
                        notebook=NotebookInfo(path="", name=_SOURCE_NAMES["python"]), parameters={},
                        started_at=started, finished_at=finished, duration_s=_duration(started, finished),
                        source="python")
