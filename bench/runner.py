"""Run one method on one task: data, forget set, ensembles, unlearning, scoring, result record."""
from __future__ import annotations

import hashlib
import inspect
import platform
import time
from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np
import torch
from torch import nn

from bench.context import Observer, UnlearnContext
from bench.errors import BenchError, DivergenceError, ForgetSetError
from bench.executor import Executor
from bench.method import Method
from bench.optim import weights_finite
from bench.provenance import provenance
from bench.scoring import score
from bench.seeding import derive_seed
from bench.task import Split, Task, TaskData
from bench.recording import totals_from_flat
from oracles.ensemble import Ensemble, build_ensemble, model_spec
from oracles.recorded import RecordedGradients, record_gradients
from oracles.store import ModelStore, cache_key

RECORD_SCHEMA = 2
ObserverFactory = Callable[[int, nn.Module, nn.Module], Observer]
Log = Callable[[str], None]


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


def _oracle_predictor(task: Task, model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    def predict(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return task.outputs(model, x).detach()
    return predict


def _initial_model(task: Task, seed: int, device: torch.device) -> nn.Module:
    """The model before training on the task (pretrained weights or a fresh init): the 'before' stage."""
    return task.make_model(seed).to(device).eval()


def method_code_hash(method: Method) -> str:
    """Hash of the method's source file, so editing a method invalidates its cached unlearned models."""
    module = inspect.getmodule(type(method))
    try:
        source = inspect.getsource(module) if module else type(method).__qualname__
    except (OSError, TypeError):
        source = type(method).__qualname__
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def reference_retrain_seconds(task: Task, data: TaskData, seed: int, device: torch.device,
                              store: ModelStore | None) -> float:
    """Wall-clock of retraining ONE model on the retain set with the task's single-model recipe.

    This is the cost unlearning is compared with; it is measured (or read from the cache entry that
    recorded it) rather than derived from batched ensemble training, which amortises work across models.
    """
    ref_seed = derive_seed(seed, "reference")
    # the timing depends on the machine and its thread count, so they are part of what is cached
    spec = {**model_spec(task, data.forget_idx, ref_seed), "kind": "reference-retrain", "device": device.type,
            "host": platform.node(), "threads": torch.get_num_threads()}
    entry = store.load(spec) if store else None
    if entry is not None and "train_seconds" in entry.meta:
        return float(entry.meta["train_seconds"])
    model = task.make_model(ref_seed).to(device)
    start = time.perf_counter()
    task.train(model, data.retain, ref_seed)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    if store is not None:
        store.save(spec, model.state_dict(), {"train_seconds": seconds, "host": platform.node()})
    return seconds


def _unlearn_all(spec: RunSpec, data: TaskData, device: torch.device, seeds: list[int], originals: Ensemble,
                 oracles: Ensemble, targets: Ensemble | None, recorded: list[RecordedGradients] | None,
                 datamodels: object | None, store: ModelStore | None, observe: ObserverFactory | None,
                 log: Log) -> tuple[list[nn.Module], list[float], list[int], int, list]:
    """Unlearn each original (or the single original, under the challenge protocol); cache the results."""
    method, task = spec.method, spec.task
    budget = method.steps if isinstance(method.steps, int) else None
    code = method_code_hash(method)
    models, seconds, steps, cached, curves = [], [], [], 0, []
    for i, seed in enumerate(seeds):
        source = i if spec.protocol == "independent" else 0
        original = originals.models[source]
        unlearned_spec = {
            "kind": "unlearned", "method": method.name, "params": method.get_params(), "code": code,
            "original": cache_key(originals.specs[source]), "forget_ids": data.forget_idx.tolist(), "seed": seed,
            "target": cache_key(targets.specs[i]) if targets else None,
        }
        entry = store.load(unlearned_spec) if store is not None and observe is None else None
        if entry is not None:
            model = task.make_model(seed)
            model.load_state_dict(entry.state_dict)
            models.append(model.to(device).eval())
            seconds.append(float(entry.meta["unlearn_seconds"]))
            steps.append(int(entry.meta["steps_used"]))
            curves.append(entry.meta.get("curve"))
            cached += 1
            continue
        curve: list[dict] = []
        observer = observe(i, original, oracles.models[i]) if observe else None
        if observer is None and i == 0 and task.curve_every > 0:
            observer = _curve_observer(task, data, curve, original)
        ctx = UnlearnContext(
            task=task, data=data, seed=seed, device=device, max_steps=budget,
            oracle_outputs=_oracle_predictor(task, targets.models[i]) if targets else None,
            recorded_gradients=_recorded_lookup(recorded[source]) if recorded else None,
            datamodels=datamodels, observer=observer,
        )
        start = time.perf_counter()
        model = method.unlearn(original, ctx)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - start
        if not weights_finite(model):
            raise DivergenceError(f"{method.name} returned a model with non-finite weights (model {i})")
        models.append(model.eval())
        seconds.append(elapsed)
        steps.append(ctx.steps_used)
        curves.append(curve or None)
        if store is not None and observe is None and method.output == "model":
            store.save(unlearned_spec, model.state_dict(),
                       {"unlearn_seconds": elapsed, "steps_used": ctx.steps_used, "curve": curve or None})
    log(f"unlearning with {method.name}: {len(seeds) - cached} run, {cached} cached")
    return models, seconds, steps, cached, curves


def _recorded_lookup(recorded: RecordedGradients) -> Callable[[str], dict[str, torch.Tensor]]:
    return lambda kind: totals_from_flat(recorded.flat, kind)


def _curve_observer(task: Task, data: TaskData, curve: list[dict], original: nn.Module) -> Observer:
    """Record the task's curve metrics at step 0 and every ``task.curve_every`` steps of model 0."""
    curve.append({"step": 0, **task.curve_point(original, data)})

    def observe(step: int, model: nn.Module) -> None:
        if step % task.curve_every == 0:
            curve.append({"step": step, **task.curve_point(model, data)})
    return observe


def run(spec: RunSpec, *, store: ModelStore | None = None, observe: ObserverFactory | None = None,
        log: Log = lambda _msg: None, progress: bool = False) -> dict:
    """Run ``spec`` and return its result record (not yet written anywhere)."""
    if spec.n_models < 1:
        raise BenchError(f"--n-models must be at least 1, got {spec.n_models}")
    if spec.protocol not in ("independent", "challenge"):
        raise BenchError(f"unknown protocol {spec.protocol!r}; use independent or challenge")
    wall_start = time.perf_counter()
    method, task, n = spec.method, spec.task, spec.n_models
    check_compatible(method, task)
    device = resolve_device(spec.device)
    warm_up()
    train, val = task.load()
    forget_idx = resolve_forget_set(task, train, spec.forget_ids, spec.seed)
    data = TaskData(train, val, forget_idx).to(device)
    seeds = {role: [derive_seed(spec.seed, role, i) for i in range(n)]
             for role in ("original", "oracle", "floor", "unlearn", "target")}
    if spec.protocol == "challenge":
        seeds["original"] = seeds["original"][:1]
    build = dict(device=device, store=store, executor=spec.executor, progress=progress, log=log)
    none = np.array([], dtype=np.int64)
    originals = build_ensemble(task, none, seeds["original"], label="originals", **build)
    oracles = build_ensemble(task, forget_idx, seeds["oracle"], label="oracles", **build)
    floor = build_ensemble(task, forget_idx, seeds["floor"], label="noise floor", **build) if n >= 2 else None
    targets = (build_ensemble(task, forget_idx, seeds["target"], label="oracle-matching targets", **build)
               if "oracle_outputs" in method.requires else None)
    recorded = None
    if "recorded_gradients" in method.requires:
        log("recording the forget set's gradients by replaying the originals' training")
        recorded = [record_gradients(task, forget_idx, seed, model, model_spec_, device, store)
                    for seed, model, model_spec_ in zip(originals.seeds, originals.models, originals.specs)]
    datamodels = None
    if "datamodels" in method.requires:
        from oracles.attribution import datamodels_for
        datamodels = datamodels_for(method, task, data, seed=spec.seed, device=device, store=store,
                                    executor=spec.executor, progress=progress, log=log)
    retrain_seconds = reference_retrain_seconds(task, data, spec.seed, device, store)

    unlearned, unlearn_seconds, steps_used, unlearned_cached, curves = _unlearn_all(
        spec, data, device, seeds["unlearn"], originals, oracles, targets, recorded, datamodels, store, observe, log)
    metrics, per_example = score(task, data, unlearned, originals.models, oracles.models,
                                 floor.models if floor else None, derive_seed(spec.seed, "score"))
    if "ulira" in spec.metrics:
        from bench.privacy import membership_metrics
        metrics.update(membership_metrics(task, data, unlearned, oracles.models, floor.models if floor else None,
                                          derive_seed(spec.seed, "score")))
    unlearn_mean = float(np.mean(unlearn_seconds))
    return {
        "schema": RECORD_SCHEMA,
        "method": {"name": method.name, "params": method.get_params(), "code": method_code_hash(method)},
        "task": {"name": task.name, "version": task.version, "params": task.get_params(),
                 "recipe": task.training_recipe(), "label": task.config_label()},
        "forget_ids": forget_idx.tolist(),
        "n_models": n,
        "protocol": spec.protocol,
        "seeds": {"base": spec.seed, **seeds},
        "steps_used": steps_used,
        "timings": {
            "unlearn_seconds_mean": unlearn_mean,
            "retrain_seconds": retrain_seconds,
            "cost_relative_to_retrain": unlearn_mean / retrain_seconds if retrain_seconds > 0 else float("inf"),
            "ensemble_train_seconds_per_model": float(np.nanmean(oracles.train_seconds)),
            "precompute_seconds": datamodels.train_seconds if datamodels is not None else 0.0,
            "run_seconds": time.perf_counter() - wall_start,
        },
        "cache": {"originals": originals.cached, "oracles": oracles.cached,
                  "floor": floor.cached if floor else 0, "unlearned": unlearned_cached},
        "metrics": metrics,
        "task_report": task.report(_initial_model(task, seeds["original"][0], device), originals.models[0],
                                   unlearned[0], data, recorded[0].flat if recorded else None),
        "curves": curves[0],
        "datamodels": ({"n_models": method.datamodel_models, "alpha": method.alpha, **datamodels.describe()}
                       if datamodels is not None else None),
        "recorded_gradients": ({"bytes_by_group": recorded[0].bytes_by_group,
                                "replay_weight_difference": max(r.replay_weight_difference for r in recorded)}
                               if recorded else None),
        "per_example": per_example,
        "provenance": {**provenance(device), "backend": spec.executor.backend, "workers": spec.executor.workers},
    }
