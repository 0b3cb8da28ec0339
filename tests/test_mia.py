"""Membership inference: U-LiRA and the population attack, on hand cases and in runs."""
import numpy as np
import pytest

from bench.metrics.mia import attack_summary, population_mia, tpr_at_fpr, ulira, ulira_scores
from bench.registry import METHODS
from bench.runner import RunSpec, run
from tasks.linear_gaussian import LinearGaussian


def test_tpr_at_fpr_on_a_hand_roc():
    labels = np.array([1, 1, 1, 0, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.3, 0.7, 0.2, 0.1, 0.05])
    # thresholds: >0.9 -> tpr 1/3 fpr 0; >=0.8 -> 2/3, 0; >=0.7 -> 2/3, 1/4; >=0.3 -> 1, 1/4
    assert tpr_at_fpr(labels, scores, 0.0) == pytest.approx(2 / 3)
    assert tpr_at_fpr(labels, scores, 0.25) == pytest.approx(1.0)
    assert attack_summary(labels, scores)["auc"] == pytest.approx(11 / 12)


def test_ulira_score_is_the_gaussian_log_likelihood_ratio():
    shadow_in = np.array([[1.0], [3.0]])    # mean 2, sd sqrt(2)
    shadow_out = np.array([[-1.0], [1.0]])  # mean 0, sd sqrt(2)
    score = ulira_scores(shadow_in, shadow_out, np.array([[1.0]]))
    assert score[0, 0] == pytest.approx(0.0)  # equidistant from both means with equal spread
    score = ulira_scores(shadow_in, shadow_out, np.array([[2.0]]))
    assert score[0, 0] == pytest.approx((0 - 4) / (2 * 2) * -1)  # (2-0)^2/(2*2) - 0


def test_ulira_separates_distinct_and_not_identical_distributions():
    rng = np.random.default_rng(0)
    far = ulira(rng.normal(5, 1, (8, 30)), rng.normal(0, 1, (8, 30)), rng.normal(5, 1, (8, 30)),
                rng.normal(0, 1, (8, 30)))
    same = ulira(rng.normal(0, 1, (8, 30)), rng.normal(0, 1, (8, 30)), rng.normal(0, 1, (8, 30)),
                 rng.normal(0, 1, (8, 30)))
    assert far["auc"] > 0.99 and far["tpr_at_1pct_fpr"] > 0.9
    assert 0.4 < same["auc"] < 0.6


def test_population_attack_on_separable_losses():
    rng = np.random.default_rng(1)
    separable = population_mia(rng.normal(0.1, 0.05, (3, 40)), rng.normal(2.0, 0.05, (3, 60)))
    mixed = population_mia(rng.normal(1, 1, (3, 40)), rng.normal(1, 1, (3, 60)))
    assert separable["auc"] > 0.99 and mixed["auc"] < 0.7
    with pytest.raises(ValueError, match="at least 4"):
        population_mia(np.zeros((1, 3)), np.zeros((1, 10)))


@pytest.fixture(scope="module")
def memorising_task():
    """d > n with random inits: forget points are fitted by originals whatever the init, while oracles
    extrapolate to them with seed-dependent error, so membership is visible in the predictions."""
    return LinearGaussian(n=40, d=120, n_val=40, trainer="gd", init_scale=1.0, train_steps=150, forget_size=10)


def _ulira(task, method):
    return run(RunSpec(method=METHODS.get(method)(), task=task, n_models=8, metrics=("ulira",)))["metrics"]


def test_ulira_is_high_for_noop_and_near_chance_for_retrain(memorising_task):
    noop, retrain = _ulira(memorising_task, "noop"), _ulira(memorising_task, "retrain")
    assert noop["ulira"]["auc"] > 0.95  # measured 1.0 with 16 models
    assert 0.3 < retrain["ulira"]["auc"] < 0.7  # measured 0.49 with 16 models
    assert noop["population_mia"]["auc"] > retrain["population_mia"]["auc"]


def test_ulira_needs_enough_models(memorising_task):
    metrics = run(RunSpec(method=METHODS.get("noop")(), task=memorising_task, n_models=3,
                          metrics=("ulira",)))["metrics"]
    assert "needs --n-models 4" in metrics["ulira"]["skipped"]
