"""Linear datamodels (Ilyas et al. 2022; paper 003): predict every model output from the training subset.

Many models are trained on random ``alpha``-fractions of the training set (each cached like any
ensemble member, keyed by the ids it excludes; the masks are stored beside them). Their outputs on every
training and validation point are regressed on the subset masks, one ridge regression per output (solved
jointly by scikit-learn). Quality is the linear datamodeling score (LDS): the Spearman correlation, over
held-out subset models, between predicted and true margins, averaged over target points.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy import stats
from torch import nn
from tqdm.auto import tqdm

from bench.executor import Executor
from bench.seeding import derive_seed
from bench.task import Task
from oracles.ensemble import model_spec, train_chunk
from oracles.store import ModelStore


MAX_WEIGHT_BYTES = 8e9


@dataclass
class Datamodels:
    """Outputs [targets, out_dim] predicted as bias + mask @ weights; targets are train then validation points."""

    weights: torch.Tensor  # [n_train, n_targets * out_dim]
    bias: torch.Tensor     # [n_targets * out_dim]
    n_train: int
    n_val: int
    out_dim: int
    lds: dict
    train_seconds: float  # total wall-clock of training the subset models (measured, or read from the cache)
    cached: bool = False

    def predict(self, mask: np.ndarray) -> torch.Tensor:
        flat = self.bias + torch.as_tensor(mask, dtype=self.weights.dtype) @ self.weights
        return flat.view(self.n_train + self.n_val, self.out_dim)

    def removal_effect(self, forget_idx: np.ndarray) -> torch.Tensor:
        """Predicted change of every target's outputs when the forget points leave the training set."""
        return -self.weights[torch.as_tensor(forget_idx, dtype=torch.long)].sum(0).view(-1, self.out_dim)


