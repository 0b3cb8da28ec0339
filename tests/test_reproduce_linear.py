"""``python -m bench reproduce linear-convergence`` writes its CSV, figure and summary."""
import pandas as pd

from bench.cli import main
from tasks.reproductions.linear_convergence import first_within, reproduce


def test_reproduce_writes_outputs_and_names_oracle_matching_first(tmp_path):
    summary = reproduce(tmp_path, log=lambda _m: None, steps=80, seeds=(0, 1))
    folder = tmp_path / "linear-convergence"
    curves = pd.read_csv(folder / "curves.csv")
    assert set(curves["method"]) == {"GD on retain", "GD + GA", "Oracle Matching", "OM (retain set only)"}
    assert curves["step"].max() == 80 and curves["seed"].nunique() == 2
    assert (folder / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    reached = first_within(curves, "weight_distance")
    assert reached["Oracle Matching"] is not None and reached["Oracle Matching"] < 80
    assert reached["GD on retain"] is None and reached["OM (retain set only)"] is None
    assert f"Oracle Matching after {reached['Oracle Matching']} steps" in summary
    assert (folder / "summary.txt").read_text().startswith("Linear convergence")


def test_unknown_experiment_suggests(capsys):
    assert main(["reproduce", "linear-convergense"]) == 2
    assert "Did you mean 'linear-convergence'" in capsys.readouterr().err
