"""Results of an evaluation: one typed, versioned :class:`CellResult` per call, and :class:`Results` over them.

``Results.df`` is the tidy table (one row per call; a ``score.<scorer>`` and ``passed.<scorer>`` column per
scorer); summaries, comparisons and charts are pure functions of it (:mod:`workbench.stats`).

Results of a run folder (``Results.load``, and what :func:`workbench.run` returns) are read from its ledger
lazily and page by page: counts, costs and the scorer list come from SQL; summaries, comparisons and flakiness
from a narrow table of the score columns; ``.records`` and ``.df`` are built only when asked for. Memory stays
flat in the size of the run until a full table is requested.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DataError, NotFoundError
from .records import HUMAN_SCORER, CellResult, HumanReview, Score
from .review.human import attach_reviews, iter_with_reviews, reviews_by_cell

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

    PAGE = 2000  # records per page when reading a run folder

    def __init__(self, records: Iterable[CellResult] | None, experiment: Experiment | None = None,
                 run_dir: Path | None = None, status: str = "complete", info: dict[str, Any] | None = None):
        self._records: list[CellResult] | None = list(records) if records is not None else None
        self._ledger_dir: Path | None = None  # set by load(): records are read from there on demand
        self.experiment = experiment
        self.run_dir = Path(run_dir) if run_dir else None
        self.status = status
        self.info = info or {}
        self._df: pd.DataFrame | None = None
        self._slim: pd.DataFrame | None = None
        self._facts: dict[str, Any] | None = None
        self._reviews: list[HumanReview] | None = None  # the run folder's human reviews, read once
        self._human: dict[tuple[str, str, str, int], Score] | None = None  # the reviewed cells' human scores
        if self._records is not None and self.run_dir is not None:
            self._records = attach_reviews(self._records, self._human_reviews())

    # -- where the records are -------------------------------------------------------------------------------
    @property
    def records(self) -> list[CellResult]:
        """Every record, in plan order (read from the run folder the first time it is asked for)."""
        if self._records is None:
            self._records = list(self.iter_records())
        return self._records

    @records.setter
    def records(self, value: Iterable[CellResult]) -> None:
        self._records = list(value)
        self._df = self._slim = self._facts = None

    def _lazy(self) -> bool:
        return self._records is None and self._ledger_dir is not None

    def _ledger(self):
        from .ledger import RunLedger

        return RunLedger(self._ledger_dir)

    def iter_records(self, outcome: str | None = None):
        """The records one at a time (from the run folder a page at a time, without keeping them)."""
        if not self._lazy():
            yield from (r for r in (self._records or []) if outcome is None or r.outcome == outcome)
            return
        ledger = self._ledger()
        try:
            yield from iter_with_reviews(ledger.iter_records(page=self.PAGE, outcome=outcome),
                                         reviews_by_cell(self._human_reviews()))
        finally:
            ledger.close()

    def _fact(self, name: str) -> Any:
        """Counts and sums from the ledger's SQL (no record is parsed)."""
        if self._facts is None:
            ledger = self._ledger()
            try:
                totals = ledger.totals()
                self._facts = {"n": totals["stored"], "errors": totals["errors"], "cost": totals["cost_usd"] or 0.0,
                               "cache_hits": totals["cache_hits"], "scorers": ledger.scorer_names(),
                               "targets": ledger.distinct("target"), "variants": ledger.distinct("variant")}
            finally:
                ledger.close()
        return self._facts[name]

    def __len__(self) -> int:
        return self._fact("n") if self._lazy() else len(self.records)

    def __repr__(self) -> str:
        return f"<Results {self.name!r}: {len(self)} calls, status {self.status}, {self.n_errors} errors>"

    # -- human reviews (workbench.review): the ``human`` score of the reviewed cells ----------------------------
    def reload_reviews(self) -> Results:
        """Read the run folder's human reviews again and set each reviewed cell's ``human`` score; the Review
        widget calls this after every save."""
        self._reviews = self._human = None
        self._df = self._slim = self._facts = None
        if self._records is not None:
            self._records = attach_reviews(self._records, self._human_reviews())
        return self

    def _human_reviews(self) -> list[HumanReview]:
        if self._reviews is None:
            from .review.store import read_reviews

            self._reviews = read_reviews(self.run_dir)
        return self._reviews

    def _human_scores(self) -> dict[tuple[str, str, str, int], Score]:
        """(case, variant, target, repeat) -> the ``human`` score, for the reviewed cells of a run folder read
        lazily: only those records are parsed (a review of an earlier output needs the output now)."""
        if self._human is None:
            self._human = {}
            by_cell = reviews_by_cell(self._human_reviews())
            if by_cell:
                from .ledger import cell_key

                ledger = self._ledger()
                try:
                    reviewed = ledger.records_for(cell_key(*cell) for cell in by_cell)
                finally:
                    ledger.close()
                for rec in iter_with_reviews(reviewed, by_cell):
                    for score in rec.scores:
                        if score.scorer == HUMAN_SCORER:
                            self._human[(rec.case_id, rec.variant, rec.target, rec.repeat)] = score
        return self._human

    @property
    def name(self) -> str:
        if self.experiment:
            return self.experiment.name
        first = next(iter(self.iter_records()), None)
        return first.experiment if first else ""

    # -- tables ---------------------------------------------------------------------------------------------
    @property
    def df(self) -> pd.DataFrame:
        """One row per call (tidy); sorted by case, variant, target, repeat."""
        if self._df is None:
            self._df = records_frame(self.iter_records() if self._lazy() else self.records, self.PAGE)
        return self._df

    def _scores_frame(self) -> pd.DataFrame:
        """What summaries, comparisons and repeat metrics need - case, variant, target, repeat, outcome, cost,
        tokens and the score columns - read from the ledger's columns without parsing a record; the full table
        when it is already built. Same rows, same order as ``df``, so every number is the same."""
        if not self._lazy() or self._df is not None:
            return self.df
        if self._slim is None:
            import pandas as pd

            cols = ["case_id", "variant", "target", "repeat", "outcome", "cost_usd", "prompt_tokens",
                    "completion_tokens", "scores"]
            ledger = self._ledger()
            try:
                rows = []
                for row in ledger.iter_rows(cols, page=self.PAGE * 5):
                    d = dict(zip(cols[:-1], row[:-1]))
                    for name, (value, passed, *verdict) in (json.loads(row[-1]) if row[-1] else {}).items():
                        d[f"score.{name}"], d[f"passed.{name}"] = value, passed
                        if verdict:
                            d[f"verdict.{name}"] = verdict[0]
                    human = self._human_scores().get((d["case_id"], d["variant"], d["target"], d["repeat"]))
                    if human is not None:
                        d["score.human"], d["passed.human"], d["verdict.human"] = (human.value, human.passed,
                                                                                   human.verdict)
                    rows.append(d)
            finally:
                ledger.close()
            df = pd.DataFrame(rows)
            if not df.empty:
                df = df.sort_values(["case_id", "variant", "target", "repeat"], kind="stable").reset_index(drop=True)
            self._slim = df
        return self._slim

    @property
    def scorers(self) -> list[str]:
        if self._lazy():
            names = list(self._fact("scorers"))
            return names + [HUMAN_SCORER] if self._human_scores() and HUMAN_SCORER not in names else names
        return list(dict.fromkeys(s.scorer for r in self.records for s in r.scores))

    @property
    def variants(self) -> list[str]:
        if self.experiment:
            return [v.name for v in self.experiment.variants]
        if self._lazy():
            return list(self._fact("variants"))
        return list(dict.fromkeys(r.variant for r in self.records))

    @property
    def targets(self) -> list[str]:
        if self._lazy():
            return list(self._fact("targets"))
        return list(dict.fromkeys(r.target for r in self.records))

    @property
    def n_errors(self) -> int:
        if self._lazy():
            return self._fact("errors")
        return sum(1 for r in self.records if r.outcome == "error")

    @property
    def n_cache_hits(self) -> int:
        if self._lazy():
            return self._fact("cache_hits")
        return sum(1 for r in self.records if r.cache_hit)

    @property
    def total_cost(self) -> float:
        if self._lazy():
            return float(self._fact("cost"))
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
        return summarize(self._scores_frame(), value=f"score.{name}", by=("variant", "target"))

    def summary_rows(self, scorer: str | None = None) -> list[dict[str, Any]]:
        """:meth:`summary` as plain rows, computed without pandas straight from the run's ledger (what
        ``workbench eval`` prints): the same numbers, through the same interval functions."""
        from .intervals import summarize_values

        name = self._scorer(scorer)
        sums = ("cost_usd", "prompt_tokens", "completion_tokens")
        if self._lazy():
            ledger = self._ledger()
            try:
                return summarize_values((((v, t), case, value, dict(zip(sums, (cost, pt, ct))), verdict)
                                         for v, t, case, value, cost, pt, ct, verdict in ledger.iter_scores(name)),
                                        ("variant", "target"))
            finally:
                ledger.close()
        recs = sorted(self.records, key=lambda r: (r.case_id, r.variant, r.target, r.repeat))
        rows = []
        for r in recs:
            score = next((s for s in r.scores if s.scorer == name), None)
            rows.append(((r.variant, r.target), r.case_id, score.value if score else None,
                         {"cost_usd": r.cost_usd, "prompt_tokens": r.prompt_tokens,
                          "completion_tokens": r.completion_tokens}, score.outcome if score else None))
        return summarize_values(rows, ("variant", "target"))

    def totals(self) -> dict[str, Any]:
        """Calls, outcomes, tokens, cost and spend over every record (SQL for a run folder: no record parsed).
        ``cost_usd``/``spent_usd`` are None when no call had a price; spend leaves out cache hits."""
        if self._lazy():
            ledger = self._ledger()
            try:
                return ledger.record_totals()
            finally:
                ledger.close()
        recs = self.records
        costs = [r.cost_usd for r in recs if r.cost_usd is not None]
        return {"calls": len(recs), "ok": sum(r.outcome == "ok" for r in recs),
                "errors": sum(r.outcome == "error" for r in recs),
                "filtered": sum(r.outcome in ("completion_filtered", "prompt_filtered") for r in recs),
                "cache_hits": sum(bool(r.cache_hit) for r in recs),
                "prompt_tokens": sum(r.prompt_tokens for r in recs),
                "completion_tokens": sum(r.completion_tokens for r in recs),
                "cached_tokens": sum(r.cached_tokens for r in recs),
                "reasoning_tokens": sum(r.reasoning_tokens for r in recs),
                "cost_usd": float(sum(costs)) if costs else None,
                "spent_usd": float(sum(r.cost_usd for r in recs if r.cost_usd is not None and not r.cache_hit))
                if costs else None}

    def target_facts(self) -> list[dict[str, Any]]:
        """Per target: profile, deployment, model, calls and the system fingerprints the service reported."""
        if self._lazy():
            ledger = self._ledger()
            try:
                return ledger.target_facts()
            finally:
                ledger.close()
        by: dict[str, dict[str, Any]] = {}
        for r in self.records:
            t = by.setdefault(r.target, {"target": r.target, "profile": r.profile, "deployment": r.deployment,
                                         "model": r.model, "calls": 0, "system_fingerprints": []})
            t["calls"] += 1
            if r.system_fingerprint and r.system_fingerprint not in t["system_fingerprints"]:
                t["system_fingerprints"].append(r.system_fingerprint)
        for t in by.values():
            t["system_fingerprints"].sort()
        return list(by.values())

    def first_errors(self, limit: int = 5) -> list[CellResult]:
        """The first failed calls (in the table's order), without building the table."""
        if self._lazy():
            ledger = self._ledger()
            try:
                return ledger.first_errors(limit)
            finally:
                ledger.close()
        errs = [r for r in self.records if r.outcome == "error"]
        return sorted(errs, key=lambda r: (r.case_id, r.variant, r.target, r.repeat))[:limit]

    def compare(self, a: str, b: str, scorer: str | None = None, target: str | None = None):
        """Paired comparison of variants ``a`` and ``b`` on the same cases."""
        from .stats import paired_comparison

        frame = self._scores_frame()
        df = frame if target is None else frame[frame["target"] == target]
        return paired_comparison(df, a, b, value=f"score.{self._scorer(scorer)}")

    def repeat_metrics(self, scorer: str | None = None, ks: Iterable[int] | None = None) -> pd.DataFrame:
        from .stats import repeat_metrics

        frame = self._scores_frame()
        reps = int(frame["repeat"].max()) + 1 if len(frame) else 1
        ks = tuple(ks) if ks else tuple(k for k in (1, 2, 3, 5, 10) if k <= reps)
        return repeat_metrics(frame, passed=f"passed.{self._scorer(scorer)}", ks=ks)

    def flakiness(self, scorer: str | None = None) -> pd.DataFrame:
        from .stats import flakiness

        return flakiness(self._scores_frame(), passed=f"passed.{self._scorer(scorer)}")

    def cost_quality(self, scorer: str | None = None) -> pd.DataFrame:
        """Per variant and target: mean score, total cost and whether it is on the Pareto front."""
        from .stats import pareto_front

        s = self.summary(scorer)
        frame = self._scores_frame()
        cost = frame.groupby(["variant", "target"], sort=False)["cost_usd"].sum(min_count=1).rename("cost_usd")
        s = s.drop(columns=[c for c in ("cost_usd",) if c in s.columns]).merge(
            cost.reset_index(), on=["variant", "target"]
        )
        s["pareto"] = pareto_front(s, cost="cost_usd", quality="mean").values
        return s

    def latency(self, by: Sequence[str] = ("variant", "target")) -> pd.DataFrame:
        """How fast the answers came, per variant and target: calls measured, latency p50/p95, time to first token
        p50/p95 (streamed calls only) and output tokens per second (median), in seconds.

        Failed calls are left out (an error's time is not an answer's); cached calls keep the time measured when
        the answer was made, and ``cached`` says how many there are."""
        import pandas as pd

        df = self.df
        if not len(df):
            return pd.DataFrame(columns=[*by, "n", "cached", "latency_p50", "latency_p95", "first_token_p50",
                                         "first_token_p95", "tokens_per_s"])
        ok = df[df["outcome"] != "error"]
        rows = []
        for keys, g in ok.groupby(list(by), sort=False):
            keys = keys if isinstance(keys, tuple) else (keys,)
            lat, ttft, rate = (g[c].dropna().astype(float) for c in ("latency_s", "first_token_s", "tokens_per_s"))
            q = lambda s, p: float(s.quantile(p)) if len(s) else None  # noqa: E731
            rows.append({**dict(zip(by, keys)), "n": len(g), "cached": int(g["cache_hit"].sum()),
                         "latency_p50": q(lat, 0.5), "latency_p95": q(lat, 0.95),
                         "first_token_p50": q(ttft, 0.5), "first_token_p95": q(ttft, 0.95),
                         "tokens_per_s": q(rate, 0.5)})
        return pd.DataFrame(rows)

    ERROR_COLUMNS = ["case_id", "variant", "target", "repeat", "error_type", "error_message"]

    def errors(self) -> pd.DataFrame:
        """The failed calls: case, variant, target, repeat, error type and message (only those records are read)."""
        if self._lazy() and self._df is None:
            import pandas as pd

            rows = [{c: getattr(r, c) for c in self.ERROR_COLUMNS} for r in self.iter_records(outcome="error")]
            df = pd.DataFrame(rows, columns=self.ERROR_COLUMNS)
            return df.sort_values(self.ERROR_COLUMNS[:4], kind="stable").reset_index(drop=True) if len(df) else df
        df = self.df
        return df[df["outcome"] == "error"][self.ERROR_COLUMNS] if len(df) else df

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
            for r in self.iter_records():
                f.write(r.model_dump_json() + "\n")
        return path

    def to_csv(self, path: str | Path) -> Path:
        self.df.to_csv(path, index=False)
        return Path(path)

    def to_parquet(self, path: str | Path) -> Path:
        return write_parquet(self.df, path)

    @classmethod
    def from_jsonl(cls, path: str | Path, **kwargs: Any) -> Results:
        return cls(list(read_jsonl(path)), **kwargs)

    @classmethod
    def load(cls, run_dir: str | Path, *, experiment: Experiment | None = None, status: str | None = None,
             info: dict[str, Any] | None = None) -> Results:
        """Results stored in a run folder (its ledger, ``results.sqlite``), read lazily.

        A folder from before the ledger is migrated (a copy kept as ``results.v1.sqlite``); a damaged one raises
        :class:`~workbench.errors.LedgerError` naming the file and how to recover.
        """
        from .ledger import open_ledger

        run_dir = Path(run_dir)
        ledger = open_ledger(run_dir)
        try:
            stored = ledger.get_meta("status", "unknown")
            if stored == "running" and not ledger.live_owners():
                stored = "interrupted"  # its process died (kill -9, power): what finished is kept
        finally:
            ledger.close()
        results = cls(None, experiment, run_dir, status or stored, info)
        results._ledger_dir = run_dir
        return results

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
            f"cache hits: {self.n_cache_hits}",
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


