"""The reduce step: every metric and the result record from stored per-example arrays only.

It reads N unit entries (the unlearned models' arrays) and the method-independent statistics of originals,
oracles and noise-floor models (from the cache, or from exported files), never a model.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from bench.degenerate import metric_warnings
from bench import precompute
from bench.wallclock import fresh_wall_clock
from bench.errors import BenchError
from bench.metrics.declared import declare
from bench.metrics.membership import EXTRA_METRICS
from bench.provenance import provenance
from bench.record import Record
from bench.providers import PROVIDERS
from bench.scoring import score
from bench.seeding import derive_seed
from bench.shards import describe_missing

# the cost of a run, relative to retraining one model (records' ``timings``)
declare("gradient_evals_relative_to_retrain", "lower", "mean over unlearned models of per-example gradient "
        "evaluations, divided by those of retraining one model")
declare("cost_relative_to_retrain", "lower", "mean over timed unlearned models of wall-clock seconds, divided by "
        "retraining one model on the same machine")
declare("precompute_gradient_evals_relative_to_retrain", "lower", "one-off precomputation (datamodels, oracle "
        "targets) in gradient evaluations relative to retraining, charged beside the per-request cost")
from bench.statistics import ModelStats, load_stats
from oracles.cache import ModelStore

if TYPE_CHECKING:
    from bench.runner import RunSpec
    from bench.units import UnitPlan


def _role_stats(plan: "UnitPlan", store: ModelStore, role: str, i: int) -> ModelStats | None:
    if role in ("oracle", "floor") and plan.imported is not None:
        return plan.imported.stats(role, i)
    return load_stats(store, plan.role_stats_spec(role, i))


def load_arrays(plan: "UnitPlan", store: ModelStore) -> tuple[dict, dict, dict[str, list[ModelStats]]]:
    """(arrays[role][split][stat] stacked over models, utility[role][split] per model, entries per role)."""
    n = plan.n_models
    units = [load_stats(store, plan.unit_spec(i)) for i in range(n)]
    missing = [i for i, u in enumerate(units) if u is None]
    if missing:
        raise BenchError(f"cannot score: {describe_missing(missing, n)} (or their entries failed verification); "
                         "rerun the command to compute them")
    members: dict[str, list[ModelStats]] = {"original": [], "unlearned": units, "oracle": [], "floor": []}
    for source in sorted({plan.source(i) for i in range(n)}):
        members["original"].append(_role_stats(plan, store, "original", source))
    for role in ("oracle", "floor"):
        if role == "floor" and n < 2:
            continue
        members[role] = [_role_stats(plan, store, role, i) for i in range(n)]
    absent = [(role, i) for role, stats in members.items() for i, s in enumerate(stats) if s is None]
    if absent:
        raise BenchError(f"cannot score: statistics of {', '.join(f'{r} {i}' for r, i in absent[:20])} are missing "
                         "from the cache; rerun the command to recompute them")
    arrays, utility = {}, {}
    for role, stats in members.items():
        if not stats:
            continue
        arrays[role] = {split: {stat: np.stack([s.arrays[split][stat] for s in stats])
                                for stat in stats[0].arrays[split]} for split in stats[0].arrays}
        utility[role] = {split: [s.utility[split] for s in stats] for split in stats[0].arrays}
    return arrays, utility, members


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _cost(metas: list[dict], retrain: dict, charged: dict | None) -> dict:
    evals = [m.get("evaluations", {}).get("gradient_evals") for m in metas]
    grad_mean = _mean([float(e) for e in evals if e is not None])
    ref = retrain.get("gradient_evals") or 0
    return {
        "unlearn_gradient_evals_mean": grad_mean,
        "unlearn_forward_evals_mean": _mean([float(m.get("evaluations", {}).get("forward_evals", np.nan))
                                             for m in metas]),
        "retrain_gradient_evals": ref,
        "gradient_evals_relative_to_retrain": grad_mean / ref if grad_mean is not None and ref > 0 else None,
        # beside the per-request cost, never added to it (bench.precompute)
        "precompute_gradient_evals": charged["gradient_evals"] if charged else 0,
        "precompute_gradient_evals_relative_to_retrain":
            charged["gradient_evals_relative_to_retrain"] if charged else 0.0,
    }


def reduce_units(plan: "UnitPlan", store: ModelStore, spec: "RunSpec", counts: dict, retrain: dict,
                 log: Callable[[str], None] = lambda _m: None) -> dict:
    """The result record of a run whose units are all stored."""
    task, method, n = plan.task, plan.method, plan.n_models
    arrays, utility, members = load_arrays(plan, store)
    metas = [u.meta for u in members["unlearned"]]
    distances = [m["param_distance"] for m in metas if m.get("param_distance")] if task.unique_optimum else None
    metrics, per_example = score(arrays, utility, distances or None, task.extra_klom_conventions)
    for name in spec.metrics:
        metrics.update(EXTRA_METRICS[name](arrays, derive_seed(spec.seed, "score")))
    wall = fresh_wall_clock(metas, counts.get("computed_units", []), retrain, workers=spec.executor.workers,
                            parallel=bool(counts.get("parallel", False)))
    trained = counts["trained"]
    oracle_seconds = [] if plan.imported is not None else [s.meta.get("train_seconds") for s in members["oracle"]]
    inputs: dict = {"datamodels": None, "recorded_gradients": None, "precompute_seconds": 0.0}
    charges = []
    for name in plan.inputs:
        infos = [m["inputs"][name] for m in metas]
        inputs.update(PROVIDERS[name].summarize(infos, {}))
        if PROVIDERS[name].charge is not None:
            charges.append(PROVIDERS[name].charge(plan, infos, retrain))
    charged = precompute.summarize(charges, retrain)
    first = metas[0]
    cost = _cost(metas, retrain, charged)
    device = torch.device(plan.device)
    return Record(
        method={"name": method.name, "params": method.get_params(), "code": plan.code},
        task={"name": task.name, "version": task.version, "params": task.get_params(),
              "recipe": task.training_recipe(), "label": task.config_label()},
        forget_ids=[int(i) for i in plan.forget_idx],
        n_models=n,
        protocol=plan.protocol,
        seeds={"base": plan.base_seed, **plan.seeds},
        steps_used=[int(m["steps_used"]) for m in metas],
        timings={
            **wall,
            "retrain_seconds": retrain["seconds"],
            "retrain_loadavg": retrain.get("loadavg"),
            "retrain_remeasured_for_load": retrain.get("remeasured", False),
            **({"retrain_estimated": retrain["estimated"]} if retrain.get("estimated") else {}),
            "ensemble_train_seconds_per_model": _mean(oracle_seconds),
            "precompute_seconds": inputs.pop("precompute_seconds"),
            **cost,
        },
        cost={"gradient_evals": cost["gradient_evals_relative_to_retrain"],
              "wall_clock": wall["cost_relative_to_retrain"],
              "models_timed": wall["unlearn_models_timed"],
              "precompute_gradient_evals": cost["precompute_gradient_evals_relative_to_retrain"]},
        precompute=charged,
        cache={"originals": len(plan.seeds["original"]) - trained.get("original", 0),
               "oracles": n - trained.get("oracle", 0), "floor": (n - trained.get("floor", 0)) if n >= 2 else 0,
               "unlearned": n - sum(1 for i in counts.get("computed_units", []) if not metas[i]["unlearned_cached"])},
        units={"total": counts["total"], "cached": counts["cached"], "computed": counts["computed"]},
        scoring={"max_scored_points": plan.points.max_points, "points": plan.points.counts(),
                 "oracle_source": plan.imported.describe() if plan.imported is not None else "cache"},
        metrics=metrics,
        warnings=metric_warnings(task, n),
        task_report=first.get("task_report", {}),
        curves=first.get("curve"),
        inputs=inputs,
        per_example=per_example,
        provenance={**provenance(device), "backend": spec.executor.backend, "workers": spec.executor.workers},
    ).to_dict()

