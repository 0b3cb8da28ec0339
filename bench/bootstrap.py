"""Paired percentile bootstrap over examples, for statistics that are not means (percentiles, tails).

Why: a KLoM summary such as the 99th percentile of per-example KLoM has no closed-form standard error, and
two methods scored on the same examples are correlated, so comparing two separate intervals throws most of
the evidence away. Resampling the *same* examples for both methods and taking the interval of the
difference (a paired bootstrap) keeps that correlation. Data come in strata (e.g. the forget, retain and
validation splits), each resampled within itself so every replicate keeps the strata's sizes.

``bench.stats`` holds the paired t-test for means; this module is for everything else.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

__all__ = ["Interval", "PairedInterval", "draw_indices", "percentile_interval", "paired_bootstrap",
           "p99_of_strata", "verdict"]

#: statistic of one replicate: one array per stratum, each [n_boot, n_stratum] -> [n_boot]
Statistic = Callable[[Sequence[np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile-bootstrap interval."""

    estimate: float
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def __str__(self) -> str:
        return f"{self.estimate:.3g} [{self.low:.3g}, {self.high:.3g}]"


@dataclass(frozen=True)
class PairedInterval:
    """Intervals of a, of b and of the paired difference a - b, from the same resampled examples."""

    a: Interval
    b: Interval
    difference: Interval
    n_boot: int
    confidence: float


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def draw_indices(sizes: Sequence[int], n_boot: int, seed: int) -> list[np.ndarray]:
    """One [n_boot, size] array of indices drawn with replacement per stratum, from one seeded generator."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if any(int(s) < 1 for s in sizes):
        raise ValueError(f"every stratum needs at least one example, got sizes {list(sizes)}")
    rng = np.random.default_rng(seed)
    return [rng.integers(0, int(s), size=(n_boot, int(s))) for s in sizes]


def percentile_interval(replicates: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The (1 - c)/2 and (1 + c)/2 quantiles of the replicates (numpy's linear interpolation)."""
    _check_confidence(confidence)
    values = np.asarray(replicates, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all():
        raise ValueError("replicates must be a non-empty 1-D array of finite values")
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def _strata(values: Sequence[np.ndarray], name: str) -> list[np.ndarray]:
    arrays = [np.asarray(v, dtype=np.float64) for v in values]
    if not arrays:
        raise ValueError(f"{name} has no strata")
    for i, arr in enumerate(arrays):
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"{name}[{i}] must be a non-empty 1-D array, got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{name}[{i}] has non-finite values")
    return arrays


def paired_bootstrap(a: Sequence[np.ndarray], b: Sequence[np.ndarray], statistic: Statistic, *,
                     n_boot: int = 2000, confidence: float = 0.95, seed: int = 0) -> PairedInterval:
    """Percentile intervals of statistic(a), statistic(b) and their difference, resampling examples in pairs.

    ``a[s][j]`` and ``b[s][j]`` are the two methods' values on the same example j of stratum s; each
    replicate draws one set of indices per stratum and applies it to both, so the difference's interval
    reflects only how the methods differ on the same examples.
    """
    _check_confidence(confidence)
    a, b = _strata(a, "a"), _strata(b, "b")
    if [len(x) for x in a] != [len(x) for x in b]:
        raise ValueError(f"a and b must have the same strata sizes, got {[len(x) for x in a]} and "
                         f"{[len(x) for x in b]}")
    indices = draw_indices([len(x) for x in a], n_boot, seed)
    whole = [np.arange(len(x))[None, :] for x in a]
    est_a, est_b = float(statistic([x[i] for x, i in zip(a, whole)])[0]), float(
        statistic([x[i] for x, i in zip(b, whole)])[0])
    rep_a = np.asarray(statistic([x[i] for x, i in zip(a, indices)]), dtype=np.float64)
    rep_b = np.asarray(statistic([x[i] for x, i in zip(b, indices)]), dtype=np.float64)
    return PairedInterval(a=Interval(est_a, *percentile_interval(rep_a, confidence)),
                          b=Interval(est_b, *percentile_interval(rep_b, confidence)),
                          difference=Interval(est_a - est_b, *percentile_interval(rep_a - rep_b, confidence)),
                          n_boot=n_boot, confidence=confidence)


def p99_of_strata(strata: Sequence[np.ndarray]) -> np.ndarray:
    """Paper 003's KLoM summary of one replicate: the 99th percentile per stratum, averaged over strata."""
    return np.mean([np.percentile(x, 99, axis=-1) for x in strata], axis=0)


def verdict(difference: Interval, *, lower: str = "lower", higher: str = "higher", tie: str = "tie") -> str:
    """``lower`` when the whole interval of a - b is below 0, ``higher`` when above, else ``tie``."""
    if difference.high < 0:
        return lower
    if difference.low > 0:
        return higher
    return tie
