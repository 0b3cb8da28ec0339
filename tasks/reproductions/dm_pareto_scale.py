"""Expected runtime of ``reproduce dm-pareto --task cifar10 --device cuda`` (paper 003's Figure 2 at scale).

Why an estimate: this project has had no GPU, so the CIFAR-10 recipe's GPU throughput is not measured
(``bench perf`` reports it on a GPU machine). The arithmetic is kept here, in one place, so the README and
the summary state the same numbers and the assumption behind them:

* the work is counted in full retrainings of one ResNet-9 (16 epochs of 50,000 images): N originals, N
  oracles, N noise-floor models, N models of the retrain point, N oracle-matching targets, the datamodels'
  subset models at alpha of the data, TRAK's held-out LDS models (its checkpoints are the originals) and
  TRAK's featurization (one gradient per train point and target per checkpoint);
* unlearning adds the per-example gradient evaluations measured on digits for the same step budgets and
  batch sizes (they do not depend on the data set), divided by one CIFAR-10 retraining's 800,000;
* one retraining is assumed to take between ``FAST_SECONDS`` and ``TARGET_SECONDS`` on one A100-class GPU,
  one model at a time. FAST: airbench94 (Jordan 2024) reaches 94% in 3.83 s for about 10 epochs on an A100
  without torch.compile, 0.38 s per epoch, x 16 epochs = 6.1 s; its network is smaller than this ResNet-9, so
  that is a lower bound. TARGET: the recipe's own goal, 15 s per model (``bench.perf_vision``).
"""
from __future__ import annotations

import math

import pandas as pd

FAST_SECONDS = 16 * 3.83 / 10  # airbench94 per-epoch time on an A100 x the recipe's 16 epochs
TARGET_SECONDS = 15.0  # bench.perf_vision.TARGET_SECONDS_PER_MODEL
CIFAR_TRAIN = 50_000
CIFAR_EPOCHS = 16
TRAK_CHECKPOINTS = 5  # dm-matching / dm-direct default trak_checkpoints
TRAK_LDS_MODELS = 20  # dm-matching / dm-direct default trak_lds_models
ALPHA = 0.5  # the datamodel methods' default subset fraction


def retrain_equivalents(points: pd.DataFrame, n_models: int, datamodel_models: int) -> dict[str, float]:
    """Work of the experiment in CIFAR-10 retrainings of one model, by part (``points`` from a digits run,
    with columns method, status and unlearn_gradient_evals: per-example gradient evaluations per model)."""
    methods = set(points["method"])
    one = CIFAR_EPOCHS * CIFAR_TRAIN
    ok = points[points["status"] == "ok"]
    evals = ok["unlearn_gradient_evals"].astype(float)
    parts = {
        "originals, oracles, noise floor": 3.0 * n_models,
        "retrain point": float(n_models) if "retrain" in methods else 0.0,
        "oracle-matching targets": float(n_models) if "oracle-matching" in methods else 0.0,
        "datamodel subset models": ALPHA * datamodel_models if methods & {"dm-matching", "dm-direct"} else 0.0,
        "TRAK LDS models": ALPHA * TRAK_LDS_MODELS if any(m.endswith("-trak") for m in methods) else 0.0,
        # one gradient per train point and per target (at most about 4,000 sampled) per checkpoint
        "TRAK featurization": (TRAK_CHECKPOINTS * (CIFAR_TRAIN + 4_000) / one
                               if any(m.endswith("-trak") for m in methods) else 0.0),
        "unlearning (every point, every model)": float(n_models * evals[evals.notna()].sum() / one),
    }
    return parts


def estimate_lines(points: pd.DataFrame, n_models: int, datamodel_models: int) -> list[str]:
    """The summary header's paragraph: total retrainings and the GPU time range they imply."""
    parts = retrain_equivalents(points, n_models, datamodel_models)
    total = sum(parts.values())
    low, high = total * FAST_SECONDS / 3600, total * TARGET_SECONDS / 3600
    detail = ", ".join(f"{name} {value:.3g}" for name, value in parts.items() if value > 0)
    return [f"Paper-scale run (`python -m bench reproduce dm-pareto --task cifar10 --device cuda`, N = {n_models}, "
            f"{datamodel_models} datamodel subset models): ESTIMATED, not measured (no GPU here), about "
            f"{total:.0f} ResNet-9 retrainings ({detail}), i.e. {low:.1f} to {high:.1f} GPU-hours on one A100-class "
            f"GPU at {FAST_SECONDS:.1f} s (airbench94's per-epoch speed, a lower bound) to {TARGET_SECONDS:.0f} s (the "
            "recipe's target) per 16-epoch retraining, one model at a time; unlearning counts the gradient "
            "evaluations measured here for the same budgets. Datamodels of paper quality need far more subset "
            "models: each 1,000 adds about "
            f"{1000 * ALPHA * FAST_SECONDS / 3600:.1f} to {1000 * ALPHA * TARGET_SECONDS / 3600:.1f} GPU-hours."]


def hours(points: pd.DataFrame, n_models: int, datamodel_models: int, seconds: float) -> float:
    """GPU-hours at ``seconds`` per retraining (for tests and the README)."""
    total = sum(retrain_equivalents(points, n_models, datamodel_models).values())
    return total * seconds / 3600 if math.isfinite(seconds) else math.nan
