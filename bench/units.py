"""One work unit of a run: get unit i's models (cache, or training), unlearn, store per-example arrays.

A unit is a function of (task spec, forget ids, method spec, model index, protocol, scored points); its
result is a verified cache entry of arrays, so a killed run resumes where it stopped and a finished run is
re-scored without loading a model. Method-independent statistics (of original, oracle and noise-floor
models) are separate entries, computed once and shared by every method run on the same forget set.
At most a handful of models is alive inside a unit, whatever the ensemble size.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from bench.code_hash import code_hash
from bench.enforce import budget_of, unlearn_checked
from bench.context import Observer, UnlearnContext
from bench.errors import CacheWriteError, DivergenceError
from bench.gradcount import count_evaluations
from bench.locks import entry_lock
from bench.memo import memoized
from bench.method import Method
from bench.optim import weights_finite
from bench.providers import PROVIDERS
from bench.statistics import ModelStats, ScoredPoints, compute_stats, load_stats, save_stats, stats_spec
from bench.task import Task, TaskData
from oracles.ensemble import ensure_models, load_model, model_spec
from oracles.cache import ModelStore, cache_key

UNIT_VERSION = 1
ROLES = ("original", "oracle", "floor", "target")
ObserverFactory = Callable[[int, nn.Module, nn.Module], Observer]


def method_code_hash(method: Method) -> str:
    """Hash of the method's code (its module, the local modules it imports, the version of the distribution
    that ships it), so editing a method or a helper it uses invalidates its cached unlearned models."""
    from bench.registry import METHODS
    return code_hash(type(method), METHODS.distributions_of(type(method)))


@dataclass
class UnitPlan:
    """Everything a unit needs; picklable, so it travels to local or Dask workers."""

    task: Task
    method: Method
    protocol: str
    n_models: int
    base_seed: int
    forget_idx: np.ndarray
    points: ScoredPoints
    seeds: dict[str, list[int]]
    store_root: str
    device: str
    inputs: tuple[str, ...] = ()
    imported: Any = None  # bench.margins_io.ImportedMargins when oracle statistics come from exported files
    parallel: bool = False  # running in a worker process: one torch thread
    code: str = field(default="")

    def __post_init__(self) -> None:
        self.code = self.code or (method_code_hash(self.method) if self.method is not None else "")

    def source(self, i: int) -> int:
        """Which original unit i unlearns: its own, or the challenge protocol's single shared one."""
        return i if self.protocol == "independent" else 0

    def model_spec(self, role: str, i: int) -> dict:
        if role == "original":
            return model_spec(self.task, np.array([], dtype=np.int64), self.seeds["original"][self.source(i)])
        return model_spec(self.task, self.forget_idx, self.seeds[role][i])

    def unlearned_spec(self, i: int) -> dict:
        method = self.method
        return {"kind": "unlearned", "method": method.name, "params": method.get_params(), "code": self.code,
                "original": cache_key(self.model_spec("original", i)),
                "forget_ids": [int(x) for x in self.forget_idx], "seed": self.seeds["unlearn"][i],
                "target": cache_key(self.model_spec("target", i)) if "oracle_outputs" in self.inputs else None}

    def unit_spec(self, i: int) -> dict:
        return {"kind": "unit", "version": UNIT_VERSION, "unlearned": cache_key(self.unlearned_spec(i)),
                "points": self.points.fingerprint(), "first": i == 0}

    def stat_roles(self, i: int) -> list[str]:
        """Roles whose statistics unit i contributes (the challenge's shared original only once)."""
        roles = ["original"] if self.source(i) == i else []
        if self.imported is None:
            roles.append("oracle")
            if self.n_models >= 2:
                roles.append("floor")
        return roles

    def role_stats_spec(self, role: str, i: int) -> dict:
        return stats_spec(cache_key(self.model_spec(role, i)), self.points)

    def needed_models(self, i: int, store: ModelStore) -> list[str]:
        """Roles of the models unit i will load: to unlearn, for its inputs, and for missing statistics."""
        roles = ["original"] + [r for name in self.inputs for r in PROVIDERS[name].models(self, i)]
        for role in self.stat_roles(i):
            if role != "original" and not store.contains(self.role_stats_spec(role, i)):
                roles.append(role)
        if self.task.unique_optimum and self.imported is None:
            roles.append("oracle")
        if self.imported is not None:  # models the import loads from files are never trained
            roles = [r for r in roles if not self.imported.supplies(r, self.source(i) if r == "original" else i)]
        return list(dict.fromkeys(roles))


