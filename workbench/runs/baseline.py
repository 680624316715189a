"""The baseline a gate compares with: a run chosen by path, by run id, or as the last run on a branch.

``--baseline`` (and the pytest plugin's ``--workbench-baseline``) accept:

- a path: a run folder (``results.sqlite`` or ``results.jsonl`` inside), a ``results.jsonl`` file (what a CI job
  keeps as an artifact), a ``results.sqlite`` or a ``manifest.json``;
- a run id (or the start of one) from the run history (``workbench runs``);
- ``last-on-main`` (``last-on-BRANCH`` for another branch): the newest finished run of the same experiment whose
  manifest says it ran on a clean checkout of that branch.

The run history is every run folder with a manifest under the history roots (:func:`history_roots`: the one
history, ``reports/`` (:mod:`workbench.history`), where every run goes, and the workbench home's ``runs/``, where
``workbench eval`` wrote before). A baseline that cannot be found is refused before
anything is sent (:class:`~workbench.errors.BaselineNotFound`), saying where it looked.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BaselineNotFound
from .index import list_runs
from .layout import RESULTS_JSONL, RUN_STORE_FILE, load_results, reports_root
from .manifest import MANIFEST_FILE, Manifest, load_manifest

if TYPE_CHECKING:  # pragma: no cover
    from ..gates.evaluate import BaselineInfo
    from ..results import Results

LAST_ON = "last-on-"


def history_roots() -> list[Path]:
    """Where runs live: the run history (``reports/``) and the workbench home's ``runs/`` (``workbench eval``'s
    runs from before there was one history)."""
    from ..store import workbench_home

    return [reports_root(), workbench_home() / "runs"]


def history(roots: Sequence[Path] | None = None) -> list[tuple[Path, Manifest]]:
    """Every run with a manifest under ``roots``, newest first."""
    runs: list[tuple[Path, Manifest]] = []
    seen: set[Path] = set()
    for root in roots if roots is not None else history_roots():
        if not Path(root).is_dir():
            continue
        for run_dir, m in list_runs(root):
            if run_dir.resolve() not in seen:
                seen.add(run_dir.resolve())
                runs.append((run_dir, m))
    runs.sort(key=lambda r: (r[1].started_at or "", r[1].run_id), reverse=True)
    return runs


def find_baseline(ref: str, *, experiment: str | None = None,
                  roots: Sequence[Path] | None = None) -> tuple[Results, BaselineInfo]:
    """The baseline run ``ref`` names (see the module docstring) and how it was chosen."""
    ref = str(ref).strip()
    if not ref:
        raise BaselineNotFound("--baseline is empty: give a path, a run id, or last-on-main.")
    if ref.startswith(LAST_ON):
        return _last_on(ref, ref[len(LAST_ON):], experiment, roots)
    path = Path(ref).expanduser()
    if path.exists():
        return _from_path(ref, path)
    return _by_run_id(ref, roots)


def _info(ref: str, chosen_as: str, run_dir: Path | None, manifest: Manifest | None, results: Results,
          path: Path | None = None) -> BaselineInfo:
    from ..gates.evaluate import BaselineInfo

    return BaselineInfo(
        ref=ref, chosen_as=chosen_as, path=str(path or run_dir) if (path or run_dir) else None,
        run_id=manifest.run_id if manifest else (run_dir.name if run_dir else None),
        experiment=manifest.experiment if manifest else (results.name or None),
        branch=manifest.git.branch if manifest else None, commit=manifest.git.commit if manifest else None,
        started_at=manifest.started_at if manifest else None, calls=len(results.records),
    )


def _from_path(ref: str, path: Path) -> tuple[Results, BaselineInfo]:
    from ..results import Results

    if path.is_file() and path.name.endswith(".jsonl"):
        results = Results.from_jsonl(path)
        return _nonempty(ref, results, path), _info(ref, "path", None, None, results, path)
    run_dir = path.parent if path.is_file() and path.name in (RUN_STORE_FILE, MANIFEST_FILE) else path
    if not run_dir.is_dir():
        raise BaselineNotFound(f"--baseline {ref}: {path} is not a run folder or a results file (give a run folder, "
                               f"its {RESULTS_JSONL}, {RUN_STORE_FILE} or {MANIFEST_FILE}).")
    results = load_results(run_dir)
    if results is None:
        raise BaselineNotFound(f"--baseline {ref}: {run_dir} holds no results ({RUN_STORE_FILE} or {RESULTS_JSONL}).")
    manifest = load_manifest(run_dir) if (run_dir / MANIFEST_FILE).is_file() else None
    return _nonempty(ref, results, run_dir), _info(ref, "path", run_dir, manifest, results, path)


def _nonempty(ref: str, results: Results, where: Path) -> Results:
    if not results.records:
        raise BaselineNotFound(f"--baseline {ref}: {where} holds no results: nothing to compare with.")
    return results


def _where(roots: Sequence[Path] | None) -> str:
    return " and ".join(str(r) for r in (roots if roots is not None else history_roots()))


def _by_run_id(ref: str, roots: Sequence[Path] | None) -> tuple[Results, BaselineInfo]:
    runs = history(roots)
    exact = [(d, m) for d, m in runs if ref in (m.run_id, d.name)]
    matches = exact or [(d, m) for d, m in runs if m.run_id.startswith(ref) or d.name.startswith(ref)]
    if not matches:
        raise BaselineNotFound(f"--baseline {ref}: no file or folder by that path, and no run with that id in the "
                               f"run history ({_where(roots)}). Give a run folder, a results.jsonl, a run id from "
                               "`workbench runs`, or last-on-main.")
    if len(matches) > 1:
        ids = ", ".join(m.run_id for _, m in matches[:5])
        raise BaselineNotFound(f"--baseline {ref}: {len(matches)} runs start with that id ({ids}); give more of it.")
    run_dir, manifest = matches[0]
    results = load_results(run_dir)
    if results is None:
        raise BaselineNotFound(f"--baseline {ref}: run {manifest.run_id} at {run_dir} holds no results.")
    return _nonempty(ref, results, run_dir), _info(ref, "run id", run_dir, manifest, results)


def _last_on(ref: str, branch: str, experiment: str | None,
             roots: Sequence[Path] | None) -> tuple[Results, BaselineInfo]:
    if not branch:
        raise BaselineNotFound(f"--baseline {ref}: name the branch, e.g. last-on-main.")
    runs = [(d, m) for d, m in history(roots) if experiment in (None, m.experiment)]
    for run_dir, m in runs:
        if m.git.branch != branch or m.git.dirty or not m.ok:
            continue
        results = load_results(run_dir)
        if results is not None and results.records:
            return results, _info(ref, f"last run on {branch}", run_dir, m, results)
    others = sorted({(m.git.branch or "no git") + (" with uncommitted changes" if m.git.dirty else "")
                     for _, m in runs})
    seen = f"; the history has runs of it on {', '.join(others)}" if others else ""
    what = f"of experiment {experiment!r} " if experiment else ""
    raise BaselineNotFound(
        f"--baseline {ref}: no finished run {what}on a clean checkout of {branch!r} in the run history "
        f"({_where(roots)}){seen}. Run it on {branch} first (in CI: on every push to {branch}, keeping the run "
        "history or its results.jsonl), or give --baseline PATH.")
