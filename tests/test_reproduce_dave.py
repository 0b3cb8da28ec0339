"""``python -m bench reproduce dave-layers`` / ``dave-epochs``: paper 000's tables on a shrunken dave-tiny."""
import numpy as np
import pandas as pd
import pytest
import torch

from bench.cli import main
from bench.catalog import get_reproduction as get_experiment
from tasks.language.reproduce.dave import reproduce_epochs, reproduce_layers
from tasks.language.dave import DaveTiny

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


@pytest.mark.parametrize("name", ["dave-layers", "dave-epochs"])
def test_summary_opens_with_a_verdict_per_paper_claim(reports, name):
    summary = reports[1][name]
    block = summary.split("Claims (", 1)[1].split("\n\nSetup:", 1)[0]
    claims = [line for line in block.splitlines() if line.startswith("- ")]
    assert len(claims) >= 7 and all(line.endswith(("[agrees]", "[DISAGREES]")) for line in claims)
    agreed = int(block.split(" of ", 1)[0])
    assert agreed == sum(line.endswith("[agrees]") for line in claims)
    for topic in ("self-influence more negative", "back towards", "ROUGE-1 declines"):
        assert topic in block
    assert ("'embedding' unlearns about as much as 'all'" in block) == (name == "dave-layers")
    assert ("first-epoch stored gradients unlearn MORE" in block) == (name == "dave-epochs")
    assert block.count("t ") >= len(claims)  # every verdict carries its paired statistics


def test_points_carry_both_influence_estimators(reports):
    out, _ = reports
    points = pd.read_csv(out / "dave-layers" / "data_points.csv")
    assert np.isfinite(points["influence_paper"]).all()
    assert not np.allclose(points["influence"], points["influence_paper"])


def test_default_task_is_the_pretrained_small_model_and_scratch_is_an_option():
    from tasks.language.reproduce.dave import _settings, reproduce_epochs_scratch, reproduce_layers_scratch
    s = _settings(None, None, 200, 200, 10, None, 5, 0, "cpu")
    assert s.task.name == "dave-small" and s.steps == 200 and s.targets == list(range(20))
    assert get_experiment("dave-layers-scratch") is reproduce_layers_scratch
    assert get_experiment("dave-epochs-scratch") is reproduce_epochs_scratch
    with pytest.raises(ValueError, match="dataset=dave"):
        _settings(DaveTiny(dataset="names"), None, 10, 10, 2, None, 1, 0, "cpu")


def test_registry_resolves_both_names_and_keeps_linear_convergence():
    from tasks.reproductions import linear_convergence
    assert get_experiment("dave-layers") is reproduce_layers
    assert get_experiment("dave-epochs") is reproduce_epochs
    assert get_experiment("linear-convergence") is linear_convergence.reproduce


def test_misspelt_experiment_suggests_dave_layers(capsys):
    assert main(["reproduce", "dave-layerz"]) == 2
    assert "Did you mean 'dave-layers'" in capsys.readouterr().err
