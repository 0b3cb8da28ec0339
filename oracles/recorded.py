"""Gradients recorded while an original was trained, for the forget set only, cached beside the model.

Originals are shared across forget sets and trained in batches, so the recording is a replay of the
same seeded training run with the recording hook on; the replayed weights are compared with the
cached original's and the difference is recorded (zero on CPU, where training is deterministic).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bench.recording import GradientRecorder
from bench.task import Task
from oracles.store import ModelStore, cache_key


@dataclass
class RecordedGradients:
    flat: dict[str, torch.Tensor]
    bytes_by_group: dict[str, int]
    replay_weight_difference: float


def _bytes_by_group(task: Task, model: nn.Module, flat: dict[str, torch.Tensor]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for key, grad in flat.items():
        sizes[key.split("/", 2)[2]] = sizes.get(key.split("/", 2)[2], 0) + grad.numel() * grad.element_size()
    groups = {group: sum(sizes.get(n, 0) for n in names) for group, names in task.layer_groups(model).items()}
    return {"all": sum(sizes.values()), **groups}


def record_gradients(task: Task, forget_idx: np.ndarray, seed: int, original: nn.Module, original_spec: dict,
                     device: torch.device, store: ModelStore | None) -> RecordedGradients:
    """The forget set's recorded gradients for the original trained with ``seed`` (cached when possible)."""
    spec = {"kind": "recorded-gradients", "original": cache_key(original_spec),
            "forget_ids": [int(i) for i in forget_idx]}
    entry = (store.load(spec, meta={"bytes_by_group": dict, "replay_difference": (int, float)})
             if store is not None else None)
    if entry is not None:
        return RecordedGradients(entry.state_dict, entry.meta["bytes_by_group"], entry.meta["replay_difference"])
    train, _ = task.load()
    model = task.make_model(seed).to(device)
    recorder = GradientRecorder(forget_idx)
    task.train_recording(model, train.to(device), seed, recorder)
    difference = max(float((a.detach() - b.detach()).abs().max())
                     for a, b in zip(model.parameters(), original.parameters()))
    flat = {k: v.cpu() for k, v in recorder.flat_state().items()}
    by_group = _bytes_by_group(task, model, flat)
    if store is not None:
        store.save(spec, flat, {"bytes_by_group": by_group, "replay_difference": difference})
    return RecordedGradients(flat, by_group, difference)
