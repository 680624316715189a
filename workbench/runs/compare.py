"""Compare runs: scores side by side, paired per-case differences, and what changed in their manifests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RunError
from .manifest import (
    MANIFEST_FILE,
    Manifest,
    load_manifest,
)

if TYPE_CHECKING:  # pragma: no cover
    pass


from .execute import RunSpec, execute_run
from .index import list_runs
from .layout import load_results


@dataclass
class RunComparison:
    """Two or more runs side by side: scores, paired differences, and what changed in their manifests."""

    runs: list[tuple[Path, Manifest]]
    scores: Any  # DataFrame: run, variant, target, scorer, n, mean, ci_low, ci_high
    changes: list[dict[str, Any]]
    paired: Any  # DataFrame: variant, target, run a, run b, n_pairs, diff, ci, p, summary

    def scores_wide(self):
        """One row per variant and target, one column per run: ``mean [low, high]``."""
        if self.scores.empty:
            return self.scores
        df = self.scores.assign(cell=lambda d: d.apply(
            lambda r: f"{r['mean']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}] n={int(r['n'])}", axis=1))
        return df.pivot_table(index=["scorer", "variant", "target"], columns="run", values="cell", aggfunc="first",
                              sort=False)

    def changes_frame(self):
        import pandas as pd

        return pd.DataFrame(self.changes) if self.changes else pd.DataFrame(columns=["field"])


def latest_runs(reports_dir: str | Path | None = None, n: int = 2, experiment: str | None = None) -> list[Path]:
    """The ``n`` newest successful runs of one experiment (the newest run's, unless ``experiment`` is given)."""
    runs = [(d, m) for d, m in list_runs(reports_dir) if m.ok and m.metrics]
    if experiment is None and runs:
        experiment = runs[0][1].experiment
    same = [d for d, m in runs if m.experiment == experiment]
    return list(reversed(same[:n]))


def compare_runs(run_dirs: Sequence[str | Path], scorer: str | None = None) -> RunComparison:
    """Compare runs: scores per variant with intervals, paired per-case differences between the first run and
    each other one (same cases), and the manifest fields that differ (spec, fingerprints, models...)."""
    import pandas as pd

    from .. import stats
    from .manifest import diff_manifests

    if len(run_dirs) < 2:
        raise RunError(f"compare_runs needs two or more run folders, got {len(run_dirs)}.")
    loaded = []
    for d in run_dirs:
        d = Path(d)
        d = d.parent if d.name == MANIFEST_FILE else d
        loaded.append((d, load_manifest(d), load_results(d)))
    rows, frames = [], []
    for _run_dir, m, res in loaded:
        if res is None or not res.scorers:
            continue
        names = [scorer] if scorer else res.scorers
        for name in names:
            s = res.summary(name)
            for r in s.to_dict("records"):
                rows.append({"run": m.run_id, "scorer": name, "variant": r["variant"], "target": r["target"],
                             "n": r["n"], "mean": r["mean"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]})
        frames.append(res.df.assign(run=m.run_id))
    scores = pd.DataFrame(rows, columns=["run", "scorer", "variant", "target", "n", "mean", "ci_low", "ci_high"])
    paired_rows = []
    if len(frames) >= 2:
        both = pd.concat(frames, ignore_index=True)
        first = loaded[0][1].run_id
        for sc in ([scorer] if scorer else list(dict.fromkeys(scores["scorer"]))):
            col = f"score.{sc}"
            if col not in both.columns:
                continue
            for (variant, target), part in both.groupby(["variant", "target"], sort=False):
                for other in [m.run_id for _, m, _ in loaded[1:]]:
                    if {first, other} - set(part["run"]):
                        continue
                    c = stats.paired_comparison(part, first, other, value=col, variant="run", within=[])
                    paired_rows.append({"scorer": sc, "variant": variant, "target": target, "a": first, "b": other,
                                        "n_pairs": c.n_pairs, "mean_a": c.mean_a, "mean_b": c.mean_b, "diff": c.diff,
                                        "ci_low": c.ci_low, "ci_high": c.ci_high, "p_value": c.p_value,
                                        "summary": c.summary})
    changes = diff_manifests([m for _, m, _ in loaded])
    return RunComparison([(d, m) for d, m, _ in loaded], scores, changes, pd.DataFrame(paired_rows))


def ensure_runs(reports_dir: str | Path | None = None, *, n: int = 2, sample_size: int | None = 8,
                notebook: str | Path | None = None) -> list[Path]:
    """The ``n`` latest runs to compare; on a fresh clone (fewer than ``n``), make them by running
    ``03_evaluate`` on the demo: as shipped (greedy), then at temperature 0.8."""
    found = latest_runs(reports_dir, n)
    if len(found) >= n:
        return found
    nb = Path(notebook) if notebook else Path(__file__).resolve().parents[2] / "notebooks" / "03_evaluate.ipynb"
    variations = [{}, {"temperature": 0.8, "seed": 1}]
    made = []
    for extra in variations[: n]:
        params = {"sample_size": sample_size, **extra} if sample_size else dict(extra)
        out = execute_run(RunSpec(nb, params, Path(reports_dir) if reports_dir else None, progress=False))
        if not out.ok:
            raise RunError(out.failure or f"run {out.run_id} did not complete: {out.status}")
        made.append(out.run_dir)
    return made
