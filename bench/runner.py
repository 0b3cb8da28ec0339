"""Run one method on one task: plan N work units, map them on the executor, reduce the stored arrays.

Plan: data, forget set, seeds, scored points, and which units are already cached. Map: missing models are
trained packed (vmap chunks) on the executor, then each missing unit runs there (``bench.units``) and leaves
a verified cache entry of per-example arrays. Reduce: every metric from those arrays alone (``bench.reduce``).
A killed run resumes from its cached units; ``--shard i/k`` runs a slice of the units for cluster arrays.
"""
from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Literal

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from bench.enforce import budget_of
from bench.record import RECORD_SCHEMA
from bench.context import Observer
from bench.errors import BenchError, ForgetSetError
from bench.executor import Executor
from bench.method import Method
from bench.providers import PROVIDERS, inputs_of
from bench.reduce import reduce_units
from bench.retrain_cost import reference_retrain
from bench.seeding import derive_seed
from bench.shards import MERGE, Shard, describe_missing
from bench.statistics import DEFAULT_MAX_SCORED_POINTS, choose_points
from bench.atomic import remove_stale_tmp
from bench.task import Split, Task, TaskData
from bench.units import UnitPlan, method_code_hash, run_unit
from oracles.ensemble import ensure_models
from oracles.cache import ModelStore

ObserverFactory = Callable[[int, nn.Module, nn.Module], Observer]
Log = Callable[[str], None]
ROLE_LABELS = {"original": "originals", "oracle": "oracles", "floor": "noise floor",
               "target": "oracle-matching targets"}

__all__ = ["RunSpec", "run", "run_shard", "resolve_device", "resolve_forget_set", "reference_retrain_seconds",
           "method_code_hash", "warm_up", "RunInterrupted", "RECORD_SCHEMA"]


@dataclass
class RunSpec:
    """Everything that determines a run's result (apart from the code version)."""

    method: Method
    task: Task
    seed: int = 0
    n_models: int = 1
    forget_ids: list[int] | None = None
    device: str = "auto"
    protocol: Literal["independent", "challenge"] = "independent"
    executor: Executor = field(default_factory=Executor)
    metrics: tuple[str, ...] = ()  # extra metrics: "ulira" (U-LiRA and a population membership attack)
    max_scored_points: int = DEFAULT_MAX_SCORED_POINTS  # retain and validation points scored per split
    shard: Shard | str | None = None  # a slice of the units, or "merge" (reduce only what is stored)
    oracle_margins: str | None = None  # folder of exported oracle statistics to score against


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; the message says what was kept and how to resume."""

    exit_code = 130


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError("--device cuda was requested but no CUDA GPU is available; use --device cpu or auto")
    if name != "cpu" and not name.startswith("cuda"):
        raise BenchError(f"unknown device {name!r}; use auto, cpu or cuda")
    return torch.device(name)


def resolve_forget_set(task: Task, train: Split, forget_ids: list[int] | None, seed: int) -> np.ndarray:
    """The forget set as sorted positions; explicit ids are validated, otherwise the task selects them."""
    n = len(train)
    if forget_ids is None:
        if not 0 < task.forget_size < n:
            raise ForgetSetError(f"forget size must be between 1 and {n - 1} (the train set has {n} points), "
                                 f"got {task.forget_size}")
        return task.select_forget(train, np.random.default_rng(derive_seed(seed, "forget")))
    ids = np.asarray(forget_ids, dtype=np.int64)
    if ids.size == 0:
        raise ForgetSetError("the forget set is empty; give at least one id (or use --forget-size)")
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise ForgetSetError(f"the forget set repeats ids {unique[counts > 1].tolist()}; list each id once")
    bad = ids[(ids < 0) | (ids >= n)]
    if bad.size:
        raise ForgetSetError(f"forget ids {bad.tolist()} are out of range: the train set has ids 0..{n - 1}")
    if ids.size >= n:
        raise ForgetSetError("the forget set covers the whole train set; the retain set would be empty")
    return np.sort(ids)


def check_compatible(method: Method, task: Task) -> None:
    """Refuse method/task pairs that cannot work, before any training is spent on them."""
    from bench.classification import ClassifierTask
    if "classification" in method.requires and not isinstance(task, ClassifierTask):
        raise BenchError(f"method '{method.name}' needs a classification task (digits, cifar10, celeba); "
                         f"'{task.name}' is not one")
    if "datamodels" in method.requires and not task.supports_datamodels:
        raise BenchError(f"method '{method.name}' needs datamodels, which task '{task.name}' does not support "
                         "(its outputs are not fixed-size); use linear-gaussian, digits or cifar10")
    if "recorded_gradients" in method.requires and type(task).train_recording is Task.train_recording:
        raise BenchError(f"method '{method.name}' needs gradients recorded during training, which task "
                         f"'{task.name}' cannot provide; use dave or dave-tiny")


def warm_up() -> None:
    """Pay torch's one-time lazy imports (the first optimiser step pulls in torch._dynamo, about 1 s) before
    anything is timed, so they are not billed to whichever method or model happens to run first."""
    weight = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([weight], lr=0.1, momentum=0.9)
    (weight * 2).sum().backward()
    optimizer.step()


def reference_retrain_seconds(task: Task, data: TaskData, seed: int, device: torch.device,
                              store: ModelStore | None) -> float:
    """Wall-clock of retraining one model on the retain set (see ``bench.retrain_cost``)."""
    return reference_retrain(task, data, seed, device, store)["seconds"]


@contextlib.contextmanager
def run_store(store: ModelStore | None) -> Iterator[tuple[ModelStore, bool]]:
    """The run's cache, or (``--no-cache``) a temporary one deleted afterwards: units always store arrays."""
    if store is not None:
        yield store, False
        return
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        yield ModelStore(tmp), True


