"""Membership-inference metrics of a run, from stored arrays: U-LiRA on the forget set and the population attack."""
from __future__ import annotations

import numpy as np

from bench.metrics.mia import population_mia, ulira


def membership_metrics(arrays: dict, seed: int) -> dict:
    """U-LiRA with half of the unlearned and oracle models as shadows and the other halves (plus the
    independent noise-floor oracles) as targets; and the population attack on the unlearned models.

    ``arrays[role][split][stat]`` are [n_models, n_points] as the work units store them.
    """
    out: dict = {}
    stat_u = arrays["unlearned"]["forget"]["confidence"]
    stat_o = arrays["oracle"]["forget"]["confidence"]
    n = min(len(stat_u), len(stat_o))
    if n < 4:
        out["ulira"] = {"skipped": "U-LiRA needs --n-models 4 or more (half shadows, half targets)"}
    else:
        half = n // 2
        negatives = arrays["floor"]["forget"]["confidence"] if "floor" in arrays else stat_o[half:]
        out["ulira"] = {**ulira(stat_u[:half], stat_o[:half], stat_u[half:], negatives),
                        "shadow_models_per_side": half}
    try:
        out["population_mia"] = population_mia(np.asarray(arrays["unlearned"]["forget"]["loss"]),
                                               np.asarray(arrays["unlearned"]["val"]["loss"]), seed)
    except ValueError as err:
        out["population_mia"] = {"skipped": str(err)}
    return out


#: extra metrics a run can ask for with ``--metrics NAME``: each reads the stored arrays only
EXTRA_METRICS = {"ulira": membership_metrics}
