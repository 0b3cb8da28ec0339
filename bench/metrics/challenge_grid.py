"""The threshold grids of the NeurIPS 2023 challenge scorer, in its exact float arithmetic.

Both the fast epsilon and its slow reference take their thresholds from here, because the grid *is*
part of the metric's definition: which thresholds exist decides which (FPR, FNR) pairs an attacker
can reach. The official scorer (google-deepmind/unlearning_evaluation, ``metric.py``) spaces every
grid 1/100 apart over the span it searches, so the number of points is ``ceil(span * 100)`` computed
from the same float expressions it uses; a span of 4.000000000000001 gives 401 points, not 400.

One deliberate difference: the official single-threshold grid is a float32 ``torch.linspace`` (its
default dtype); ours is the float64 ``numpy.linspace`` of the same end points. The two grids differ
by at most one float32 rounding (about 1e-7 relative), which only matters for a confidence lying
within that distance of a threshold.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["BUFFER", "N_LEFT", "PER_UNIT", "double_rights", "double_lefts", "single_thresholds"]

PER_UNIT = 100  # thresholds per unit of confidence
BUFFER = 2.0  # the double-threshold search reaches this far beyond the peaky sample
N_LEFT = math.ceil(2 * BUFFER * PER_UNIT)  # left thresholds per right threshold: 400


def _count(span: float) -> int:
    return int(math.ceil(span * PER_UNIT))


def single_thresholds(lo: float, hi: float) -> np.ndarray:
    """Thresholds t of "predict positive iff c >= t" over the pooled range [lo, hi]."""
    return np.linspace(lo, hi, _count(hi - lo))


def double_rights(peaky_lo: float, peaky_hi: float) -> tuple[np.ndarray, float]:
    """(right thresholds, width) of the interval attack around the peaky sample.

    width is the peaky sample's range; r runs from ``peaky_lo + width - 2`` to ``peaky_hi + 2``, a span
    of about 4 whatever the width, evaluated in the official order of operations.
    """
    width = peaky_hi - peaky_lo
    start = (peaky_lo + width) - BUFFER
    stop = peaky_hi + BUFFER
    return np.linspace(start, stop, _count(stop - start)), width


def double_lefts(rights: np.ndarray, width: float) -> np.ndarray:
    """Left thresholds [len(rights), 400]: for each r, 400 points over [r - width - 2, r - width + 2].

    numpy's linspace computes ``start + i * step`` elementwise, so this vectorised call yields the
    same bits as one scalar call per r (the slow reference makes those scalar calls).
    """
    shifted = np.asarray(rights, dtype=np.float64) - width
    return np.linspace(shifted - BUFFER, shifted + BUFFER, N_LEFT, axis=1)