def load_data(task: Task, forget_idx: np.ndarray, device: torch.device) -> TaskData:
    """The task's data on ``device``, loaded once per process for a given task and forget set."""
    key = cache_key({"task": task.name, "version": task.version, "params": task.get_params(),
                     "forget": [int(x) for x in forget_idx], "device": str(device)})

    def build() -> TaskData:
        train, val = task.load()
        return TaskData(train, val, np.asarray(forget_idx)).to(device)
    return memoized("data", key, build)


class UnitEnv:
    """A unit's view of its models: loaded (or trained) on first use, released when the unit ends."""

    def __init__(self, plan: UnitPlan, index: int, store: ModelStore) -> None:
        self.plan, self.index, self.store = plan, index, store
        self.device = torch.device(plan.device)
        self.data = load_data(plan.task, plan.forget_idx, self.device)
        self.models: dict[str, nn.Module] = {}
        self.meta: dict[str, dict] = {}
        self.trained: dict[str, int] = {}
        self.recorded_flat: dict[str, torch.Tensor] | None = None

    def spec(self, role: str) -> dict:
        return self.plan.model_spec(role, self.index)

    def model(self, role: str) -> nn.Module:
        if role not in self.models:
            if role == "original" and self.plan.protocol == "challenge":  # one shared original per process
                key = cache_key(self.spec(role))
                self.models[role], self.meta[role] = memoized("original", key, lambda: self._get(role))
            else:
                self.models[role], self.meta[role] = self._get(role)
        return self.models[role]

    def _get(self, role: str) -> tuple[nn.Module, dict]:
        if self.plan.imported is not None:
            index = self.plan.source(self.index) if role == "original" else self.index
            supplied = self.plan.imported.model(role, index, self.device)
            if supplied is not None:
                return supplied
        spec = self.spec(role)
        loaded = load_model(self.plan.task, self.store, spec, self.device)
        if loaded is None:  # not prebuilt (or discarded as corrupt): train it here, under its lock
            from bench.executor import Executor
            excluded = np.array([], dtype=np.int64) if role == "original" else self.plan.forget_idx
            n = ensure_models(self.plan.task, excluded, [int(spec["seed"])], device=self.device, store=self.store,
                              executor=Executor(), label=role, progress=False)
            self.trained[role] = self.trained.get(role, 0) + n
            loaded = load_model(self.plan.task, self.store, spec, self.device)
            if loaded is None:
                raise CacheWriteError(
                    f"unit {self.index}: the {role} model could not be stored in the cache {self.store.root} "
                    "(see the 'cache: could not save' message above). Units work through the cache, so this run "
                    "stops here; everything already cached is kept. Free space (or point --cache-dir elsewhere) "
                    "and rerun the same command: finished units are not redone")
        return loaded

    def release(self, role: str) -> None:
        self.models.pop(role, None)


@dataclass
class UnitResult:
    """What a unit reports back to the runner (its arrays are in the cache)."""

    index: int
    cached: bool
    trained: dict[str, int]


def ensure_role_stats(env: UnitEnv, role: str) -> None:
    """Compute and store one method-independent model's statistics unless they are cached."""
    plan, store = env.plan, env.store
    spec = plan.role_stats_spec(role, env.index)
    with entry_lock(store.root, cache_key(spec)):
        if store.contains(spec) and load_stats(store, spec) is not None:
            return
        keep = role in env.models
        model = env.model(role)
        stats = compute_stats(plan.task, model, plan.points.splits(env.data))
        stats.meta["train_seconds"] = float(env.meta[role].get("train_seconds", float("nan")))
        save_stats(store, spec, stats)
        if not keep and role != "original":
            env.release(role)


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _curve_observer(task: Task, data: TaskData, curve: list[dict], original: nn.Module) -> Observer:
    """Record the task's curve metrics at step 0 and every ``task.curve_every`` steps of model 0."""
    curve.append({"step": 0, **task.curve_point(original, data)})

    def observe(step: int, model: nn.Module) -> None:
        if step % task.curve_every == 0:
            curve.append({"step": step, **task.curve_point(model, data)})
    return observe


