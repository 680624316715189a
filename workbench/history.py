"""The run history: one root, one layout, for every run whatever started it.

Every run - ``workbench eval``, ``workbench run`` (a notebook through papermill, a sweep point, a re-run), a
notebook run interactively (``runs.run_experiment``), the playground, ``workbench.run()`` from Python - is a
folder ``<root>/<experiment>/<run-id>/`` holding the harness's ledger (``results.sqlite``), a manifest
(``manifest.json``) and, when asked, ``report.html``. ``<root>`` is :func:`history_root`: ``$WORKBENCH_REPORTS``,
else the project's ``reports/`` folder, else ``./reports``. ``workbench runs``, ``reports/index.html`` and the
``RunHistory`` widget list that one root.

This module only knows paths and identities (no pandas, no manifest model), so the harness can ask it where a
run goes: :func:`default_run_dir` is what ``workbench.run(out=None)`` and ``workbench eval`` use, and it is what
makes a re-run of the same spec resume - see its docstring for the rule.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

RUN_STORE_FILE = "results.sqlite"
MANIFEST_FILE = "manifest.json"
EXPERIMENT_FILE = "experiment.json"  # written by a notebook's run before its first call

# Sources whose run folders a later run of the same experiment may resume (a notebook or playground run owns
# its folder: it is never continued by something else).
RESUMABLE_SOURCES = ("eval", "python")


def history_root(start: str | Path | None = None) -> Path:
    """The root of the run history: ``$WORKBENCH_REPORTS``, else ``reports/`` in the project (the nearest folder
    above ``start`` - default the working directory - holding ``reports/README.md`` or a ``pyproject.toml``),
    else ``./reports``."""
    if os.environ.get("WORKBENCH_REPORTS"):
        return Path(os.environ["WORKBENCH_REPORTS"]).expanduser().resolve()
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "reports" / "README.md").is_file() or (d / "pyproject.toml").is_file():
            return d / "reports"
    return here / "reports"


def new_run_id() -> str:
    """A run id that sorts by start time: ``20261201-203512-1a2b3c``."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def new_run_dir(experiment: str, root: str | Path | None = None, run_id: str | None = None) -> Path:
    """A fresh run folder ``<root>/<experiment>/<run-id>/`` (created)."""
    path = Path(root) if root is not None else history_root()
    path = path / experiment / (run_id or new_run_id())
    path.mkdir(parents=True, exist_ok=False)
    return path


def run_dirs(root: str | Path | None = None) -> list[Path]:
    """Every run folder under ``root``: ``<experiment>/<run-id>/`` holding a manifest or a ledger."""
    base = Path(root) if root is not None else history_root()
    found = {p.parent for name in (MANIFEST_FILE, RUN_STORE_FILE) for p in base.glob(f"*/*/{name}")}
    return sorted(found)


def read_identity(run_dir: str | Path) -> dict[str, Any]:
    """What a run folder says about itself without loading it: experiment, fingerprint, source, status.

    From ``manifest.json`` when there is one, else from the ledger's own notes (a run that has not been
    finalised: in progress, killed, or started from Python).
    """
    run_dir = Path(run_dir)
    manifest = _read_json(run_dir / MANIFEST_FILE)
    if manifest:
        return {"experiment": manifest.get("experiment"), "fingerprint": manifest.get("fingerprint"),
                "source": manifest.get("source"), "status": manifest.get("status"),
                "started_at": manifest.get("started_at")}
    if not (run_dir / RUN_STORE_FILE).is_file():
        return {}
    # a notebook's run records its experiment (and that a notebook started it) before the first call
    info = _read_json(run_dir / EXPERIMENT_FILE)
    from .ledger import RunLedger

    store = RunLedger(run_dir)
    try:
        spec = store.get_meta("experiment") or {}
        return {"experiment": spec.get("name") or info.get("experiment"),
                "fingerprint": store.get_meta("fingerprint") or info.get("fingerprint"),
                "source": info.get("source", "notebook") if info else None,
                "status": store.get_meta("status"), "started_at": store.get_meta("started_at")}
    finally:
        store.close()


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def find_run(experiment: str, fingerprint: str, root: str | Path | None = None, *,
             sources: Iterable[str | None] = (*RESUMABLE_SOURCES, None)) -> Path | None:
    """The newest run folder of ``experiment`` with this ``fingerprint`` started by one of ``sources`` (None:
    a folder without a manifest - a run in progress, killed, or from Python)."""
    base = (Path(root) if root is not None else history_root()) / experiment
    allowed = set(sources)
    for run_dir in sorted((p for p in base.glob("*") if p.is_dir()), reverse=True):  # run ids sort by time
        ident = read_identity(run_dir)
        if ident.get("fingerprint") == fingerprint and ident.get("source") in allowed:
            return run_dir
    return None


def default_run_dir(experiment: str, fingerprint: str, root: str | Path | None = None) -> Path:
    """Where a run goes when no folder is given: the newest resumable run of the same experiment version (same
    name and fingerprint, started by ``workbench eval`` or ``workbench.run()``) - so running the same spec
    again resumes it, skipping finished cells - else a new folder. Notebook and playground runs are never
    resumed by something else; pass an explicit folder (``--out``) to continue one of those."""
    return find_run(experiment, fingerprint, root) or new_run_dir(experiment, root)
