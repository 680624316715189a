"""The run history on disk: every run folder's manifest, newest first, and ``reports/index.html`` over them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import WorkbenchError
from .manifest import (
    MANIFEST_FILE,
    Manifest,
    load_manifest,
)

if TYPE_CHECKING:  # pragma: no cover
    pass


from .layout import INDEX_FILE, atomic_write, reports_root

log = logging.getLogger("workbench.runs")


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


def list_runs(reports_dir: str | Path | None = None) -> list[tuple[Path, Manifest]]:
    """Every run under ``reports_dir`` with its manifest, newest first."""
    root = Path(reports_dir) if reports_dir else reports_root()
    runs = []
    for path in root.glob(f"*/*/{MANIFEST_FILE}"):
        try:
            runs.append((path.parent, load_manifest(path)))
        except (WorkbenchError, ValueError) as e:
            log.warning("skipping %s: %s", path, e)
    runs.sort(key=lambda r: (r[1].started_at or "", r[1].run_id), reverse=True)
    return runs


def update_index(reports_dir: str | Path) -> Path:
    """Rewrite ``reports/index.html`` from every run's manifest (safe when parallel runs finish at once)."""
    from .report import build_index

    root = Path(reports_dir)
    with _locked(root / ".index.lock"):
        runs = [(run_dir.relative_to(root).as_posix(), m) for run_dir, m in list_runs(root)]
        path = root / INDEX_FILE
        atomic_write(path, build_index(runs))
    return path