def _validate(spec: RunSpec) -> None:
    if spec.n_models < 1:
        raise BenchError(f"--n-models must be at least 1, got {spec.n_models}")
    if spec.protocol not in ("independent", "challenge"):
        raise BenchError(f"unknown protocol {spec.protocol!r}; use independent or challenge")
    if spec.max_scored_points < 1:
        raise BenchError(f"--max-scored-points must be at least 1, got {spec.max_scored_points}")
    if isinstance(spec.shard, Shard) and spec.shard.index >= spec.n_models:
        raise BenchError(f"--shard {spec.shard} has no units: --n-models {spec.n_models} gives units "
                         f"0..{spec.n_models - 1}")
    type(spec.method).check_signature()  # an unregistered class gets the registry's definition errors too
    type(spec.task).check_signature()
    spec.method.validate()
    spec.task.validate()
    budget_of(spec.method)
    check_compatible(spec.method, spec.task)


def make_plan(spec: RunSpec, store: ModelStore, device: torch.device) -> tuple[UnitPlan, TaskData]:
    """The units of ``spec``: forget set, seeds per role, scored points, named inputs, oracle source."""
    task, n = spec.task, spec.n_models
    train, val = task.load()
    forget_idx = resolve_forget_set(task, train, spec.forget_ids, spec.seed)
    data = TaskData(train, val, forget_idx)
    seeds = {role: [derive_seed(spec.seed, role, i) for i in range(n)]
             for role in ("original", "oracle", "floor", "unlearn", "target")}
    if spec.protocol == "challenge":
        seeds["original"] = seeds["original"][:1]
    points = choose_points(data, derive_seed(spec.seed, "score"), spec.max_scored_points)
    plan = UnitPlan(task=task, method=spec.method, protocol=spec.protocol, n_models=n, base_seed=spec.seed,
                    forget_idx=forget_idx, points=points, seeds=seeds, store_root=str(store.root),
                    device=str(device), inputs=inputs_of(spec.method.requires) if spec.method else ())
    external = task.external_models()
    if spec.oracle_margins:
        if external is not None:
            raise BenchError(f"task '{task.name}' reads its oracles from its own files; drop --oracle-margins")
        from bench.margins_io import ImportedMargins
        plan.imported = ImportedMargins.open(spec.oracle_margins).check(plan)
    elif external is not None:
        plan.imported = external.check(plan)
    return plan, data


def _train_needed(plan: UnitPlan, units: list[int], store: ModelStore, executor: Executor, progress: bool,
                  log: Log) -> dict[str, int]:
    """Train (packed, on the executor) every model the missing units will load; return counts per role."""
    need: dict[str, set[int]] = {role: set() for role in ROLE_LABELS}
    for i in units:
        for role in plan.needed_models(i, store):
            need[role].add(plan.source(i) if role == "original" else i)
    trained = {}
    for role, label in ROLE_LABELS.items():
        if not need[role]:
            continue
        excluded = np.array([], dtype=np.int64) if role == "original" else plan.forget_idx
        trained[role] = ensure_models(plan.task, excluded, [plan.seeds[role][j] for j in sorted(need[role])],
                                      device=torch.device(plan.device), store=store, executor=executor,
                                      label=label, progress=progress, log=log)
    return trained


