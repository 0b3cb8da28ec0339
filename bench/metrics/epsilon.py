"""NeurIPS 2023 unlearning-challenge metric: per-example epsilon, forget score, final score.

For each forget example, an attacker sees one model's confidence statistic and must tell "unlearned"
from "retrained". The best threshold attack's (FPR, FNR) becomes an (epsilon, delta) differential-privacy
style epsilon. Every rule follows the official scorer (google-deepmind/unlearning_evaluation,
``metric.py``):

* positive = the sample with the larger median; on equal medians the unlearned sample;
* range(smaller) / range(larger) < 0.01: eps = 50 without any attack;
* single thresholds: ``ceil(pooled range * 100)`` points over the pooled range, positive iff c >= t;
* double thresholds: the peaky (smaller-range) sample is predicted inside [l, r]; on EQUAL ranges the
  smaller-median sample is the peaky one (the official code swaps on ``pos_range >= neg_range``); r takes
  ``ceil(span * 100)`` points over [min_peaky + width - 2, max_peaky + 2] (span about 4) and l 400
  points over [r - width - 2, r - width + 2] (see ``challenge_grid``);
* per threshold: FPR = FNR = 0 gives inf; exactly one of them 0, or both 1, discards the threshold;
  otherwise max of the two DP bounds, clipped at 0; the example's eps is the best kept one, in [0, 50].

Choices where the official code gives no number (documented, tested):

* every threshold discarded: the official code fails an assertion. Such an example is *undecided*;
  it scores the cap, 50 (no forget credit for an example the attack could not judge), and
  ``score_epsilons`` reports it so records can count it (``epsilon_undecided``);
* both samples constant: 0 if the constants are equal (indistinguishable), 50 otherwise;
* NaN or inf confidences are an error.

Precision: we compute in float64 throughout. The official code evaluates rates, the DP bounds and the
single-threshold grid in float32 (torch's default dtype), which moves its epsilons by up to about 2e-5.
The sample sizes may differ (rates are per sample); the official code needs equal sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import logsumexp

from bench.metrics.challenge_grid import double_lefts, double_rights, single_thresholds
from bench.metrics.declared import declare
from bench.metrics.klom import check_model_pair

FORGET_SCORE = declare("forget_score", "higher", "mean over forget examples of the bucket credit of their epsilon",
                       "challenge forget score F")
FINAL_SCORE = declare("final_score", "higher", "F x retain accuracy ratio x test accuracy ratio (accuracies averaged "
                      "over models)", "challenge final score")
EPSILON_MEAN = declare("epsilon_mean", "lower", "mean over forget examples of the per-example epsilon (capped at 50)",
                       "challenge \u03b5 mean")

__all__ = ["ChallengeForget", "EpsilonScores", "challenge_forget", "confidence_statistic", "epsilons",
           "final_score", "forget_score", "score_epsilons"]

EPS_CAP = 50.0
PEAKY_RATIO = 0.01
DELTA = 1e-5
_LOG_TINY = math.log(1e-45)
_ROW_BLOCK = 128  # right thresholds per block in the double-threshold search


def confidence_statistic(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """log(p_y + 1e-45) - log(sum_{k!=y} p_k + 1e-45), via log-softmax so it never overflows.

    Summing the other classes' log-probs (instead of 1 - p_y) keeps precision
    when p_y is close to 1, which is exactly where memorisation shows up.
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels)
    if z.ndim < 1 or z.shape[-1] < 2:
        raise ValueError(f"logits must be [..., n_classes] with n_classes >= 2, got shape {z.shape}")
    if y.shape != z.shape[:-1]:
        raise ValueError(f"labels shape {y.shape} does not match logits batch shape {z.shape[:-1]}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= z.shape[-1]):
        raise ValueError(f"labels must lie in [0, {z.shape[-1]})")
    if not np.isfinite(z).all():
        raise ValueError("logits contain NaN or inf")
    logp = z - logsumexp(z, axis=-1, keepdims=True)
    idx = y[..., None].astype(np.intp)
    logp_y = np.take_along_axis(logp, idx, axis=-1)[..., 0]
    others = logp.copy()
    np.put_along_axis(others, idx, -np.inf, axis=-1)
    log_rest = logsumexp(others, axis=-1)
    return np.logaddexp(logp_y, _LOG_TINY) - np.logaddexp(log_rest, _LOG_TINY)


@lru_cache(maxsize=16)
def _eps_table(n_pos: int, n_neg: int, delta: float) -> np.ndarray:
    """eps for every (false-positive count, false-negative count); shared by all thresholds.

    Entry [fp, fn] is -inf for a discarded threshold (exactly one error rate zero, or both one: the
    official code's log of a negative number gives NaN there), +inf when both rates are zero, else
    max(two DP bounds, 0).
    """
    fpr = (np.arange(n_neg + 1) / n_neg)[:, None]
    fnr = (np.arange(n_pos + 1) / n_pos)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        a = 1.0 - delta - fpr
        b = 1.0 - delta - fnr
        t1 = np.where(a > 0, np.log(np.where(a > 0, a, 1.0)) - np.log(fnr), -np.inf)
        t2 = np.where(b > 0, np.log(np.where(b > 0, b, 1.0)) - np.log(fpr), -np.inf)
    table = np.maximum(np.maximum(t1, t2), 0.0)
    table[0, 1:] = -np.inf
    table[1:, 0] = -np.inf
    table[n_neg, n_pos] = -np.inf
    table[0, 0] = np.inf
    table.setflags(write=False)
    return table


def _single_best(pos: np.ndarray, neg: np.ndarray, table: np.ndarray) -> float:
    """Best 'positive iff c >= t' attack over the pooled-range grid (inputs sorted)."""
    t = single_thresholds(min(pos[0], neg[0]), max(pos[-1], neg[-1]))
    if t.size == 0:
        return -np.inf
    fp = neg.size - np.searchsorted(neg, t, side="left")
    fn = np.searchsorted(pos, t, side="left")
    return float(table[fp, fn].max())


def _merged_counts(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pool both sorted samples so one searchsorted yields counts for both.

    The first k pooled values are exactly those below a key, so cum_pos[k] / cum_neg[k] are the
    per-sample counts; ties between samples do not matter.
    """
    pooled = np.concatenate([pos, neg])
    order = np.argsort(pooled, kind="stable")
    cum_pos = np.zeros(pooled.size + 1, dtype=np.intp)
    np.cumsum(order < pos.size, out=cum_pos[1:])
    cum_neg = np.arange(pooled.size + 1, dtype=np.intp) - cum_pos
    return pooled[order], cum_pos, cum_neg


def _double_best(pos: np.ndarray, neg: np.ndarray, peaky_is_pos: bool, table: np.ndarray) -> float:
    """Best attack labelling [l, r] as the peaky sample's class (inputs sorted).

    Blocks of right thresholds keep the (r x 400) grid small; the result does not depend on them.
    """
    peaky = pos if peaky_is_pos else neg
    rights, width = double_rights(peaky[0], peaky[-1])
    pooled, cum_pos, cum_neg = _merged_counts(pos, neg)
    flat_table = table.ravel()
    best = -np.inf
    for start in range(0, rights.size, _ROW_BLOCK):
        right = rights[start : start + _ROW_BLOCK]
        left = double_lefts(right, width)
        k_r = np.searchsorted(pooled, right, side="right")[:, None]  # values <= r
        k_l = np.searchsorted(pooled, left.ravel(), side="left").reshape(left.shape)  # values < l
        in_pos = np.maximum(cum_pos[k_r] - cum_pos[k_l], 0)  # l > r gives an empty interval
        in_neg = np.maximum(cum_neg[k_r] - cum_neg[k_l], 0)
        if peaky_is_pos:
            fp, fn = in_neg, pos.size - in_pos
        else:
            fp, fn = neg.size - in_neg, in_pos
        best = max(best, float(flat_table.take(fp * (pos.size + 1) + fn).max()))
    return best


def _example_epsilon(u: np.ndarray, r: np.ndarray, delta: float) -> tuple[float, bool]:
    """(eps, undecided) for one example; u and r are sorted 1-D samples."""
    u_pos = not np.median(r) > np.median(u)
    pos, neg = (u, r) if u_pos else (r, u)
    range_pos, range_neg = pos[-1] - pos[0], neg[-1] - neg[0]
    if max(range_pos, range_neg) == 0:
        return (0.0 if u[0] == r[0] else EPS_CAP), False
    if min(range_pos, range_neg) / max(range_pos, range_neg) < PEAKY_RATIO:
        return EPS_CAP, False
    peaky_is_pos = range_pos < range_neg  # equal ranges: the negative (smaller-median) sample
    table = _eps_table(pos.size, neg.size, float(delta))
    best = _single_best(pos, neg, table)
    if best < np.inf:  # a perfect split already hits the cap; the double family cannot beat it
        best = max(best, _double_best(pos, neg, peaky_is_pos, table))
    if best == -np.inf:
        return EPS_CAP, True
    return float(min(max(best, 0.0), EPS_CAP)), False


@dataclass(frozen=True)
class EpsilonScores:
    """Per-example epsilons and which of them no threshold could decide (scored at the cap)."""

    epsilon: np.ndarray
    undecided: np.ndarray

    @property
    def n_undecided(self) -> int:
        return int(self.undecided.sum())


def score_epsilons(unlearned_confs: np.ndarray, retrained_confs: np.ndarray,
                   delta: float = DELTA) -> EpsilonScores:
    """Per-example epsilon in [0, 50] from [n_models, n_points] confidences, plus the undecided mask."""
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")
    u, r = check_model_pair(
        unlearned_confs, retrained_confs, ("unlearned_confs", "retrained_confs"), allow_inf=False
    )
    u = np.sort(u, axis=0).T.copy()
    r = np.sort(r, axis=0).T.copy()
    results = [_example_epsilon(u[i], r[i], delta) for i in range(u.shape[0])]
    return EpsilonScores(np.array([e for e, _ in results]), np.array([d for _, d in results], dtype=bool))


def epsilons(unlearned_confs: np.ndarray, retrained_confs: np.ndarray, delta: float = DELTA) -> np.ndarray:
    """Per-example epsilon in [0, 50] from [n_models, n_points] confidence statistics."""
    return score_epsilons(unlearned_confs, retrained_confs, delta).epsilon


def forget_score(eps: np.ndarray, n_models: int) -> float:
    """Mean bucket value: eps in [0.5k, 0.5k+0.5) is worth 2^-k while 0.5(k+1) <= ceil(ln(n_models-1)).

    ``n_models`` is the number of *unlearned* models, as in the official scorer. The cap on buckets
    reflects that with n_models samples epsilons above about ln(n_models - 1) cannot be told apart
    from "perfectly distinguishable". ``challenge_forget`` derives it from the confidences.
    """
    if isinstance(n_models, bool) or not isinstance(n_models, (int, np.integer)):
        raise ValueError(f"n_models must be an integer, got {n_models!r}")
    if n_models < 3:
        raise ValueError(
            f"n_models must be >= 3: with {n_models} models ceil(ln(n_models - 1)) <= 0, so no bucket exists"
        )
    arr = np.asarray(eps, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"eps must be a non-empty 1-D array, got shape {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError("eps contains NaN")
    if (arr < 0).any():
        raise ValueError("eps must be non-negative")
    n_buckets = 2 * math.ceil(math.log(n_models - 1))
    k = np.floor(np.minimum(arr, n_buckets) * 2.0)  # eps*2 is exact, so bucket edges are exact
    values = np.where(k < n_buckets, np.exp2(-np.minimum(k, n_buckets)), 0.0)
    return float(values.mean())


@dataclass(frozen=True)
class ChallengeForget:
    """The challenge's forget-quality result for one ensemble pair."""

    scores: EpsilonScores
    forget_score: float
    n_models: int  # unlearned models, the N of the bucket rule


def challenge_forget(unlearned_confs: np.ndarray, retrained_confs: np.ndarray,
                     delta: float = DELTA) -> ChallengeForget:
    """Epsilons and forget score F with N taken from the inputs (official: the unlearned count).

    Unequal ensemble sizes are refused: the official scorer compares N unlearned with N retrained
    models, and F's bucket rule would otherwise depend on which count one picks.
    """
    u, r = np.asarray(unlearned_confs), np.asarray(retrained_confs)
    if u.ndim == 2 and r.ndim == 2 and u.shape[0] != r.shape[0]:
        raise ValueError(
            f"the challenge score compares equal ensembles, got {u.shape[0]} unlearned and {r.shape[0]} "
            "retrained models: pass the same number of each"
        )
    scores = score_epsilons(u, r, delta)
    return ChallengeForget(scores, forget_score(scores.epsilon, int(u.shape[0])), int(u.shape[0]))


def final_score(
    forget_score: float,
    retain_acc_unlearned: float,
    retain_acc_retrained: float,
    test_acc_unlearned: float,
    test_acc_retrained: float,
) -> float:
    """F * (RA_U / RA_R) * (TA_U / TA_R): forgetting only counts if utility is kept."""
    values = {
        "forget_score": forget_score,
        "retain_acc_unlearned": retain_acc_unlearned,
        "retain_acc_retrained": retain_acc_retrained,
        "test_acc_unlearned": test_acc_unlearned,
        "test_acc_retrained": test_acc_retrained,
    }
    for name, value in values.items():
        if not np.isfinite(value) or not 0 <= value <= 1:
            raise ValueError(f"{name} must be a finite number in [0, 1], got {value!r}")
    for name in ("retain_acc_retrained", "test_acc_retrained"):
        if values[name] <= 0:
            raise ValueError(f"{name} must be in (0, 1] since it is a denominator, got {values[name]!r}")
    ratio_retain = retain_acc_unlearned / retain_acc_retrained
    ratio_test = test_acc_unlearned / test_acc_retrained
    return float(forget_score * ratio_retain * ratio_test)
