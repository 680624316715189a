"""The run history on disk: every run folder under the history root with its manifest, newest first; filters and
orders for it; and ``reports/index.html`` over it.

Every run is listed, whatever started it (:mod:`workbench.history`): a folder with a ``manifest.json`` by its
manifest, a folder with only a ledger (a run in progress, a killed one, one started from Python) by a
provisional manifest read from the ledger - :func:`workbench.runs.finalize.adopt_runs` writes the real one once
such a run has finished.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import DataError, WorkbenchError
from ..history import MANIFEST_FILE, read_identity, run_dirs
from .layout import INDEX_FILE, atomic_write, reports_root
from .manifest import SOURCES, Manifest, Metric, NotebookInfo, load_manifest  # noqa: F401 - SOURCES re-exported

log = logging.getLogger("workbench.runs")

SORT_KEYS = ("newest", "oldest", "best score", "cost")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - not POSIX: last writer wins
            pass
        yield


def list_runs(reports_dir: str | Path | None = None, *, experiment: str | None = None,
              source: str | None = None) -> list[tuple[Path, Manifest]]:
    """Every run under ``reports_dir`` (default: the history root) with its manifest, newest first."""
    root = Path(reports_dir) if reports_dir else reports_root()
    runs = []
    for run_dir in run_dirs(root):
        m = _manifest_of(run_dir)
        if m is not None:
            runs.append((run_dir, m))
    runs = filter_runs(runs, experiment=experiment, source=source)
    return sort_runs(runs, "newest")


def _manifest_of(run_dir: Path) -> Manifest | None:
    if (run_dir / MANIFEST_FILE).is_file():
        try:
            return load_manifest(run_dir)
        except (WorkbenchError, ValueError) as e:
            log.warning("skipping %s: %s", run_dir, e)
            return None
    try:
        ident = read_identity(run_dir)
    except Exception as e:  # a damaged ledger: say so, list the others
        log.warning("skipping %s: %s", run_dir, e)
        return None
    return provisional_manifest(run_dir, ident)


def provisional_manifest(run_dir: Path, ident: dict) -> Manifest:
    """What a run folder without a manifest is known as: its ledger's experiment, fingerprint and status."""
    status = ident.get("status") or "unknown"
    if status == "running":
        status = "running (or interrupted)"  # a killed run's ledger says "running" until it is resumed
    return Manifest(run_id=run_dir.name, experiment=ident.get("experiment") or run_dir.parent.name, status=status,
                    notebook=NotebookInfo(path="", name=""), fingerprint=ident.get("fingerprint"),
                    started_at=ident.get("started_at"), source=ident.get("source") or "python")


def filter_runs(runs: Sequence[tuple[Path, Manifest]], *, query: str | None = None, experiment: str | None = None,
                source: str | None = None, status: str | None = None) -> list[tuple[Path, Manifest]]:
    """The runs matching every filter given: ``query`` (a case-insensitive substring of the experiment, run id,
    notebook, source or parameters), ``experiment``, ``source`` and ``status`` (a prefix: ``complete``)."""
    q = (query or "").strip().casefold()
    out = []
    for run_dir, m in runs:
        if experiment and m.experiment != experiment:
            continue
        if source and m.source != source:
            continue
        if status and not m.status.startswith(status):
            continue
        if q and q not in _haystack(run_dir, m):
            continue
        out.append((run_dir, m))
    return out


def _haystack(run_dir: Path, m: Manifest) -> str:
    params = " ".join(f"{k}={v}" for k, v in m.parameters.items())
    return " ".join([m.experiment, m.run_id, m.notebook.name, m.source or "", m.status, params,
                     str(run_dir)]).casefold()


def headline_metric(m: Manifest) -> Metric | None:
    """The best variant's metric of the first scorer (what a one-line listing shows)."""
    return max((x for x in m.headline() if x.mean is not None), key=lambda x: x.mean, default=None)


def sort_runs(runs: Sequence[tuple[Path, Manifest]], by: str = "newest") -> list[tuple[Path, Manifest]]:
    """``newest`` / ``oldest`` first, ``best score`` (the best variant's mean, highest first) or ``cost``
    (most expensive first); runs without the number come last."""
    if by not in SORT_KEYS:
        raise DataError(f"sort by {by!r}: use one of {', '.join(SORT_KEYS)}")
    runs = list(runs)
    when = lambda r: (r[1].started_at or "", r[1].run_id)  # noqa: E731
    if by in ("newest", "oldest"):
        return sorted(runs, key=when, reverse=by == "newest")
    if by == "best score":
        def key(r):
            best = headline_metric(r[1])
            return (best is not None, best.mean if best else 0.0, when(r))
    else:
        def key(r):
            cost = r[1].totals.cost_usd
            return (cost is not None, cost or 0.0, when(r))
    return sorted(runs, key=key, reverse=True)


def update_index(reports_dir: str | Path) -> Path:
    """Rewrite ``reports/index.html`` from every run's manifest (safe when parallel runs finish at once)."""
    from .report import build_index

    root = Path(reports_dir)
    with _locked(root / ".index.lock"):
        runs = [(run_dir.relative_to(root).as_posix(), m) for run_dir, m in list_runs(root)]
        path = root / INDEX_FILE
        atomic_write(path, build_index(runs))
    return path
