"""KLoM: the vectorised version must agree with a literal per-point np.histogram loop."""

import math

import numpy as np
import pytest

from bench.metrics.klom import klom, klom_summary
from bench.metrics.reference import slow_klom


def assert_matches_slow(unlearned, oracle, **kw):
    fast = klom(unlearned, oracle, **kw)
    slow = slow_klom(unlearned, oracle, **kw)
    assert fast.shape == (np.asarray(unlearned).shape[1],)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)
    return fast


def col(*values):
    """A single point observed under len(values) models: shape [n_models, 1]."""
    return np.array(values, dtype=float)[:, None]


def test_hand_computed_two_bins():
    # bins over [0, 1]; p = 0.5 in first bin, 0.5 in last; q = 1 in first, 0 (-> 1e-5) in last.
    expected = 0.5 * math.log(0.5 / 1.0) + 0.5 * math.log(0.5 / 1e-5)
    got = assert_matches_slow(col(0, 0, 1, 1), col(0, 0, 0, 0))
    assert got[0] == pytest.approx(expected, rel=1e-12)


def test_hand_computed_middle_edge():
    # 0.5 is exactly the left edge of bin 10 of [0, 1]; q is all there, p straddles both ends.
    expected = 2 * 0.5 * math.log(0.5 / 1e-5)
    got = assert_matches_slow(col(0, 1), col(0.5, 0.5))
    assert got[0] == pytest.approx(expected, rel=1e-12)


def test_clip_applies_before_binning():
    # -500 clips to -100: bins over [-100, 0]; p = .5/.5 at the ends, q = 1 in the last bin.
    expected = 0.5 * math.log(0.5 / 1e-5) + 0.5 * math.log(0.5)
    got = assert_matches_slow(col(-500, 0), col(0, 0))
    assert got[0] == pytest.approx(expected, rel=1e-12)
    # everything clips to 100 -> degenerate point -> 0
    assert assert_matches_slow(col(200, 300), col(100, 150))[0] == 0.0


def test_identical_and_constant_samples_score_zero():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, 7))
    np.testing.assert_array_equal(klom(x, x.copy()), np.zeros(7))
    const = np.full((5, 3), 2.5)
    np.testing.assert_array_equal(assert_matches_slow(const, const[:4]), np.zeros(3))


def test_same_distribution_different_order_is_zero():
    p = col(0, 1, 2, 3)
    q = col(3, 2, 1, 0)
    assert klom(p, q)[0] == pytest.approx(0.0, abs=1e-15)


def test_disjoint_samples():
    # P all in the first bin, Q all in the last: KL = log(1 / 1e-5).
    got = assert_matches_slow(col(0, 0, 0), col(5, 5, 5, 5))
    assert got[0] == pytest.approx(math.log(1e5), rel=1e-12)


def test_random_cases_match_slow():
    rng = np.random.default_rng(0)
    for trial in range(20):
        n_u, n_o, n_pts = rng.integers(2, 40, size=3)
        scale = 10.0 ** rng.uniform(-3, 2.5)
        u = rng.normal(rng.normal(), scale, size=(n_u, n_pts))
        o = rng.normal(rng.normal(), scale, size=(n_o, n_pts))
        assert_matches_slow(u, o)
        assert_matches_slow(u, o, bins=int(rng.integers(1, 50)), clip=float(scale))


def test_values_on_and_near_bin_edges_match_histogram():
    rng = np.random.default_rng(5)
    edges = np.linspace(0, 1, 21)
    u = np.repeat(edges[:, None], 3, axis=1)  # every value is exactly an edge
    assert_matches_slow(u, u[::-1] * 0.5)
    ints = rng.integers(0, 21, size=(30, 50)).astype(float)  # edges at integers
    assert_matches_slow(ints, rng.integers(0, 21, size=(25, 50)).astype(float))
    awkward = rng.integers(0, 1000, size=(40, 200)) / 7.0  # inexact decimal grid
    assert_matches_slow(awkward, rng.integers(0, 1000, size=(33, 200)) / 7.0)
    assert_matches_slow(awkward * 1e-9 + 0.3, awkward[::-1] * 1e-9 + 0.3)


def test_values_beyond_clip_and_infinities():
    rng = np.random.default_rng(3)
    u = rng.normal(0, 300, size=(20, 30))
    o = rng.normal(50, 300, size=(15, 30))
    o[0, :5] = np.inf
    u[1, 5:8] = -np.inf
    assert_matches_slow(u, o)


def test_input_validation():
    good = np.zeros((3, 4))
    with pytest.raises(ValueError, match="2-D"):
        klom(np.zeros(4), good)
    with pytest.raises(ValueError, match="same number of points"):
        klom(good, np.zeros((3, 5)))
    with pytest.raises(ValueError, match="at least 2 models"):
        klom(np.zeros((1, 4)), good)
    bad = good.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        klom(good, bad)
    with pytest.raises(ValueError, match="bins"):
        klom(good, good, bins=0)


def test_summary_uses_linear_percentiles():
    s = klom_summary(np.array([0.0, 1.0]))
    assert s == pytest.approx({"mean": 0.5, "p95": 0.95, "p99": 0.99}, rel=1e-12)
    s = klom_summary(np.arange(101, dtype=float))
    assert s == pytest.approx({"mean": 50.0, "p95": 95.0, "p99": 99.0}, rel=1e-12)
    with pytest.raises(ValueError):
        klom_summary(np.array([]))
    with pytest.raises(ValueError):
        klom_summary(np.array([1.0, np.nan]))
