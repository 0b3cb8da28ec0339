"""bench.bootstrap (paired percentile bootstrap) and bench.klom_intervals (KLoM intervals over examples/models)."""
from __future__ import annotations

import numpy as np
import pytest

from bench.bootstrap import Interval, draw_indices, p99_of_strata, paired_bootstrap, percentile_interval, verdict
from bench.klom_intervals import FLOOR, klom_replicates
from bench.metrics.reference import slow_klom


def mean_of_strata(strata):
    return np.mean([x.mean(axis=-1) for x in strata], axis=0)


def test_hand_computed_bootstrap_distribution():
    # Resampling [0, 0, 3] with replacement: the mean is k with k ~ Binomial(3, 1/3):
    # P(0) = 8/27 = 0.296, P(1) = 12/27, P(2) = 6/27, P(3) = 1/27 = 0.037, so P(mean <= 2) = 26/27 = 0.963.
    # 95% interval: the 2.5% quantile is 0 and the 97.5% quantile is 3 (0.963 < 0.975);
    # 90% interval: the 5% quantile is 0 and the 95% quantile is 2 (0.963 > 0.95).
    a, b = [np.array([0.0, 0.0, 3.0])], [np.zeros(3)]
    r95 = paired_bootstrap(a, b, mean_of_strata, n_boot=20000, confidence=0.95, seed=1)
    r90 = paired_bootstrap(a, b, mean_of_strata, n_boot=20000, confidence=0.90, seed=1)
    assert r95.a.estimate == pytest.approx(1.0)
    assert (r95.a.low, r95.a.high) == (0.0, 3.0)
    assert (r90.a.low, r90.a.high) == (0.0, 2.0)
    assert (r95.difference.low, r95.difference.high) == (0.0, 3.0)  # b is constant 0


def test_pairing_a_constant_shift_has_a_zero_width_difference():
    b = [np.linspace(0.0, 10.0, 50), np.linspace(-3.0, 3.0, 7)]
    a = [x + 0.3 for x in b]
    r = paired_bootstrap(a, b, p99_of_strata, n_boot=500, seed=0)
    assert r.difference.low == pytest.approx(0.3) and r.difference.high == pytest.approx(0.3)
    assert r.a.high - r.a.low > 1.0  # the separate intervals are wide and overlap ...
    assert r.a.low < r.b.high
    assert verdict(r.difference) == "higher"  # ... but the paired difference is decisive


def test_unpaired_resampling_would_not_separate():
    """The same data resampled independently per method (what pairing avoids) gives a difference interval
    that straddles 0: so the paired test above can only pass if the indices really are shared."""
    rng = np.random.default_rng(0)
    b = rng.normal(0, 5, 200)
    a = b + 0.5 + rng.normal(0, 0.1, 200)
    ia, ib = draw_indices([200], 1000, 1)[0], draw_indices([200], 1000, 2)[0]
    unpaired = a[ia].mean(axis=1) - b[ib].mean(axis=1)
    low, high = percentile_interval(unpaired)
    assert low < 0 < high
    paired = paired_bootstrap([a], [b], mean_of_strata, n_boot=1000, seed=1).difference
    assert paired.low > 0


