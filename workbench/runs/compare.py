"""Compare runs: which cases they share, scores side by side, paired per-case differences, the cases whose
outcome changed (with both outputs), and what changed in their manifests.

A comparison is only as good as its pairing: two runs of "the same" experiment can hold different cases (a
different sample, a changed dataset). :func:`compare_runs` says so - ``RunComparison.warnings`` - and compares
on the cases every run has (``shared_cases``): the paired tests pair on them, and the side-by-side scores are
computed on them too when the case sets differ (``scores_basis`` says which).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RunError
from .execute import RunSpec, execute_run
from .index import list_runs
from .layout import load_results
from .manifest import MANIFEST_FILE, Manifest, load_manifest

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ..results import Results


@dataclass
class RunComparison:
    """Two or more runs side by side: case sets, scores, paired differences, changed cases, manifest changes."""

    runs: list[tuple[Path, Manifest]]
    scores: Any  # DataFrame: run, scorer, variant, target, cases (all | shared), n, mean, ci_low, ci_high, method
    changes: list[dict[str, Any]]  # manifest fields that differ
    paired: Any  # DataFrame: scorer, variant, target, a, b, n_pairs, n_unpaired, diff, ci, p, summary
    case_sets: dict[str, int] = field(default_factory=dict)  # run id -> how many cases it has
    shared_cases: int | None = None  # cases every run has (what the comparison pairs on)
    warnings: list[str] = field(default_factory=list)  # the case sets differ, a run has no results...
    case_changes: Any = None  # DataFrame: case_id, variant, target, before, after, change, output_a, output_b

    @property
    def same_cases(self) -> bool:
        """Every run has exactly the same cases."""
        return all(n == self.shared_cases for n in self.case_sets.values())

    @property
    def scores_basis(self) -> str:
        """Which cases :meth:`scores_wide` is computed on."""
        if self.same_cases:
            return f"all {self.shared_cases} cases, the same in every run"
        return f"the {self.shared_cases} cases every run has"

    def scores_wide(self, cases: str | None = None):
        """One row per scorer, variant and target, one column per run: ``mean [low, high] n=…``.

        ``cases``: ``"shared"`` (the cases every run has - the default when the case sets differ) or ``"all"``.
        """
        from .. import formatting as fmt

        if self.scores is None or self.scores.empty:
            return self.scores
        basis = cases or ("all" if self.same_cases else "shared")
        df = self.scores[self.scores["cases"] == basis]
        if df.empty:
            df = self.scores[self.scores["cases"] == "all"]
        df = df.assign(cell=lambda d: d.apply(
            lambda r: f"{fmt.interval(r['mean'], r['ci_low'], r['ci_high'], rate=fmt.is_rate(r['method']))} "
                      f"n={int(r['n'])}", axis=1))
        wide = df.pivot_table(index=["scorer", "variant", "target"], columns="run", values="cell", aggfunc="first",
                              sort=False)
        return wide.reindex(columns=[m.run_id for _, m in self.runs if m.run_id in wide.columns])  # baseline first

    def changes_frame(self):
        import pandas as pd

        return pd.DataFrame(self.changes) if self.changes else pd.DataFrame(columns=["field"])


def latest_runs(reports_dir: str | Path | None = None, n: int = 2, experiment: str | None = None, *,
                same_cases: bool = True) -> list[Path]:
    """The ``n`` newest successful runs of one experiment (the newest run's, unless ``experiment`` is given),
    oldest first. With ``same_cases`` (default) they all ran on the same cases (the same dataset hash), so a
    comparison is paired by construction: the newest ``n`` runs of the newest case set that has ``n`` runs
    (fewer, of the newest case set, if none has)."""
    runs = [(d, m) for d, m in list_runs(reports_dir) if m.ok and m.metrics]
    if experiment is None and runs:
        experiment = runs[0][1].experiment
    same = [(d, m) for d, m in runs if m.experiment == experiment]
    if same_cases and same:
        by_cases: dict[str | None, list] = {}
        for d, m in same:
            by_cases.setdefault(_case_hash(m), []).append((d, m))
        full = [group for group in by_cases.values() if len(group) >= n]
        same = full[0] if full else by_cases[_case_hash(same[0][1])]
    return list(reversed([d for d, _ in same[:n]]))


def _case_hash(m: Manifest) -> str | None:
    return m.dataset.sha256 if m.dataset else None


def compare_runs(run_dirs: Sequence[str | Path], scorer: str | None = None) -> RunComparison:
    """Compare runs: the cases they share, scores per variant with intervals, paired per-case differences between
    the first run and each other one (on their shared cases), the cases whose outcome changed between the first
    two runs, and the manifest fields that differ (spec, fingerprints, models...)."""
    import pandas as pd

    from .manifest import diff_manifests

    if len(run_dirs) < 2:
        raise RunError(f"compare_runs needs two or more run folders, got {len(run_dirs)}.")
    loaded = []
    for d in run_dirs:
        d = Path(d)
        d = d.parent if d.name == MANIFEST_FILE else d
        loaded.append((d, load_manifest(d), load_results(d)))
    warnings: list[str] = []
    with_results = [(m, res) for _, m, res in loaded if res is not None and len(res)]
    for _, m, res in loaded:
        if res is None or not len(res):
            warnings.append(f"run {m.run_id} has no results (status {m.status}): it is left out of the scores.")
    case_ids = {m.run_id: set(res.df["case_id"].astype(str)) for m, res in with_results}
    shared = set.intersection(*case_ids.values()) if case_ids else set()
    same = len({frozenset(v) for v in case_ids.values()}) <= 1
    if not same:
        warnings.append(_case_set_warning(case_ids, shared))
    names = [scorer] if scorer else list(dict.fromkeys(s for _, res in with_results for s in res.scorers))
    scores = _scores(with_results, names, shared, same=same)
    paired = _paired(with_results, names)
    frames = [(m.run_id, res.df) for m, res in with_results]
    changes_df = case_changes(frames[0], frames[1], names[0]) if len(frames) >= 2 and names else pd.DataFrame(
        columns=["case_id", "variant", "target", "before", "after", "change", "output_a", "output_b"])
    return RunComparison(
        runs=[(d, m) for d, m, _ in loaded], scores=scores, changes=diff_manifests([m for _, m, _ in loaded]),
        paired=paired, case_sets={k: len(v) for k, v in case_ids.items()}, shared_cases=len(shared),
        warnings=warnings, case_changes=changes_df)


def _case_set_warning(case_ids: dict[str, set[str]], shared: set[str]) -> str:
    sizes = ", ".join(f"{run} has {len(v)}" for run, v in case_ids.items())
    return (f"The runs do not have the same cases ({sizes}; {len(shared)} in common): the scores side by side and "
            f"the paired differences are computed on the {len(shared)} shared cases only. Runs of the same "
            f"dataset with the same sample size and sample_seed have the same cases.")


def _scores(with_results: list[tuple[Manifest, Results]], names: list[str], shared: set[str], *,
            same: bool) -> pd.DataFrame:
    import pandas as pd

    from ..stats import summarize

    rows = []
    for m, res in with_results:
        df = res.df
        for basis, part in (("all", df), ("shared", df[df["case_id"].astype(str).isin(shared)])):
            if basis == "shared" and same:
                continue
            for name in names:
                if f"score.{name}" not in part.columns or part.empty:
                    continue
                for r in summarize(part, value=f"score.{name}", by=("variant", "target")).to_dict("records"):
                    rows.append({"run": m.run_id, "scorer": name, "variant": r["variant"], "target": r["target"],
                                 "cases": basis, "n": r["n"], "mean": r["mean"], "ci_low": r["ci_low"],
                                 "ci_high": r["ci_high"], "method": r.get("method"),
                                 "n_ambiguous": r.get("n_ambiguous", 0), "n_refused": r.get("n_refused", 0)})
    return pd.DataFrame(rows, columns=["run", "scorer", "variant", "target", "cases", "n", "mean", "ci_low",
                                       "ci_high", "method", "n_ambiguous", "n_refused"])


def _paired(with_results: list[tuple[Manifest, Results]], names: list[str]) -> pd.DataFrame:
    """Each variant of the first run against the same variant of every other run, paired on cases."""
    import pandas as pd

    from .. import stats

    rows = []
    if len(with_results) >= 2:
        both = pd.concat([res.df.assign(run=m.run_id) for m, res in with_results], ignore_index=True)
        first = with_results[0][0].run_id
        for sc in names:
            col = f"score.{sc}"
            if col not in both.columns:
                continue
            for (variant, target), part in both.groupby(["variant", "target"], sort=False):
                for other in [m.run_id for m, _ in with_results[1:]]:
                    if {first, other} - set(part["run"]):
                        continue
                    c = stats.paired_comparison(part, first, other, value=col, variant="run", within=[])
                    rows.append({"scorer": sc, "variant": variant, "target": target, "a": first, "b": other,
                                 "n_pairs": c.n_pairs, "n_unpaired": c.n_unpaired, "mean_a": c.mean_a,
                                 "mean_b": c.mean_b, "diff": c.diff, "ci_low": c.ci_low, "ci_high": c.ci_high,
                                 "p_value": c.p_value, "summary": c.summary})
    return pd.DataFrame(rows, columns=["scorer", "variant", "target", "a", "b", "n_pairs", "n_unpaired", "mean_a",
                                       "mean_b", "diff", "ci_low", "ci_high", "p_value", "summary"])


def case_changes(a: tuple[str, pd.DataFrame], b: tuple[str, pd.DataFrame], scorer: str) -> pd.DataFrame:
    """Per case, variant and target both runs have: the outcome before and after, and how it changed.

    ``before``/``after`` is the verdict of the only repeat (``pass``, ``fail``, ``refused``...) or, with
    repeats, ``k/n pass``; ``change`` is ``improved`` (more repeats pass), ``regressed`` (fewer), ``changed``
    (as many pass but the verdict differs, e.g. a fail became a refusal) or ``same``. ``output_a``/``output_b``
    are the first repeat's outputs, for a diff.
    """
    import pandas as pd

    keys = ["case_id", "variant", "target"]
    sides = [_outcomes(df, scorer) for _, df in (a, b)]
    merged = sides[0].merge(sides[1], on=keys, suffixes=("_a", "_b"))
    if merged.empty:
        return pd.DataFrame(columns=[*keys, "before", "after", "change", "output_a", "output_b"])

    def change(r) -> str:
        if r["rate_a"] != r["rate_a"] or r["rate_b"] != r["rate_b"]:  # NaN: no scored repeat on one side
            return "same" if r["label_a"] == r["label_b"] else "changed"
        if r["rate_b"] > r["rate_a"]:
            return "improved"
        if r["rate_b"] < r["rate_a"]:
            return "regressed"
        return "same" if r["label_a"] == r["label_b"] else "changed"

    merged["change"] = merged.apply(change, axis=1)
    order = {"regressed": 0, "improved": 1, "changed": 2, "same": 3}
    merged = merged.sort_values(by=["change", "case_id", "variant"], key=lambda s: s.map(order) if s.name == "change"
                                else s, kind="stable")
    out = merged.rename(columns={"label_a": "before", "label_b": "after"})
    return out[[*keys, "before", "after", "change", "output_a", "output_b"]].reset_index(drop=True)


def _outcomes(df: pd.DataFrame, scorer: str) -> pd.DataFrame:
    """Per case, variant and target: the pass rate over repeats, a label for it and the first output."""
    import pandas as pd

    passed, verdict = f"passed.{scorer}", f"verdict.{scorer}"
    rows = []
    for (case, variant, target), g in df.groupby(["case_id", "variant", "target"], sort=False):
        g = g.sort_values("repeat")
        flags = pd.to_numeric(g[passed], errors="coerce") if passed in g.columns else pd.Series(dtype=float)
        scored = flags.dropna()
        rate = float(scored.mean()) if len(scored) else float("nan")
        if len(g) == 1:
            label = str(g[verdict].iloc[0]) if verdict in g.columns else ("pass" if rate == 1 else "fail")
            label = label if label not in ("None", "nan") else g["outcome"].iloc[0]
        else:
            label = f"{int(scored.sum())}/{len(scored)} pass" if len(scored) else "error"
        first = g.iloc[0]
        output = first["output"] if first["outcome"] != "error" else f"[error] {first.get('error_message') or ''}"
        rows.append({"case_id": str(case), "variant": variant, "target": target, "rate": rate, "label": label,
                     "output": output})
    return pd.DataFrame(rows, columns=["case_id", "variant", "target", "rate", "label", "output"])


def ensure_runs(reports_dir: str | Path | None = None, *, n: int = 2, sample_size: int | None = 8,
                notebook: str | Path | None = None) -> list[Path]:
    """The ``n`` latest runs to compare (on the same cases); on a fresh clone (fewer than ``n``), make them by
    running ``03_evaluate`` on the demo: as shipped (greedy), then at temperature 0.8 with another request
    seed. The case sample does not depend on the request seed (``sample_seed``), so both runs have the same
    cases and the comparison is paired case by case."""
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
