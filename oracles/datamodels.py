"""Linear datamodels (Ilyas et al. 2022; paper 003): predict every model output from the training subset.

Many models are trained on random ``alpha``-fractions of the training set (each cached like any
ensemble member, keyed by the ids it excludes; the masks are stored beside them). Their outputs on every
training and validation point are regressed on the subset masks, one ridge regression per output (solved
jointly by scikit-learn). Quality is the linear datamodeling score (LDS): the Spearman correlation, over
held-out subset models, between predicted and true margins, averaged over target points.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from scipy import stats
from torch import nn
from tqdm.auto import tqdm

from bench.digests import array_bytes
from bench.executor import Executor
from bench.seeding import derive_seed
from bench.task import Task
from oracles.compute import training_gradient_evaluations
from oracles.ensemble import model_spec, train_chunk
from oracles.cache import ModelStore


HALF_ABOVE_BYTES = 1e9  # float32 weights larger than this are stored as float16 (half the memory)


@dataclass
class Datamodels:
    """Outputs [targets, out_dim] predicted as bias + mask @ weights.

    ``target_ids`` index the concatenation train + validation (a validation point v is ``n_train + v``);
    target-sampled datamodels hold only the forget set, a seeded retain sample and some validation points.
    ``output`` says what a target's row predicts: the task's outputs (subset datamodels) or only its margin
    (attribution scores such as TRAK), in which case ``out_dim`` is 1.
    """

    weights: torch.Tensor  # [n_train, n_targets * out_dim], float32 or float16
    bias: torch.Tensor     # [n_targets * out_dim]
    n_train: int
    n_val: int
    out_dim: int
    lds: dict
    train_seconds: float  # total wall-clock of the precomputation (measured, or read from the cache)
    cached: bool = False
    target_ids: np.ndarray | None = None  # None: every train and validation point, in order
    output: str = "outputs"
    kind: str = "datamodels"
    cost: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.target_ids is None:
            self.target_ids = np.arange(self.n_train + self.n_val)
        self.target_ids = np.asarray(self.target_ids, dtype=np.int64)
        self._row = {int(t): i for i, t in enumerate(self.target_ids)}

    def predict(self, mask: np.ndarray) -> torch.Tensor:
        flat = self.bias.float() + torch.as_tensor(mask, dtype=torch.float32) @ self.weights.float()
        return flat.view(len(self.target_ids), self.out_dim)

    def removal_effect(self, forget_idx: np.ndarray) -> torch.Tensor:
        """Predicted change of every target's outputs [targets, out_dim] when the forget points leave."""
        rows = self.weights[torch.as_tensor(forget_idx, dtype=torch.long)].float()
        return -rows.sum(0).view(-1, self.out_dim)

    def rows(self, target_ids: np.ndarray) -> torch.Tensor:
        """Row positions of the given targets (train ids, or n_train + validation ids); error if not fitted."""
        missing = [int(t) for t in target_ids if int(t) not in self._row]
        if missing:
            raise KeyError(f"{len(missing)} points have no datamodel (first: {missing[:5]}); they were not in the "
                           "sampled targets")
        return torch.as_tensor([self._row[int(t)] for t in target_ids], dtype=torch.long)

    def describe(self) -> dict:
        """What a result record says about the datamodels: kind, targets, storage, quality and cost."""
        return {"kind": self.kind, "output": self.output, "targets": int(len(self.target_ids)),
                "storage": str(self.weights.dtype).replace("torch.", ""), "lds": self.lds, "cost": self.cost}


def sample_targets(n_train: int, n_val: int, forget_idx: np.ndarray, retain_count: int, val_count: int,
                   seed: int) -> np.ndarray:
    """Sorted target ids: the forget set, a seeded retain sample and a seeded validation sample."""
    rng = np.random.default_rng(derive_seed(seed, "targets"))
    forget_idx = np.asarray(forget_idx, dtype=np.int64)
    retain = np.setdiff1d(np.arange(n_train), forget_idx)
    retain = rng.choice(retain, size=min(retain_count, len(retain)), replace=False)
    val = n_train + rng.choice(n_val, size=min(val_count, n_val), replace=False)
    return np.sort(np.concatenate([forget_idx, retain, val]).astype(np.int64))