def slow_percentile(values, q):
    """Linear interpolation between order statistics at rank q/100 * (n - 1) (numpy's default)."""
    ordered = sorted(float(v) for v in values)
    rank = q / 100 * (len(ordered) - 1)
    lo = int(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (rank - lo) * (ordered[hi] - ordered[lo])


def test_fast_matches_slow_obvious_loop():
    rng = np.random.default_rng(3)
    a = [rng.gamma(2.0, 1.0, 40), rng.gamma(2.0, 1.0, 9)]
    b = [x * 0.8 + rng.normal(0, 0.2, len(x)) for x in a]
    n_boot, seed = 300, 7
    fast = paired_bootstrap(a, b, p99_of_strata, n_boot=n_boot, seed=seed)
    indices = draw_indices([len(x) for x in a], n_boot, seed)
    rep_a, rep_b = [], []
    for r in range(n_boot):
        rep_a.append(sum(slow_percentile(x[i[r]], 99) for x, i in zip(a, indices)) / len(a))
        rep_b.append(sum(slow_percentile(x[i[r]], 99) for x, i in zip(b, indices)) / len(b))
    diffs = [x - y for x, y in zip(rep_a, rep_b)]
    assert fast.a.estimate == pytest.approx(sum(slow_percentile(x, 99) for x in a) / 2, abs=1e-12)
    assert fast.a.low == pytest.approx(slow_percentile(rep_a, 2.5), abs=1e-12)
    assert fast.a.high == pytest.approx(slow_percentile(rep_a, 97.5), abs=1e-12)
    assert fast.difference.low == pytest.approx(slow_percentile(diffs, 2.5), abs=1e-12)
    assert fast.difference.high == pytest.approx(slow_percentile(diffs, 97.5), abs=1e-12)


def test_p99_of_strata_hand_case():
    # p99 of 0..100 is 99 (rank 0.99 * 100); of [0, 10] it is 9.9 (rank 0.99); the mean is 54.45.
    assert p99_of_strata([np.arange(101.0), np.array([0.0, 10.0])]) == pytest.approx(54.45)


def test_verdict_and_bad_input():
    assert verdict(Interval(-1, -2, -0.1)) == "lower"
    assert verdict(Interval(1, 0.1, 2)) == "higher"
    assert verdict(Interval(0, -0.1, 0.2)) == "tie"
    with pytest.raises(ValueError, match="same strata sizes"):
        paired_bootstrap([np.ones(3)], [np.ones(4)], mean_of_strata)
    with pytest.raises(ValueError, match="non-finite"):
        paired_bootstrap([np.array([1.0, np.nan])], [np.ones(2)], mean_of_strata)
    with pytest.raises(ValueError, match="confidence"):
        percentile_interval(np.ones(3), confidence=1.0)


# -- KLoM over examples and models ----------------------------------------------------------------------------
def ensembles(seed: int, n_models: int = 16, n_points: int = 30, shift: float = 0.0):
    rng = np.random.default_rng(seed)
    centre = rng.normal(0, 3, n_points)
    return {"forget": centre[:10] + shift + rng.normal(0, 1, (n_models, 10)),
            "retain": centre[10:] + shift + rng.normal(0, 1, (n_models, n_points - 10))}


def with_centres(reference, seed, shift=0.0):
    """Another ensemble around the same per-point centres as ``reference`` (shifted by ``shift``)."""
    rng = np.random.default_rng(seed)
    return {s: m.mean(axis=0) + shift + rng.normal(0, 1, m.shape) for s, m in reference.items()}


def test_klom_estimates_and_examples_only_replicates_match_a_slow_loop():
    oracle = ensembles(0)
    entries = {"same": with_centres(oracle, 1), "shifted": with_centres(oracle, 2, shift=2.0)}
    result = klom_replicates(entries, oracle, n_boot=40, seed=5, resample_models=False)
    rng = np.random.default_rng(5)
    slow = {name: [slow_klom(m[s], oracle[s]) for s in oracle] for name, m in entries.items()}
    for name in entries:
        assert result.estimate[name] == pytest.approx(np.mean([np.percentile(x, 99) for x in slow[name]]))
    for b in range(40):
        rows = [rng.integers(0, oracle[s].shape[1], oracle[s].shape[1]) for s in oracle]
        for name in entries:
            expected = np.mean([slow_percentile(x[r], 99) for x, r in zip(slow[name], rows)])
            assert result.replicates[name][b] == pytest.approx(expected, abs=1e-9)


def test_klom_intervals_separate_a_shift_and_not_a_null_pair():
    oracle = ensembles(0)
    floor = with_centres(oracle, 1)
    entries = {"retrain": with_centres(oracle, 2), "shifted": with_centres(oracle, 3, shift=1.5)}
    both = klom_replicates(entries, oracle, floor, n_boot=150, seed=0)
    assert both.resample_models
    assert verdict(both.difference("shifted", FLOOR)) == "higher"
    assert verdict(both.difference("retrain", FLOOR)) == "tie"
    wide = both.interval(FLOOR)
    assert wide.contains(wide.estimate)  # re-splitting the pool adds no duplication bias
    narrow = klom_replicates(entries, oracle, floor, n_boot=150, seed=0, resample_models=False).interval(FLOOR)
    assert wide.high - wide.low > narrow.high - narrow.low  # re-drawing the ensembles adds their noise


def test_model_resampling_resplits_the_pool_without_repeats():
    """Oracle margins 0..15 and floor 16..31 on one point (one split): every replicate's fresh oracle and
    floor are disjoint halves of the 32 pooled models, so the floor's KLoM is that of two 16-model halves."""
    oracle = {"s": np.arange(16.0)[:, None]}
    floor = {"s": np.arange(16.0, 32.0)[:, None]}
    result = klom_replicates({}, oracle, floor, n_boot=50, seed=2, examples_per_split=1)
    rng = np.random.default_rng(2)
    pool = np.arange(32.0)
    for b in range(50):
        order = rng.permutation(32)
        rng.integers(0, 1, 1)  # the example draw (one point)
        expected = slow_klom(pool[order[16:]][:, None], pool[order[:16]][:, None])[0]
        assert result.replicates[FLOOR][b] == pytest.approx(expected, abs=1e-12)
    # The actual split shares no bin: 20 bins of width 31/20 = 1.55 put oracle values 0..15 in bins 0-9 and
    # floor values 16..31 in bins 10-19, six of them holding 2 values and four holding 1 (16,17 | 18 | 19,20 |
    # 21 | 22,23 | 24 | 25,26 | 27 | 28,29 | 30,31). q is floored at 1e-5, so KLoM = sum p log(p / 1e-5)
    # = log(1e5) - H(p), H(p) = 6/8 log 8 + 4/16 log 16 = 2.2527: KLoM = 11.5129 - 2.2527 = 9.2602.
    assert result.estimate[FLOOR] == pytest.approx(np.log(1e5) - (0.75 * np.log(8) + 0.25 * np.log(16)), abs=1e-9)
    assert result.interval(FLOOR).high < result.estimate[FLOOR]


def test_each_resplit_serves_several_example_draws():
    """With examples_per_split=3, replicates 0-2 share one re-split: their per-point KLoM is the same, so
    on a single point (where resampling examples changes nothing) their values are equal, and differ later."""
    oracle = {"s": np.random.default_rng(0).normal(0, 1, (8, 1))}
    floor = {"s": np.random.default_rng(1).normal(0, 1, (8, 1))}
    reps = klom_replicates({}, oracle, floor, n_boot=9, seed=0, examples_per_split=3).replicates[FLOOR]
    assert reps[0] == reps[1] == reps[2] and reps[3] == reps[4] == reps[5]
    assert len({reps[0], reps[3], reps[6]}) > 1


def test_klom_replicates_refuse_mismatched_shapes():
    oracle = ensembles(0)
    bad = {"x": {"forget": oracle["forget"][:, :5], "retain": oracle["retain"]}}
    with pytest.raises(ValueError, match="same models and points"):
        klom_replicates(bad, oracle, n_boot=2)
