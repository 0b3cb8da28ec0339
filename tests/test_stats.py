"""Tests for bench.stats: paired t-test report numbers (paper 000, Table 1) and Table 3 summaries."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from bench.stats import describe, paired_comparison


def test_paired_comparison_hand_example():
    # a - b = [1, 2, 3, 2]: mean 2, deviations [-1, 0, 1, 0], sum of squares 2,
    # sd = sqrt(2/3) = 0.816497, se = sd/sqrt(4) = 0.408248,
    # t = 2 / 0.408248 = sqrt(24) = 4.898979, df = 3,
    # t_{0.975, 3} = 3.182446 -> half width 3.182446 * 0.408248 = 1.299228,
    # 95% CI = (0.700772, 3.299228), d_z = 2 / 0.816497 = sqrt(6) = 2.449490,
    # two-sided p = 2 * P(T_3 > 4.898979) = 0.016277.
    a = np.array([5.0, 7.0, 9.0, 11.0])
    b = np.array([4.0, 5.0, 6.0, 9.0])
    r = paired_comparison(a, b)
    assert r["n"] == 4
    assert r["mean_a"] == pytest.approx(8.0)
    assert r["mean_b"] == pytest.approx(6.0)
    assert r["mean_difference"] == pytest.approx(2.0)
    assert r["t_statistic"] == pytest.approx(math.sqrt(24), rel=1e-9)
    assert r["ci_low"] == pytest.approx(0.700772, abs=1e-6)
    assert r["ci_high"] == pytest.approx(3.299228, abs=1e-6)
    assert r["cohens_d"] == pytest.approx(math.sqrt(6), rel=1e-9)
    assert r["p_value"] == pytest.approx(0.016277, abs=1e-6)


def test_paired_comparison_direction_is_a_minus_b():
    a = np.array([5.0, 7.0, 9.0, 11.0])
    b = np.array([4.0, 5.0, 6.0, 9.0])
    fwd, back = paired_comparison(a, b), paired_comparison(b, a)
    assert back["mean_difference"] == pytest.approx(-fwd["mean_difference"])
    assert back["t_statistic"] == pytest.approx(-fwd["t_statistic"])
    assert back["cohens_d"] == pytest.approx(-fwd["cohens_d"])
    assert back["p_value"] == pytest.approx(fwd["p_value"])
    assert (back["ci_low"], back["ci_high"]) == pytest.approx((-fwd["ci_high"], -fwd["ci_low"]))


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_paired_comparison_against_scipy(confidence):
    rng = np.random.default_rng(0)
    a = rng.normal(10.0, 2.0, size=25)
    b = a - rng.normal(0.7, 1.5, size=25)
    r = paired_comparison(a, b, confidence=confidence)
    ref = st.ttest_rel(a, b)
    assert r["t_statistic"] == pytest.approx(ref.statistic, rel=1e-10)
    assert r["p_value"] == pytest.approx(ref.pvalue, rel=1e-10)
    diff = a - b
    lo, hi = st.t.interval(confidence, len(diff) - 1, loc=diff.mean(), scale=st.sem(diff))
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((lo, hi), rel=1e-10)
    assert r["cohens_d"] == pytest.approx(diff.mean() / diff.std(ddof=1), rel=1e-10)
    # The paired t is d_z * sqrt(n).
    assert r["t_statistic"] == pytest.approx(r["cohens_d"] * math.sqrt(25), rel=1e-10)


def test_higher_confidence_gives_wider_interval():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=10), rng.normal(size=10)
    w90 = paired_comparison(a, b, 0.90)
    w99 = paired_comparison(a, b, 0.99)
    assert w99["ci_high"] - w99["ci_low"] > w90["ci_high"] - w90["ci_low"]


def test_paired_comparison_errors():
    with pytest.raises(ValueError, match="same length"):
        paired_comparison(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="n >= 2"):
        paired_comparison(np.ones(1), np.zeros(1))
    with pytest.raises(ValueError, match="NaN"):
        paired_comparison(np.array([1.0, np.nan]), np.zeros(2))
    with pytest.raises(ValueError, match="confidence"):
        paired_comparison(np.arange(3.0), np.zeros(3), confidence=1.0)
    with pytest.raises(ValueError):
        paired_comparison(np.ones((2, 2)), np.ones((2, 2)))


def test_paired_comparison_constant_differences():
    r = paired_comparison(np.array([3.0, 4.0, 5.0]), np.array([1.0, 2.0, 3.0]))
    assert r["mean_difference"] == 2.0
    assert r["t_statistic"] == math.inf and r["cohens_d"] == math.inf
    assert r["p_value"] == 0.0
    assert r["ci_low"] == r["ci_high"] == 2.0
    neg = paired_comparison(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    assert neg["t_statistic"] == -math.inf and neg["cohens_d"] == -math.inf
    zero = paired_comparison(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    assert all(math.isnan(zero[k]) for k in ("t_statistic", "p_value", "cohens_d"))
    assert zero["ci_low"] == zero["ci_high"] == 0.0


def test_describe_hand_example():
    # [3, 1, 4, 1, 5]: mean 14/5 = 2.8, median 3, squared deviations
    # 0.04 + 3.24 + 1.44 + 3.24 + 4.84 = 12.8, var (ddof=1) = 3.2, std = 1.788854.
    d = describe([3, 1, 4, 1, 5])
    assert d["n"] == 5
    assert d["mean"] == pytest.approx(2.8)
    assert d["median"] == 3.0
    assert d["std"] == pytest.approx(math.sqrt(3.2))
    assert (d["min"], d["max"]) == (1.0, 5.0)


def test_describe_edge_cases():
    one = describe(np.array([0.61]))
    assert one["mean"] == one["median"] == one["min"] == one["max"] == 0.61
    assert math.isnan(one["std"])
    assert describe([2.0, 2.0, 2.0])["std"] == 0.0
    with pytest.raises(ValueError):
        describe([])
    with pytest.raises(ValueError):
        describe([1.0, float("nan")])
