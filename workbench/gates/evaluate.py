"""Checking gates: a pure function of a run's :class:`~workbench.results.Results` (and a baseline run's).

:func:`evaluate_gates` turns results + gates into a :class:`GateReport`, a typed and versioned record (fields
only grow) that the CLI prints, writes as ``gates.json``, and renders as JUnit XML and Markdown. Each gate is
checked per scope - each variant x target, or the whole run for a cost gate - and each check says what it
measured, on how much evidence, and why it passed or failed:

- a value that cannot be measured (no scored case, a model without a price) is an ``error``, which fails the
  gate: an absent measurement never passes, and an unpriced model is never counted as free;
- a baseline gate pairs this run with the baseline on the cases both scored (McNemar on pass/fail scores, a
  paired bootstrap otherwise, see :func:`workbench.stats.paired_comparison`) and fails only on a significant
  regression; it says how many cases were shared and how many were left out, and is ``skipped`` when there is
  nothing to compare with (no baseline, or a variant the baseline does not have).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from ..errors import GatesFailed
from ..formatting import p_value, usd
from ..records import CellResult, utcnow
from ..schema import Model
from .spec import RUN_METRICS, Gate, gate_problems

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ..results import Results

GATE_REPORT_SCHEMA_VERSION = 1
CheckStatus = Literal["passed", "failed", "error", "skipped"]
THIS_RUN, BASELINE_RUN = "this run", "the baseline"
_EPS = 1e-12  # means of repeats averaged per case can land a hair below an exact threshold


class PairedCheck(Model):
    """The paired comparison behind a baseline gate (this run minus the baseline, on shared cases)."""

    n_shared: int
    """Cases scored in both runs: the pairs the test uses."""
    only_this_run: int = 0
    """Cases scored in this run only (left out of the test)."""
    only_baseline: int = 0
    """Cases scored in the baseline only (left out of the test)."""
    mean_baseline: float | None = None
    mean_this_run: float | None = None
    diff: float | None = None
    """``mean_this_run - mean_baseline`` over the shared cases."""
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    method: str = "none"
    """``mcnemar exact`` (pass/fail scores) or ``paired bootstrap``."""
    significant: bool = False
    """The paired test found a difference at the 95% level."""
    sentence: str = ""
    """The comparison in plain English (who wins, by how much, how sure, on how many pairs)."""
    cases: str = ""
    """Which cases were compared, in plain English ("Paired on all 24 cases." / "... 4 only in this run ...")."""


class GateCheck(Model):
    """One gate applied to one scope: a variant on a target, or the whole run."""

    variant: str | None = None
    """The variant checked; None for the whole run (or every variant of a target)."""
    target: str | None = None
    status: CheckStatus
    """``passed``, ``failed``, ``error`` (could not be measured: fails the gate) or ``skipped`` (nothing to compare)."""
    value: float | None = None
    """What was measured (a mean, a bound, USD, seconds, a share of calls; for a baseline gate the difference)."""
    threshold: float | None = None
    n: int = 0
    """How many cases (score gates) or calls (cost, latency, error rate) the value rests on."""
    ci_low: float | None = None
    ci_high: float | None = None
    detail: str = ""
    """Why it passed or failed, in one sentence with its evidence."""
    paired: PairedCheck | None = None

    @property
    def scope(self) -> str:
        if self.variant and self.target:
            return f"{self.variant} @ {self.target}"
        return self.variant or (f"@ {self.target}" if self.target else "whole run")

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "skipped")


class GateOutcome(Model):
    """A gate and its checks; it fails when any check failed or could not be measured."""

    gate: Gate
    expression: str
    """The gate's one-line form (``label.ci_low >= 0.8 for json-schema``)."""
    label: str
    """Its name when it has one, else the expression."""
    status: Literal["passed", "failed", "skipped"]
    checks: list[GateCheck] = Field(default_factory=list)


