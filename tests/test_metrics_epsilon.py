"""Challenge epsilon, forget score, final score: fast version vs a literal threshold-by-threshold one."""

import math

import numpy as np
import pytest

from bench.metrics.epsilon import confidence_statistic, epsilons, final_score, forget_score
from bench.metrics.reference import slow_epsilon

DELTA = 1e-5


def assert_matches_slow(u, r):
    """u, r: [n_models, n_points]; returns the fast result after checking it column by column."""
    fast = epsilons(u, r)
    slow = np.array([slow_epsilon(u[:, j], r[:, j]) for j in range(u.shape[1])])
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)
    return fast


def col(*values):
    return np.array(values, dtype=float)[:, None]


def test_hand_computed_shared_values():
    # U = {1,2,3,4} (median 2.5, positive), R = {-1,0,1,2}. Values 1 and 2 occur in both, so no
    # threshold or interval separates them: every kept attack has FPR >= 1/4 and FNR >= 1/4, and
    # both DP bounds are then <= log(1 - d - 1/4) - log(1/4). t in (1, 2] attains it:
    # U >= t -> {2,3,4}, FNR = 1/4; R >= t -> {2}, FPR = 1/4.  eps = log(0.74999 / 0.25) ~ 1.0986.
    got = assert_matches_slow(col(1, 2, 3, 4), col(-1, 0, 1, 2))
    assert got[0] == pytest.approx(math.log(1 - DELTA - 0.25) - math.log(0.25), rel=1e-12)


def test_hand_computed_three_shared_values():
    # U = {1,2,3,4}, R = {0,1,2,3}: 1,2,3 are shared. A predicted-positive set with 3 U values
    # contains >= 2 shared values, so (1/4, 1/4) is unreachable; the best kept pairs are
    # (FPR, FNR) = (1/2, 1/4) (t in (1, 2]) or (1/4, 1/2) ({3, 4}); both give
    # log(1 - d - 1/2) - log(1/4) = log(1.99996) ~ 0.6931.  Pairs like (1/4, 3/4) give < 0.
    got = assert_matches_slow(col(1, 2, 3, 4), col(0, 1, 2, 3))
    assert got[0] == pytest.approx(math.log(1 - DELTA - 0.5) - math.log(0.25), rel=1e-12)


def test_identical_samples_are_zero():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(16, 6))
    np.testing.assert_array_equal(assert_matches_slow(x, x.copy()), np.zeros(6))


def test_disjoint_samples_hit_cap_via_zero_errors():
    rng = np.random.default_rng(3)
    u = rng.normal(5.0, 0.5, size=(16, 4))
    r = rng.normal(0.0, 0.5, size=(16, 4))
    np.testing.assert_array_equal(assert_matches_slow(u, r), np.full(4, 50.0))
    np.testing.assert_array_equal(epsilons(r, u), np.full(4, 50.0))


def test_interval_attack_catches_peaky_sample_inside_broad_one():
    # U sits in [-0.1, 0.1]; R is split into [-3, -2] and [2, 3.5]. No single threshold separates
    # them, but an interval around U does: FPR = FNR = 0 -> inf -> 50.
    u = np.linspace(-0.1, 0.1, 16)[:, None]
    r = np.concatenate([np.linspace(-3, -2, 8), np.linspace(2, 3.5, 8)])[:, None]
    assert assert_matches_slow(u, r)[0] == 50.0


def test_constant_samples():
    assert assert_matches_slow(col(1, 1, 1), col(1, 1, 1, 1))[0] == 0.0  # equal constants
    assert assert_matches_slow(col(1, 1, 1), col(2, 2, 2))[0] == 50.0  # different constants
    assert assert_matches_slow(col(1, 1, 1, 1), col(0, 1, 2, 3))[0] == 50.0  # range ratio 0 < 0.01


def test_peaky_ratio_threshold():
    broad = np.linspace(-1, 1, 11)  # contains 0, shared with the peaky sample: not separable
    below = np.linspace(0, 0.0199, 10)  # ratio 0.00995 -> 50
    above = np.linspace(0, 0.0201, 10)  # ratio 0.01005 -> normal attacks, finite eps
    assert assert_matches_slow(below[:, None], broad[:, None])[0] == 50.0
    assert assert_matches_slow(above[:, None], broad[:, None])[0] < 50.0


