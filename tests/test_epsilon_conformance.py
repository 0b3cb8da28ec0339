"""Conformance of the challenge epsilon with the official NeurIPS 2023 scorer, rule by rule.

Every case states the official result and why. Each is checked three ways: our fast path, our slow
literal reference, and ``challenge_official`` (an independent transcription of the official code,
float32 rates included, NaN where its assertion would fire). The official code rounds rates and the
single-threshold grid to float32, so agreement with it is to 1e-4; fast and slow agree exactly.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from bench.metrics.challenge_grid import N_LEFT, double_lefts, double_rights, single_thresholds
from bench.metrics.epsilon import challenge_forget, forget_score, score_epsilons
from bench.metrics.reference import slow_epsilon_detail
from challenge_official import official_epsilon, official_epsilons, official_forget_score

DELTA = 1e-5
LOG2 = math.log(2 - 4 * DELTA)  # (FPR, FNR) = (1/2, 1/4) with four models: log((1/2 - d) / (1/4))
LOG3 = math.log(3 - 4 * DELTA)  # (1/4, 1/4) with four models
LOG2_OF_3 = math.log(2 - 3 * DELTA)  # (1/3, 1/3) with three models


def check_case(u, r, expected: float, undecided: bool = False, official_fails: bool = False) -> None:
    """Fast, slow and the official transcription all give ``expected`` (official: NaN if undecided).

    ``official_fails``: a documented convention of ours where the official code fails its assertion.
    """
    u, r = np.asarray(u, dtype=float), np.asarray(r, dtype=float)
    fast = score_epsilons(u[:, None], r[:, None])
    slow, slow_undecided = slow_epsilon_detail(u, r)
    assert fast.epsilon[0] == slow and fast.undecided[0] == slow_undecided
    assert fast.epsilon[0] == pytest.approx(expected, abs=1e-9)
    assert bool(fast.undecided[0]) is undecided
    official = official_epsilon(u, r)
    if undecided or official_fails:
        assert math.isnan(official), "the official code has kept thresholds here, so it is not undecided"
    else:
        assert official == pytest.approx(expected, abs=1e-4)


# ---- Rule 1: right thresholds are spaced 1/100 over a span of about 4, whatever the peaky width ----

def test_issue_example_narrow_peaky_sample_is_isolated():
    # U = {0, .05, .1} is the peaky sample (range .1 vs 2.2). An interval [l, r] with l in (-1, 0] and
    # r in [.1, .3) contains all of U and none of R: FPR = FNR = 0 -> inf -> 50. With only
    # ceil(.1 * 100) = 10 right thresholds 0.4 apart (our old grid) no r fell in [.1, .3): eps .693.
    check_case([0, 0.05, 0.1], [-1, 0.3, 1.2], 50.0)


@pytest.mark.parametrize("width", [0.001 * 1.37**k for k in range(30)])
def test_interval_isolates_peaky_sample_of_any_width(width):
    # U = {0, w/2, w}, R = {-1, w + .15, w + 1.2}: the gaps around U (1 and .15) are far wider than the
    # grid spacing (~.01), so some [l, r] isolates U for every width: official eps 50. The ratio
    # w / (2.2 + w) stays >= 0.01 only for w >= .0223; below it the 1% rule gives 50 as well.
    check_case([0, width / 2, width], [-1, width + 0.15, width + 1.2], 50.0)


@pytest.mark.parametrize("lo,hi", [(0.0, 1.0), (0.0, 0.1), (-3.3, 0.7), (0.123, 0.125), (10.0, 10.02),
                                   (-0.37, 5.11), (1e-3, 2e-3), (-100.0, -99.5)])
def test_right_grid_count_follows_official_float_expression(lo, hi):
    rights, width = double_rights(lo, hi)
    start, stop = (lo + (hi - lo)) - 2.0, hi + 2.0
    assert rights.size == int(np.ceil((stop - start) * 100)) in (400, 401)
    assert rights[0] == start and rights[-1] == stop and width == hi - lo
    lefts = double_lefts(rights, width)
    assert lefts.shape == (rights.size, N_LEFT) == (rights.size, 400)
    for i in (0, rights.size // 2, rights.size - 1):  # bit-identical to the scalar linspace per r
        np.testing.assert_array_equal(lefts[i], np.linspace(rights[i] - width - 2.0, rights[i] - width + 2.0, 400))


def test_right_grid_has_401_points_through_rounding_for_some_samples():
    # The span (hi + 2) - ((lo + (hi - lo)) - 2) is 4 give or take an ulp; one ulp above 4 makes
    # ceil(span * 100) = 401. Over peaky samples of realistic confidences that happens in ~5-10%.
    rng = np.random.default_rng(0)
    samples = rng.normal(1.0, 1.0, size=(2000, 64))
    counts = [double_rights(s.min(), s.max())[0].size for s in samples]
    share = np.mean(np.array(counts) == 401)
    assert set(counts) == {400, 401} and 0.02 < share < 0.3


def test_single_grid_spacing_and_one_point_case():
    assert single_thresholds(-1.0, 1.2).size == math.ceil(2.2 * 100) == 221  # 220.00000000000003 -> 221
    one = single_thresholds(0.0, 0.004)  # ceil(0.4) = 1: torch and numpy both return [start]
    assert one.tolist() == [0.0]


# ---- Rule 2: on equal ranges the smaller-median sample is the peaky one ----

@pytest.mark.parametrize("shift", range(-15, 15))
def test_issue_example_equal_ranges(shift):
    # U = {0,2,3,4} (median 2.5, positive), R = {1,1,3,5} (median 2); both ranges are 4, so R is the
    # peaky sample. The best kept pair is (1/2, 1/4): t in (1, 2] (U >= t: {2,3,4}; R >= t: {3,5})
    # or the interval [1, 3] around R: log(2 - 4d) = 0.6931. With U peaky (our old rule) the
    # interval [2, 4] gives (1/4, 1/4) -> log(3 - 4d) = 1.0986. Integer shifts keep the arithmetic exact.
    check_case(np.array([0, 2, 3, 4]) + shift, np.array([1, 1, 3, 5]) + shift, LOG2)


@pytest.mark.parametrize("shift", range(0, 40, 4))
def test_equal_ranges_argument_order_does_not_matter(shift):
    # Swapping the roles swaps the medians, so the same sample is positive/peaky: same 0.6931.
    check_case(np.array([1, 1, 3, 5]) + shift, np.array([0, 2, 3, 4]) + shift, LOG2)


@pytest.mark.parametrize("shift", range(-10, 10))
def test_equal_ranges_and_equal_medians(shift):
    # U = {0,1,2,3}, R = {.5,1.5,1.5,3.5}: medians 1.5 and 1.5 -> U positive; ranges 3 and 3 -> R peaky.
    # The interval [.5, 1.5] holds R's {.5, 1.5, 1.5} and U's {1}: (FPR, FNR) = (1/4, 1/4) -> log(3 - 4d).
    check_case(np.array([0, 1, 2, 3]) + shift, np.array([0.5, 1.5, 1.5, 3.5]) + shift, LOG3)


# ---- Rule 3: every threshold discarded -> undecided, scored at the cap, never forget credit ----

def test_issue_example_undecided_and_counted():
    # U = {0, .001, .002}, R = {.004, .005, .006}: the pooled span .006 gives one single threshold
    # (at the minimum: FPR = 1, FNR = 0), and interval edges 0.01 apart either hold all six values,
    # none, or all of one sample's but its minimum: every (FPR, FNR) has exactly one zero, so every
    # threshold is discarded and the official code fails its assertion. We score 50 and flag it.
    check_case([0, 0.001, 0.002], [0.004, 0.005, 0.006], 50.0, undecided=True)
    u = np.array([[0, 0.001, 0.002], [0, 1, 2]], dtype=float).T
    r = np.array([[0.004, 0.005, 0.006], [0, 1, 2]], dtype=float).T
    scores = score_epsilons(u, r)
    assert scores.undecided.tolist() == [True, False] and scores.n_undecided == 1
    assert scores.epsilon.tolist() == [50.0, 0.0]


def test_undecided_flag_is_exactly_where_the_official_assertion_fires():
    # Shifted copies of the example above: whether a grid edge lands just inside or outside a sample's
    # minimum depends on float rounding (the left grid passes within an ulp of the peaky minimum), so
    # some shifts are undecided and others are decided. Whatever the case, we are undecided exactly
    # where the official code asserts, never give credit (eps 0) there, and agree elsewhere.
    offsets = np.linspace(-9.0, 9.0, 30) + 0.0123
    n_undecided = 0
    for offset in offsets:
        u = np.array([0.0, 0.001, 0.002]) + offset
        r = np.array([0.004, 0.005, 0.006]) + offset
        ours = score_epsilons(u[:, None], r[:, None])
        assert (ours.epsilon[0], bool(ours.undecided[0])) == slow_epsilon_detail(u, r)
        official = official_epsilon(u, r)
        assert bool(ours.undecided[0]) == math.isnan(official), offset
        if math.isnan(official):
            n_undecided += 1
            assert ours.epsilon[0] == 50.0
        else:
            assert ours.epsilon[0] == pytest.approx(official, abs=1e-4)
    assert 3 <= n_undecided < len(offsets)


# ---- Rule 4: N of the forget score is the unlearned count; unequal ensembles are refused ----

@pytest.mark.parametrize("n", list(range(3, 33)))
def test_forget_score_uses_unlearned_count_like_official(n):
    rng = np.random.default_rng(n)
    u = rng.normal(0.0, 1.0, size=(n, 6))
    r = rng.normal(rng.uniform(-1, 1, 6), rng.uniform(0.3, 1.5, 6), size=(n, 6))
    result = challenge_forget(u, r)
    official = official_epsilons(u, r)
    np.testing.assert_allclose(result.scores.epsilon, official, atol=1e-4)
    assert result.n_models == n
    assert result.forget_score == official_forget_score(official, n) == forget_score(result.scores.epsilon, n)


def test_unequal_ensembles_are_refused_with_the_counts():
    with pytest.raises(ValueError, match="5 unlearned and 4 retrained"):
        challenge_forget(np.zeros((5, 2)), np.zeros((4, 2)))


# ---- The 1% peaky rule ----

@pytest.mark.parametrize("scale", [1.0, 2.0, 4.0, 8.0, 16.0])
def test_ratio_exactly_one_percent_runs_the_attacks(scale):
    # U = {0, .01, .02}s, R = {-1, 0, 1}s: ratio .02 / 2 = 0.01 exactly (power-of-two scales are exact),
    # not < 0.01, so the attacks run. U's 0 is shared with R, so the best is (1/3, 1/3), e.g.
    # t in (0, .01s]: log(2 - 3d) = 0.6931. (At s = 1/2 no single threshold falls in (0, .005]: the
    # grid is .0101 apart and the official result is then 0.)
    check_case(np.array([0, 0.01, 0.02]) * scale, np.array([-1, 0, 1]) * scale, LOG2_OF_3)


@pytest.mark.parametrize("factor", [0.99, 0.995, 0.999, 0.5, 0.1])
def test_ratio_below_one_percent_is_the_cap(factor):
    # Same samples with U narrower: ratio < 0.01 -> 50 without any attack, although no attack could
    # reach more than 0.6931 here.
    check_case(np.array([0, 0.01, 0.02]) * factor, [-1, 0, 1], 50.0)


# ---- Conventions kept: constants, ties, N = 3, errors, float64 ----

@pytest.mark.parametrize("value", [-3.0, -1.0, 0.0, 0.5, 2.0, 7.25])
def test_constant_columns(value):
    check_case([value] * 3, [value] * 3, 0.0, official_fails=True)  # indistinguishable: our convention
    check_case([value] * 3, [value + 1] * 3, 50.0)  # perfectly separable
    check_case([value] * 4, value + np.array([-1, 0, 1, 2.0]), 50.0)  # ratio 0 < 0.01


@pytest.mark.parametrize("shift", range(-5, 5))
def test_median_tie_unlearned_positive(shift):
    # U = {0,0,2,2}, R = {1,1,1,5}: medians 1 and 1 -> U positive; U's range 2 < 4 -> U peaky.
    # U comes in pairs (FNR in {0, 1/2, 1}); FNR = 0 needs 0 and 2 inside, which drags in R's 1s.
    # Best: t in (1, 2]: FNR = 1/2, FPR = 1/4 ({5}) -> log(2 - 4d).
    check_case(np.array([0, 0, 2, 2]) + shift, np.array([1, 1, 1, 5]) + shift, LOG2)


@pytest.mark.parametrize("shift", range(-5, 5))
def test_shared_values_four_models(shift):
    # U = {1,2,3,4}, R = {-1,0,1,2}: 1 and 2 are shared; t in (1, 2] gives (1/4, 1/4) -> log(3 - 4d).
    check_case(np.array([1, 2, 3, 4]) + shift, np.array([-1, 0, 1, 2]) + shift, LOG3)
    # U = {1,2,3,4}, R = {0,1,2,3}: three shared values, best (1/2, 1/4) -> log(2 - 4d).
    check_case(np.array([1, 2, 3, 4]) + shift, np.array([0, 1, 2, 3]) + shift, LOG2)


@pytest.mark.parametrize("shift", range(-5, 5))
def test_identical_three_model_samples(shift):
    # Same three values in both samples: every set holds as many U as R values -> eps 0.
    check_case(np.array([0.0, 1, 2]) + shift, np.array([0.0, 1, 2]) + shift, 0.0)


def test_float32_inputs_are_scored_in_float64():
    rng = np.random.default_rng(5)
    u32 = rng.normal(size=(16, 20)).astype(np.float32)
    r32 = rng.normal(0.3, 1.2, size=(16, 20)).astype(np.float32)
    np.testing.assert_array_equal(score_epsilons(u32, r32).epsilon,
                                  score_epsilons(u32.astype(np.float64), r32.astype(np.float64)).epsilon)


def test_bad_inputs_are_clear_errors():
    good = np.zeros((3, 2))
    for bad_value, word in ((np.nan, "NaN"), (np.inf, "inf")):
        bad = good.copy()
        bad[1, 1] = bad_value
        with pytest.raises(ValueError, match=word):
            score_epsilons(bad, good)
    with pytest.raises(ValueError, match="delta"):
        score_epsilons(good, good, delta=0.0)


# ---- Random data from N = 3 to N = 512 ----

@pytest.mark.parametrize("n,points", [(3, 40), (4, 30), (5, 30), (8, 20), (16, 12), (64, 6), (128, 3), (512, 1)])
def test_random_data_matches_official_transcription(n, points):
    rng = np.random.default_rng(1000 + n)
    u = rng.normal(rng.uniform(-1, 1, points), rng.uniform(0.05, 2.0, points), size=(n, points))
    r = rng.normal(rng.uniform(-1, 1, points), rng.uniform(0.05, 2.0, points), size=(n, points))
    ours = score_epsilons(u, r)
    official = official_epsilons(u, r)
    assert not ours.undecided.any() and not np.isnan(official).any()
    np.testing.assert_allclose(ours.epsilon, official, rtol=0, atol=1e-4)


def test_narrow_realistic_confidences_match_official_transcription():
    # Narrow samples are where the old right-threshold count was furthest off (up to 1.13).
    rng = np.random.default_rng(11)
    u = rng.normal(5.0, rng.uniform(0.02, 0.3, 40), size=(12, 40))
    r = rng.normal(5.0 + rng.uniform(-0.3, 0.3, 40), rng.uniform(0.02, 0.3, 40), size=(12, 40))
    np.testing.assert_allclose(score_epsilons(u, r).epsilon, official_epsilons(u, r), rtol=0, atol=1e-4)


def test_fast_equals_slow_on_random_and_degenerate_inputs():
    rng = np.random.default_rng(12)
    blocks = [
        (rng.normal(size=(7, 25)), rng.normal(0.2, 0.8, size=(9, 25))),  # unequal sizes are allowed
        (rng.integers(0, 4, size=(6, 25)).astype(float), rng.integers(0, 3, size=(6, 25)).astype(float)),
        (np.round(rng.normal(size=(5, 25)), 2), np.round(rng.normal(size=(5, 25)), 2)),  # on-grid ties
        (rng.normal(0, 1e-3, size=(4, 25)), rng.normal(2e-3, 1e-3, size=(4, 25))),  # tiny scale
    ]
    for u, r in blocks:
        fast = score_epsilons(u, r)
        slow = [slow_epsilon_detail(u[:, j], r[:, j]) for j in range(u.shape[1])]
        np.testing.assert_array_equal(fast.epsilon, [e for e, _ in slow])
        np.testing.assert_array_equal(fast.undecided, [d for _, d in slow])
