"""Wall-clock cost from fresh measurements only.

An unlearned model (or a whole work unit) read from the cache carries the seconds of the run that first
computed it, on whatever machine and under whatever load that was (measured: retrain reported at 6.5x
retraining at N = 32 from three models first trained under load). Replaying those numbers as this run's cost
is silent staleness, so the wall-clock mean is taken over the models unlearned *in this run* only, and the
record and the table say how many that was. The deterministic cost (gradient evaluations) does not depend
on when or where it was counted, so it still uses every model.
"""
from __future__ import annotations

import math


def timed_in_this_run(metas: list[dict], computed_units: list[int]) -> list[int]:
    """Indices of the units whose unlearning was timed in this run: computed now, from a freshly unlearned model."""
    computed = set(int(i) for i in computed_units)
    return [i for i, meta in enumerate(metas) if i in computed and not meta.get("unlearned_cached", False)]


def fresh_wall_clock(metas: list[dict], computed_units: list[int], retrain: dict, *, workers: int,
                     parallel: bool) -> dict:
    """The ``timings`` fields of wall-clock cost: mean unlearning seconds over the models timed now (None when
    none was), how many were timed, and the ratio to retraining one model."""
    timed = timed_in_this_run(metas, computed_units)
    seconds = [float(metas[i]["unlearn_seconds"]) for i in timed
               if isinstance(metas[i].get("unlearn_seconds"), (int, float)) and math.isfinite(metas[i]["unlearn_seconds"])]
    mean = sum(seconds) / len(seconds) if seconds else None
    earlier = [float(m["unlearn_seconds"]) for i, m in enumerate(metas) if i not in set(timed)
               and isinstance(m.get("unlearn_seconds"), (int, float)) and math.isfinite(m["unlearn_seconds"])]
    ref = float(retrain["seconds"])
    return {
        "unlearn_seconds_mean": mean,
        "unlearn_models_timed": len(seconds),
        # kept apart, never in the cost: what the cached models took when first computed (another load, maybe
        # another machine); for experiments that must say where a number came from when they fall back on it
        "unlearn_seconds_earlier_mean": sum(earlier) / len(earlier) if earlier else None,
        "unlearn_timed_note": timed_note(len(seconds), len(metas), workers if parallel else 1),
        "unlearn_timed_workers": workers if parallel else 1,
        "cost_relative_to_retrain": mean / ref if mean is not None and ref > 0 else None,
        "retrain_measured_in_this_run": bool(retrain.get("measured_now", False)),
    }


def timed_note(timed: int, total: int, workers: int) -> str:
    """'wall-clock from 5 of 32 models timed in this run' (and how many ran at once), or why there is none."""
    if timed == 0:
        return (f"wall-clock not reported: none of the {total} unlearned models was computed in this run (all came "
                "from the cache); rerun with --no-cache (or a fresh --cache-dir) to time them")
    together = f", {workers} worker processes at once" if workers > 1 else ""
    return f"wall-clock from {timed} of {total} models timed in this run{together}"
