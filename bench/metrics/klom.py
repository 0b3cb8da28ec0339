"""KLoM: per-example KL divergence between margin distributions.

For every evaluation point we compare the distribution of its margin under many
unlearned models (P) with the distribution under many oracle models retrained
without the forget set (Q). A small KLoM means the unlearned models are
statistically indistinguishable from the oracles on that point.
"""

from __future__ import annotations

import numpy as np

__all__ = ["klom", "klom_summary"]


def _as_model_matrix(values: np.ndarray, name: str, allow_inf: bool) -> np.ndarray:
    """Coerce to float64 [n_models, n_points] and reject inputs that would poison the metric."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D [n_models, n_points], got ndim={arr.ndim} (shape {arr.shape})"
        )
    if arr.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 models to form a distribution, got {arr.shape[0]}")
    if arr.shape[1] < 1:
        raise ValueError(f"{name} has no points (shape {arr.shape})")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN")
    if not allow_inf and np.isinf(arr).any():
        raise ValueError(f"{name} contains +/-inf")
    return arr


def check_model_pair(
    first: np.ndarray, second: np.ndarray, names: tuple[str, str], allow_inf: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Validate two [n_models, n_points] samples that must describe the same points."""
    a = _as_model_matrix(first, names[0], allow_inf)
    b = _as_model_matrix(second, names[1], allow_inf)
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same number of points, "
            f"got {a.shape[1]} and {b.shape[1]}"
        )
    return a, b


def _bin_counts(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, bins: int) -> np.ndarray:
    """Histogram counts [n_points, bins] with per-point range, same edges/semantics as np.histogram.

    A floor-based first guess is corrected against the real edges (the same
    np.linspace edges np.histogram uses), so values sitting exactly on an edge
    land in the same bin as np.histogram would put them; the last bin is closed.
    """
    n_points = x.shape[1]
    span = np.where(hi > lo, hi - lo, 1.0)  # degenerate points are zeroed by the caller
    edges = np.linspace(lo, hi, bins + 1, axis=1)  # [n_points, bins + 1]
    guess = np.floor((x - lo) * (bins / span))
    idx = np.clip(guess, 0, bins - 1).astype(np.intp).T  # [n_points, n_models]
    xt = x.T
    idx -= xt < np.take_along_axis(edges, idx, axis=1)
    idx += (xt >= np.take_along_axis(edges, idx + 1, axis=1)) & (idx != bins - 1)
    flat = (np.arange(n_points)[:, None] * bins + idx).ravel()
    return np.bincount(flat, minlength=n_points * bins).reshape(n_points, bins)


def klom(
    unlearned_margins: np.ndarray,
    oracle_margins: np.ndarray,
    bins: int = 20,
    clip: float = 100.0,
    floor: float = 1e-5,
) -> np.ndarray:
    """Per-point KL(P_unlearned || Q_oracle) of clipped, pooled-range histograms of margins.

    Inputs are [n_models, n_points]; the two model counts may differ. Margins are
    clipped to [-clip, clip] so a few exploding margins cannot stretch the bins;
    q is floored where p > 0 so mass the oracles never produce is penalised
    heavily but finitely. A point whose pooled values are all identical scores 0.
    """
    if not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    if not clip > 0:
        raise ValueError(f"clip must be positive, got {clip!r}")
    if not floor > 0:
        raise ValueError(f"floor must be positive, got {floor!r}")
    u, o = check_model_pair(unlearned_margins, oracle_margins, ("unlearned_margins", "oracle_margins"))
    u = np.clip(u, -clip, clip)
    o = np.clip(o, -clip, clip)
    lo = np.minimum(u.min(axis=0), o.min(axis=0))
    hi = np.maximum(u.max(axis=0), o.max(axis=0))
    p = _bin_counts(u, lo, hi, bins) / u.shape[0]
    q = _bin_counts(o, lo, hi, bins) / o.shape[0]
    support = p > 0
    q = np.where(support, np.maximum(q, floor), 1.0)
    terms = np.where(support, p * np.log(np.where(support, p, 1.0) / q), 0.0)
    out = terms.sum(axis=1)
    out[lo == hi] = 0.0
    return out


def klom_summary(per_point: np.ndarray) -> dict[str, float]:
    """Mean and upper tail of per-point KLoM: the tail shows points the method fails to forget."""
    arr = np.asarray(per_point, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"per_point must be a non-empty 1-D array, got shape {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError("per_point contains NaN")
    return {
        "mean": float(arr.mean()),
        "p95": float(np.percentile(arr, 95)),
        "p99": float(np.percentile(arr, 99)),
    }