def _unlearn(env: UnitEnv, observe: ObserverFactory | None) -> tuple[nn.Module, dict, bool]:
    """The unlearned model of this unit (cached, or computed now) and its meta."""
    plan, task, method, i = env.plan, env.plan.task, env.plan.method, env.index
    spec = plan.unlearned_spec(i)
    if observe is None:
        entry = load_model(task, env.store, spec, env.device)
        if entry is not None:
            return entry[0], entry[1], True
    original = env.model("original")
    values, infos = {}, {}
    for name in plan.inputs:
        provider = PROVIDERS[name]
        values[provider.field], infos[name] = provider.provide(env)
    curve: list[dict] = []
    observer = observe(i, original, env.model("oracle")) if observe else None
    if observer is None and i == 0 and task.curve_every > 0:
        observer = _curve_observer(task, env.data, curve, original)
    with count_evaluations() as evals:
        if observer is not None:
            inner = observer

            def observer(step: int, model: nn.Module) -> None:  # its own passes are not the method's cost
                evals.paused = True
                try:
                    inner(step, model)
                finally:
                    evals.paused = False
        ctx = UnlearnContext(task=task, data=env.data, seed=plan.seeds["unlearn"][i], device=env.device,
                             max_steps=budget_of(method),
                             observer=observer, **values)
        start = time.perf_counter()
        model = unlearn_checked(method, original, ctx, i)
        if env.device.type == "cuda":
            torch.cuda.synchronize(env.device)
        elapsed = time.perf_counter() - start
    if not weights_finite(model):
        raise DivergenceError(f"{method.name} returned a model with non-finite weights (model {i})")
    meta = {"unlearn_seconds": elapsed, "steps_used": ctx.steps_used, "curve": curve or None,
            "evaluations": evals.as_dict(), "inputs": infos}
    if method.output == "model":
        env.store.save(spec, model.state_dict(), meta)
    return model.eval(), meta, False


def run_unit(plan: UnitPlan, i: int, observe: ObserverFactory | None = None) -> UnitResult:
    """Compute unit ``i`` unless its entry is cached; store its arrays; release its models."""
    if plan.parallel:
        torch.set_num_threads(1)
    store = ModelStore(plan.store_root)
    spec = plan.unit_spec(i)
    with entry_lock(store.root, cache_key(spec)):
        if observe is None and store.contains(spec) and store.load(spec) is not None:
            return UnitResult(i, True, {})
        env = UnitEnv(plan, i, store)
        for role in plan.stat_roles(i):
            ensure_role_stats(env, role)
        model, meta, from_cache = _unlearn(env, observe)
        stats = compute_stats(plan.task, model, plan.points.splits(env.data))
        meta = {**meta, "utility": stats.utility, "unlearned_cached": from_cache}
        if plan.task.unique_optimum and plan.imported is None:
            oracle = _flat(env.model("oracle"))
            meta["param_distance"] = {"original": float((_flat(env.model("original")) - oracle).norm()),
                                      "unlearned": float((_flat(model) - oracle).norm())}
        if i == 0:
            if "recorded_gradients" in plan.inputs and env.recorded_flat is None:  # the unlearned model was cached
                PROVIDERS["recorded_gradients"].provide(env)
            initial = plan.task.make_model(plan.seeds["original"][0]).to(env.device).eval()
            meta["task_report"] = plan.task.report(initial, env.model("original"), model, env.data,
                                                   env.recorded_flat)
        store.save(spec, stats.flat(), meta)
        trained = dict(env.trained)
    return UnitResult(i, False, trained)


def role_stats_job(plan: UnitPlan, role: str, i: int) -> dict[str, int]:
    """Only the method-independent statistics of one model (for ``margins export``)."""
    if plan.parallel:
        torch.set_num_threads(1)
    env = UnitEnv(plan, i, ModelStore(plan.store_root))
    ensure_role_stats(env, role)
    return dict(env.trained)


def load_unit(plan: UnitPlan, store: ModelStore, i: int) -> ModelStats | None:
    return load_stats(store, plan.unit_spec(i))
