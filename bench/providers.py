"""Named inputs a method asks for in ``Method.requires`` and how a unit gets them: one table, one row each.

A provider may name extra models its unit needs (trained, packed, before the units run), prepare something
shared once in the main process (datamodels), hand the unit its context value, and summarise what it
provided for the record. A new requirement is a new row here, not a branch in the runner.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import torch

from bench.memo import memoized
from bench.precompute import datamodels_charge, oracle_target_charge, recorded_gradients_charge
from oracles.recorded import totals_from_flat
from oracles.cache import cache_key

if TYPE_CHECKING:
    from bench.units import UnitEnv, UnitPlan


@dataclass(frozen=True)
class Provider:
    """How one named input reaches ``UnlearnContext.<field>``."""

    field: str
    provide: Callable[["UnitEnv"], tuple[Any, dict]]  # (context value, JSON info for the unit's entry)
    models: Callable[["UnitPlan", int], list[str]] = lambda plan, i: []  # roles of extra models unit i needs
    prepare: Callable[..., dict] | None = None  # main process, once, before the units (packed precompute)
    summarize: Callable[[list[dict], dict], dict] = lambda infos, prepared: {}  # record fields from unit infos
    # precomputation this input costs the method (bench.precompute), from (plan, unit infos, reference retraining)
    charge: Callable[["UnitPlan", list[dict], dict], dict] | None = None


def _oracle_outputs(env: "UnitEnv") -> tuple[Any, dict]:
    target = env.model("target")

    def predict(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return env.plan.task.outputs(target, x).detach()
    return predict, {}


def _recorded_gradients(env: "UnitEnv") -> tuple[Any, dict]:
    from oracles.recorded import record_gradients
    plan = env.plan
    original, spec = env.model("original"), env.spec("original")
    recorded = record_gradients(plan.task, plan.forget_idx, int(spec["seed"]), original, spec,
                                env.device, env.store)
    env.recorded_flat = recorded.flat
    info = {"bytes_by_group": recorded.bytes_by_group, "replay_difference": recorded.replay_weight_difference}
    return (lambda kind: totals_from_flat(recorded.flat, kind)), info


def _summarize_recorded(infos: list[dict], prepared: dict) -> dict:
    return {"recorded_gradients": {"bytes_by_group": infos[0]["bytes_by_group"],
                                   "replay_weight_difference": max(i["replay_difference"] for i in infos)}}


def _build_datamodels(plan: "UnitPlan", data, device: torch.device, store, executor, progress: bool, log):
    """The datamodels (or TRAK scores) the method asks for, for the targets it needs."""
    from oracles.attribution import datamodels_for
    return datamodels_for(plan.method, plan.task, data, seed=plan.base_seed, device=device, store=store,
                          executor=executor, progress=progress, log=log)


def _prepare_datamodels(plan: "UnitPlan", store, executor, progress: bool, log) -> dict:
    from bench.units import load_data
    device = torch.device(plan.device)
    dm = _build_datamodels(plan, load_data(plan.task, plan.forget_idx, device), device, store, executor,
                           progress, log)
    return {"precompute_seconds": dm.train_seconds}


def _datamodels(env: "UnitEnv") -> tuple[Any, dict]:
    plan, method = env.plan, env.plan.method
    root = getattr(env.store, "root", None)  # no store: the contract's probe
    key = cache_key({"task": plan.task.get_params(), "name": plan.task.name, "method": method.get_params(),
                     "forget": [int(i) for i in plan.forget_idx], "seed": plan.base_seed, "root": str(root)})
    dm = memoized("datamodels", key, lambda: _build_datamodels(plan, env.data, env.device, env.store,
                                                                 _in_process(), False, lambda _m: None))
    return dm, {"n_models": method.datamodel_models, "alpha": method.alpha, "describe": dm.describe(),
                "train_seconds": dm.train_seconds, "cached": bool(dm.cached)}


def _summarize_datamodels(infos: list[dict], prepared: dict) -> dict:
    info = infos[0]
    return {"precompute_seconds": info["train_seconds"],
            "datamodels": {"n_models": info["n_models"], "alpha": info["alpha"], **info["describe"]}}


def _in_process():
    from bench.executor import Executor
    return Executor()


PROVIDERS: dict[str, Provider] = {
    "oracle_outputs": Provider("oracle_outputs", _oracle_outputs, models=lambda plan, i: ["target"],
                               charge=oracle_target_charge),
    "recorded_gradients": Provider("recorded_gradients", _recorded_gradients, summarize=_summarize_recorded,
                                   charge=recorded_gradients_charge),
    "datamodels": Provider("datamodels", _datamodels, prepare=_prepare_datamodels,
                           summarize=_summarize_datamodels, charge=datamodels_charge),
}

#: requirement names that describe the task a method needs rather than an input (checked before running)
TASK_KINDS = frozenset({"classification"})


def inputs_of(requires: frozenset[str]) -> tuple[str, ...]:
    """The provider names among a method's requirements, in table order; an unknown name is a clear error."""
    from bench.errors import BenchError
    unknown = sorted(set(requires) - set(PROVIDERS) - TASK_KINDS)
    if unknown:
        raise BenchError(f"the method requires {unknown}, which no provider supplies; known inputs: "
                         f"{sorted(PROVIDERS)} (task kinds: {sorted(TASK_KINDS)})")
    return tuple(name for name in PROVIDERS if name in requires)
