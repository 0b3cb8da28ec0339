"""``python -m bench oracles``: build the ensembles a run needs ahead of time."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from bench.executor import Executor
from bench.runner import reference_retrain_seconds, resolve_device, resolve_forget_set
from bench.seeding import derive_seed
from bench.task import Task, TaskData
from oracles.ensemble import ensure_models
from oracles.cache import ModelStore


def prebuild(task: Task, *, seed: int, n_models: int, forget_ids: list[int] | None, device: str,
             executor: Executor, store: ModelStore | None, log: Callable[[str], None]) -> str:
    """Train (or verify cached) originals, oracles and noise-floor oracles; return a one-line summary each."""
    if task.external_models() is not None:
        from bench.errors import BenchError
        raise BenchError(f"task '{task.name}' reads its originals and oracles from its dataset files; there is "
                         "nothing to prebuild (run methods on it directly)")
    if store is None:
        log("warning: --no-cache given, so the ensembles built now are thrown away")
    dev = resolve_device(device)
    train, val = task.load()
    forget_idx = resolve_forget_set(task, train, forget_ids, seed)
    lines = []
    for label, role, excluded in (("originals", "original", np.array([], dtype=np.int64)),
                                  ("oracles", "oracle", forget_idx), ("noise floor", "floor", forget_idx)):
        seeds = [derive_seed(seed, role, i) for i in range(n_models)]
        start = time.perf_counter()
        if store is None:
            import tempfile
            with tempfile.TemporaryDirectory(prefix="bench-oracles-") as tmp:
                trained = ensure_models(task, excluded, seeds, device=dev, store=ModelStore(tmp), executor=executor,
                                        label=label, progress=True, log=log)
        else:  # into the cache, one chunk of models in memory at a time
            trained = ensure_models(task, excluded, seeds, device=dev, store=store, executor=executor, label=label,
                                    progress=True, log=log)
        lines.append(f"{label}: {n_models} models ({n_models - trained} from cache) in "
                     f"{time.perf_counter() - start:.1f} s")
    retrain = reference_retrain_seconds(task, TaskData(train, val, forget_idx).to(dev), seed, dev, store)
    lines.append(f"one model retrained alone: {retrain:.3g} s")
    return "\n".join(lines)
