"""Warnings for scores that cannot tell methods apart, so a table never presents a degenerate number as a
finding: identical models in every ensemble (a deterministic trainer), or too few models for KLoM's
20-bin histograms (at N <= 3 every method, the noise floor included, scores about 9-11.5).
"""
from __future__ import annotations

from bench.task import Task

#: below this many models per ensemble KLoM saturates and the challenge score is not computed
MIN_INFORMATIVE_MODELS = 4


def metric_warnings(task: Task, n_models: int) -> list[str]:
    """Plain sentences for the record's ``warnings`` list and the terminal table (empty when none apply)."""
    warnings = []
    identical = task.identical_models_reason()
    if identical and n_models >= 2:
        warnings.append(f"{identical}: every original and every oracle is the same model, so per-example "
                        "distributions are single points; KLoM is only ever 0 or about 11.5 and epsilon 0 or 50, "
                        "and a method within 1e-3 of the oracle can score like noop")
    if 2 <= n_models < MIN_INFORMATIVE_MODELS:
        warnings.append(f"N={n_models} models per ensemble: KLoM's 20-bin histograms saturate (about 9-11.5 for "
                        "every method, the noise floor included); use --n-models 8 or more to tell methods apart")
    return warnings
