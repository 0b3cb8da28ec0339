"""Per-example statistics of one model on the scored points, stored as a verified cache entry of arrays.

These arrays are all the reduce step needs: margins (KLoM, margin RMSE), the challenge's confidence on the
forget set (epsilon, U-LiRA), per-example losses (the population membership attack) and the task's utility
per split (accuracy, loss). Keeping them instead of models makes memory independent of the ensemble size
and re-scoring a matter of reading files.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bench.digests import array_bytes
from bench.forward_memo import one_forward_per_input
from bench.task import Split, Task, TaskData
from oracles.cache import ModelStore, cache_key

STATS_VERSION = 1
SPLITS = ("forget", "retain", "val")
DEFAULT_MAX_SCORED_POINTS = 50_000


@dataclass(frozen=True)
class ScoredPoints:
    """Which points are scored: forget ids in full, retain and validation ids capped by a seeded sample.

    ``ids[split]`` are positions in the train set (forget, retain) or the validation set (val).
    """

    ids: dict[str, np.ndarray]
    max_points: int

    def fingerprint(self) -> dict:
        """What enters cache keys: counts and a hash of each id list (the lists can be 50,000 long)."""
        return {"max_points": self.max_points,
                **{split: {"n": int(len(ids)), "sha256": hashlib.sha256(
                    array_bytes(np.asarray(ids, dtype=np.int64))).hexdigest()[:32]}
                   for split, ids in self.ids.items()}}

    def splits(self, data: TaskData) -> dict[str, Split]:
        return {"forget": data.train.subset(self.ids["forget"]), "retain": data.train.subset(self.ids["retain"]),
                "val": data.val.subset(self.ids["val"])}

    def counts(self) -> dict[str, int]:
        return {split: int(len(ids)) for split, ids in self.ids.items()}


def choose_points(data: TaskData, seed: int, max_points: int = DEFAULT_MAX_SCORED_POINTS) -> ScoredPoints:
    """Forget set in full; retain and validation capped at ``max_points`` each by a sample seeded by ``seed``."""
    if max_points < 1:
        from bench.errors import BenchError
        raise BenchError(f"--max-scored-points must be at least 1, got {max_points}")
    rng = np.random.default_rng(seed)
    ids = {"forget": np.asarray(data.forget_idx, dtype=np.int64)}
    for name, pool in (("retain", data.retain_idx), ("val", np.arange(len(data.val)))):
        if len(pool) > max_points:
            pool = pool[np.sort(rng.choice(len(pool), max_points, replace=False))]
        ids[name] = np.asarray(pool, dtype=np.int64)
    return ScoredPoints(ids, max_points)


@dataclass
class ModelStats:
    """One model's arrays (``arrays[split][stat]``, 1-D over the split's scored points) and utility per split."""

    arrays: dict[str, dict[str, np.ndarray]]
    utility: dict[str, dict[str, float]]
    meta: dict

    def flat(self) -> dict[str, torch.Tensor]:
        return {f"{split}/{stat}": torch.from_numpy(np.ascontiguousarray(a))
                for split, stats in self.arrays.items() for stat, a in stats.items()}

    @classmethod
    def from_flat(cls, tensors: dict[str, torch.Tensor], meta: dict) -> "ModelStats":
        arrays: dict[str, dict[str, np.ndarray]] = {}
        for name, tensor in tensors.items():
            split, stat = name.split("/", 1)
            arrays.setdefault(split, {})[stat] = tensor.numpy()
        return cls(arrays, meta.get("utility", {}), meta)


@torch.no_grad()
def compute_stats(task: Task, model: nn.Module, splits: dict[str, Split]) -> ModelStats:
    """Margins, losses and utility on every split; the challenge confidence on the forget split."""
    arrays, utility = {}, {}
    for name, split in splits.items():
        with one_forward_per_input(model):  # the task's four statistics share one forward pass
            arrays[name] = {"margin": task.margin(model, split.x, split.y).float().cpu().numpy(),
                            "loss": task.loss(model, split.x, split.y).float().cpu().numpy()}
            if name == "forget":
                arrays[name]["confidence"] = np.asarray(task.challenge_statistic(model, split.x, split.y),
                                                        dtype=np.float64)
            utility[name] = task.evaluate(model, split)
    return ModelStats(arrays, utility, {"utility": utility})


def stats_spec(model_key: str, points: ScoredPoints) -> dict:
    """Cache spec of a model's statistics: the model's cache key and the scored points."""
    return {"kind": "statistics", "version": STATS_VERSION, "model": model_key, "points": points.fingerprint()}


def save_stats(store: ModelStore, spec: dict, stats: ModelStats) -> None:
    store.save(spec, stats.flat(), {**stats.meta, "utility": stats.utility})


def load_stats(store: ModelStore, spec: dict) -> ModelStats | None:
    entry = store.load(spec)
    return None if entry is None else ModelStats.from_flat(entry.state_dict, entry.meta)


__all__ = ["ScoredPoints", "ModelStats", "choose_points", "compute_stats", "stats_spec", "save_stats", "load_stats",
           "cache_key", "SPLITS", "DEFAULT_MAX_SCORED_POINTS"]
