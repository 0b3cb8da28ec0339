"""``python -m bench reproduce dm-pareto`` (paper 003, Figure 2) on a tiny digits configuration."""
import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from bench.catalog import get_reproduction as get_experiment
from tasks.reproductions.dm_pareto import pareto_mask, reproduce
from oracles.cache import ModelStore
from tasks.digits import Digits

METHODS = ("noop", "finetune", "dm-direct", "dm-direct-trak", "retrain")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One tiny run: width-8 MLP, 2 epochs, 4 models, one budget, 24 datamodel subset models."""
    tmp = tmp_path_factory.mktemp("dm-pareto")
    summary = reproduce(tmp / "reports", log=lambda _m: None, n_models=4, budgets=(2,), methods=METHODS,
                        task=Digits(width=8, epochs=2, forget_size=20), datamodel_models=24,
                        store=ModelStore(tmp / "cache"))
    return tmp / "reports" / "dm-pareto", summary


def test_outputs_points_front_and_summary(report):
    folder, summary = report
    for file in ("points.csv", "figure.png", "summary.txt"):
        assert (folder / file).is_file(), file
    assert (folder / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    points = pd.read_csv(folder / "points.csv")
    assert sorted(zip(points["method"], points["steps"].fillna(-1))) == sorted(
        [("noop", -1), ("finetune", 2), ("dm-direct", -1), ("dm-direct-trak", -1), ("retrain", -1)])
    assert np.isfinite(points["klom_p99_avg"]).all() and np.isfinite(points["cost_relative_to_retrain"]).all()
    assert {"klom_p99_forget", "klom_p99_retain", "klom_p99_val", "floor_p99_avg", "precompute_seconds",
            "lds"} <= set(points.columns)
    assert points.loc[points["method"] == "dm-direct", "precompute_seconds"].iloc[0] > 0

    front = points["pareto"].astype(bool)
    assert 0 < front.sum() <= len(points)
    for method in points.loc[front, "method"]:
        assert method in summary.split("Pareto-optimal methods:")[1].splitlines()[0]
    assert "LDS" in summary and "one-off" in summary
    claim = summary.split("Figure 2's claim with 95% intervals")[1].split("\n\n")[0]
    assert "ANSWER: reaches the noise floor's interval:" in claim and "null check, retrain - floor" in claim
    assert "dm-direct-trak (cost" in claim and "dm-direct (cost" in claim
    assert "finetune (2 steps) (KLoM" in claim or "vs finetune: no budget as cheap" in claim
    assert "ESTIMATED, not measured" in summary and "GPU-hours" in summary
    assert {"grad_evals_relative_to_retrain", "unlearn_gradient_evals", "label"} <= set(points.columns)
    assert np.isfinite(points.loc[points["method"] == "dm-direct-trak", "lds"].iloc[0])
    assert (folder / "summary.txt").read_text().strip() == summary.split("\n\nwrote ")[0].strip()


def test_pareto_mask_keeps_only_undominated_points():
    cost = np.array([0.01, 0.1, 0.1, 1.0, np.nan])
    klom = np.array([5.0, 1.0, 2.0, 0.5, 0.1])
    assert pareto_mask(cost, klom).tolist() == [True, True, False, True, False]


def test_registered_and_unknown_name_suggests(capsys):
    assert get_experiment("dm-pareto") is reproduce
    assert main(["reproduce", "dm-paretto"]) == 2
    assert "Did you mean 'dm-pareto'" in capsys.readouterr().err