def storage_dtype(n_train: int, n_targets: int, out_dim: int) -> torch.dtype:
    """float32, or float16 when float32 weights would exceed HALF_ABOVE_BYTES."""
    return torch.float16 if 4 * n_train * n_targets * out_dim > HALF_ABOVE_BYTES else torch.float32


def fit_bytes(n_models: int, n_train: int, n_targets: int, out_dim: int) -> dict:
    """Peak memory of fitting: stored weights, subset-model outputs (float32), masks and the Gram matrix."""
    dtype = storage_dtype(n_train, n_targets, out_dim)
    weights = (2 if dtype == torch.float16 else 4) * n_train * n_targets * out_dim
    outputs = 4 * n_models * n_targets * out_dim
    work = 8 * n_models * (n_train + n_models) + 8 * n_train * min(n_targets * out_dim, _CHUNK)
    return {"weights": weights, "outputs": outputs, "work": work, "total": weights + outputs + work,
            "storage": str(dtype).replace("torch.", "")}


def available_memory_bytes() -> float:
    """Free physical memory as the OS reports it (inf where it cannot tell)."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return float("inf")


_CHUNK = 4096  # output columns solved at a time (float64 working copy of n_train x _CHUNK)


def ridge_fit(masks: np.ndarray, outputs: np.ndarray, ridge: float, dtype: torch.dtype
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Ridge regression of every output column on the masks with an unpenalised intercept, in dual form.

    W = Mc^T (Mc Mc^T + ridge I)^-1 Yc with centred masks Mc and outputs Yc equals the primal solution
    (and scikit-learn's Ridge) but needs only an n_models x n_models solve; columns are independent, so a
    target's weights do not depend on which other targets are fitted (what makes target sampling exact).
    """
    m = torch.as_tensor(masks, dtype=torch.float64)
    m_mean = m.mean(0)
    mc = m - m_mean
    factor = torch.linalg.cholesky(mc @ mc.T + ridge * torch.eye(len(mc), dtype=torch.float64))
    y = torch.as_tensor(outputs, dtype=torch.float32)
    weights = torch.empty(m.shape[1], y.shape[1], dtype=dtype)
    bias = torch.empty(y.shape[1], dtype=torch.float32)
    for lo in range(0, y.shape[1], _CHUNK):
        block = y[:, lo:lo + _CHUNK].double()
        mean = block.mean(0)
        w = mc.T @ torch.cholesky_solve(block - mean, factor)
        weights[:, lo:lo + _CHUNK] = w.to(dtype)
        bias[lo:lo + _CHUNK] = (mean - m_mean @ w).float()
    return weights, bias


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


def lds_from_margins(predicted: np.ndarray, actual: np.ndarray) -> dict:
    """Mean over targets of the Spearman correlation (across held-out models) of predicted vs true margins
    [models, targets], with a 95% t-interval over targets."""
    rhos = np.array([stats.spearmanr(predicted[:, j], actual[:, j]).statistic for j in range(actual.shape[1])])
    rhos = rhos[np.isfinite(rhos)]
    half = stats.t.ppf(0.975, len(rhos) - 1) * rhos.std(ddof=1) / np.sqrt(len(rhos)) if len(rhos) > 1 else np.nan
    return {"mean": float(rhos.mean()), "ci_low": float(rhos.mean() - half), "ci_high": float(rhos.mean() + half),
            "targets": int(len(rhos)), "held_out_models": int(predicted.shape[0])}


def linear_datamodeling_score(task: Task, predicted: np.ndarray, actual: np.ndarray, labels: torch.Tensor) -> dict:
    """LDS of predicted outputs [models, targets, out_dim] against the true ones (through the task margin)."""
    def margins(outputs: np.ndarray) -> np.ndarray:
        flat = torch.as_tensor(outputs).reshape(-1, outputs.shape[-1])
        return task.margin_from_outputs(flat, labels.repeat(outputs.shape[0])).view(outputs.shape[:2]).numpy()

    return lds_from_margins(margins(predicted), margins(actual))