def test_random_normal_cases_match_slow():
    rng = np.random.default_rng(0)
    for _ in range(6):
        n_u, n_r = rng.integers(8, 33, size=2)
        u = rng.normal(rng.uniform(-1, 1), rng.uniform(0.2, 1.0), size=(n_u, 5))
        r = rng.normal(rng.uniform(-1, 1), rng.uniform(0.2, 1.0), size=(n_r, 5))
        assert_matches_slow(u, r)


def test_ties_integer_valued_samples():
    rng = np.random.default_rng(1)
    u = rng.integers(0, 4, size=(20, 8)).astype(float)
    r = rng.integers(0, 3, size=(12, 8)).astype(float)
    assert_matches_slow(u, r)
    assert_matches_slow(r[:, ::-1], u[:, ::-1])


def test_one_sample_much_peakier():
    rng = np.random.default_rng(4)
    u = rng.normal(0.0, 0.05, size=(16, 6))
    r = rng.normal(0.2, 1.0, size=(24, 6))
    assert_matches_slow(u, r)
    assert_matches_slow(r, u)


def test_median_tie_makes_unlearned_positive():
    # U = {0,0,2,2}, R = {1,1,1,5}: both medians are 1, so U is positive (documented rule); U also
    # has the smaller range. FNR can only be 0, 1/2 or 1 (U comes in pairs), and FNR = 0 needs 0 and
    # 2 predicted positive, which drags in R's 1s. So the best is t in (1, 2]:
    # FNR = 1/2, FPR = 1/4 ({5}) -> log(1 - d - 1/2) - log(1/4) ~ 0.6931.
    # Were R positive instead, this pair gives 0, which the swapped call shows.
    u, r = col(0, 0, 2, 2), col(1, 1, 1, 5)
    assert assert_matches_slow(u, r)[0] == pytest.approx(math.log(0.5 - DELTA) - math.log(0.25), rel=1e-12)
    assert assert_matches_slow(r, u)[0] == 0.0


def test_range_tie_makes_smaller_median_peaky():
    # U = {1,1,3,5}, R = {0,2,3,4}: both ranges are 4, so the smaller-median sample (U, median 2 <
    # 2.5) is the peaky one, as in the official scorer; R is positive. Any set holding three U values
    # and one R value would need both 1s and 3 or 5, which drags in R's 2 or 3 and 4. Best kept pair
    # is (1/2, 1/4), e.g. t in (1, 2]: eps = log(1 - d - 1/2) - log(1/4). Swapping the arguments
    # swaps the medians too, so the same sample stays peaky and the value is the same.
    u, r = col(1, 1, 3, 5), col(0, 2, 3, 4)
    assert assert_matches_slow(u, r)[0] == pytest.approx(math.log(0.5 - DELTA) - math.log(0.25), rel=1e-12)
    assert assert_matches_slow(r, u)[0] == pytest.approx(math.log(0.5 - DELTA) - math.log(0.25), rel=1e-12)


def test_values_sitting_exactly_on_thresholds():
    # Both samples share a few values taken from the single-threshold grid itself, so >= versus >
    # (and left/right searchsorted) decides which side a tied value falls on.
    rng = np.random.default_rng(6)
    grid = np.linspace(0.0, 1.0, 100)  # the grid used when the pooled range is exactly [0, 1]
    u, r = np.empty((5, 60)), np.empty((4, 60))
    for j in range(60):
        levels = grid[rng.choice(100, size=int(rng.integers(2, 5)), replace=False)]
        u[:, j] = rng.choice(levels, size=5)
        r[:, j] = rng.choice(levels, size=4)
    u[0, :30], r[0, :30] = 0.0, 1.0
    u[0, 30:], r[0, 30:] = 1.0, 0.0
    assert_matches_slow(u, r)
    assert_matches_slow(r, u)


