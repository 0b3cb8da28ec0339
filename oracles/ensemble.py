"""Ensembles of trained models, built once and cached: originals on D, oracles on D minus the forget set.

Each model is cached on its own under a content hash of (task, version, parameters, training recipe,
excluded training ids, seed), so 32 models are reused when 64 are asked for, and originals are shared
by every forget set. Missing models are trained in chunks (batched where the task supports it) on the
chosen executor.
"""
from __future__ import annotations

import copy
import platform
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from bench.errors import DivergenceError
from bench.executor import Executor
from bench.task import Split, Task
from oracles.store import ModelStore


@dataclass
class Ensemble:
    """Models trained on the same data with different seeds, and the seconds each took to train."""

    models: list[nn.Module]
    seeds: list[int]
    train_seconds: list[float]
    cached: int = 0  # how many came from the cache
    specs: list[dict] = field(default_factory=list)


def model_spec(task: Task, excluded_ids: np.ndarray, seed: int) -> dict:
    """Everything that determines one trained model (its cache key)."""
    return {"kind": "trained", "task": task.name, "version": task.version, "params": task.get_params(),
            "recipe": task.training_recipe(), "excluded_ids": [int(i) for i in np.sort(excluded_ids)],
            "seed": int(seed)}


def kept_ids(n: int, excluded_ids: np.ndarray) -> np.ndarray:
    return np.setdiff1d(np.arange(n), excluded_ids)


def training_split(task: Task, excluded_ids: np.ndarray) -> Split:
    train, _ = task.load()
    keep = np.setdiff1d(np.arange(len(train)), excluded_ids)
    return train.subset(keep)


def train_chunk(task: Task, excluded_ids: np.ndarray | list[np.ndarray], seeds: list[int], device: str,
                threads: int | None = None) -> list[tuple[dict[str, torch.Tensor], float]]:
    """Train one model per seed (batched when the task can); runs in a worker, so it reloads the data itself.

    ``excluded_ids`` is one array for all models, or one per model (datamodel subsets).
    """
    if threads is not None:
        torch.set_num_threads(threads)
    models = [task.make_model(seed).to(device) for seed in seeds]
    start = time.perf_counter()
    if isinstance(excluded_ids, list):
        train, _ = task.load()
        subsets = [kept_ids(len(train), ex) for ex in excluded_ids]
        trained = task.train_many(models, train.to(device), seeds, subsets)
    else:
        trained = task.train_many(models, training_split(task, excluded_ids).to(device), seeds)
    per_model = (time.perf_counter() - start) / len(seeds)
    for seed, model in zip(seeds, trained):
        if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            raise DivergenceError(f"training {task.name} with seed {seed} diverged (non-finite weights); "
                                  "lower the task's learning rate (--task-arg lr=...) or check its parameters")
    return [({k: v.detach().cpu() for k, v in m.state_dict().items()}, per_model) for m in trained]


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def build_ensemble(task: Task, excluded_ids: np.ndarray, seeds: list[int], *, device: torch.device,
                   store: ModelStore | None, executor: Executor, label: str, chunk_size: int = 16,
                   progress: bool = True, log: Callable[[str], None] = lambda _m: None) -> Ensemble:
    """Load every cached model, train the rest (with a progress bar and ETA), cache them, return all."""
    specs = [model_spec(task, excluded_ids, seed) for seed in seeds]
    states: dict[int, dict[str, torch.Tensor]] = {}
    seconds: dict[int, float] = {}
    if store is not None:
        for seed, spec in zip(seeds, specs):
            entry = store.load(spec)
            if entry is not None:
                states[seed], seconds[seed] = entry.state_dict, float(entry.meta.get("train_seconds", float("nan")))
    cached = len(states)
    missing = [seed for seed in seeds if seed not in states]
    if missing:
        log(f"{label}: {cached} cached, training {len(missing)}")
        chunk = max(1, min(chunk_size, -(-len(missing) // max(1, executor.workers))))
        jobs = [(task, excluded_ids, part, str(device), 1 if executor.parallel else None)
                for part in _chunks(missing, chunk)]
        spec_of = dict(zip(seeds, specs))
        with tqdm(total=len(missing), desc=label, unit="model", disable=not progress, leave=False) as bar:
            for job, results in zip(jobs, executor.map(train_chunk, jobs)):
                for seed, (state, secs) in zip(job[2], results):
                    states[seed], seconds[seed] = state, secs
                    if store is not None:
                        store.save(spec_of[seed], state, {"train_seconds": secs, "device": str(device),
                                                          "host": platform.node()})
                bar.update(len(job[2]))
    else:
        log(f"{label}: all {cached} cached")
    template = task.make_model(seeds[0])  # weights are overwritten; copying skips per-seed initialisation
    models = []
    for seed in seeds:
        model = copy.deepcopy(template)
        model.load_state_dict(states[seed])
        models.append(model.to(device).eval())
    return Ensemble(models, list(seeds), [seconds[s] for s in seeds], cached, specs)
