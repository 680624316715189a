"""Results of an evaluation: one typed, versioned :class:`CellResult` per call, and :class:`Results` over them.

``Results.df`` is the tidy table (one row per call; a ``score.<scorer>`` and ``passed.<scorer>`` column per
scorer); summaries, comparisons and charts are pure functions of it (:mod:`workbench.stats`).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DataError, NotFoundError
from .records import CellResult

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .experiment import Experiment

def _formatters(table: pd.DataFrame) -> dict[str, Any]:
    """Counts as whole numbers, dollars with significant digits (never ``$0.0000`` for a small cost), scores
    with three decimals (:mod:`workbench.formatting`)."""
    import pandas as pd

    from .formatting import count, usd

    out: dict[str, Any] = {}
    for col in table.columns:
        if col.endswith("tokens") or col.startswith("n"):
            out[col] = count
        elif "usd" in col or col == "cost":
            out[col] = usd
        elif pd.api.types.is_float_dtype(table[col]):
            out[col] = lambda x: "" if pd.isna(x) else f"{x:.3f}"
    return out


FRONT_COLUMNS = ["case_id", "variant", "target", "repeat", "outcome", "output"]


class Results:
    """The results of one run: records, their DataFrame, summaries and exports.

    Build one with :func:`workbench.run` (or ``Results.load(run_dir)``). Displays as a summary in notebooks.
    """

    def __init__(self, records: Iterable[CellResult], experiment: Experiment | None = None,
                 run_dir: Path | None = None, status: str = "complete", info: dict[str, Any] | None = None):
        self.experiment = experiment
        self.run_dir = Path(run_dir) if run_dir else None
        self.status = status
        self.info = info or {}
        self._df: pd.DataFrame | None = None
        self.records = list(records)
        if self.run_dir is not None:
            self.reload_reviews()

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"<Results {self.name!r}: {len(self)} calls, status {self.status}, {self.n_errors} errors>"

    def reload_reviews(self) -> Results:
        """Read the run folder's human reviews again and set each reviewed cell's ``human`` score
        (:mod:`workbench.review`); the Review widget calls this after every save."""
        from .review.human import attach_reviews
        from .review.store import read_reviews

        self.records = attach_reviews(self.records, read_reviews(self.run_dir))
        self._df = None
        return self

    @property
    def name(self) -> str:
        return self.experiment.name if self.experiment else (self.records[0].experiment if self.records else "")

    # -- tables ---------------------------------------------------------------------------------------------
    @property
    def df(self) -> pd.DataFrame:
        """One row per call (tidy); sorted by case, variant, target, repeat."""
        if self._df is None:
            import pandas as pd  # only when a table is asked for: the harness's hot path never needs it

            rows = [r.row() for r in self.records]
            df = pd.DataFrame(rows)
            if not df.empty:
                order = FRONT_COLUMNS + [c for c in df.columns if c not in FRONT_COLUMNS]
                df = (
                    df[order]
                    .sort_values(["case_id", "variant", "target", "repeat"], kind="stable")
                    .reset_index(drop=True)
                )
            self._df = df
        return self._df

    @property
    def scorers(self) -> list[str]:
        return list(dict.fromkeys(s.scorer for r in self.records for s in r.scores))

    @property
    def variants(self) -> list[str]:
        if self.experiment:
            return [v.name for v in self.experiment.variants]
        return list(dict.fromkeys(r.variant for r in self.records))

    @property
    def targets(self) -> list[str]:
        return list(dict.fromkeys(r.target for r in self.records))

    @property
    def n_errors(self) -> int:
        return sum(1 for r in self.records if r.outcome == "error")

    @property
    def total_cost(self) -> float:
        return float(sum(r.cost_usd or 0.0 for r in self.records))

    def scores_long(self) -> pd.DataFrame:
        """One row per call and scorer."""
        rows = [
            {
                "case_id": r.case_id,
                "variant": r.variant,
                "target": r.target,
                "repeat": r.repeat,
                **s.model_dump(exclude={"metadata"}),
            }
            for r in self.records
            for s in r.scores
        ]
        import pandas as pd

        return pd.DataFrame(rows)

    def _scorer(self, scorer: str | None) -> str:
        names = self.scorers
        if not names:
            raise DataError("These results have no scores: add scorers to the experiment.")
        if scorer is None:
            return names[0]
        if scorer not in names:
            raise NotFoundError(f"No scorer named {scorer!r}; scorers: {', '.join(names)}")
        return scorer

    def summary(self, scorer: str | None = None) -> pd.DataFrame:
        """Mean score per variant and target with a 95% confidence interval, tokens and cost."""
        from .stats import summarize

        name = self._scorer(scorer)
        return summarize(self.df, value=f"score.{name}", by=("variant", "target"))

    def compare(self, a: str, b: str, scorer: str | None = None, target: str | None = None):
        """Paired comparison of variants ``a`` and ``b`` on the same cases."""
        from .stats import paired_comparison

        df = self.df if target is None else self.df[self.df["target"] == target]
        return paired_comparison(df, a, b, value=f"score.{self._scorer(scorer)}")

    def repeat_metrics(self, scorer: str | None = None, ks: Iterable[int] | None = None) -> pd.DataFrame:
        from .stats import repeat_metrics

        reps = int(self.df["repeat"].max()) + 1 if len(self.df) else 1
        ks = tuple(ks) if ks else tuple(k for k in (1, 2, 3, 5, 10) if k <= reps)
        return repeat_metrics(self.df, passed=f"passed.{self._scorer(scorer)}", ks=ks)

    def flakiness(self, scorer: str | None = None) -> pd.DataFrame:
        from .stats import flakiness

        return flakiness(self.df, passed=f"passed.{self._scorer(scorer)}")

    def cost_quality(self, scorer: str | None = None) -> pd.DataFrame:
        """Per variant and target: mean score, total cost and whether it is on the Pareto front."""
        from .stats import pareto_front

        s = self.summary(scorer)
        cost = self.df.groupby(["variant", "target"], sort=False)["cost_usd"].sum(min_count=1).rename("cost_usd")
        s = s.drop(columns=[c for c in ("cost_usd",) if c in s.columns]).merge(
            cost.reset_index(), on=["variant", "target"]
        )
        s["pareto"] = pareto_front(s, cost="cost_usd", quality="mean").values
        return s

    def errors(self) -> pd.DataFrame:
        df = self.df
        return (
            df[df["outcome"] == "error"][["case_id", "variant", "target", "repeat", "error_type", "error_message"]]
            if len(df)
            else df
        )

    def outputs(self, variant: str | None = None) -> pd.DataFrame:
        """Outputs side by side: one row per case, one column per variant (first target, repeat 0)."""
        df = self.df
        if not len(df):
            return df
        df = df[df["repeat"] == 0]
        df = df[df["target"] == df["target"].iloc[0]]
        if variant:
            df = df[df["variant"] == variant]
        return df.pivot(index="case_id", columns="variant", values="output")

    # -- exports -------------------------------------------------------------------------------------------
    def to_jsonl(self, path: str | Path) -> Path:
        path = Path(path)
        with open(path, "w", encoding="utf-8") as f:
            for r in self.records:
                f.write(r.model_dump_json() + "\n")
        return path

    def to_csv(self, path: str | Path) -> Path:
        self.df.to_csv(path, index=False)
        return Path(path)

    def to_parquet(self, path: str | Path) -> Path:
        df = self.df.copy()
        for col in df.columns:  # Parquet wants one type per column; mixed object columns become text
            if df[col].dtype == object:
                df[col] = df[col].map(lambda v: v if v is None or isinstance(v, str) else json.dumps(v, default=str))
        df.to_parquet(path, index=False)
        return Path(path)

    @classmethod
    def from_jsonl(cls, path: str | Path, **kwargs: Any) -> Results:
        records = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    records.append(CellResult.model_validate_json(line))
        return cls(records, **kwargs)

    @classmethod
    def load(cls, run_dir: str | Path) -> Results:
        """Results stored in a run folder (its ``results.sqlite``)."""
        from .store import RunStore

        store = RunStore(Path(run_dir))
        return cls(store.records(), run_dir=Path(run_dir), status=store.get_meta("status", "unknown"))

    # -- display --------------------------------------------------------------------------------------------
    def _repr_html_(self) -> str:
        from .formatting import usd

        parts = [
            f"<div class='wb-results'><h4>{html.escape(self.name)}: {len(self)} calls ({html.escape(self.status)})</h4>"
        ]
        facts = [
            f"variants: {len(self.variants)}",
            f"targets: {len(self.targets)}",
            f"errors: {self.n_errors}",
            f"cache hits: {sum(r.cache_hit for r in self.records)}",
            f"cost: {usd(self.total_cost)}",
        ]
        parts.append("<p>" + " &middot; ".join(facts) + "</p>")
        if self.scorers:
            for name in self.scorers:
                try:
                    table = self.summary(name)
                except Exception as e:  # display must never raise
                    parts.append(f"<p>summary for {html.escape(name)} unavailable: {html.escape(str(e))}</p>")
                    continue
                parts.append(f"<p><b>{html.escape(name)}</b> (mean, 95% CI)</p>")
                parts.append(table.to_html(index=False, escape=True, formatters=_formatters(table)))
        if self.n_errors:
            parts.append("<p><b>Errors</b></p>" + self.errors().head(10).to_html(index=False, escape=True))
        if self.run_dir:
            parts.append(f"<p>stored in <code>{html.escape(str(self.run_dir))}</code></p>")
        parts.append("</div>")
        return "".join(parts)
