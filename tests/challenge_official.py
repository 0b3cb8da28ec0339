"""An independent transcription of the official NeurIPS 2023 scorer's epsilon, for conformance tests.

Written from a reading of google-deepmind/unlearning_evaluation ``metric.py`` and kept deliberately
close to its structure and dtypes (torch on CPU instead of CUDA): float32 single-threshold grid from
``torch.linspace``, float64 numpy grids for the double thresholds, float32 rates, numpy's nanmax of
the two DP bounds. Where the official code would fail its assertion (every threshold discarded) this
returns NaN, so a test can see exactly which examples are undecided. It is slow and test-only.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch

DELTA = 1e-5
CAP = 50.0


def _double_rates(pos: torch.Tensor, neg: torch.Tensor):
    pos_range = pos.max() - pos.min()
    neg_range = neg.max() - neg.min()
    width_t = neg_range if pos_range > neg_range else pos_range
    if pos_range >= neg_range:  # the peakier sample becomes "positive"
        pos, neg = neg, pos
    low = (pos.min() + width_t - 2.0).numpy()
    high = (pos.max() + 2.0).numpy()
    rights = np.linspace(low, high, num=int(np.ceil((high - low) * 100)))
    width = width_t.numpy()
    n_left = int(np.ceil(2 * 2.0 * 100))
    lefts = np.concatenate([np.linspace(r - width - 2.0, r - width + 2.0, num=n_left) for r in rights])
    rights_flat = np.repeat(rights, n_left)
    left_t = torch.from_numpy(lefts)[None, :]
    right_t = torch.from_numpy(rights_flat)[None, :]

    def inside(c: torch.Tensor) -> torch.Tensor:
        return ((left_t <= c[:, None]) & (c[:, None] <= right_t)).to(torch.float32)

    tpr = inside(pos).mean(0)
    fpr = inside(neg).mean(0)
    return tpr, 1 - tpr, fpr, 1 - fpr


def _single_rates(pos: torch.Tensor, neg: torch.Tensor):
    pooled = torch.cat([pos, neg])
    lo, hi = pooled.min(), pooled.max()
    n = int(torch.ceil((hi - lo) * 100))
    t = torch.linspace(lo, hi, n)[None, :]  # float32, as in the official code
    tpr = (pos[:, None] >= t).to(torch.float32).mean(0)
    fpr = (neg[:, None] >= t).to(torch.float32).mean(0)
    tnr = (neg[:, None] < t).to(torch.float32).mean(0)
    fnr = (pos[:, None] < t).to(torch.float32).mean(0)
    return tpr, fnr, fpr, tnr


def official_epsilon(unlearned: np.ndarray, retrained: np.ndarray, delta: float = DELTA) -> float:
    """One example; NaN where the official code's assertion would fire."""
    u = np.asarray(unlearned, dtype=np.float64)
    r = np.asarray(retrained, dtype=np.float64)
    retrain_pos = np.median(r) > np.median(u)
    pos, neg = (r, u) if retrain_pos else (u, r)
    pos_range, neg_range = pos.max() - pos.min(), neg.max() - neg.min()
    largest = pos_range if pos_range > neg_range else neg_range
    smallest = neg_range if pos_range > neg_range else pos_range
    with np.errstate(invalid="ignore", divide="ignore"):
        if smallest / largest < 0.01:
            return CAP
    pos_t, neg_t = torch.from_numpy(pos), torch.from_numpy(neg)
    parts = [_double_rates(pos_t, neg_t), _single_rates(pos_t, neg_t)]
    tpr, fnr, fpr, tnr = (torch.cat([p[i] for p in parts]).numpy() for i in range(4))
    eps = np.zeros(tpr.shape, dtype=np.float32)
    eps[(fpr + fnr == 0) & (tpr + tnr == 2)] = np.inf
    eps[(eps == 0) & (fpr * fnr == 0)] = np.nan
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        bounds = np.nanmax([np.log(1 - delta - fpr) - np.log(fnr), np.log(1 - delta - fnr) - np.log(fpr)], axis=0)
    eps = np.where(eps == 0, np.clip(bounds, 0, None), eps)
    kept = eps[~np.isnan(eps)]
    if kept.size == 0:
        return math.nan
    return float(np.clip(np.max(kept), 0, CAP))


def official_epsilons(unlearned: np.ndarray, retrained: np.ndarray) -> np.ndarray:
    """Every column of two [n_models, n_points] samples."""
    return np.array([official_epsilon(unlearned[:, j], retrained[:, j]) for j in range(unlearned.shape[1])])


def official_forget_score(eps: np.ndarray, n_unlearned: int) -> float:
    """The bucket loop as the official code writes it."""
    max_eps = np.ceil(np.log(n_unlearned - 1))
    buckets, start, points = {}, 0.0, 1.0
    while start + 0.5 <= max_eps:
        buckets[start] = points
        points /= 2
        start += 0.5
    total = 0.0
    for e in eps:
        for lo, value in buckets.items():
            if e < lo + 0.5:
                total += value
                break
    return total / len(eps)