def records_frame(records: Iterable[CellResult], page: int = Results.PAGE) -> pd.DataFrame:
    """One row per call, sorted by case, variant, target, repeat - built a page of rows at a time, so a run
    folder's records (or a results file's lines) are never all held as objects and row dicts at once."""
    import pandas as pd  # only when a table is asked for: the harness's hot path never needs it

    pages, rows = [], []
    for r in records:
        rows.append(r.row())
        if len(rows) >= page:
            pages.append(pd.DataFrame(rows))
            rows = []
    if rows or not pages:
        pages.append(pd.DataFrame(rows))
    df = pd.concat(pages, ignore_index=True) if len(pages) > 1 else pages[0]
    if df.empty:
        return df
    order = FRONT_COLUMNS + [c for c in df.columns if c not in FRONT_COLUMNS]
    return df[order].sort_values(["case_id", "variant", "target", "repeat"], kind="stable").reset_index(drop=True)


def read_jsonl(path: str | Path) -> Iterator[CellResult]:
    """The records of a results file, one at a time."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield CellResult.model_validate_json(line)


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    df = df.copy()
    for col in df.columns:  # Parquet wants one type per column; mixed object columns become text
        if df[col].dtype == object:
            df[col] = df[col].map(lambda v: v if v is None or isinstance(v, str) else json.dumps(v, default=str))
    df.to_parquet(path, index=False)
    return Path(path)
