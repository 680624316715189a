"""Statistics against known values: published intervals, closed forms, scipy, and seeded samples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from scipy.special import comb

from workbench.errors import DataError
from workbench.stats import (
    bootstrap_ci,
    flakiness,
    mean_ci,
    newcombe_paired_ci,
    paired_comparison,
    pareto_front,
    pass_at_k,
    pass_hat_k,
    repeat_metrics,
    summarize,
    wilson_ci,
)

# ------------------------------------------------------------------------------------------- intervals


def test_wilson_known_values():
    low, high = wilson_ci(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    low, high = wilson_ci(8, 10, confidence=0.90)
    assert 0.4902 < low and high < 0.9433  # narrower at lower confidence


def test_wilson_edges_and_symmetry():
    assert wilson_ci(0, 10)[0] == 0.0 and wilson_ci(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    assert wilson_ci(10, 10) == (pytest.approx(1 - 0.2775, abs=1e-4), 1.0)
    low, high = wilson_ci(2, 10)
    assert (low, high) == (pytest.approx(1 - wilson_ci(8, 10)[1]), pytest.approx(1 - wilson_ci(8, 10)[0]))
    assert all(math.isnan(v) for v in wilson_ci(0, 0))
    with pytest.raises(DataError):
        wilson_ci(11, 10)
    with pytest.raises(DataError, match="confidence"):
        wilson_ci(1, 2, confidence=95)


def test_bootstrap_ci_contains_the_true_mean_and_is_reproducible():
    sample = np.random.default_rng(42).normal(loc=5.0, scale=2.0, size=200)
    low, high = bootstrap_ci(sample)
    assert low < 5.0 < high and low < sample.mean() < high
    assert high - low == pytest.approx(2 * 1.96 * 2.0 / math.sqrt(200), rel=0.2)  # ~ the normal-theory width
    assert bootstrap_ci(sample) == (low, high)  # seeded
    assert bootstrap_ci(sample, seed=1) != (low, high)
    wide = bootstrap_ci(sample[:20])
    assert wide[1] - wide[0] > high - low


def test_bootstrap_ci_edge_cases_and_other_statistics():
    assert bootstrap_ci([3.0]) == (3.0, 3.0)
    assert bootstrap_ci([2.0, 2.0, np.nan]) == (2.0, 2.0)
    assert all(math.isnan(v) for v in bootstrap_ci([]))
    low, high = bootstrap_ci(np.arange(101.0), statistic=np.median)
    assert low < 50 < high
    low2, high2 = bootstrap_ci(np.arange(101.0), statistic=lambda x: float(np.median(x)), n_resamples=300)
    assert low2 < 50 < high2  # a statistic without an axis argument works too


def test_mean_ci_chooses_wilson_for_pass_rates_and_bootstrap_otherwise():
    ci = mean_ci([1, 1, 1, 0, 1, 1, 1, 1, 0, 1, np.nan])
    assert (ci.method, ci.n, ci.mean) == ("wilson", 10, 0.8)
    assert (ci.low, ci.high) == wilson_ci(8, 10)
    ci = mean_ci([0.2, 0.9, 0.5, 0.7])
    assert ci.method == "bootstrap" and ci.low < ci.mean < ci.high
    assert mean_ci([0.5, 0.5]).method == "exact"
    assert mean_ci([np.nan]).method == "none"
    assert mean_ci([True, False]).method == "wilson"


# ---------------------------------------------------------------------------------------------- pass@k


@pytest.mark.parametrize("n,c,k", [(n, c, k) for n in (1, 5, 10) for c in range(n + 1) for k in (1, 2, 5) if k <= n])
def test_pass_at_k_matches_the_binomial_formula(n, c, k):
    expected = 1 - comb(n - c, k, exact=True) / comb(n, k, exact=True)
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)
    assert pass_hat_k(n, c, k) == pytest.approx(comb(c, k, exact=True) / comb(n, k, exact=True), abs=1e-12)


def test_pass_at_k_closed_forms():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 is the pass rate
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)  # 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(10, 0, 5) == 0.0 and pass_at_k(10, 10, 5) == 1.0
    assert pass_at_k(10, 6, 5) == 1.0  # fewer than k failures: some sample must pass
    assert pass_hat_k(5, 3, 2) == pytest.approx(0.3)  # C(3,2)/C(5,2)
    assert pass_hat_k(5, 1, 2) == 0.0
    assert pass_at_k(200, 13, 100) == pytest.approx(1 - comb(187, 100, exact=True) / comb(200, 100, exact=True))
    with pytest.raises(DataError, match="run at least k repeats"):
        pass_at_k(3, 1, 5)
    with pytest.raises(DataError):
        pass_hat_k(3, 4, 1)


def results(rows: list[tuple], scorer: str = "exact") -> pd.DataFrame:
    """(case_id, variant, target, repeat, passed-or-None, cost) -> a results frame as the harness writes it."""
    df = pd.DataFrame(rows, columns=["case_id", "variant", "target", "repeat", "ok", "cost_usd"])
    df[f"passed.{scorer}"] = df["ok"].astype("boolean")
    df[f"score.{scorer}"] = df["ok"].map(lambda v: np.nan if v is None else float(v))
    df["prompt_tokens"], df["completion_tokens"] = 100, 10
    return df.drop(columns="ok")


def repeated(pattern: dict[str, list], variant="v", target="t") -> list[tuple]:
    return [(case, variant, target, r, ok, 0.01) for case, oks in pattern.items() for r, ok in enumerate(oks)]


def test_repeat_metrics_per_case_estimates():
    df = results(repeated({"A": [True] * 3, "B": [True, False, False], "C": [False] * 3}))
    row = repeat_metrics(df, "exact", ks=(1, 3)).iloc[0]
    assert row["pass@1"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert row["pass@1"] == pytest.approx(row["pass^1"])
    assert row["pass@3"] == pytest.approx(2 / 3)  # A and B pass at least once
    assert row["pass^3"] == pytest.approx(1 / 3)  # only A passes every time
    assert (row["n_cases"], row["min_repeats"], row["max_repeats"], row["n_cases@3"]) == (3, 3, 3, 3)


def test_repeat_metrics_skips_cases_with_too_few_attempts_and_errors():
    df = results(repeated({"A": [True, True, None], "B": [True, False, True]}))
    table = repeat_metrics(df, passed="passed.exact", ks=(1, 3))
    row = table.iloc[0]
    assert row["n_cases@3"] == 1 and row["pass^3"] == 0.0  # A has 2 scored attempts: left out of k=3
    assert row["pass@1"] == pytest.approx((1 + 2 / 3) / 2)
    assert math.isnan(repeat_metrics(df, "exact", ks=(4,)).iloc[0]["pass@4"])


def test_flakiness_statuses():
    df = results(repeated({"A": [True] * 3, "B": [True, False, True], "C": [False] * 3, "D": [None] * 3}))
    table = flakiness(df, "exact").set_index("case_id")
    assert table["status"].to_dict() == {"A": "stable_pass", "B": "flaky", "C": "stable_fail", "D": "error"}
    assert table.loc["B", "n_passed"] == 2 and table.loc["B", "pass_rate"] == pytest.approx(2 / 3)
    assert table.loc["D", "n_errors"] == 3 and math.isnan(table.loc["D", "pass_rate"])


# ---------------------------------------------------------------------------------------------- summary


def test_summarize_counts_errors_separately_and_sums_costs():
    rows = [(f"c{i}", "a", "t", 0, i < 8, 0.01) for i in range(10)] + [("c10", "a", "t", 0, None, 0.01)]
    rows += [(f"c{i}", "b", "t", 0, i < 3, 0.02) for i in range(10)]
    table = summarize(results(rows), value="exact").set_index("variant")
    a = table.loc["a"]
    assert (a["n"], a["n_errors"], a["mean"], a["method"]) == (10, 1, 0.8, "wilson")
    assert (a["ci_low"], a["ci_high"]) == pytest.approx(wilson_ci(8, 10))
    assert a["cost_usd"] == pytest.approx(0.11) and a["prompt_tokens"] == 1100
    assert table.loc["b", "mean"] == pytest.approx(0.3)


def test_summarize_uses_case_means_when_cases_repeat():
    df = results(repeated({f"c{i}": [True, False] if i % 2 else [True, True] for i in range(10)}))
    row = summarize(df).iloc[0]  # default value "score" picks the only scorer
    assert row["n"] == 20 and row["n_cases"] == 10 and row["mean"] == pytest.approx(0.75)
    assert row["method"] == "bootstrap (case means)"
    independent = mean_ci(df["score.exact"])
    assert row["ci_high"] - row["ci_low"] < 1 and (row["ci_low"], row["ci_high"]) != (independent.low, independent.high)


def test_summarize_column_errors():
    df = results(repeated({"A": [True]}))
    with pytest.raises(DataError, match="no column 'judge'.*score.exact"):
        summarize(df, value="judge")
    with pytest.raises(DataError, match="no column 'model'"):
        summarize(df, value="exact", by=("model",))
    two = df.assign(**{"score.other": 1.0})
    with pytest.raises(DataError, match="choose one of"):
        summarize(two)


# ------------------------------------------------------------------------------------------ comparisons


def paired_frame(n11: int, n10: int, n01: int, n00: int) -> pd.DataFrame:
    """A 2x2 paired table as results rows: n10 = A passed and B failed, n01 = the reverse."""
    cells = [(1, 1)] * n11 + [(1, 0)] * n10 + [(0, 1)] * n01 + [(0, 0)] * n00
    rows = []
    for i, (pa, pb) in enumerate(cells):
        rows += [(f"c{i}", "A", "t", 0, bool(pa), 0.0), (f"c{i}", "B", "t", 0, bool(pb), 0.0)]
    return results(rows)


def test_mcnemar_exact_matches_scipy_on_the_discordant_pairs():
    c = paired_comparison(paired_frame(10, 3, 12, 5), "A", "B", "exact")
    assert c.method == "mcnemar exact" and c.n_pairs == 30
    assert (c.a_better, c.b_better, c.ties, c.discordant) == (3, 12, 15, 15)
    assert c.p_value == pytest.approx(sps.binomtest(12, 15, 0.5).pvalue)
    assert (c.mean_a, c.mean_b, c.diff) == pytest.approx((13 / 30, 22 / 30, 0.3))
    assert (c.ci_low, c.ci_high) == newcombe_paired_ci(10, 3, 12, 5)
    assert c.ci_low < c.diff < c.ci_high
    assert c.summary == (f"B beats A by 30 points (95% CI {c.ci_low * 100:.0f} to {c.ci_high * 100:.0f}, "
                         "p=0.035, on 30 paired cases).")


def test_newcombe_interval_matches_the_published_example():
    # Cavo et al. 2012 (Fagerland, Lydersen & Laake, "Statistical Analysis of Contingency Tables", ch. 8):
    # estimate -0.0621, 95% CI -0.1186 to -0.0046 for p1 - p2; ours is p_b - p_a, so the signs flip
    low, high = newcombe_paired_ci(59, 6, 16, 80)
    assert (low, high) == (pytest.approx(0.0046, abs=1e-4), pytest.approx(0.1186, abs=1e-4))


def test_no_discordant_pairs_means_no_evidence():
    c = paired_comparison(paired_frame(7, 0, 0, 3), "A", "B", "exact")
    assert c.p_value == 1.0 and c.diff == 0.0 and c.summary.startswith("B and A score the same")


def test_not_significant_is_said_plainly():
    c = paired_comparison(paired_frame(10, 2, 4, 4), "A", "B", "exact")
    assert not c.significant and c.summary.startswith("No clear winner: B leads A by 10 points")


def continuous_frame(a: np.ndarray, b: np.ndarray, repeats: int = 1) -> pd.DataFrame:
    rows = []
    for i, (va, vb) in enumerate(zip(a, b)):
        for r in range(repeats):
            rows += [(f"c{i}", "A", "t", r, va, 0.0), (f"c{i}", "B", "t", r, vb, 0.0)]
    return pd.DataFrame(rows, columns=["case_id", "variant", "target", "repeat", "score.judge", "cost_usd"])


def test_paired_bootstrap_finds_a_real_difference():
    rng = np.random.default_rng(7)
    a = rng.uniform(0.2, 0.8, 40)
    b = np.clip(a + 0.1 + rng.normal(0, 0.05, 40), 0, 1)
    c = paired_comparison(continuous_frame(a, b), "A", "B", "judge")
    assert c.method == "paired bootstrap" and c.n_pairs == 40
    assert c.ci_low < (b - a).mean() < c.ci_high and c.ci_low > 0
    assert c.p_value < 0.001 and c.summary.startswith("B beats A by 10 points")
    again = paired_comparison(continuous_frame(a, b), "A", "B", "judge")
    assert again == c  # seeded


def test_paired_bootstrap_under_the_null_and_when_a_wins():
    rng = np.random.default_rng(3)
    a = rng.uniform(0, 1, 30)
    b = a + rng.normal(0, 0.1, 30)
    c = paired_comparison(continuous_frame(a, b), "A", "B", "judge")
    assert c.ci_low < 0 < c.ci_high and c.p_value > 0.05
    c = paired_comparison(continuous_frame(a, a - 0.2), "B", "A", "judge")
    assert c.diff == pytest.approx(0.2) and c.summary.startswith("A beats B")
    raw = paired_comparison(continuous_frame(a * 10, a * 10 + 1), "A", "B", "judge")
    assert "by 1 (mean difference)" in raw.summary  # not 0..1 scores: no "points"


def test_repeats_are_averaged_per_case_before_pairing():
    a = np.array([0.0, 1.0, 1.0, 0.0])
    c = paired_comparison(continuous_frame(a, 1 - a, repeats=3), "A", "B", "judge")
    assert c.n_pairs == 4 and c.method == "mcnemar exact"
    df = continuous_frame(a, a, repeats=2)
    df.loc[(df["variant"] == "B") & (df["repeat"] == 0), "score.judge"] = 0.5  # B's case means become fractional
    assert paired_comparison(df, "A", "B", "judge").method == "paired bootstrap"


def test_pairs_within_targets_and_unpaired_cases():
    df = pd.concat([paired_frame(5, 1, 3, 1).assign(target="x"), paired_frame(5, 1, 3, 1).assign(target="y")])
    c = paired_comparison(df, "A", "B", "exact")
    assert c.n_pairs == 20 and "paired (case_id, target) cells" in c.summary
    one = df[df["target"] == "x"]
    one = one.drop(one[(one["variant"] == "B") & (one["case_id"] == "c0")].index)
    assert paired_comparison(one, "A", "B", "exact").n_unpaired == 1
    by_target = paired_comparison(df, "x", "y", "exact", variant="target")
    assert by_target.n_pairs == 20 and by_target.diff == 0  # pairs (case, variant)
    with pytest.raises(DataError, match="no rows with variant == 'C'"):
        paired_comparison(df, "A", "C", "exact")


# ----------------------------------------------------------------------------------------------- pareto


def test_pareto_front_on_a_small_frame():
    table = pd.DataFrame(
        {
            "variant": ["cheap", "mid", "dominated", "best", "tie-best", "free-bad", "unknown"],
            "cost_usd": [0.01, 0.05, 0.06, 0.10, 0.10, 0.00, np.nan],
            "mean": [0.60, 0.80, 0.70, 0.90, 0.90, 0.10, 0.99],
        },
        index=list("abcdefg"),
    )
    front = pareto_front(table)
    assert front.index.equals(table.index)
    assert front.to_dict() == {"a": True, "b": True, "c": False, "d": True, "e": True, "f": True, "g": False}
    equal_cost = pd.DataFrame({"cost_usd": [1.0, 1.0], "mean": [0.5, 0.6]})
    assert pareto_front(equal_cost).tolist() == [False, True]
    with pytest.raises(DataError):
        pareto_front(table, cost="price")


def test_a_comparison_on_part_of_the_cases_says_how_many_were_left_out():
    df = pd.DataFrame({"case_id": ["a", "b", "c", "a", "b", "d"], "variant": ["A"] * 3 + ["B"] * 3,
                       "score.s": [1.0, 0.0, 1.0, 1.0, 1.0, 0.0]})
    c = paired_comparison(df, "A", "B", value="s")
    assert (c.n_pairs, c.n_unpaired) == (2, 2) and c.summary.endswith("on 2 paired cases; 2 unpaired left out).")