def model_inputs(task: Task, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The tensor the task actually feeds the model for inputs ``x`` (after any task-side preprocessing)."""
    seen: list[torch.Tensor] = []
    handle = model.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    try:
        with torch.no_grad():
            task.outputs(model, x)
    finally:
        handle.remove()
    return seen[0]


def build_datamodels(task: Task, *, n_models: int, alpha: float, seed: int, device: torch.device,
                     store: ModelStore | None, executor: Executor, ridge: float = 1.0, holdout: float = 0.1,
                     targets: np.ndarray | None = None, max_bytes: float | None = None, progress: bool = True,
                     log: Callable[[str], None] = lambda _m: None) -> Datamodels:
    """Train (or load) the subset models, fit the datamodels and score them on held-out subset models.

    ``targets`` (ids into train + validation, see ``Datamodels``) restricts the fit to those points; None
    fits every point. The memory the fit needs is estimated and logged before anything trains; it is an
    error only when it exceeds ``max_bytes`` (default: the free physical memory).
    """
    from bench.errors import BenchError

    train, val = task.load()
    n_all = len(train) + len(val)
    target_ids = np.arange(n_all) if targets is None else np.unique(np.asarray(targets, dtype=np.int64))
    if len(target_ids) == 0 or target_ids[0] < 0 or target_ids[-1] >= n_all:
        raise BenchError(f"datamodel targets must be ids in 0..{n_all - 1} (train, then validation)")
    out_dim = int(np.prod(task.outputs(task.make_model(0), train.x[:1]).shape[1:]))
    need = fit_bytes(n_models, len(train), len(target_ids), out_dim)
    limit = available_memory_bytes() if max_bytes is None else float(max_bytes)
    log(f"datamodels for {task.name}: {len(train)} train points x {len(target_ids)} targets x {out_dim} outputs; "
        f"weights {need['weights'] / 1e9:.3g} GB as {need['storage']}, fit peak about {need['total'] / 1e9:.3g} GB")
    if need["total"] > limit:
        raise BenchError(f"datamodels for {len(target_ids)} targets of '{task.name}' need about "
                         f"{need['total'] / 1e9:.3g} GB ({need['weights'] / 1e9:.3g} GB of {need['storage']} "
                         f"weights) but only {limit / 1e9:.3g} GB are available; sample fewer targets")
    spec = {"kind": "datamodels", "task": task.name, "version": task.version, "params": task.get_params(),
            "recipe": task.training_recipe(), "n_models": n_models, "alpha": alpha, "seed": seed, "ridge": ridge,
            "holdout": holdout, "storage": need["storage"]}
    if targets is not None:
        spec["targets"] = hashlib.sha256(array_bytes(target_ids)).hexdigest()
    cost = {"subset_models": n_models, "alpha": alpha,
            "gradient_evaluations": n_models * training_gradient_evaluations(task, int(round(alpha * len(train))))}
    entry = (store.load(spec, meta={"out_dim": int, "lds": dict, "train_seconds": (int, float)})
             if store is not None else None)
    if entry is not None:
        meta = entry.meta
        return Datamodels(entry.state_dict["weights"], entry.state_dict["bias"], len(train), len(val),
                          meta["out_dim"], meta["lds"], meta["train_seconds"], cached=True, target_ids=target_ids,
                          cost={**cost, "wall_seconds": meta["train_seconds"]})
    masks = subset_masks(len(train), n_models, alpha, seed)
    seeds = [derive_seed(seed, "original", 10_000 + i) for i in range(n_models)]
    models, seconds = train_subset_models(task, masks, seeds, device=device, store=store, executor=executor,
                                          progress=progress, log=log)
    inputs = torch.cat([train.x, val.x])[torch.as_tensor(target_ids)].to(device)
    outputs = np.stack([_outputs(task, m, inputs) for m in models])  # [models, targets, out_dim]
    del models
    n_fit = n_models - max(2, int(round(holdout * n_models)))
    weights, bias = ridge_fit(masks[:n_fit], outputs[:n_fit].reshape(n_fit, -1), ridge,
                              storage_dtype(len(train), len(target_ids), out_dim))
    predicted = (bias.numpy() + masks[n_fit:].astype(np.float32) @ weights.float().numpy()
                 ).reshape(-1, *outputs.shape[1:])
    labels = torch.cat([train.y, val.y])[torch.as_tensor(target_ids)]
    lds = linear_datamodeling_score(task, predicted, outputs[n_fit:], labels)
    if store is not None:
        store.save(spec, {"weights": weights, "bias": bias, "masks": torch.as_tensor(masks)},
                   {"out_dim": out_dim, "lds": lds, "train_seconds": seconds})
    return Datamodels(weights, bias, len(train), len(val), out_dim, lds, seconds, target_ids=target_ids,
                      cost={**cost, "wall_seconds": seconds})