def subset_masks(n_train: int, n_models: int, alpha: float, seed: int) -> np.ndarray:
    """[n_models, n_train] booleans, each row with exactly round(alpha * n_train) chosen points."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    rng = np.random.default_rng(derive_seed(seed, "data"))
    size = int(round(alpha * n_train))
    masks = np.zeros((n_models, n_train), dtype=bool)
    for row in masks:
        row[rng.choice(n_train, size, replace=False)] = True
    return masks


@torch.no_grad()
def _outputs(task: Task, model: nn.Module, inputs: torch.Tensor) -> np.ndarray:
    out = task.outputs(model, inputs).float().cpu().numpy()
    return out.reshape(len(inputs), -1)


def train_subset_models(task: Task, masks: np.ndarray, seeds: list[int], *, device: torch.device,
                        store: ModelStore | None, executor: Executor, chunk_size: int = 32, progress: bool = True,
                        log: Callable[[str], None] = lambda _m: None) -> tuple[list[nn.Module], float]:
    """One model per mask (cached by excluded ids and seed), trained in batched chunks; returns the training
    seconds of all of them (measured now, or as recorded when a cached model was trained)."""
    excluded = [np.flatnonzero(~row) for row in masks]
    specs = [model_spec(task, ex, seed) for ex, seed in zip(excluded, seeds)]
    states: dict[int, dict] = {}
    seconds: dict[int, float] = {}
    if store is not None:
        for i, spec in enumerate(specs):
            entry = store.load(spec)
            if entry is not None:
                states[i], seconds[i] = entry.state_dict, float(entry.meta.get("train_seconds", 0.0))
    missing = [i for i in range(len(masks)) if i not in states]
    log(f"datamodel subset models: {len(states)} cached, training {len(missing)}")
    chunks = [missing[i:i + chunk_size] for i in range(0, len(missing), chunk_size)]
    jobs = [(task, [excluded[i] for i in part], [seeds[i] for i in part], str(device),
             1 if executor.parallel else None) for part in chunks]
    with tqdm(total=len(missing), desc="subset models", unit="model", disable=not progress, leave=False) as bar:
        for part, results in zip(chunks, executor.map(train_chunk, jobs)):
            for i, (state, secs) in zip(part, results):
                states[i], seconds[i] = state, secs
                if store is not None:
                    store.save(specs[i], state, {"train_seconds": secs})
            bar.update(len(part))
    models = []
    for i, seed in enumerate(seeds):
        model = task.make_model(seed)
        model.load_state_dict(states[i])
        models.append(model.to(device).eval())
    return models, float(sum(seconds.values()))


def linear_datamodeling_score(task: Task, predicted: np.ndarray, actual: np.ndarray, labels: torch.Tensor) -> dict:
    """Mean over targets of the Spearman correlation (across held-out models) of predicted vs true margins,
    with a 95% t-interval over targets."""
    def margins(outputs: np.ndarray) -> np.ndarray:
        flat = torch.as_tensor(outputs).reshape(-1, outputs.shape[-1])
        return task.margin_from_outputs(flat, labels.repeat(outputs.shape[0])).view(outputs.shape[:2]).numpy()

    m_pred, m_true = margins(predicted), margins(actual)
    rhos = np.array([stats.spearmanr(m_pred[:, j], m_true[:, j]).statistic for j in range(m_true.shape[1])])
    rhos = rhos[np.isfinite(rhos)]
    half = stats.t.ppf(0.975, len(rhos) - 1) * rhos.std(ddof=1) / np.sqrt(len(rhos)) if len(rhos) > 1 else np.nan
    return {"mean": float(rhos.mean()), "ci_low": float(rhos.mean() - half), "ci_high": float(rhos.mean() + half),
            "targets": int(len(rhos)), "held_out_models": int(predicted.shape[0])}


def build_datamodels(task: Task, *, n_models: int, alpha: float, seed: int, device: torch.device,
                     store: ModelStore | None, executor: Executor, ridge: float = 1.0, holdout: float = 0.1,
                     progress: bool = True, log: Callable[[str], None] = lambda _m: None) -> Datamodels:
    """Train (or load) the subset models, fit the datamodels and score them on held-out subset models."""
    from sklearn.linear_model import Ridge

    from bench.errors import BenchError

    train, val = task.load()
    outputs_per_target = int(np.prod(task.outputs(task.make_model(0), train.x[:1]).shape[1:]))
    weight_bytes = 4 * len(train) * (len(train) + len(val)) * outputs_per_target
    if weight_bytes > MAX_WEIGHT_BYTES:
        raise BenchError(f"datamodels for every train and validation output of '{task.name}' would need "
                         f"{weight_bytes / 1e9:.0f} GB of weights (limit {MAX_WEIGHT_BYTES / 1e9:.0f} GB); "
                         "restricting datamodels to a sample of target points is not implemented yet")
    spec = {"kind": "datamodels", "task": task.name, "version": task.version, "params": task.get_params(),
            "recipe": task.training_recipe(), "n_models": n_models, "alpha": alpha, "seed": seed, "ridge": ridge,
            "holdout": holdout}
    entry = (store.load(spec, meta={"out_dim": int, "lds": dict, "train_seconds": (int, float)})
             if store is not None else None)
    if entry is not None:
        meta = entry.meta
        return Datamodels(entry.state_dict["weights"], entry.state_dict["bias"], len(train), len(val),
                          meta["out_dim"], meta["lds"], meta["train_seconds"], cached=True)
    masks = subset_masks(len(train), n_models, alpha, seed)
    seeds = [derive_seed(seed, "original", 10_000 + i) for i in range(n_models)]
    models, seconds = train_subset_models(task, masks, seeds, device=device, store=store, executor=executor,
                                          progress=progress, log=log)
    inputs = torch.cat([train.x, val.x]).to(device)
    outputs = np.stack([_outputs(task, m, inputs) for m in models])  # [models, targets, out_dim]
    out_dim = outputs.shape[-1]
    n_fit = n_models - max(2, int(round(holdout * n_models)))
    regression = Ridge(alpha=ridge).fit(masks[:n_fit].astype(np.float32), outputs[:n_fit].reshape(n_fit, -1))
    weights = torch.as_tensor(regression.coef_.T.astype(np.float32))
    bias = torch.as_tensor(regression.intercept_.astype(np.float32))
    predicted = (bias.numpy() + masks[n_fit:].astype(np.float32) @ weights.numpy()).reshape(-1, *outputs.shape[1:])
    labels = torch.cat([train.y, val.y])
    lds = linear_datamodeling_score(task, predicted, outputs[n_fit:], labels)
    if store is not None:
        store.save(spec, {"weights": weights, "bias": bias, "masks": torch.as_tensor(masks)},
                   {"out_dim": out_dim, "lds": lds, "train_seconds": seconds})
    return Datamodels(weights, bias, len(train), len(val), out_dim, lds, seconds)
