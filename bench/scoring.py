"""Scores of an unlearned ensemble against its oracles: KLoM, the challenge's epsilon score, utility.

Every score is also computed for a second, independent oracle ensemble (the noise floor), so a
reader sees what a perfect method scores with this many models.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bench.metrics import SCORER_VERSION, challenge_forget, final_score, klom, klom_summary
from bench.task import Split, Task, TaskData

MAX_SCORED_POINTS = 1000  # retain and validation points scored per split (a fixed random sample)


@torch.no_grad()
def margins(task: Task, models: list[nn.Module], split: Split) -> np.ndarray:
    """Per-example margins, shape [n_models, n_points]."""
    return np.stack([task.margin(m, split.x, split.y).float().cpu().numpy() for m in models])


@torch.no_grad()
def challenge_statistics(task: Task, models: list[nn.Module], split: Split) -> np.ndarray:
    return np.stack([task.challenge_statistic(m, split.x, split.y) for m in models])


def _mean_dicts(dicts: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(np.mean([d[key] for d in dicts])) for key in dicts[0]}


def scored_splits(data: TaskData, seed: int) -> dict[str, Split]:
    """Forget set in full; retain and validation sets capped at MAX_SCORED_POINTS by a seeded sample."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, split in data.splits().items():
        if name != "forget" and len(split) > MAX_SCORED_POINTS:
            split = split.subset(np.sort(rng.choice(len(split), MAX_SCORED_POINTS, replace=False)))
        out[name] = split
    return out


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _challenge(task: Task, forget: Split, unlearned: list[nn.Module], oracles: list[nn.Module],
               floor: list[nn.Module] | None) -> tuple[dict, dict]:
    n = len(oracles)
    if n < 3 or len(unlearned) < 3:
        return {"skipped": "the challenge score needs at least 3 models per ensemble"}, {}
    stat_o = challenge_statistics(task, oracles, forget)
    result = challenge_forget(challenge_statistics(task, unlearned, forget), stat_o)
    out = {"epsilon_mean": float(result.scores.epsilon.mean()), "forget_score": result.forget_score,
           "epsilon_undecided": result.scores.n_undecided}
    per_example = {"epsilon": result.scores.epsilon.round(6).tolist()}
    if floor is not None:
        floor_result = challenge_forget(challenge_statistics(task, floor, forget), stat_o)
        out["floor"] = {"epsilon_mean": float(floor_result.scores.epsilon.mean()),
                        "forget_score": floor_result.forget_score,
                        "epsilon_undecided": floor_result.scores.n_undecided}
        per_example["epsilon_floor"] = floor_result.scores.epsilon.round(6).tolist()
    return out, per_example


def _final(challenge: dict, utility: dict, role: str) -> float | None:
    score = challenge.get("forget_score") if role == "unlearned" else challenge.get("floor", {}).get("forget_score")
    if score is None or "accuracy" not in utility["retain"]["oracle"]:
        return None
    return final_score(score, utility["retain"][role]["accuracy"], utility["retain"]["oracle"]["accuracy"],
                       utility["val"][role]["accuracy"], utility["val"]["oracle"]["accuracy"])


@torch.no_grad()
def score(task: Task, data: TaskData, unlearned: list[nn.Module], originals: list[nn.Module],
          oracles: list[nn.Module], floor: list[nn.Module] | None, seed: int) -> tuple[dict, dict]:
    """(metrics, per-example arrays) for the record. ``floor`` is None when there are too few models."""
    splits = scored_splits(data, seed)
    roles = {"original": originals, "unlearned": unlearned, "oracle": oracles}
    if floor is not None:
        roles["floor"] = floor
    metrics: dict = {"scorer_version": SCORER_VERSION, "utility": {}, "klom": {}, "margin_rmse_to_oracle": {}}
    per_example: dict = {"klom": {}, "klom_floor": {}}
    for name, split in splits.items():
        metrics["utility"][name] = {role: _mean_dicts([task.evaluate(m, split) for m in models])
                                    for role, models in roles.items()}
        m_o, m_u = margins(task, oracles, split), margins(task, unlearned, split)
        metrics["margin_rmse_to_oracle"][name] = float(np.sqrt(((m_u - m_o[: len(m_u)]) ** 2).mean()))
        if len(oracles) >= 2 and len(unlearned) >= 2:
            per_point = klom(m_u, m_o)
            metrics["klom"][name] = {"unlearned": klom_summary(per_point)}
            per_example["klom"][name] = per_point.round(6).tolist()
            if floor is not None:
                floor_points = klom(margins(task, floor, split), m_o)
                metrics["klom"][name]["floor"] = klom_summary(floor_points)
                per_example["klom_floor"][name] = floor_points.round(6).tolist()
    challenge, eps_arrays = _challenge(task, splits["forget"], unlearned, oracles, floor)
    per_example.update(eps_arrays)
    challenge["final_score"] = _final(challenge, metrics["utility"], "unlearned")
    if "floor" in challenge:
        challenge["floor"]["final_score"] = _final(challenge, metrics["utility"], "floor")
    metrics["challenge"] = challenge
    metrics["scored_points"] = {name: len(split) for name, split in splits.items()}
    if task.unique_optimum:
        start = [float((_flat(o) - _flat(r)).norm()) for o, r in zip(originals, oracles)]
        end = [float((_flat(u) - _flat(r)).norm()) for u, r in zip(unlearned, oracles)]
        metrics["param_distance_to_oracle"] = {
            "original": float(np.mean(start)), "unlearned": float(np.mean(end)),
            "relative": float(np.mean([e / s if s > 0 else 0.0 for e, s in zip(end, start)])),
        }
    return metrics, per_example