def test_epsilons_validation():
    good = np.zeros((3, 2))
    with pytest.raises(ValueError, match="2-D"):
        epsilons(np.zeros(3), good)
    with pytest.raises(ValueError, match="same number of points"):
        epsilons(good, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="at least 2 models"):
        epsilons(np.zeros((1, 2)), good)
    bad = good.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        epsilons(bad, good)


def test_confidence_statistic_hand_values():
    logits = np.array([[0.0, 0.0], [math.log(3), 0.0], [5.0, 5.0]])
    got = confidence_statistic(logits, np.array([0, 0, 1]))
    # [0,0]: p = .5/.5 -> 0;  [log 3, 0]: p = 3/4, 1/4 -> log 3;  [5,5] -> 0.
    np.testing.assert_allclose(got, [0.0, math.log(3), 0.0], atol=1e-12)
    three = confidence_statistic(np.array([math.log(3), 0.0, 0.0]), np.array(0))
    assert three == pytest.approx(math.log(1.5), rel=1e-12)  # p = 3/5, rest 2/5


def test_confidence_statistic_extreme_logits_stay_finite():
    got = confidence_statistic(np.array([[1000.0, 0.0], [1000.0, 0.0]]), np.array([0, 1]))
    assert np.isfinite(got).all()
    assert got[0] == pytest.approx(-math.log(1e-45), rel=1e-12)  # log(1) - log(~0 + 1e-45)
    assert got[1] == pytest.approx(math.log(1e-45), rel=1e-12)


def test_confidence_statistic_matches_naive_on_moderate_logits():
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(4, 6, 10))
    labels = rng.integers(0, 10, size=(4, 6))
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    p_y = np.take_along_axis(p, labels[..., None], -1)[..., 0]
    naive = np.log(p_y + 1e-45) - np.log(p.sum(-1) - p_y + 1e-45)
    np.testing.assert_allclose(confidence_statistic(logits, labels), naive, rtol=1e-10, atol=1e-10)


def test_confidence_statistic_validation():
    with pytest.raises(ValueError, match="labels shape"):
        confidence_statistic(np.zeros((3, 4)), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="lie in"):
        confidence_statistic(np.zeros((3, 4)), np.array([0, 1, 4]))
    with pytest.raises(ValueError, match="NaN"):
        confidence_statistic(np.array([[np.nan, 0.0]]), np.array([0]))


def test_forget_score_buckets_for_512_models():
    # ceil(ln 511) = 7 -> 14 buckets of width 0.5
    assert forget_score(np.array([0.3]), 512) == 1.0
    assert forget_score(np.array([0.5]), 512) == 0.5
    assert forget_score(np.array([0.7]), 512) == 0.5
    assert forget_score(np.array([6.9]), 512) == 2.0**-13
    assert forget_score(np.array([7.0]), 512) == 0.0
    assert forget_score(np.array([50.0]), 512) == 0.0
    mixed = np.array([0.3, 0.7, 6.9, 7.0, 50.0, 0.0])
    assert forget_score(mixed, 512) == pytest.approx((1 + 0.5 + 2.0**-13 + 1) / 6, rel=1e-15)


def test_forget_score_small_n_models():
    # n = 3: ceil(ln 2) = 1 -> buckets [0, .5), [.5, 1)
    np.testing.assert_equal(forget_score(np.array([0.49, 0.5, 0.99, 1.0]), 3), (1 + 0.5 + 0.5) / 4)
    with pytest.raises(ValueError, match=">= 3"):
        forget_score(np.array([0.1]), 2)
    with pytest.raises(ValueError):
        forget_score(np.array([]), 10)
    with pytest.raises(ValueError):
        forget_score(np.array([-0.1]), 10)


def test_final_score():
    assert final_score(0.5, 0.9, 1.0, 0.8, 0.9) == pytest.approx(0.5 * 0.9 * (0.8 / 0.9), rel=1e-15)
    assert final_score(0.25, 0.5, 0.5, 0.7, 0.7) == pytest.approx(0.25, rel=1e-15)
    with pytest.raises(ValueError, match="retain_acc_retrained"):
        final_score(0.5, 0.9, 0.0, 0.8, 0.9)
    with pytest.raises(ValueError, match="test_acc_retrained"):
        final_score(0.5, 0.9, 1.0, 0.8, 1.2)
