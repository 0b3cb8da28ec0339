"""Scores inside a run, on cases whose answers are known by hand."""
import math

import numpy as np
import pytest

from bench.registry import METHODS
from bench.runner import RunSpec, run
from tasks.linear_gaussian import LinearGaussian

# exact trainer: every original is the same closed-form model, and so is every oracle
EXACT = LinearGaussian(n=40, d=60, n_val=20, forget_size=4)
KLOM_CAP = math.log(1 / 1e-5)


def test_retrain_on_a_deterministic_task_scores_perfectly():
    metrics = run(RunSpec(method=METHODS.get("retrain")(), task=EXACT, n_models=3))["metrics"]
    for split in ("forget", "retain", "val"):
        assert metrics["klom"][split]["unlearned"] == {"mean": 0.0, "p95": 0.0, "p99": 0.0}
        assert metrics["klom"][split]["floor"]["mean"] == 0.0
    assert metrics["challenge"]["epsilon_mean"] == 0.0
    assert metrics["challenge"]["forget_score"] == 1.0
    assert metrics["challenge"]["final_score"] is None  # regression: no accuracies to scale by


def test_noop_on_a_deterministic_task_hits_the_caps():
    """Each point: all unlearned margins equal a, all oracle margins equal b != a: disjoint point masses."""
    metrics = run(RunSpec(method=METHODS.get("noop")(), task=EXACT, n_models=3))["metrics"]
    assert metrics["klom"]["forget"]["unlearned"]["mean"] == pytest.approx(KLOM_CAP)
    assert metrics["challenge"]["epsilon_mean"] == 50.0
    assert metrics["challenge"]["forget_score"] == 0.0
    assert metrics["challenge"]["floor"]["forget_score"] == 1.0


def test_too_few_models_skip_klom_and_challenge_with_a_reason():
    metrics = run(RunSpec(method=METHODS.get("noop")(), task=EXACT, n_models=2))["metrics"]
    assert "forget" in metrics["klom"]
    assert "at least 3 models" in metrics["challenge"]["skipped"]
    single = run(RunSpec(method=METHODS.get("noop")(), task=EXACT, n_models=1))["metrics"]
    assert single["klom"] == {}


def test_per_example_arrays_are_recorded():
    record = run(RunSpec(method=METHODS.get("noop")(), task=EXACT, n_models=3))
    assert len(record["per_example"]["klom"]["forget"]) == 4
    assert len(record["per_example"]["epsilon"]) == 4
    assert record["metrics"]["scored_points"] == {"forget": 4, "retain": 36, "val": 20}
    assert np.allclose(record["per_example"]["klom"]["forget"], KLOM_CAP)


def test_records_carry_scorer_version_and_undecided_counts():
    from bench.metrics import SCORER_VERSION
    from bench.report.group import group_key
    from bench.table import run_table

    record = run(RunSpec(method=METHODS.get("noop")(), task=EXACT, n_models=3))
    assert record["metrics"]["scorer_version"] == SCORER_VERSION == 2
    challenge = record["metrics"]["challenge"]
    # point masses: U constant a, oracles constant b != a -> decided (50), never undecided
    assert challenge["epsilon_undecided"] == 0 and challenge["floor"]["epsilon_undecided"] == 0
    older = {**record, "metrics": {k: v for k, v in record["metrics"].items() if k != "scorer_version"}}
    assert group_key(older) != group_key(record)  # version-1 records never share a table with ours
    challenge["epsilon_undecided"] = 2
    assert "2 forget example(s) undecided" in run_table(record)
