"""The dm-pareto claim's decision logic on synthetic points (no training), the paper-scale runtime arithmetic,
and the reproduce command's flags."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from tasks.reproductions.dm_pareto_claims import COST, judge, verdict_lines
from tasks.reproductions.dm_pareto_scale import FAST_SECONDS, TARGET_SECONDS, hours, retrain_equivalents
from bench.klom_intervals import FLOOR, KlomReplicates

N_BOOT = 400


def replicates(levels: dict[str, float], spread: float = 0.05, shared: float = 0.3, seed: int = 0) -> KlomReplicates:
    """Replicates = level + a noise common to every entry (the shared draws: large) + own noise (small)."""
    rng = np.random.default_rng(seed)
    common = rng.normal(0, shared, N_BOOT)
    reps = {name: level + common + rng.normal(0, spread, N_BOOT) for name, level in levels.items()}
    return KlomReplicates(dict(levels), reps, 0.95, True)


def points(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"label": lab, "method": m, COST: c, "status": "ok"} for lab, m, c in rows])


BASE = [("finetune (25 steps)", "finetune", 0.2), ("finetune (100 steps)", "finetune", 0.8),
        ("gdga (25 steps)", "gdga", 0.2), ("scrub (25 steps)", "scrub", 0.2),
        ("neggrad-plus (25 steps)", "neggrad-plus", 0.2)]


def test_clear_win_reaches_floor_and_beats_every_baseline():
    reps = replicates({FLOOR: 3.0, "dm-matching (25 steps)": 3.05, "finetune (25 steps)": 4.0,
                       "finetune (100 steps)": 3.5, "gdga (25 steps)": 4.2, "scrub (25 steps)": 5.0,
                       "neggrad-plus (25 steps)": 4.5})
    pts = points(BASE + [("dm-matching (25 steps)", "dm-matching", 0.25)])
    (v,) = judge(pts, reps, ("dm-matching",))
    assert v.floor_outcome == "within the floor's interval" and v.reaches_floor
    outcomes = {c.baseline: (c.outcome, c.other) for c in v.comparisons}
    # finetune (100 steps) costs 0.8 > 0.25 * 1.05, so the cheaper finetune (25 steps) is the one compared
    assert outcomes == {"finetune": ("beats", "finetune (25 steps)"), "gdga": ("beats", "gdga (25 steps)"),
                        "scrub": ("beats", "scrub (25 steps)"), "neggrad-plus": ("beats", "neggrad-plus (25 steps)")}
    assert v.beats_all
    text = "\n".join(verdict_lines(pts, reps, [v], n_models=32, how="synthetic"))
    assert "ANSWER: reaches the noise floor's interval: yes, dm-matching (25 steps)" in text
    assert "at equal cost: yes, dm-matching (25 steps)" in text


def test_clear_loss_is_above_the_floor_and_loses():
    reps = replicates({FLOOR: 3.0, "dm-matching-trak (25 steps)": 4.6, "finetune (25 steps)": 3.6,
                       "gdga (25 steps)": 3.7, "scrub (25 steps)": 3.8, "neggrad-plus (25 steps)": 3.9,
                       "finetune (100 steps)": 3.3})
    pts = points(BASE + [("dm-matching-trak (25 steps)", "dm-matching-trak", 1.0)])
    (v,) = judge(pts, reps, ("dm-matching-trak",))
    assert v.floor_outcome == "above the floor" and not v.reaches_floor
    outcomes = {c.baseline: (c.outcome, c.other) for c in v.comparisons}
    assert outcomes["finetune"] == ("loses to", "finetune (100 steps)")  # now cheap enough, and the better one
    assert {o for o, _ in outcomes.values()} == {"loses to"} and not v.beats_all
    text = "\n".join(verdict_lines(pts, reps, [v], n_models=32, how="synthetic"))
    assert "ANSWER: reaches the noise floor's interval: no; beats all of" in text and "equal cost: no." in text


def test_tie_when_the_paired_interval_straddles_zero():
    reps = replicates({FLOOR: 3.0, "dm-direct": 3.5, "finetune (25 steps)": 3.5, "gdga (25 steps)": 3.52,
                       "scrub (25 steps)": 3.48, "neggrad-plus (25 steps)": 3.5, "finetune (100 steps)": 3.5},
                      spread=0.1)
    pts = points(BASE + [("dm-direct", "dm-direct", 0.3)])
    (v,) = judge(pts, reps, ("dm-direct",))
    assert {c.outcome for c in v.comparisons} == {"ties"} and not v.beats_all
    assert v.floor_outcome == "above the floor"  # 0.5 above with own noise 0.1 * sqrt(2): separated


def test_cheaper_than_every_budget_is_compared_with_the_cheapest():
    levels = {FLOOR: 3.0, "dm-direct": 3.0, "finetune (25 steps)": 4.0, "gdga (25 steps)": 4.0,
              "scrub (25 steps)": 4.0, "neggrad-plus (25 steps)": 4.0, "finetune (100 steps)": 2.0}
    pts = points(BASE + [("dm-direct", "dm-direct", 0.0)])
    (v,) = judge(pts, replicates(levels), ("dm-direct",))
    assert all(c.cheaper for c in v.comparisons)
    # finetune (100 steps) is better but costlier; the cheapest finetune budget (25 steps) is the comparison
    assert [(c.other, c.outcome) for c in v.comparisons][0] == ("finetune (25 steps)", "beats")
    assert v.beats_all  # beaten every baseline while spending less
    text = "\n".join(verdict_lines(pts, replicates(levels), [v], n_models=8, how="synthetic"))
    assert "no budget of it is as cheap, this is its cheapest" in text


def test_a_baseline_that_was_not_run_is_not_beaten():
    reps = replicates({FLOOR: 3.0, "dm-direct": 3.0})
    (v,) = judge(points([("dm-direct", "dm-direct", 0.0)]), reps, ("dm-direct",))
    assert {c.outcome for c in v.comparisons} == {"not run"} and not v.beats_all


def test_paired_noise_is_what_makes_the_win_visible():
    """With the large common noise the separate intervals overlap; the verdict must still be a win, which
    only a paired difference gives."""
    reps = replicates({FLOOR: 3.0, "dm-matching (25 steps)": 3.2, "finetune (25 steps)": 3.6,
                       "gdga (25 steps)": 3.6, "scrub (25 steps)": 3.6, "neggrad-plus (25 steps)": 3.6,
                       "finetune (100 steps)": 3.6}, spread=0.05, shared=0.5)
    assert reps.interval("dm-matching (25 steps)").high > reps.interval("finetune (25 steps)").low
    pts = points(BASE + [("dm-matching (25 steps)", "dm-matching", 0.25)])
    (v,) = judge(pts, reps, ("dm-matching",))
    assert v.beats_all


# -- runtime arithmetic ---------------------------------------------------------------------------------------
def test_paper_scale_arithmetic_by_hand():
    pts = pd.DataFrame([
        {"method": "finetune", "status": "ok", "unlearn_gradient_evals": 40_000.0},
        {"method": "dm-matching", "status": "ok", "unlearn_gradient_evals": 40_000.0},
        {"method": "dm-matching-trak", "status": "ok", "unlearn_gradient_evals": 80_000.0},
        {"method": "retrain", "status": "ok", "unlearn_gradient_evals": float("nan")},
        {"method": "ga", "status": "diverged", "unlearn_gradient_evals": float("nan")},
    ])
    parts = retrain_equivalents(pts, n_models=10, datamodel_models=300)
    # 3 x 10 ensembles; 10 retrain models; 0.5 x 300 subset models; 0.5 x 20 TRAK LDS models;
    # TRAK featurization 5 x 54,000 / 800,000 = 0.3375; unlearning 10 x 160,000 / 800,000 = 2.
    assert parts == {"originals, oracles, noise floor": 30, "retrain point": 10, "oracle-matching targets": 0,
                     "datamodel subset models": 150, "TRAK LDS models": 10,
                     "TRAK featurization": pytest.approx(0.3375), "unlearning (every point, every model)": 2.0}
    total = 30 + 10 + 150 + 10 + 0.3375 + 2
    assert hours(pts, 10, 300, 3600.0) == pytest.approx(total)
    assert FAST_SECONDS == pytest.approx(6.128) and TARGET_SECONDS == 15.0


# -- the reproduce command's flags ----------------------------------------------------------------------------
def test_reproduce_flags_reach_the_experiment(monkeypatch, tmp_path, capsys):
    seen = {}

    def fake(out, log=print, *, n_models=32, task=None, device="auto", datamodel_models=300):
        seen.update(out=out, n_models=n_models, task=task, device=device, datamodel_models=datamodel_models)
        return "fake summary"

    monkeypatch.setattr("bench.catalog.get_reproduction", lambda name: fake)
    code = main(["reproduce", "dm-pareto", "--out", str(tmp_path), "--task", "digits", "--task-arg", "width=8",
                 "--device", "cpu", "--n-models", "4", "--datamodel-models", "24"])
    assert code == 0 and "fake summary" in capsys.readouterr().out
    assert seen["task"].name == "digits" and seen["task"].width == 8
    assert (seen["n_models"], seen["device"], seen["datamodel_models"]) == (4, "cpu", 24)


def test_reproduce_refuses_flags_an_experiment_does_not_take(capsys):
    assert main(["reproduce", "linear-convergence", "--task", "digits"]) == 2
    assert "does not take --task" in capsys.readouterr().err
    assert main(["reproduce", "dm-pareto", "--task-arg", "width=8"]) == 2
    assert "--task-arg needs --task" in capsys.readouterr().err
