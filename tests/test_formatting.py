"""Numbers for people: one format for money, counts, rates and durations, used by reports, widgets and the CLI."""

from __future__ import annotations

import math

import pytest

from workbench import formatting as fmt


@pytest.mark.parametrize("value, text", [
    (0.000137976, "$0.000138"), (0.00004, "$0.0000400"), (0.5, "$0.500"), (0.9996, "$1.00"), (12.3456, "$12.35"),
    (1234.5, "$1,234.50"), (0, "$0"), (None, "–"), (math.nan, "–"), (-0.25, "-$0.250"),
])
def test_money_keeps_significant_digits_however_small(value, text):
    assert fmt.usd(value) == text


def test_counts_rates_scores_and_durations():
    assert fmt.count(978.0) == "978" and fmt.count(12345) == "12,345" and fmt.count(None) == "–"
    assert fmt.percent(0.375) == "38%" and fmt.percent(0.025) == "2.5%" and fmt.percent(1) == "100%"
    assert fmt.interval(0.375, 0.2, 0.58, rate=True) == "38% [20%, 58%]"
    assert fmt.interval(0.62, 0.48, 0.75) == "0.62 [0.48, 0.75]" and fmt.interval(0.5, None, None) == "0.50"
    assert fmt.seconds(0.4249) == "0.42 s" and fmt.seconds(12.34) == "12.3 s" and fmt.seconds(245) == "4 min 05 s"
    assert fmt.seconds(0.0042) == "4 ms" and fmt.seconds(0.0001) == "<1 ms" and fmt.seconds(0) == "0 ms"
    assert fmt.p_value(0.0001) == "<0.001" and fmt.p_value(0.0321) == "0.032" and fmt.p_value(0.41) == "0.41"


def test_a_summary_row_reads_the_same_everywhere():
    row = {"variant": "v", "target": "local", "n": 8.0, "mean": 0.25, "ci_low": 0.07, "ci_high": 0.59,
           "method": "wilson", "n_ambiguous": 2, "n_refused": 1, "n_errors": 0, "cost_usd": 0.0}
    assert fmt.summary_row(row) == {"variant": "v", "target": "local", "n": "8", "score [95% CI]": "25% [7%, 59%]",
                                    "ambiguous": "2", "refused": "1", "errors": "0", "cost": "$0"}
    assert fmt.summary_row({**row, "method": "bootstrap"})["score [95% CI]"] == "0.25 [0.07, 0.59]"
