"""On digits with 64 models, KLoM ranks retraining at the top and doing nothing clearly below it.

Note what is NOT asserted: that noop is worse than every gradient method. At default hyperparameters,
finetune, gdga and ga move margins *away* from the oracle distribution (extra training makes models
more confident on retain points, ascent damages them), and they score worse than noop. That is a
finding about those methods, recorded in the notes, not something this test should hide.
"""
import pytest

from bench.registry import METHODS
from bench.runner import RunSpec, run
from tasks.digits import Digits

TASK = Digits(width=32, epochs=5)
N = 64
# KLoM means of independent 64-model ensembles against one oracle ensemble spread by about +-0.1 on
# digits (measured: 0.52..0.76 on the validation split), so rankings are asserted with that margin.
ENSEMBLE_NOISE = 0.15


@pytest.fixture(scope="module")
def forget_klom():
    out = {}
    for name in ("noop", "retrain", "oracle-matching"):
        record = run(RunSpec(method=METHODS.get(name)(), task=TASK, n_models=N))
        out[name] = record["metrics"]["klom"]["forget"]
        out["floor"] = record["metrics"]["klom"]["forget"]["floor"]
    return out


def test_retrain_is_at_the_noise_floor(forget_klom):
    assert forget_klom["retrain"]["unlearned"]["mean"] <= forget_klom["floor"]["mean"] + ENSEMBLE_NOISE


def test_noop_is_clearly_worse_than_retrain_and_oracle_matching(forget_klom):
    noop = forget_klom["noop"]["unlearned"]
    for better in ("retrain", "oracle-matching"):
        assert noop["mean"] > forget_klom[better]["unlearned"]["mean"] + 2 * ENSEMBLE_NOISE
        assert noop["p99"] > forget_klom[better]["unlearned"]["p99"]


def test_retrain_ranks_best_within_ensemble_noise(forget_klom):
    best = min(forget_klom[m]["unlearned"]["mean"] for m in ("noop", "retrain", "oracle-matching"))
    assert forget_klom["retrain"]["unlearned"]["mean"] <= best + ENSEMBLE_NOISE
