"""Train one model per seed with a task's recipe, timing each (the cost baseline of every method)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from bench.task import Split, Task


@dataclass
class Ensemble:
    """Models trained on the same data with different seeds, and the wall-clock each took."""

    models: list[nn.Module]
    seeds: list[int]
    train_seconds: list[float]


def train_ensemble(task: Task, data: Split, seeds: list[int], device: torch.device) -> Ensemble:
    """One model per seed, trained one after another on ``device``."""
    models, seconds = [], []
    data = data.to(device)
    for seed in seeds:
        start = time.perf_counter()
        model = task.train(task.make_model(seed).to(device), data, seed)
        seconds.append(time.perf_counter() - start)
        models.append(model.eval())
    return Ensemble(models, list(seeds), seconds)
