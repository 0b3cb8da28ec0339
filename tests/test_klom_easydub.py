"""KLoM's EasyDUB convention: hand cases, and the vectorised version against the literal per-point loop."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bench.metrics import klom
from bench.metrics.reference import slow_klom, slow_klom_easydub


def col(*values, dtype=np.float64):
    return np.array(values, dtype=dtype)[:, None]


def both(u, o):
    return klom(u, o)[0], klom(u, o, convention="easydub")[0]


def test_values_at_the_pooled_maximum_are_dropped():
    # U = {0,0,1}, O = {0,1,1}. Definition: p = (2/3 in bin 1, 1/3 in bin 20), q = (1/3, 2/3):
    # KL = 2/3 log 2 + 1/3 log(1/2) = log(2)/3. EasyDUB: the 1s equal the last edge and fall out, so
    # p = q = (1 in bin 1): 0.
    definition, easydub = both(col(0, 0, 1), col(0, 1, 1))
    assert definition == pytest.approx(math.log(2) / 3, rel=1e-12)
    assert easydub == 0.0


def test_sample_entirely_at_the_maximum_scores_zero_in_easydub():
    # U = {1,1,1}, O = {0,.5,1}. Definition: p = 1 in bin 20, q = 1/3 there: log 3. EasyDUB keeps no
    # value of U, so p = 0 everywhere and the sum over p > 0 is empty: 0 (their released eval.py).
    definition, easydub = both(col(1, 1, 1), col(0, 0.5, 1))
    assert definition == pytest.approx(math.log(3), rel=1e-12)
    assert easydub == 0.0


def test_normalised_by_kept_values_not_model_count():
    # U = {0, .5, 1}, O = {0, 0, 1}: EasyDUB keeps U {0, .5} (p = 1/2, 1/2 in bins 1 and 11) and O {0, 0}
    # (q = 1 in bin 1): KL = 1/2 log(1/2) + 1/2 log(1/2 / 1e-5) = 1/2 log(1e5) - ... exactly:
    easydub = klom(col(0, 0.5, 1), col(0, 0, 1), convention="easydub")[0]
    assert easydub == pytest.approx(0.5 * math.log(0.5) + 0.5 * math.log(0.5 / 1e-5), rel=1e-12)
    # Definition: p = (1/3, 1/3, 1/3) over bins 1, 11, 20; q = (2/3, 0, 1/3):
    definition = klom(col(0, 0.5, 1), col(0, 0, 1))[0]
    expected = (math.log((1 / 3) / (2 / 3)) + math.log((1 / 3) / 1e-5) + 0.0) / 3
    assert definition == pytest.approx(expected, rel=1e-12)


def test_clipped_mass_at_plus_100_moves_the_score():
    # Half of the unlearned models explode (clipped to +100, the pooled maximum), the oracles do not:
    # the definition sees that mass, EasyDUB drops it.
    rng = np.random.default_rng(0)
    u = rng.normal(0, 1, size=(100, 50))
    u[:50] = 1e3
    o = rng.normal(0, 1, size=(100, 50))
    definition = klom(u, o)
    easydub = klom(u, o, convention="easydub")
    assert (definition - easydub).mean() > 1.0  # measured 5.1 here: the mass at +100 is invisible
    np.testing.assert_allclose(easydub, slow_klom_easydub(u, o), rtol=0, atol=1e-12)


def test_constant_pooled_values_are_zero_in_both():
    assert both(col(2, 2, 2), col(2, 2)) == (0.0, 0.0)


def test_float32_edges_are_built_in_float32():
    # Same numbers in float32 and float64 give different edges and so, at an edge, different bins.
    rng = np.random.default_rng(3)
    u = rng.normal(0, 1, size=(16, 400)).astype(np.float32)
    o = rng.normal(0.2, 1, size=(16, 400)).astype(np.float32)
    # put one value of each point on an inner float32 edge
    lo = np.minimum(u.min(0), o.min(0))
    hi = np.maximum(u.max(0), o.max(0))
    edges32 = np.linspace(lo, hi, 21, axis=1)
    u[0] = edges32[:, 7]
    f32 = klom(u, o, convention="easydub")
    np.testing.assert_allclose(f32, slow_klom_easydub(u, o), rtol=0, atol=1e-12)
    f64 = klom(u.astype(np.float64), o.astype(np.float64), convention="easydub")
    np.testing.assert_allclose(f64, slow_klom_easydub(u.astype(np.float64), o.astype(np.float64)), rtol=0, atol=1e-12)
    assert (f32 != f64).any()


@pytest.mark.parametrize("n_models", [3, 4, 10, 100])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_matches_literal_loop(n_models, dtype):
    rng = np.random.default_rng(n_models)
    u = rng.normal(0.5, rng.uniform(0.1, 30, 200), size=(n_models, 200)).astype(dtype)
    o = rng.normal(0.0, rng.uniform(0.1, 30, 200), size=(n_models + 1, 200)).astype(dtype)
    u[:, :10] = 250.0  # clipped at +100
    o[:, 10:20] = -1e6  # clipped at -100
    u[:, 20:30] = o[0, 20:30]  # constant columns
    u[:, 30:40] = np.round(u[:, 30:40])  # ties
    np.testing.assert_allclose(klom(u, o, convention="easydub"), slow_klom_easydub(u, o), rtol=0, atol=1e-12)
    np.testing.assert_allclose(klom(u, o), slow_klom(u, o), rtol=0, atol=1e-12)


def test_direction_is_unlearned_against_oracle():
    # KL is asymmetric; both conventions take p = unlearned, q = oracle (EasyDUB's eval_pretrain.py order).
    u, o = col(0, 0, 0, 0.5), col(0, 0.25, 0.5, 0.75)
    assert klom(u, o, convention="easydub")[0] != klom(o, u, convention="easydub")[0]
    assert klom(u, o, convention="easydub")[0] == slow_klom_easydub(u, o)[0]


def test_bad_convention_and_nan_are_clear_errors():
    with pytest.raises(ValueError, match="unknown KLoM convention 'easydb'"):
        klom(col(0, 1), col(0, 1), convention="easydb")
    with pytest.raises(ValueError, match="NaN"):
        klom(col(0, np.nan), col(0, 1), convention="easydub")
