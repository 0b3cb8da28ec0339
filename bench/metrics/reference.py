"""Slow, literal reference implementations of the metrics.

They follow the written definitions threshold by threshold and point by point, with no vectorising
tricks, so they are easy to check by eye. The fast versions in ``epsilon.py`` and ``klom.py`` are
tested against them, and ``bench perf`` times both to show what the fast paths buy.
"""
from __future__ import annotations

import math

import numpy as np

from bench.metrics.challenge_grid import double_rights, single_thresholds

__all__ = ["attack_epsilon", "slow_epsilon", "slow_epsilon_detail", "slow_epsilons", "slow_klom",
           "slow_klom_easydub"]

DELTA = 1e-5


def attack_epsilon(fpr: float, fnr: float, delta: float = DELTA) -> float | None:
    """eps of one threshold; None means the threshold is discarded (as the official code's NaN)."""
    if fpr == 0 and fnr == 0:
        return math.inf
    if fpr == 0 or fnr == 0:
        return None
    bounds = []
    if 1 - delta - fpr > 0:
        bounds.append(math.log(1 - delta - fpr) - math.log(fnr))
    if 1 - delta - fnr > 0:
        bounds.append(math.log(1 - delta - fnr) - math.log(fpr))
    if not bounds:  # FPR = FNR = 1: both logs of negative numbers
        return None
    return max(max(bounds), 0.0)


def slow_epsilon_detail(u: np.ndarray, r: np.ndarray, delta: float = DELTA) -> tuple[float, bool]:
    """Literal reference for one example: (eps, undecided), every threshold compared explicitly."""
    u = np.asarray(u, dtype=float)
    r = np.asarray(r, dtype=float)
    if np.median(r) > np.median(u):
        pos, neg = r, u
    else:  # median tie -> unlearned is positive
        pos, neg = u, r
    range_pos, range_neg = pos.max() - pos.min(), neg.max() - neg.min()
    if max(range_pos, range_neg) == 0:
        return (0.0 if u[0] == r[0] else 50.0), False
    if min(range_pos, range_neg) / max(range_pos, range_neg) < 0.01:
        return 50.0, False

    rates = set()
    lo, hi = min(pos.min(), neg.min()), max(pos.max(), neg.max())
    for t in single_thresholds(lo, hi):
        fpr = np.sum(neg >= t) / neg.size
        fnr = np.sum(pos < t) / pos.size
        rates.add((float(fpr), float(fnr)))

    # The peaky sample is predicted inside [l, r]; on a range tie it is the negative one.
    peaky, other = (pos, neg) if range_pos < range_neg else (neg, pos)
    rights, width = double_rights(peaky.min(), peaky.max())
    for right in rights:
        lefts = np.linspace(right - width - 2.0, right - width + 2.0, 400)[:, None]  # one row per l
        peaky_inside = ((lefts <= peaky) & (peaky <= right)).sum(axis=1)
        other_inside = ((lefts <= other) & (other <= right)).sum(axis=1)
        # rates with the peaky sample as the positive class; eps is symmetric in (FPR, FNR)
        fprs = other_inside / other.size
        fnrs = (peaky.size - peaky_inside) / peaky.size
        rates.update(zip(fprs.tolist(), fnrs.tolist()))

    kept = [e for e in (attack_epsilon(fpr, fnr, delta) for fpr, fnr in rates) if e is not None]
    if not kept:
        return 50.0, True
    return min(max(kept), 50.0), False


def slow_epsilon(u: np.ndarray, r: np.ndarray, delta: float = DELTA) -> float:
    """``slow_epsilon_detail`` without the undecided flag."""
    return slow_epsilon_detail(u, r, delta)[0]


def slow_epsilons(unlearned: np.ndarray, retrained: np.ndarray, delta: float = DELTA) -> np.ndarray:
    """``slow_epsilon`` for every column of two [n_models, n_points] samples."""
    u = np.asarray(unlearned, dtype=float)
    r = np.asarray(retrained, dtype=float)
    return np.array([slow_epsilon(u[:, j], r[:, j], delta) for j in range(u.shape[1])])


def slow_klom(unlearned: np.ndarray, oracle: np.ndarray, bins: int = 20, clip: float = 100.0,
              floor: float = 1e-5) -> np.ndarray:
    """Literal reference: one np.histogram pair per point."""
    unlearned = np.asarray(unlearned, dtype=float)
    oracle = np.asarray(oracle, dtype=float)
    out = []
    for j in range(unlearned.shape[1]):
        p_s = np.clip(unlearned[:, j], -clip, clip)
        q_s = np.clip(oracle[:, j], -clip, clip)
        lo = min(p_s.min(), q_s.min())
        hi = max(p_s.max(), q_s.max())
        if lo == hi:
            out.append(0.0)
            continue
        p_counts, _ = np.histogram(p_s, bins=bins, range=(lo, hi))
        q_counts, _ = np.histogram(q_s, bins=bins, range=(lo, hi))
        p = p_counts / p_s.size
        q = q_counts / q_s.size
        keep = p > 0
        q_kept = np.maximum(q[keep], floor)
        out.append(float(np.sum(p[keep] * np.log(p[keep] / q_kept))))
    return np.array(out)


def slow_klom_easydub(unlearned: np.ndarray, oracle: np.ndarray, bins: int = 20, clip: float = 100.0,
                      floor: float = 1e-5) -> np.ndarray:
    """Literal reference for EasyDUB's convention: one np.digitize pair per point, in the input dtype."""
    unlearned, oracle = np.asarray(unlearned), np.asarray(oracle)
    out = []
    for j in range(unlearned.shape[1]):
        p_s = np.clip(unlearned[:, j], -clip, clip)
        q_s = np.clip(oracle[:, j], -clip, clip)
        lo = min(p_s.min(), q_s.min())
        hi = max(p_s.max(), q_s.max())
        if lo >= hi:
            hi = lo + 1.0
        edges = np.linspace(lo, hi, bins + 1)
        p_bin, q_bin = np.digitize(p_s, edges), np.digitize(q_s, edges)  # 1..bins inside, bins + 1 at the max
        p_counts = np.array([np.sum(p_bin == b) for b in range(1, bins + 1)])
        q_counts = np.array([np.sum(q_bin == b) for b in range(1, bins + 1)])
        p = p_counts / p_counts.sum() if p_counts.sum() > 0 else np.zeros(bins)
        q = q_counts / q_counts.sum() if q_counts.sum() > 0 else np.zeros(bins)
        keep = p > 0
        out.append(float(np.sum(p[keep] * np.log(p[keep] / np.maximum(q[keep], floor)))))
    return np.array(out)
