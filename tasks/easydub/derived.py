"""Statistics that are exact functions of the margin m = z_y - logsumexp_{k != y} z_k, for datasets that ship
margins only.

With S = sum_{k != y} exp(z_k): p_y = exp(z_y) / (exp(z_y) + S) = sigmoid(m), so
cross-entropy = -log p_y = softplus(-m), and the NeurIPS 2023 challenge statistic
log(p_y + 1e-45) - log(sum_{k != y} p_k + 1e-45) = log(sigmoid(m) + 1e-45) - log(sigmoid(-m) + 1e-45).
Computed from stored float32 margins they agree with the logit-based values up to that rounding.
Accuracy (argmax) is not a function of the margin: m > 0 implies a correct argmax, not conversely.
"""
from __future__ import annotations

import numpy as np

_LOG_TINY = np.log(1e-45)


def loss_from_margin(margin: np.ndarray) -> np.ndarray:
    """Per-example cross-entropy, float32: log(1 + exp(-m))."""
    return np.logaddexp(0.0, -np.asarray(margin, dtype=np.float64)).astype(np.float32)


def confidence_from_margin(margin: np.ndarray) -> np.ndarray:
    """The challenge statistic, float64, with the official 1e-45 floors."""
    m = np.asarray(margin, dtype=np.float64)
    log_p = -np.logaddexp(0.0, -m)     # log sigmoid(m)
    log_rest = -np.logaddexp(0.0, m)   # log sigmoid(-m)
    return np.logaddexp(log_p, _LOG_TINY) - np.logaddexp(log_rest, _LOG_TINY)
