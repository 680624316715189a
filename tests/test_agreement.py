"""Agreement statistics against figures computed by hand (no widget, no run)."""

from __future__ import annotations

import math

import pytest

from workbench.agreement import agreement, cohen_kappa, confusion_matrix
from workbench.errors import DataError


def test_kappa_of_the_textbook_two_by_two_table_with_its_fleiss_cohen_everitt_interval():
    # 50 items: both say yes 20, A yes / B no 5, A no / B yes 10, both no 15 (rows A, columns B).
    # p_o = 35/50 = 0.7; rows 0.5 / 0.5, columns 0.6 / 0.4 -> p_e = 0.5*0.6 + 0.5*0.4 = 0.5
    # kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4
    # Fleiss, Cohen & Everitt (1969):
    #   diagonal  0.4 * (1 - (0.5 + 0.6) * 0.6)^2 + 0.3 * (1 - (0.5 + 0.4) * 0.6)^2 = 0.04624 + 0.06348 = 0.10972
    #   off-diag  0.6^2 * (0.1 * (0.6 + 0.5)^2 + 0.2 * (0.4 + 0.5)^2) = 0.36 * 0.283        = 0.10188
    #   minus     (0.4 - 0.5 * 0.6)^2                                                        = 0.01
    #   var = 0.2016 / (50 * 0.25) = 0.016128; se = 0.126996; 95%: 0.4 -+ 1.959964 * se = [0.15109, 0.64891]
    k = cohen_kappa([[20, 5], [10, 15]])
    assert k.value == pytest.approx(0.4)
    assert k.p_observed == pytest.approx(0.7) and k.p_expected == pytest.approx(0.5)
    assert k.se == pytest.approx(math.sqrt(0.016128), rel=1e-9)
    assert (k.low, k.high) == pytest.approx((0.151093, 0.648907), abs=1e-6)
    assert k.n == 50
    assert "0.40 [0.15, 0.65]" in k.describe()


def test_kappa_of_a_three_class_table():
    # rows 12, 10, 8; columns 11, 12, 7; agreed 24 of 30
    # p_e = (12*11 + 10*12 + 8*7) / 30^2 = 308/900; kappa = (720 - 308) / (900 - 308) = 412/592
    k = cohen_kappa([[10, 2, 0], [1, 8, 1], [0, 2, 6]])
    assert k.value == pytest.approx(412 / 592)
    assert k.p_expected == pytest.approx(308 / 900)
    assert 0 < k.low < k.value < k.high < 1


def test_perfect_agreement_is_one_with_no_width_and_a_single_label_is_undefined():
    perfect = cohen_kappa([[7, 0], [0, 3]])
    assert perfect.value == pytest.approx(1.0) and perfect.se == pytest.approx(0.0)
    assert (perfect.low, perfect.high) == pytest.approx((1.0, 1.0))
    same = cohen_kappa([[9, 0], [0, 0]])  # everyone said "pass" to everything: p_e = 1
    assert math.isnan(same.value) and not same.defined
    assert "undefined" in same.describe()


def test_kappa_interval_stays_inside_minus_one_to_one_and_wants_a_square_table():
    k = cohen_kappa([[0, 3], [2, 0]])  # complete disagreement on 5 items
    assert k.value < 0 and k.low >= -1.0
    with pytest.raises(DataError, match="square"):
        cohen_kappa([[1, 2, 3], [4, 5, 6]])
    with pytest.raises(DataError, match="confidence"):
        cohen_kappa([[1, 0], [0, 1]], confidence=95)


def test_confusion_matrix_orders_pass_before_fail_and_counts_rows_as_rater_a():
    m = confusion_matrix(["pass", "fail", "pass", "pass"], ["pass", "pass", "fail", "pass"], names=("human", "exact"))
    assert m.labels == ("pass", "fail")
    assert m.counts == ((2, 1), (1, 0))
    assert m.count("fail", "pass") == 1 and m.n == 4 and m.agreed == 2
    assert list(m.to_frame().columns) == ["pass", "fail"]
    with pytest.raises(DataError, match="same length"):
        confusion_matrix(["pass"], [])
    with pytest.raises(DataError, match="not among"):
        confusion_matrix(["pass"], ["maybe"], labels=["pass", "fail"])


def test_agreement_pairs_on_shared_items_lists_disagreements_and_counts_the_rest():
    human = {"c1": "pass", "c2": "fail", "c3": "pass", "c4": "fail", "c5": "pass"}
    judge = {"c1": "pass", "c2": "pass", "c3": "pass", "c4": "fail", "c6": "fail"}
    a = agreement(human, judge, names=("human", "judge"))
    assert a.n == 4 and a.only_a == 1 and a.only_b == 1
    assert a.accuracy == pytest.approx(0.75)
    assert [(d.key, d.a, d.b) for d in a.disagreements] == [("c2", "fail", "pass")]
    # 8 of 10 with Wilson would be (0.490, 0.943); here 3 of 4
    assert a.accuracy_low < 0.75 < a.accuracy_high
    # rows human pass 2 / fail 2, columns judge pass 3 / fail 1: p_e = (2*3 + 2*1)/16 = 0.5, kappa = 0.5
    assert a.kappa.value == pytest.approx(0.5)
    text = a.summary()
    assert "3 of 4" in text and "1 labelled only by human" in text
    assert a.as_dict()["confusion"] == [[2, 0], [1, 1]]
    assert "wb-confusion" in a._repr_html_()


def test_agreement_with_nothing_in_common_says_so():
    a = agreement({"x": "pass"}, {"y": "fail"})
    assert a.n == 0 and math.isnan(a.accuracy) and not a.kappa.defined
    assert "nothing to compare" in a.summary()
