"""``python -m bench reproduce dave-layers`` / ``dave-epochs``: paper 000's tables on a shrunken dave-tiny."""
import numpy as np
import pandas as pd
import pytest
import torch

from bench.cli import main
from bench.experiments import get_experiment
from bench.experiments.dave import reproduce_epochs, reproduce_layers
from tasks.dave import DaveTiny

TARGETS = [0, 4, 14]
TEST_COLUMNS = {"n", "t_statistic", "p_value", "mean_difference", "ci_low", "ci_high", "cohens_d"}
SMALL = dict(targets=TARGETS, steps=10, curve_steps=4, curve_every=2, influence_iterations=1)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """Both experiments once, on a 2-block width-32 model trained 20 epochs, 3 target sentences."""
    out = tmp_path_factory.mktemp("reports")
    quiet = lambda _m: None  # noqa: E731
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is many times faster than two contending ones
    try:
        layers = reproduce_layers(out, quiet, task=DaveTiny(n_layer=2, n_embd=32, epochs=20), **SMALL)
        epochs = reproduce_epochs(out, quiet, task=DaveTiny(n_layer=2, n_embd=32, epochs=20), **SMALL)
    finally:
        torch.set_num_threads(threads)
    return out, {"dave-layers": layers, "dave-epochs": epochs}


def _phase_mean(points: pd.DataFrame, phase: str, column: str) -> float:
    return float(points.loc[points["phase"] == phase, column].mean())


@pytest.mark.parametrize("name, variants", [
    ("dave-layers", ["embedding", "all", "last:2", "embedding+last:2"]),
    ("dave-epochs", ["first-epoch", "all-epochs", "all-epochs/embedding", "first-epoch norm-matched"]),
])
def test_outputs_tables_and_paper_comparison(reports, name, variants):
    out, summaries = reports
    folder = out / name
    for file in ("data_points.csv", "comparisons.csv", "tables.txt", "figure.png", "summary.txt"):
        assert (folder / file).is_file(), file
    assert (folder / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    points = pd.read_csv(folder / "data_points.csv")
    phases = ["before fine-tuning", "fine-tuned", *(f"unlearned: {v}" for v in variants)]
    assert len(points) == len(TARGETS) * len(phases)
    assert set(points["phase"]) == set(phases) and sorted(points["target"].unique()) == TARGETS
    assert {"influence", "perplexity_forget", "perplexity_retain", "perplexity_general", "rouge1", "rouge2",
            "rougeL", "generation"} <= set(points.columns)
    assert np.isfinite(points["influence"]).all()

    comps = pd.read_csv(folder / "comparisons.csv")
    assert TEST_COLUMNS <= set(comps.columns)
    assert "before fine-tuning vs fine-tuned" in set(comps["comparison"])
    tables = (folder / "tables.txt").read_text()
    for table in ("Table 1 analog", "Table 3 analog", "Table 4 analog", "Table 5 analog"):
        assert table in tables

    summary = (folder / "summary.txt").read_text()
    assert summary.strip() == summaries[name].split("\n\nwrote ")[0].strip()
    assert "paper: -541.45 before -> -1904.87 fine-tuned" in summary and "0.6056 -> 0.1664" in summary
    assert ("agrees" in summary) or ("DISAGREES" in summary)


def test_layer_comparisons_and_unlearning_raises_forget_perplexity(reports):
    out, summaries = reports
    points = pd.read_csv(out / "dave-layers" / "data_points.csv")
    tuned = _phase_mean(points, "fine-tuned", "perplexity_forget")
    # would fail if stored-gradient ascent left the model unchanged
    assert _phase_mean(points, "unlearned: all", "perplexity_forget") > 1.2 * tuned
    # ...while the other Dave sentences stay far better predicted than before fine-tuning
    assert _phase_mean(points, "unlearned: all", "perplexity_retain") < 0.2 * _phase_mean(
        points, "before fine-tuning", "perplexity_retain")
    comps = pd.read_csv(out / "dave-layers" / "comparisons.csv")
    assert {"embedding vs all", "embedding vs last:2", "before fine-tuning vs last:2"} <= set(comps["comparison"])
    assert "467.8 vs 424.0" in summaries["dave-layers"]
    curve = pd.read_csv(out / "dave-layers" / "curve.csv")
    assert sorted(curve["iteration"].unique()) == [0, 2, 4]


def test_epoch_comparisons_include_the_papers_pairs(reports):
    out, summaries = reports
    comps = pd.read_csv(out / "dave-epochs" / "comparisons.csv")
    assert {"first-epoch vs all-epochs", "first-epoch vs embedding"} <= set(comps["comparison"])
    row = comps[(comps["comparison"] == "first-epoch vs all-epochs") & (comps["metric"] == "influence")].iloc[0]
    assert row["n"] == len(TARGETS) and row["ci_low"] <= row["mean_difference"] <= row["ci_high"]
    assert "+27.12 vs all layers" in summaries["dave-epochs"]


def test_registry_resolves_both_names_and_keeps_linear_convergence():
    from bench.experiments import linear_convergence
    assert get_experiment("dave-layers") is reproduce_layers
    assert get_experiment("dave-epochs") is reproduce_epochs
    assert get_experiment("linear-convergence") is linear_convergence.reproduce


def test_misspelt_experiment_suggests_dave_layers(capsys):
    assert main(["reproduce", "dave-layerz"]) == 2
    assert "Did you mean 'dave-layers'" in capsys.readouterr().err
