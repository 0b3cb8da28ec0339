"""Ensembles of trained models, built once and cached: originals on D, oracles on D minus the forget set.

Each model is cached on its own under a content hash of (task, version, parameters, training recipe,
excluded training ids, seed), so 32 models are reused when 64 are asked for, and originals are shared
by every forget set (the key leaves out the parameters that only choose the forget set). Missing models
are trained in chunks (batched where the task supports it) on the chosen executor; each model's entry is
locked while it is trained, so a concurrent run waits for it and then reuses it instead of training it too.
"""
from __future__ import annotations

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
from bench.locks import EntryLock
from oracles.cache import ModelStore, cache_key


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
    return {"kind": "trained", "task": task.name, "version": task.version, "params": task.model_params(),
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


def load_model(task: Task, store: ModelStore, spec: dict, device: torch.device | str) -> tuple[nn.Module, dict] | None:
    """The cached model for ``spec`` (verified), on ``device`` in eval mode, with its meta; None if absent."""
    entry = store.load(spec)
    if entry is None:
        return None
    model = task.make_model(int(spec["seed"]))
    model.load_state_dict(entry.state_dict)
    return model.to(device).eval(), entry.meta


def _save_trained(store: ModelStore, spec: dict, state: dict, secs: float, device: str) -> None:
    store.save(spec, state, {"train_seconds": secs, "device": device, "host": platform.node()})


def ensure_models(task: Task, excluded_ids: np.ndarray, seeds: list[int], *, device: torch.device,
                  store: ModelStore, executor: Executor, label: str, chunk_size: int = 16, progress: bool = True,
                  log: Callable[[str], None] = lambda _m: None) -> int:
    """Make sure every model is in the cache, training the missing ones in packed chunks; return how many
    this call trained. Nothing is kept in memory beyond one chunk per worker.

    Entries another process is training (its lock is held) are skipped at first and waited for at the end;
    if that process died without saving, they are trained here.
    """
    specs = {seed: model_spec(task, excluded_ids, seed) for seed in seeds}
    missing = [seed for seed in seeds if not store.contains(specs[seed])]
    if not missing:
        log(f"{label}: all {len(seeds)} cached")
        return 0
    log(f"{label}: {len(seeds) - len(missing)} cached, training {len(missing)}")
    trained = 0
    chunk = max(1, min(chunk_size, -(-len(missing) // max(1, executor.workers))))
    with tqdm(total=len(missing), desc=label, unit="model", disable=not progress, leave=False) as bar:
        pending = missing
        while pending:
            locks, claimed, busy = {}, [], []
            for seed in pending:
                lock = EntryLock(store.root, cache_key(specs[seed]))
                if lock.acquire(blocking=False):
                    if store.contains(specs[seed]):  # finished by another run since we looked
                        lock.release()
                        bar.update(1)
                        continue
                    locks[seed] = lock
                    claimed.append(seed)
                else:
                    busy.append(seed)
            try:
                jobs = [(task, excluded_ids, part, str(device), 1 if executor.parallel else None)
                        for part in _chunks(claimed, chunk)]
                for job, results in zip(jobs, executor.map(train_chunk, jobs)):
                    for seed, (state, secs) in zip(job[2], results):
                        _save_trained(store, specs[seed], state, secs, str(device))
                        locks.pop(seed).release()
                        trained += 1
                    bar.update(len(job[2]))
            finally:
                for lock in locks.values():
                    lock.release()
            if busy:  # another run is training these: wait for one, then claim whatever it has not finished
                log(f"{label}: waiting for another run that is training {len(busy)} of these models")
                _wait_for(store, specs[busy[0]])
            pending = [seed for seed in busy if not store.contains(specs[seed])]
            bar.update(len(busy) - len(pending))
    return trained


def _wait_for(store: ModelStore, spec: dict) -> None:
    """Block until no process holds the lock of ``spec``'s entry."""
    lock = EntryLock(store.root, cache_key(spec))
    lock.acquire()
    lock.release()


def build_ensemble(task: Task, excluded_ids: np.ndarray, seeds: list[int], *, device: torch.device,
                   store: ModelStore | None, executor: Executor, label: str, chunk_size: int = 16,
                   progress: bool = True, log: Callable[[str], None] = lambda _m: None) -> Ensemble:
    """Every model of an ensemble in memory (cached ones loaded, the rest trained and cached).

    Runs do not use this (their units load one model at a time); it serves prebuilding and experiments that
    need all weights at once. Without a store the models are trained in a temporary one.
    """
    if store is None:
        import tempfile
        with tempfile.TemporaryDirectory(prefix="bench-ensemble-") as tmp:
            ensemble = build_ensemble(task, excluded_ids, seeds, device=device, store=ModelStore(tmp),
                                      executor=executor, label=label, chunk_size=chunk_size, progress=progress,
                                      log=log)
            ensemble.cached = 0
            return ensemble
    specs = [model_spec(task, excluded_ids, seed) for seed in seeds]
    trained = ensure_models(task, excluded_ids, seeds, device=device, store=store, executor=executor, label=label,
                            chunk_size=chunk_size, progress=progress, log=log)
    models, seconds = [], []
    for seed, spec in zip(seeds, specs):
        loaded = load_model(task, store, spec, device)
        if loaded is None:  # the entry failed verification and was discarded: train it again
            trained += ensure_models(task, excluded_ids, [seed], device=device, store=store, executor=executor,
                                     label=label, progress=False, log=log)
            loaded = load_model(task, store, spec, device)
        if loaded is None:
            raise RuntimeError(f"{label}: model with seed {seed} vanished from the cache at {store.root}")
        models.append(loaded[0])
        seconds.append(float(loaded[1].get("train_seconds", float("nan"))))
    return Ensemble(models, list(seeds), seconds, len(seeds) - trained, specs)
