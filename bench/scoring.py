"""Scores of an unlearned ensemble against its oracles: KLoM, the challenge's epsilon score, utility.

Everything is computed from per-example arrays (``arrays[role][split][stat]``, shape [n_models, n_points],
as the work units store them), never from models. Every score is also computed for a second, independent
oracle ensemble (the noise floor), so a reader sees what a perfect method scores with this many models.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bench.metrics import SCORER_VERSION, challenge_forget, final_score, klom, klom_summary
from bench.task import Split, Task

Arrays = dict[str, dict[str, dict[str, np.ndarray]]]  # role -> split -> statistic -> [n_models, n_points]
Utility = dict[str, dict[str, list[dict[str, float]]]]  # role -> split -> one dict per model


@torch.no_grad()
def margins(task: Task, models: list[nn.Module], split: Split) -> np.ndarray:
    """Per-example margins, shape [n_models, n_points]."""
    return np.stack([task.margin(m, split.x, split.y).float().cpu().numpy() for m in models])


@torch.no_grad()
def challenge_statistics(task: Task, models: list[nn.Module], split: Split) -> np.ndarray:
    return np.stack([task.challenge_statistic(m, split.x, split.y) for m in models])


def _mean_dicts(dicts: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(np.mean([d[key] for d in dicts])) for key in dicts[0]}


def _challenge(arrays: Arrays) -> tuple[dict, dict]:
    n = len(arrays["oracle"]["forget"]["confidence"])
    if n < 3 or len(arrays["unlearned"]["forget"]["confidence"]) < 3:
        return {"skipped": "the challenge score needs at least 3 models per ensemble"}, {}
    stat_o = arrays["oracle"]["forget"]["confidence"]
    result = challenge_forget(arrays["unlearned"]["forget"]["confidence"], stat_o)
    out = {"epsilon_mean": float(result.scores.epsilon.mean()), "forget_score": result.forget_score,
           "epsilon_undecided": result.scores.n_undecided}
    per_example = {"epsilon": result.scores.epsilon.round(6).tolist()}
    if "floor" in arrays:
        floor_result = challenge_forget(arrays["floor"]["forget"]["confidence"], stat_o)
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


def _klom_convention(arrays: Arrays, convention: str) -> dict:
    """KLoM summaries per split under another convention (e.g. EasyDUB's), unlearned and floor."""
    out = {}
    for name in arrays["unlearned"]:
        m_o, m_u = arrays["oracle"][name]["margin"], arrays["unlearned"][name]["margin"]
        if len(m_o) >= 2 and len(m_u) >= 2:
            out[name] = {"unlearned": klom_summary(klom(m_u, m_o, convention=convention))}
            if "floor" in arrays:
                out[name]["floor"] = klom_summary(klom(arrays["floor"][name]["margin"], m_o, convention=convention))
    return out


def score(arrays: Arrays, utility: Utility, param_distance: list[dict] | None = None,
          klom_conventions: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """(metrics, per-example arrays) for the record. ``arrays`` has no "floor" role when N < 2.
    ``klom_conventions`` adds ``metrics["klom_<convention>"]`` beside the definition's ``metrics["klom"]``."""
    metrics: dict = {"scorer_version": SCORER_VERSION, "utility": {}, "klom": {}, "margin_rmse_to_oracle": {}}
    per_example: dict = {"klom": {}, "klom_floor": {}}
    for name in arrays["unlearned"]:
        metrics["utility"][name] = {role: _mean_dicts(utility[role][name]) for role in arrays}
        m_o, m_u = arrays["oracle"][name]["margin"], arrays["unlearned"][name]["margin"]
        metrics["margin_rmse_to_oracle"][name] = float(np.sqrt(((m_u - m_o[: len(m_u)]) ** 2).mean()))
        if len(m_o) >= 2 and len(m_u) >= 2:
            per_point = klom(m_u, m_o)
            metrics["klom"][name] = {"unlearned": klom_summary(per_point)}
            per_example["klom"][name] = per_point.round(6).tolist()
            if "floor" in arrays:
                floor_points = klom(arrays["floor"][name]["margin"], m_o)
                metrics["klom"][name]["floor"] = klom_summary(floor_points)
                per_example["klom_floor"][name] = floor_points.round(6).tolist()
    challenge, eps_arrays = _challenge(arrays)
    per_example.update(eps_arrays)
    challenge["final_score"] = _final(challenge, metrics["utility"], "unlearned")
    if "floor" in challenge:
        challenge["floor"]["final_score"] = _final(challenge, metrics["utility"], "floor")
    metrics["challenge"] = challenge
    for convention in klom_conventions:
        metrics[f"klom_{convention}"] = _klom_convention(arrays, convention)
    metrics["scored_points"] = {name: int(split["margin"].shape[1]) for name, split in arrays["unlearned"].items()}
    if param_distance:
        start = [d["original"] for d in param_distance]
        end = [d["unlearned"] for d in param_distance]
        metrics["param_distance_to_oracle"] = {
            "original": float(np.mean(start)), "unlearned": float(np.mean(end)),
            "relative": float(np.mean([e / s if s > 0 else 0.0 for e, s in zip(end, start)])),
        }
    return metrics, per_example
