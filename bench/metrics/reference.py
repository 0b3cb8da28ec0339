"""Slow, literal reference implementations of the metrics.

They follow the written definitions threshold by threshold and point by point, with no vectorising
tricks, so they are easy to check by eye. The fast versions in ``epsilon.py`` and ``klom.py`` are
tested against them, and ``bench perf`` times both to show what the fast paths buy.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["attack_epsilon", "slow_epsilon", "slow_epsilons", "slow_klom"]

DELTA = 1e-5


def attack_epsilon(fpr: float, fnr: float, delta: float = DELTA) -> float | None:
    """eps of one threshold; None means the threshold is discarded."""
    if fpr == 0 and fnr == 0:
        return math.inf
    if fpr == 0 or fnr == 0:
        return None
    terms = [0.0]
    if 1 - delta - fpr > 0:
        terms.append(math.log(1 - delta - fpr) - math.log(fnr))
    if 1 - delta - fnr > 0:
        terms.append(math.log(1 - delta - fnr) - math.log(fpr))
    return max(terms)


def slow_epsilon(u: np.ndarray, r: np.ndarray, delta: float = DELTA) -> float:
    """Literal reference for one example: every threshold, every value compared explicitly."""
    u = np.asarray(u, dtype=float)
    r = np.asarray(r, dtype=float)
    u_is_pos = np.median(u) >= np.median(r)  # median tie -> unlearned is positive
    pos, neg = (u, r) if u_is_pos else (r, u)
    range_u, range_r = u.max() - u.min(), r.max() - r.min()
    if max(range_u, range_r) == 0:
        return 0.0 if u[0] == r[0] else 50.0
    if min(range_u, range_r) / max(range_u, range_r) < 0.01:
        return 50.0
    peaky_is_u = range_u <= range_r  # range tie -> unlearned is peaky
    peaky = u if peaky_is_u else r
    peaky_is_pos = peaky_is_u == u_is_pos

    rates = set()
    lo, hi = min(u.min(), r.min()), max(u.max(), r.max())
    for t in np.linspace(lo, hi, max(2, math.ceil((hi - lo) * 100))):
        fpr = np.sum(neg >= t) / neg.size
        fnr = np.sum(~(pos >= t)) / pos.size
        rates.add((fpr, fnr))

    width = peaky.max() - peaky.min()
    for right in np.linspace(peaky.min() + width - 2, peaky.max() + 2, max(2, math.ceil(width * 100))):
        lefts = np.linspace(right - width - 2, right - width + 2, 400)
        inside_pos = (pos[None, :] >= lefts[:, None]) & (pos[None, :] <= right)
        inside_neg = (neg[None, :] >= lefts[:, None]) & (neg[None, :] <= right)
        pred_pos_on_pos = inside_pos if peaky_is_pos else ~inside_pos
        pred_pos_on_neg = inside_neg if peaky_is_pos else ~inside_neg
        fprs = pred_pos_on_neg.sum(axis=1) / neg.size
        fnrs = (~pred_pos_on_pos).sum(axis=1) / pos.size
        rates.update(zip(fprs.tolist(), fnrs.tolist()))

    kept = [e for e in (attack_epsilon(fpr, fnr, delta) for fpr, fnr in rates) if e is not None]
    return min(max(kept, default=0.0), 50.0)


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
