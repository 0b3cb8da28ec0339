"""Membership-inference metrics of a run: U-LiRA on the forget set and the population attack."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bench.metrics.mia import population_mia, ulira
from bench.scoring import challenge_statistics
from bench.task import Task, TaskData


@torch.no_grad()
def _losses(task: Task, models: list[nn.Module], x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    return np.stack([task.loss(m, x, y).float().cpu().numpy() for m in models])


def membership_metrics(task: Task, data: TaskData, unlearned: list[nn.Module], oracles: list[nn.Module],
                       floor: list[nn.Module] | None, seed: int) -> dict:
    """U-LiRA with half of the unlearned and oracle models as shadows and the other halves (plus the
    independent noise-floor oracles) as targets; and the population attack on the unlearned models."""
    out: dict = {}
    n = min(len(unlearned), len(oracles))
    if n < 4:
        out["ulira"] = {"skipped": "U-LiRA needs --n-models 4 or more (half shadows, half targets)"}
    else:
        half = n // 2
        forget = data.forget
        stat_u = challenge_statistics(task, unlearned, forget)
        stat_o = challenge_statistics(task, oracles, forget)
        negatives = challenge_statistics(task, floor, forget) if floor else stat_o[half:]
        out["ulira"] = {**ulira(stat_u[:half], stat_o[:half], stat_u[half:], negatives),
                        "shadow_models_per_side": half}
    try:
        out["population_mia"] = population_mia(_losses(task, unlearned, data.forget.x, data.forget.y),
                                               _losses(task, unlearned, data.val.x, data.val.y), seed)
    except ValueError as err:
        out["population_mia"] = {"skipped": str(err)}
    return out
