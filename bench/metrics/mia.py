"""Membership inference against unlearning: U-LiRA (per-example likelihood ratio) and a population attack."""
from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score, roc_curve

from bench.metrics.declared import declare

# an attack's ideal is chance, not an extreme: neither direction is "better" for a leaderboard
AUC = declare("auc", None, "area under the attack's ROC curve over all scored examples", "AUC")
TPR_AT_FPR = declare("tpr_at_fpr", None, "highest attack true-positive rate at a fixed false-positive rate", "TPR")


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, fpr_limit: float) -> float:
    """Highest true-positive rate among ROC points whose false-positive rate is at most ``fpr_limit``."""
    fpr, tpr, _ = roc_curve(labels, scores)
    allowed = fpr <= fpr_limit
    return float(tpr[allowed].max()) if allowed.any() else 0.0


def attack_summary(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    return {"auc": float(roc_auc_score(labels, scores)), "tpr_at_1pct_fpr": tpr_at_fpr(labels, scores, 0.01),
            "tpr_at_0.1pct_fpr": tpr_at_fpr(labels, scores, 0.001)}


def ulira_scores(shadow_in: np.ndarray, shadow_out: np.ndarray, targets: np.ndarray,
                 min_std: float = 1e-3) -> np.ndarray:
    """Per (target model, example): log N(s; in) - log N(s; out), Gaussians fitted per example to shadows.

    ``shadow_in``: statistics [models, examples] of shadow models that saw each example and unlearned it;
    ``shadow_out``: of shadow models that never saw it. A large score says "this model was unlearned".
    """
    mu_in, mu_out = shadow_in.mean(0), shadow_out.mean(0)
    sd_in = np.maximum(shadow_in.std(0, ddof=1), min_std)
    sd_out = np.maximum(shadow_out.std(0, ddof=1), min_std)
    return stats.norm.logpdf(targets, mu_in, sd_in) - stats.norm.logpdf(targets, mu_out, sd_out)


def ulira(shadow_in: np.ndarray, shadow_out: np.ndarray, target_in: np.ndarray,
          target_out: np.ndarray) -> dict[str, float]:
    """U-LiRA (Hayes et al. 2024): can an attacker tell unlearned target models from retrained ones, per example?

    AUC 0.5 means unlearning is indistinguishable from retraining; 1.0 means every example gives it away.
    """
    if min(len(shadow_in), len(shadow_out)) < 2 or min(len(target_in), len(target_out)) < 1:
        raise ValueError("U-LiRA needs at least 2 shadow models per side and 1 target model per side")
    scores = np.concatenate([ulira_scores(shadow_in, shadow_out, target_in).ravel(),
                             ulira_scores(shadow_in, shadow_out, target_out).ravel()])
    labels = np.concatenate([np.ones(target_in.size), np.zeros(target_out.size)])
    return attack_summary(labels, scores)


def population_mia(forget_losses: np.ndarray, heldout_losses: np.ndarray, seed: int = 0) -> dict[str, float]:
    """The weaker population attack: a logistic regression on per-example losses, forget vs held-out examples,
    scored by cross-validated AUC per model and averaged over models ([models, examples] inputs)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    rng = np.random.default_rng(seed)
    k = min(forget_losses.shape[1], heldout_losses.shape[1])
    if k < 4:
        raise ValueError("the population attack needs at least 4 forget and 4 held-out examples")
    aucs = []
    for f, h in zip(forget_losses, heldout_losses):
        x = np.concatenate([rng.choice(f, k, replace=False), rng.choice(h, k, replace=False)]).reshape(-1, 1)
        y = np.concatenate([np.ones(k), np.zeros(k)])
        folds = StratifiedKFold(n_splits=min(5, k), shuffle=True, random_state=seed)
        proba = cross_val_predict(LogisticRegression(), x, y, cv=folds, method="predict_proba")[:, 1]
        aucs.append(roc_auc_score(y, proba))
    return {"auc": float(np.mean(aucs)), "auc_std": float(np.std(aucs)), "examples_per_side": int(k)}