def _add(total: dict[str, int], more: dict[str, int]) -> None:
    for role, count in more.items():
        total[role] = total.get(role, 0) + count


def compute_units(plan: UnitPlan, units: list[int], store: ModelStore, executor: Executor, *,
                  observe: ObserverFactory | None, progress: bool, log: Log, temporary: bool) -> dict:
    """Map the missing units of ``units`` on the executor; return counts (cached, computed, trained per role)."""
    missing = units if observe is not None else [i for i in units if not store.contains(plan.unit_spec(i))]
    cached = initially_cached = len(units) - len(missing)
    if missing and cached:
        log(f"resumed: {cached} of {len(units)} units cached")
    elif not missing:
        log(f"all {len(units)} units cached: scoring from stored arrays, no model is loaded")
    trained: dict[str, int] = {}
    done = 0
    parallel = False
    try:
        if missing:
            _add(trained, _train_needed(plan, missing, store, executor, progress, log))
            for name in plan.inputs:
                if PROVIDERS[name].prepare is not None:
                    PROVIDERS[name].prepare(plan, store, executor, progress, log)
            parallel = executor.parallel and observe is None
            worker_plan = UnitPlan(**{**plan.__dict__, "parallel": parallel})
            with tqdm(total=len(missing), desc=f"units ({plan.method.name})", unit="unit", disable=not progress,
                      leave=False) as bar:
                if parallel:
                    results = executor.map(run_unit, [(worker_plan, i) for i in missing])
                else:
                    results = (run_unit(worker_plan, i, observe) for i in missing)
                for result in results:
                    _add(trained, result.trained)
                    done += 1
                    if result.cached:  # another run finished it while we waited for its lock
                        cached += 1
                        missing = [i for i in missing if i != result.index]
                    bar.update(1)
            log(f"units with {plan.method.name}: {len(missing)} computed, {cached} cached")
    except KeyboardInterrupt:
        kept = ("nothing is kept (--no-cache)" if temporary else
                f"{initially_cached + done} of {len(units)} units and every finished model are kept in {store.root}; "
                "rerun the same command to resume")
        raise RunInterrupted(f"interrupted: {kept}") from None
    return {"total": len(units), "cached": cached, "computed": len(missing), "computed_units": missing,
            "trained": trained, "parallel": parallel}


def run_shard(spec: RunSpec, *, store: ModelStore | None = None, log: Log = lambda _m: None,
              progress: bool = False) -> dict:
    """Compute only the units of ``spec.shard`` (into the shared cache); the merge reduces them later."""
    if not isinstance(spec.shard, Shard):
        raise BenchError("run_shard needs --shard I/K")
    if store is None:
        raise BenchError("--shard needs a model cache shared by every shard; drop --no-cache")
    _validate(spec)
    device = resolve_device(spec.device)
    warm_up()
    remove_stale_tmp(store.root)
    plan, _ = make_plan(spec, store, device)
    units = spec.shard.units(spec.n_models)
    counts = compute_units(plan, units, store, spec.executor, observe=None, progress=progress, log=log,
                           temporary=False)
    return {"shard": str(spec.shard), "units": units, **counts}


def run(spec: RunSpec, *, store: ModelStore | None = None, observe: ObserverFactory | None = None,
        log: Log = lambda _msg: None, progress: bool = False) -> dict:
    """Run ``spec`` (plan, map, reduce) and return its result record (not yet written anywhere)."""
    if isinstance(spec.shard, Shard):
        raise BenchError("a --shard I/K run computes units only; use run_shard, then --shard merge")
    _validate(spec)
    wall_start = time.perf_counter()
    device = resolve_device(spec.device)
    warm_up()
    with run_store(store) as (store, temporary):
        remove_stale_tmp(store.root)
        plan, data = make_plan(spec, store, device)
        units = list(range(spec.n_models))
        if spec.shard == MERGE:
            missing = [i for i in units if not store.contains(plan.unit_spec(i))]
            if missing:
                raise BenchError(f"--shard merge: {describe_missing(missing, spec.n_models)}; run the shards "
                                 "that compute them (or the plain command, which computes what is missing)")
            counts = {"total": len(units), "cached": len(units), "computed": 0, "trained": {}}
        else:
            counts = compute_units(plan, units, store, spec.executor, observe=observe, progress=progress, log=log,
                                   temporary=temporary)
        retrain = reference_retrain(spec.task, data.to(device), spec.seed, device, store if not temporary else None)
        record = reduce_units(plan, store, spec, counts, retrain, log=log)
    record["timings"]["run_seconds"] = time.perf_counter() - wall_start
    return record