class BaselineInfo(Model):
    """Which run the baseline gates compared with, and how it was chosen."""

    ref: str
    """As given: a path, a run id, or ``last-on-main``."""
    chosen_as: str
    """``path``, ``run id`` or ``last run on <branch>``."""
    path: str | None = None
    run_id: str | None = None
    experiment: str | None = None
    branch: str | None = None
    commit: str | None = None
    started_at: str | None = None
    calls: int = 0

    def describe(self) -> str:
        bits = [self.chosen_as if self.chosen_as != "path" else f"`{self.path or self.ref}`"]
        if self.run_id and self.chosen_as != "path":
            bits.append(f"run {self.run_id}")
        if self.commit:
            bits.append(f"commit {self.commit[:10]}" + (f" on {self.branch}" if self.branch else ""))
        return ", ".join(bits)


class ScoreLine(Model):
    """One row of the score table: a scorer's mean with its 95% interval for a variant on a target."""

    scorer: str
    variant: str
    target: str
    n: int
    n_errors: int = 0
    mean: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None


class GateReport(Model):
    """Every gate's verdict on one run, with the run's scores and cost: what CI needs to pass or fail a change."""

    schema_version: int = GATE_REPORT_SCHEMA_VERSION
    experiment: str
    run_dir: str | None = None
    run_status: str = "complete"
    """The run's own status (``complete``, ``complete with errors``, ``stopped: ...``)."""
    status: Literal["passed", "failed", "no gates"]
    gates: list[GateOutcome] = Field(default_factory=list)
    scores: list[ScoreLine] = Field(default_factory=list)
    baseline: BaselineInfo | None = None
    calls: int = 0
    errors: int = 0
    """Calls that failed (no answer)."""
    cache_hits: int = 0
    cost_usd: float | None = None
    """Every call at list prices, judge calls included (what the run is worth); None if a model has no price."""
    spent_usd: float | None = None
    """What this invocation paid (cache hits and resumed cells cost nothing), when known."""
    unpriced: list[str] = Field(default_factory=list)
    """Models with no price, which make ``cost_usd`` unknown."""
    confidence: float = 0.95
    created_at: str = Field(default_factory=utcnow)

    @property
    def passed(self) -> bool:
        return self.status != "failed"

    @property
    def failed(self) -> list[GateOutcome]:
        return [g for g in self.gates if g.status == "failed"]

    def counts(self) -> dict[str, int]:
        out = {"passed": 0, "failed": 0, "skipped": 0}
        for g in self.gates:
            out[g.status] += 1
        return out

    def verdict(self) -> str:
        """``all 3 gates passed`` / ``1 of 3 gates failed`` (skipped ones said too)."""
        if not self.gates:
            return "no gates"
        c, n = self.counts(), len(self.gates)
        skipped = f", {c['skipped']} skipped" if c["skipped"] else ""
        if c["failed"]:
            return f"{c['failed']} of {n} gates failed{skipped}" if n > 1 else "the gate failed"
        if c["passed"] == n:
            return f"all {n} gate{'s' if n != 1 else ''} passed" if n > 1 else "the gate passed"
        return f"{c['passed']} of {n} gates passed{skipped}"

    def text(self) -> str:
        """The verdict and one line per check, for a terminal or an assertion message."""
        lines = [f"{self.experiment}: {self.verdict()}"]
        width = max((len(g.label) for g in self.gates), default=0)
        for g in self.gates:
            for c in g.checks:
                mark = {"passed": "PASS", "failed": "FAIL", "error": "FAIL", "skipped": "SKIP"}[c.status]
                lines.append(f"  {mark}  {g.label:<{width}}  {c.scope}: {c.detail}")
                if c.paired is not None and c.paired.sentence:
                    lines.append(f"        {'':<{width}}  {c.paired.sentence} {c.paired.cases}")
        return "\n".join(lines)

    def write(self, path: str | Path) -> Path:
        """Write the report as JSON (``gates.json`` in a run folder), atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(self.model_dump_json(indent=2) + "\n", "utf-8")
        tmp.replace(path)
        return path


# --------------------------------------------------------------------------------------------- evaluating


def evaluate_gates(results: Results, gates: Sequence[Gate | str | Mapping[str, Any]] | None = None, *,
                   baseline: Results | None = None, baseline_info: BaselineInfo | None = None) -> GateReport:
    """Check ``gates`` (default: the experiment's own) on ``results``; baseline gates compare with ``baseline``.

    Gates given as strings or mappings are validated first, against the experiment when the results have one
    (a typo'd scorer raises :class:`~workbench.errors.SpecError` naming ``gates[i].scorer``).
    """
    checked = resolve_gates(results, gates)
    df = results.df
    summaries: dict[str, Any] = {}
    outcomes = [_outcome(g, _checks(g, results, df, summaries, baseline)) for g in checked]
    status: Literal["passed", "failed", "no gates"] = (
        "no gates" if not outcomes else "failed" if any(o.status == "failed" for o in outcomes) else "passed")
    cost, unpriced = cost_of(results.records)
    spent = results.info.get("spent_usd")
    return GateReport(
        experiment=results.name, run_dir=str(results.run_dir) if results.run_dir else None,
        run_status=results.status, status=status, gates=outcomes, scores=score_lines(results, summaries),
        baseline=baseline_info if baseline is not None else None, calls=len(results.records),
        errors=results.n_errors, cache_hits=sum(bool(r.cache_hit) for r in results.records),
        cost_usd=cost, spent_usd=float(spent) if spent is not None else None, unpriced=unpriced,
    )


def assert_gates(results: Results, *gates: Gate | str | Mapping[str, Any], baseline: Results | None = None,
                 baseline_info: BaselineInfo | None = None) -> GateReport:
    """Evaluate ``gates`` (default: the experiment's) and raise :class:`~workbench.errors.GatesFailed` - an
    ``AssertionError``, so pytest reports a failed test - with every check in its message when one fails."""
    __tracebackhide__ = True  # pytest shows the caller's line
    report = evaluate_gates(results, list(gates) or None, baseline=baseline, baseline_info=baseline_info)
    if not report.gates:
        raise GatesFailed(f"{results.name}: no gates to check: give some (assert_gates(results, 'label >= 0.9')) "
                          "or add `gates:` to the experiment", report)
    if not report.passed:
        raise GatesFailed(report.text(), report)
    return report


def regression_gates(scorers: Iterable[str]) -> list[Gate]:
    """``SCORER >= baseline`` for each scorer: what ``--baseline`` checks when no gate names the baseline."""
    return [Gate(scorer=s, min="baseline") for s in scorers]


def resolve_gates(results: Results, gates: Sequence[Gate | str | Mapping[str, Any]] | None) -> list[Gate]:
    """The gates to check, validated the one way every gate is (the experiment's own validation when known)."""
    exp = results.experiment
    if gates is None:
        return list(exp.gates) if exp is not None else []
    if exp is not None:
        return list(exp.replace(gates=list(gates)).gates)
    from ..errors import SpecError
    from ..schema import format_problems

    parsed = [Gate.parse(g) if isinstance(g, (str, Gate)) else Gate.model_validate(g) for g in gates]
    problems = gate_problems(parsed, scorers={s: False for s in results.scorers}, variants=results.variants,
                             targets=results.targets)
    if problems:
        raise format_problems(problems, what="set of gates", where=results.name or None)
    if any(not isinstance(p, Gate) for p in parsed):  # pragma: no cover - parse always returns a Gate
        raise SpecError("gates must be Gate objects, strings or mappings")
    return parsed


def _outcome(gate: Gate, checks: list[GateCheck]) -> GateOutcome:
    if any(not c.ok for c in checks):
        status: Literal["passed", "failed", "skipped"] = "failed"
    elif checks and all(c.status == "skipped" for c in checks):
        status = "skipped"
    else:
        status = "passed"
    return GateOutcome(gate=gate, expression=gate.expression, label=gate.label, status=status, checks=checks)


def _groups(results: Results, df: pd.DataFrame, gate: Gate) -> list[tuple[str, str]]:
    """The (variant, target) pairs a gate applies to, in the experiment's order of variants and targets."""
    if df.empty:
        return []
    pairs = set(zip(df["variant"].astype(str), df["target"].astype(str)))
    variants, targets = results.variants, results.targets
    order = sorted(pairs, key=lambda p: (variants.index(p[0]) if p[0] in variants else len(variants),
                                         targets.index(p[1]) if p[1] in targets else len(targets), p))
    return [(v, t) for v, t in order if gate.variant in (None, v) and gate.target in (None, t)]


def _checks(gate: Gate, results: Results, df: pd.DataFrame, summaries: dict[str, Any],
            baseline: Results | None) -> list[GateCheck]:
    if gate.metric == "cost":
        return [_cost_check(gate, results)]
    groups = _groups(results, df, gate)
    if not groups:
        return [GateCheck(variant=gate.variant, target=gate.target, status="error",
                          detail="no calls in these results match this gate's variant and target")]
    if gate.against_baseline:
        return [_baseline_check(gate, df, v, t, baseline) for v, t in groups]
    if gate.metric in RUN_METRICS:
        return [_calls_check(gate, df[(df["variant"] == v) & (df["target"] == t)], v, t) for v, t in groups]
    return [_score_check(gate, results, summaries, v, t) for v, t in groups]


def _verdict(gate: Gate, value: float) -> bool:
    t = float(gate.threshold)  # type: ignore[arg-type]
    return value >= t - _EPS if gate.min is not None else value <= t + _EPS


def _shown(value: float, threshold: float, digits: int = 2) -> str:
    """``value`` with as many decimals as it takes to agree with the verdict (0.8996 is not shown as 0.90)."""
    for d in range(digits, 7):
        text = f"{value:.{d}f}"
        if (float(text) >= threshold) == (value >= threshold) and (float(text) == threshold) == (value == threshold):
            return text
    return repr(value)


def _compare_words(gate: Gate, ok: bool) -> str:
    t = gate.threshold
    shown = f"{t:g}" if isinstance(t, float) else str(t)
    if gate.min is not None:
        return f">= {shown}" if ok else f"is below {shown}"
    return f"<= {shown}" if ok else f"is above {shown}"


def score_summary(results: Results, summaries: dict[str, Any], scorer: str) -> Any:
    """``results.summary(scorer)`` (mean, 95% CI per variant and target), computed once per scorer."""
    if scorer not in summaries:
        summaries[scorer] = results.summary(scorer) if scorer in results.scorers else None
    return summaries[scorer]


def _score_check(gate: Gate, results: Results, summaries: dict[str, Any], variant: str, target: str) -> GateCheck:
    table = score_summary(results, summaries, gate.scorer or "")
    base = dict(variant=variant, target=target, threshold=float(gate.threshold))  # type: ignore[arg-type]
    if table is None:
        return GateCheck(**base, status="error", detail=f"no {gate.scorer} scores in these results "
                                                           "(did every call fail?)")
    row = table[(table["variant"].astype(str) == variant) & (table["target"].astype(str) == target)]
    if row.empty or int(row.iloc[0]["n"]) == 0:
        errors = int(row.iloc[0]["n_errors"]) if not row.empty else 0
        return GateCheck(**base, status="error", detail=f"no case could be scored by {gate.scorer} "
                                                           f"({errors} calls or scores failed)")
    r = row.iloc[0]
    mean, low, high, n_cases = float(r["mean"]), float(r["ci_low"]), float(r["ci_high"]), int(r["n_cases"])
    value = {"mean": mean, "ci_low": low, "ci_high": high}[gate.metric]
    ok = _verdict(gate, value)
    t = float(gate.threshold)  # type: ignore[arg-type]
    ci = f"95% CI {low:.2f} to {high:.2f}, {n_cases} case{'s' if n_cases != 1 else ''}"
    errors = int(r["n_errors"])
    left_out = f"; {errors} unscored call{'s' if errors != 1 else ''} left out" if errors else ""
    hedged = [f"{int(r[k])} {word}" for k, word in (("n_refused", "refused"), ("n_ambiguous", "ambiguous"))
              if k in r and int(r[k])]
    if hedged:  # they count as fails: say so, a reader should not have to guess why a mean is low
        left_out += f"; {' and '.join(hedged)} counted as fails"
    if gate.metric == "mean":
        detail = f"mean {_shown(value, t)} ({ci}{left_out}) {_compare_words(gate, ok)}"
    else:
        bound = "lower" if gate.metric == "ci_low" else "upper"
        detail = (f"{bound} bound of the 95% CI {_shown(value, t)} (mean {mean:.2f}, {n_cases} cases"
                  f"{left_out}) {_compare_words(gate, ok)}")
    return GateCheck(**base, status="passed" if ok else "failed", value=value, n=n_cases, ci_low=low, ci_high=high,
                     detail=detail)


def _calls_check(gate: Gate, rows: pd.DataFrame, variant: str, target: str) -> GateCheck:
    import numpy as np

    t = float(gate.threshold)  # type: ignore[arg-type]
    base = dict(variant=variant, target=target, threshold=t)
    calls = len(rows)
    if gate.metric == "error_rate":
        failed = int((rows["outcome"] == "error").sum())
        rate = failed / calls
        ok = _verdict(gate, rate)
        return GateCheck(**base, status="passed" if ok else "failed", value=rate, n=calls,
                         detail=f"{failed} of {calls} calls failed ({rate:.1%}) {_compare_words(gate, ok)}")
    answered = rows[(rows["outcome"] != "error") & rows["latency_s"].notna()]
    if answered.empty:
        return GateCheck(**base, status="error", n=0, detail="no call was answered, so there is no latency to gate")
    p95 = float(np.percentile(answered["latency_s"].astype(float), 95))
    ok = _verdict(gate, p95)
    cached = int(answered["cache_hit"].sum()) if "cache_hit" in answered else 0
    note = f"; {cached} from the cache, timed when first sent" if cached else ""
    return GateCheck(**base, status="passed" if ok else "failed", value=p95, n=len(answered),
                     detail=f"p95 latency {p95:.2f} s over {len(answered)} answered calls{note} "
                            f"{_compare_words(gate, ok)} s")


def cost_of(records: Iterable[CellResult]) -> tuple[float | None, list[str]]:
    """Every call at list prices, judge calls included, and the models without a price (then the cost is None)."""
    total, unpriced = 0.0, set()
    for r in records:
        if r.cost_usd is not None:
            total += float(r.cost_usd)
        elif r.outcome != "error":  # a call that got no answer is not billed; an answer without a price is unknown
            unpriced.add(r.model or r.deployment)
        for s in r.scores:
            if "cost_usd" in s.metadata:
                judge = s.metadata.get("cost_usd")
                if judge is None:
                    unpriced.add(f"judge {s.metadata.get('judge_model') or s.scorer}")
                else:
                    total += float(judge)
    return (None if unpriced else total), sorted(unpriced)


def _cost_check(gate: Gate, results: Results) -> GateCheck:
    records = [r for r in results.records
               if gate.variant in (None, r.variant) and gate.target in (None, r.target)]
    t = float(gate.threshold)  # type: ignore[arg-type]
    base = dict(variant=gate.variant, target=gate.target, threshold=t, n=len(records))
    if not records:
        return GateCheck(**base, status="error", detail="no calls in these results match this gate")
    cost, unpriced = cost_of(records)
    if cost is None:
        return GateCheck(**base, status="error",
                         detail=f"the cost is unknown: no price for {', '.join(unpriced)} (an unpriced model is "
                                "never counted as free; add it to the price table)")
    ok = _verdict(gate, cost)
    return GateCheck(**base, status="passed" if ok else "failed", value=cost,
                     detail=f"{format_usd(cost)} at list prices for {len(records)} calls "
                            f"{'<=' if ok else 'is above'} {format_usd(t)}")


def _baseline_check(gate: Gate, df: pd.DataFrame, variant: str, target: str,
                    baseline: Results | None) -> GateCheck:
    base = dict(variant=variant, target=target)
    if baseline is None:
        return GateCheck(**base, status="skipped",
                         detail="no baseline run was given (--baseline PATH|RUN_ID|last-on-main)")
    col = f"score.{gate.scorer}"
    bdf = baseline.df
    if col not in bdf.columns or bdf.empty:
        return GateCheck(**base, status="skipped", detail=f"the baseline has no {gate.scorer} scores to compare with")
    theirs = bdf[(bdf["variant"].astype(str) == variant) & (bdf["target"].astype(str) == target)]
    if theirs.empty:
        return GateCheck(**base, status="skipped",
                         detail=f"the baseline has no {variant} on {target} (a new variant or target cannot regress)")
    ours = df[(df["variant"].astype(str) == variant) & (df["target"].astype(str) == target)]
    if col not in ours.columns:
        return GateCheck(**base, status="error", detail=f"no {gate.scorer} scores in this run")
    paired = paired_check(ours, theirs, col)
    if paired.n_shared == 0:
        return GateCheck(**base, status="error", paired=paired,
                         detail=f"no case was scored in both runs, so nothing can be compared. {paired.cases}")
    worse = paired.diff < 0 if gate.min is not None else paired.diff > 0  # type: ignore[operator]
    ok = not (worse and paired.significant)
    verdict = "no significant regression" if ok else "a significant regression"
    p = p_value(paired.p_value)
    left_out = " (the case sets differ)" if paired.only_this_run or paired.only_baseline else ""
    return GateCheck(**base, status="passed" if ok else "failed", value=paired.diff, n=paired.n_shared,
                     ci_low=paired.ci_low, ci_high=paired.ci_high, paired=paired,
                     detail=f"{verdict}: mean {paired.mean_this_run:.2f} vs {paired.mean_baseline:.2f} in the "
                            f"baseline, p={p}, on {paired.n_shared} shared cases{left_out}")


def paired_check(ours: pd.DataFrame, theirs: pd.DataFrame, col: str) -> PairedCheck:
    """This run against the baseline on the cases both scored, with the case sets said in words."""
    import pandas as pd

    from ..stats import paired_comparison

    mine = set(ours.loc[ours[col].notna(), "case_id"].astype(str))
    other = set(theirs.loc[theirs[col].notna(), "case_id"].astype(str))
    shared, only_mine, only_theirs = mine & other, len(mine - other), len(other - mine)
    if only_mine or only_theirs:
        cases = (f"Paired on the {len(shared)} cases both runs scored; {only_mine} only in this run and "
                 f"{only_theirs} only in the baseline are left out (the case sets differ).")
    else:
        cases = f"Paired on all {len(shared)} cases (the same case set)."
    if not shared:
        return PairedCheck(n_shared=0, only_this_run=only_mine, only_baseline=only_theirs, cases=cases)
    both = pd.concat([ours[["case_id", col]].assign(run=THIS_RUN), theirs[["case_id", col]].assign(run=BASELINE_RUN)],
                     ignore_index=True)
    both["case_id"] = both["case_id"].astype(str)
    c = paired_comparison(both, BASELINE_RUN, THIS_RUN, value=col, variant="run", within=[])
    return PairedCheck(n_shared=c.n_pairs, only_this_run=only_mine, only_baseline=only_theirs,
                       mean_baseline=_f(c.mean_a), mean_this_run=_f(c.mean_b), diff=_f(c.diff), ci_low=_f(c.ci_low),
                       ci_high=_f(c.ci_high), p_value=_f(c.p_value), method=c.method, significant=c.significant,
                       sentence=c.summary, cases=cases)


def _f(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def score_lines(results: Results, summaries: dict[str, Any]) -> list[ScoreLine]:
    """The score table: every scorer's mean and 95% interval per variant and target, in the experiment's order."""
    out = []
    for scorer in results.scorers:
        table = score_summary(results, summaries, scorer)
        if table is None:
            continue
        for r in table.to_dict("records"):
            out.append(ScoreLine(scorer=scorer, variant=str(r["variant"]), target=str(r["target"]), n=int(r["n"]),
                                 n_errors=int(r.get("n_errors") or 0), mean=_f(r.get("mean")),
                                 ci_low=_f(r.get("ci_low")), ci_high=_f(r.get("ci_high"))))
    variants, targets = results.variants, results.targets

    def rank(line: ScoreLine) -> tuple[int, int]:
        return (variants.index(line.variant) if line.variant in variants else len(variants),
                targets.index(line.target) if line.target in targets else len(targets))

    return sorted(out, key=lambda line: (results.scorers.index(line.scorer), *rank(line)))


def format_usd(v: float | None) -> str:
    """Money as everywhere else (:func:`workbench.formatting.usd`: never hidden by rounding), ``unknown`` when
    a model has no price."""
    return usd(v, unknown="unknown")
