"""Paired statistics for reports (paper 000, Tables 1 and 3).

Paper 000 compares unlearning methods with paired t-tests on per-trial scores
(t, p, mean difference, 95% CI, Cohen's d) and summarises metrics with mean /
median / std / min / max. These helpers compute exactly those numbers so reports
can be checked against the paper's tables.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as _st

__all__ = ["paired_comparison", "describe"]


def _as_vector(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN")
    return arr


def paired_comparison(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> dict:
    """Paired t-test of a against b (difference a - b), with CI and effect size.

    Returns a dict with
      n, mean_a, mean_b, mean_difference (mean of a - b), sd_difference (ddof=1),
      t_statistic, p_value (scipy.stats.ttest_rel, two-sided),
      ci_low, ci_high (mean_difference -/+ t_{(1+c)/2, n-1} * sd / sqrt(n)),
      cohens_d (mean_difference / sd_difference: the paired d_z), confidence.

    Degenerate case, all differences equal (sd = 0): the CI collapses to the mean
    difference; if that mean is non-zero, t and d are +/-inf (the sign of the
    mean) and p = 0.0, the limits as sd -> 0; if it is zero, t, d and p are NaN
    (0/0: no evidence either way). scipy is not called then, so no warning.
    Raises ValueError for unequal lengths, n < 2, NaN inputs, or confidence
    outside (0, 1).
    """
    a = _as_vector(a, "a")
    b = _as_vector(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same length, got {a.size} and {b.size}")
    n = int(a.size)
    if n < 2:
        raise ValueError(f"a paired comparison needs n >= 2, got n={n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")

    diff = a - b
    mean_diff = float(diff.mean())
    sd = float(diff.std(ddof=1))
    half = float(_st.t.ppf((1.0 + confidence) / 2.0, n - 1)) * sd / math.sqrt(n)

    if sd == 0.0:
        if mean_diff == 0.0:
            t_stat = p_value = d = math.nan
        else:
            t_stat = d = math.copysign(math.inf, mean_diff)
            p_value = 0.0
    else:
        res = _st.ttest_rel(a, b)
        t_stat = float(res.statistic)
        p_value = float(res.pvalue)
        d = mean_diff / sd

    return {
        "n": n,
        "mean_a": float(a.mean()),
        "mean_b": float(b.mean()),
        "mean_difference": mean_diff,
        "sd_difference": sd,
        "t_statistic": t_stat,
        "p_value": p_value,
        "ci_low": mean_diff - half,
        "ci_high": mean_diff + half,
        "cohens_d": d,
        "confidence": float(confidence),
    }


def describe(values) -> dict:
    """Mean, median, std (ddof=1), min, max (and n) of a sample, as in the paper's Table 3.

    std is NaN for a single value (ddof=1 is undefined there). Raises ValueError for
    an empty sample or NaN values.
    """
    arr = _as_vector(values, "values")
    if arr.size == 0:
        raise ValueError("describe needs at least one value")
    return {
        "n": int(arr.size),
        "mean": float(arr.mean()),
        "median": float(np.median(arr)),
        "std": float(arr.std(ddof=1)) if arr.size > 1 else math.nan,
        "min": float(arr.min()),
        "max": float(arr.max()),
    }
