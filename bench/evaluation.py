"""Per-split comparison of unlearned models with the originals and the oracles they should match."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bench.task import Task, TaskData


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _mean_dicts(dicts: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(np.mean([d[key] for d in dicts])) for key in dicts[0]}


@torch.no_grad()
def margin_rmse(task: Task, models: list[nn.Module], references: list[nn.Module], x: torch.Tensor,
                y: torch.Tensor) -> float:
    """Root-mean-square gap between paired models' margins, averaged over pairs."""
    gaps = [float((task.margin(a, x, y) - task.margin(b, x, y)).pow(2).mean().sqrt())
            for a, b in zip(models, references)]
    return float(np.mean(gaps))


@torch.no_grad()
def compare(task: Task, data: TaskData, unlearned: list[nn.Module], originals: list[nn.Module],
            oracles: list[nn.Module]) -> dict[str, object]:
    """Utility of each ensemble per split, margin gaps to the paired oracle, and (convex tasks) weight distance."""
    result: dict[str, object] = {}
    for split_name, split in data.splits().items():
        row: dict[str, object] = {}
        for role, models in (("original", originals), ("unlearned", unlearned), ("oracle", oracles)):
            row[role] = _mean_dicts([task.evaluate(m, split) for m in models])
        row["margin_rmse_to_oracle"] = {
            "original": margin_rmse(task, originals, oracles, split.x, split.y),
            "unlearned": margin_rmse(task, unlearned, oracles, split.x, split.y),
        }
        result[split_name] = row
    if task.unique_optimum:
        start = [float((_flat(o) - _flat(r)).norm()) for o, r in zip(originals, oracles)]
        end = [float((_flat(u) - _flat(r)).norm()) for u, r in zip(unlearned, oracles)]
        result["param_distance_to_oracle"] = {
            "original": float(np.mean(start)),
            "unlearned": float(np.mean(end)),
            "relative": float(np.mean([e / s if s > 0 else 0.0 for e, s in zip(end, start)])),
        }
    return result
