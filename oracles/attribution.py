"""Which datamodels a datamodel method gets: subset-model datamodels or TRAK scores, for which targets.

A method that requires "datamodels" declares ``attribution`` ("datamodels" or "trak") and ``targets``:
"all" fits every train and validation point, "sampled" only the forget set, a seeded retain sample and a
seeded validation sample, "auto" samples when fitting everything would need more than AUTO_SAMPLE_BYTES.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from bench.errors import BenchError
from bench.executor import Executor
from bench.task import Task, TaskData
from oracles.datamodels import Datamodels, build_datamodels, fit_bytes, sample_targets
from oracles.cache import ModelStore

ATTRIBUTIONS = ("datamodels", "trak")
TARGET_MODES = ("auto", "all", "sampled")
AUTO_SAMPLE_BYTES = 2e9


def target_ids(method, task: Task, data: TaskData, seed: int) -> np.ndarray | None:
    """The targets the method's datamodels are fitted for (None: every train and validation point)."""
    mode = getattr(method, "targets", "auto")
    if mode not in TARGET_MODES:
        raise BenchError(f"targets must be one of {', '.join(TARGET_MODES)}, got {mode!r}")
    n_train, n_val = len(data.train), len(data.val)
    if mode == "auto":
        out_dim = int(np.prod(task.outputs(task.make_model(0), data.train.x[:1].cpu()).shape[1:]))
        models = getattr(method, "datamodel_models", 0) if getattr(method, "attribution", "") == "datamodels" else 0
        mode = "sampled" if fit_bytes(models, n_train, n_train + n_val, out_dim)["total"] > AUTO_SAMPLE_BYTES \
            else "all"
    if mode == "all":
        return None
    retain = getattr(method, "retain_targets", None) or getattr(method, "retain_sample", 1000)
    return sample_targets(n_train, n_val, data.forget_idx, int(retain), int(getattr(method, "val_targets", 1000)),
                          seed)


def datamodels_for(method, task: Task, data: TaskData, *, seed: int, device: torch.device,
                   store: ModelStore | None, executor: Executor, progress: bool = True,
                   log: Callable[[str], None] = lambda _m: None) -> Datamodels:
    """Build (or load) the datamodels ``method`` asks for, for the targets it needs."""
    kind = getattr(method, "attribution", "datamodels")
    if kind not in ATTRIBUTIONS:
        raise BenchError(f"attribution must be one of {', '.join(ATTRIBUTIONS)}, got {kind!r}")
    targets = target_ids(method, task, data, seed)
    if kind == "trak":
        from oracles.trak import build_trak
        return build_trak(task, n_checkpoints=method.trak_checkpoints, proj_dim=method.trak_proj_dim, seed=seed,
                          device=device, store=store, executor=executor, targets=targets,
                          lds_models=method.trak_lds_models, progress=progress, log=log)
    return build_datamodels(task, n_models=method.datamodel_models, alpha=method.alpha, seed=seed, device=device,
                            store=store, executor=executor, targets=targets, progress=progress, log=log)
