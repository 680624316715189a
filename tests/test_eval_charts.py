"""Evaluation charts: each returns a Figure with the marks the data implies (no pyplot, nothing shown)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.container import BarContainer
from matplotlib.figure import Figure

from workbench.errors import DataError
from workbench.stats import flakiness, pareto_front, summarize
from workbench.viz.eval_charts import plot_cost_quality, plot_flakiness, plot_scores

matplotlib.use("Agg")

VARIANTS = {"baseline": (0.5, 0.001), "cot": (0.8, 0.004), "few-shot": (0.7, 0.002)}
TARGETS = {"local": 0.0, "azure:gpt-4o": 1.0}


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for variant, (rate, cost) in VARIANTS.items():
        for target, price in TARGETS.items():
            for case in range(12):
                for repeat in range(3):
                    ok = bool(rng.random() < rate)
                    rows.append({"case_id": f"c{case}", "variant": variant, "target": target, "repeat": repeat,
                                 "cost_usd": cost * price, "score.exact": float(ok), "passed.exact": ok})
    return pd.DataFrame(rows)


def bars(fig: Figure) -> list:
    return [c for c in fig.axes[0].containers if isinstance(c, BarContainer)]


def test_plot_scores_draws_one_bar_per_variant_and_target_with_intervals(df, artifacts):
    fig = plot_scores(df, "exact")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    containers = bars(fig)
    assert len(containers) == len(TARGETS) and all(len(c) == len(VARIANTS) for c in containers)
    table = summarize(df, "exact")
    heights = sorted(round(p.get_height(), 6) for c in containers for p in c)
    assert heights == sorted(round(v, 6) for v in table["mean"])
    assert all(c.errorbar is not None for c in containers)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == list(VARIANTS)
    assert fig._repr_png_().startswith(b"\x89PNG") and fig.to_html().startswith('<img src="data:image/png;base64,')
    fig.savefig(artifacts / "eval_scores.png")


def test_plot_scores_accepts_a_summary_table_and_one_grouping(df):
    table = summarize(df, "exact", by="variant")
    fig = plot_scores(table, by="variant")
    assert len(bars(fig)) == 1 and len(bars(fig)[0]) == len(VARIANTS)
    with pytest.raises(DataError):
        plot_scores(df.iloc[0:0], "exact")


def test_plot_cost_quality_marks_the_pareto_front(df, artifacts):
    table = summarize(df, "exact")
    fig = plot_cost_quality(table)
    scatters = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)]
    dominated, front = scatters
    assert len(front.get_offsets()) == int(pareto_front(table).sum()) > 0
    assert len(front.get_offsets()) + len(dominated.get_offsets()) == len(table)
    labels = {t.get_text() for t in fig.axes[0].texts}
    assert {"cot / local", "baseline / azure:gpt-4o"} <= labels
    assert fig.axes[0].get_xscale() == "linear"  # the local target costs 0: no log scale
    fig.savefig(artifacts / "eval_cost_quality.png")


def test_plot_cost_quality_from_raw_results_with_log_costs(df):
    priced = df.assign(cost_usd=df["cost_usd"] + np.where(df["target"] == "local", 1e-6, 0))
    fig = plot_cost_quality(priced, value="exact")
    assert fig.axes[0].get_xscale() == "log"
    with pytest.raises(DataError, match="'price'"):
        plot_cost_quality(summarize(df, "exact"), cost="price")


def test_plot_flakiness_counts_cases_per_status(df, artifacts):
    fig = plot_flakiness(df, passed="exact")
    table = flakiness(df, "exact")
    per_variant = table.groupby("variant")["status"].value_counts().unstack(fill_value=0)
    widths = {c.get_label(): [p.get_width() for p in c] for c in bars(fig)}
    assert widths["stable pass"] == per_variant.loc[list(VARIANTS), "stable_pass"].tolist()
    assert np.sum([w for ws in widths.values() for w in ws]) == len(table)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == list(VARIANTS)
    fig.savefig(artifacts / "eval_flakiness.png")


def test_plot_flakiness_from_a_flakiness_table_by_variant_and_target(df):
    fig = plot_flakiness(flakiness(df, "exact"), by=("variant", "target"))
    assert len(fig.axes[0].get_yticklabels()) == len(VARIANTS) * len(TARGETS)
    assert "cot / local" in [t.get_text() for t in fig.axes[0].get_yticklabels()]


def test_charts_draw_into_a_given_axes_and_leave_pyplot_alone(df):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    fig = Figure()
    ax1, ax2, ax3 = fig.subplots(1, 3)
    assert plot_scores(df, "exact", ax=ax1) is fig
    assert plot_cost_quality(summarize(df, "exact"), ax=ax2) is fig
    assert plot_flakiness(df, passed="exact", ax=ax3) is fig
    assert plt.get_fignums() == before
