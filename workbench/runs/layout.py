"""What a run folder holds: ``<history root>/<experiment>/<run-id>/`` (:mod:`workbench.history`) and its files.

Every writer goes through :func:`atomic_write` (write a temporary file, then rename), so a reader - the index,
a report rebuild, a second process - never sees half a file.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import WorkbenchError
from ..history import EXPERIMENT_FILE, RUN_STORE_FILE, history_root, new_run_id  # noqa: F401 - re-exported
from ..secrets import redact, redact_obj

if TYPE_CHECKING:  # pragma: no cover
    from ..experiment import Experiment
    from ..providers import Provider
    from ..results import Results

log = logging.getLogger("workbench.runs")



NOTEBOOK_FILE = "notebook.ipynb"
REPORT_FILE = "report.html"
RESULTS_PARQUET = "results.parquet"
RESULTS_JSONL = "results.jsonl"
INDEX_FILE = "index.html"
RUN_LOCAL_PARAMETERS = ("run_dir", "reports_dir")  # notebook parameters naming this run's folder: never compared

# the history's own names and rules (workbench.history), under the names this package has always used
reports_root = history_root


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, "utf-8")
    tmp.replace(path)


def read_experiment_info(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / EXPERIMENT_FILE
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}


def write_experiment_info(exp: Experiment, run_dir: str | Path, providers: Mapping[str, Provider], *,
                          source: str | None = None) -> Path:
    ds = exp.load_cases()
    identities: dict[str, Any] = {}
    for name, provider in providers.items():
        try:
            identities[name] = {"backend": provider.profile.backend, **provider.identity}
        except Exception as e:  # identity is provenance: never let it stop a run
            identities[name] = {"backend": getattr(provider.profile, "backend", None), "error": redact(e)}
    info = {
        "schema_version": 1,
        "experiment": exp.name,
        "source": source,
        "spec": exp.to_dict(),
        "base_dir": str(exp.base_dir),
        "fingerprint": exp.fingerprint(),
        "dataset": {"name": ds.name, "source": ds.source, "sha256": ds.sha256, "n_cases": len(ds)},
        "n_calls": exp.n_cells(),
        "identities": identities,
    }
    path = Path(run_dir) / EXPERIMENT_FILE
    atomic_write(path, json.dumps(redact_obj(info), indent=2, default=str))
    return path


def load_results(run_dir: str | Path, info: Mapping[str, Any] | None = None) -> Results | None:
    """The results stored in a run folder, with their Experiment attached when its spec still loads."""
    from ..results import Results

    run_dir = Path(run_dir)
    if (run_dir / RUN_STORE_FILE).is_file():
        results = Results.load(run_dir)
    elif (run_dir / RESULTS_JSONL).is_file():
        results = Results.from_jsonl(run_dir / RESULTS_JSONL, run_dir=run_dir)
    else:
        return None
    info = read_experiment_info(run_dir) if info is None else info
    if info.get("spec"):
        from ..experiment import experiment_from_dict

        try:
            base = Path(info["base_dir"]) if info.get("base_dir") else None
            results.experiment = experiment_from_dict(info["spec"], where=str(run_dir / EXPERIMENT_FILE), base_dir=base)
        except WorkbenchError as e:
            log.warning("%s: the experiment spec no longer loads (%s); reporting from the records alone", run_dir, e)
    return results


def load_run(run_dir: str | Path) -> Results | None:
    """:func:`load_results` for any run folder: a notebook run's experiment comes from ``experiment.json``; a
    harness run's (``workbench.run(out=...)``, ``workbench eval``) from the spec its run store keeps - its
    relative dataset paths resolve from the working directory, so that one may not load (then it stays None)."""
    results = load_results(run_dir)
    if results is None or results.experiment is not None or not (Path(run_dir) / RUN_STORE_FILE).is_file():
        return results
    from ..experiment import experiment_from_dict
    from ..ledger import RunLedger

    store = RunLedger(Path(run_dir))
    try:
        spec = store.get_meta("experiment")
    finally:
        store.close()
    if spec:
        try:
            results.experiment = experiment_from_dict(spec, where=str(Path(run_dir) / RUN_STORE_FILE))
        except WorkbenchError as e:
            log.warning("%s: the stored experiment spec does not load (%s); using the records alone", run_dir, e)
    return results
