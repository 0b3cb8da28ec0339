"""Run one method on one task: data, forget set, ensembles, unlearning, evaluation, result record."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from bench.context import Observer, UnlearnContext
from bench.errors import BenchError, DivergenceError, ForgetSetError
from bench.evaluation import compare
from bench.method import Method
from bench.optim import weights_finite
from bench.provenance import provenance
from bench.seeding import derive_seed
from bench.task import Split, Task, TaskData
from oracles.ensemble import train_ensemble

RECORD_SCHEMA = 1
ObserverFactory = Callable[[int, nn.Module, nn.Module], Observer]


@dataclass
class RunSpec:
    """Everything that determines a run's result (apart from the code version)."""

    method: Method
    task: Task
    seed: int = 0
    n_models: int = 1
    forget_ids: list[int] | None = None
    device: str = "auto"


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError("--device cuda was requested but no CUDA GPU is available; use --device cpu or auto")
    if name not in ("cpu",) and not name.startswith("cuda"):
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


def _oracle_predictor(task: Task, model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    def predict(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return task.outputs(model, x).detach()
    return predict


def warm_up() -> None:
    """Pay torch's one-time lazy imports (the first optimiser pulls in torch._dynamo, about 1 s) before
    anything is timed, so they are not billed to whichever method or model happens to run first."""
    weight = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([weight], lr=0.1, momentum=0.9)
    (weight * 2).sum().backward()
    optimizer.step()


def run(spec: RunSpec, *, observe: ObserverFactory | None = None,
        log: Callable[[str], None] = lambda _msg: None) -> dict:
    """Run ``spec`` and return its result record (not yet written anywhere)."""
    if spec.n_models < 1:
        raise BenchError(f"--n-models must be at least 1, got {spec.n_models}")
    method, task = spec.method, spec.task
    device = resolve_device(spec.device)
    warm_up()
    train, val = task.load()
    forget_idx = resolve_forget_set(task, train, spec.forget_ids, spec.seed)
    data = TaskData(train, val, forget_idx).to(device)
    n = spec.n_models
    seeds = {role: [derive_seed(spec.seed, role, i) for i in range(n)]
             for role in ("original", "oracle", "unlearn", "target")}

    log(f"training {n} original model(s) on {len(train)} points and {n} oracle(s) on {len(data.retain_idx)}")
    originals = train_ensemble(task, data.train, seeds["original"], device)
    oracles = train_ensemble(task, data.retain, seeds["oracle"], device)
    targets = (train_ensemble(task, data.retain, seeds["target"], device)
               if "oracle_outputs" in method.requires else None)

    log(f"unlearning with {method.name}")
    unlearned, unlearn_seconds, steps_used = [], [], []
    budget = method.steps if isinstance(method.steps, int) else None
    for i in range(n):
        ctx = UnlearnContext(
            task=task, data=data, seed=seeds["unlearn"][i], device=device, max_steps=budget,
            oracle_outputs=_oracle_predictor(task, targets.models[i]) if targets else None,
            observer=observe(i, originals.models[i], oracles.models[i]) if observe else None,
        )
        start = time.perf_counter()
        model = method.unlearn(originals.models[i], ctx)
        unlearn_seconds.append(time.perf_counter() - start)
        if not weights_finite(model):
            raise DivergenceError(f"{method.name} returned a model with non-finite weights (model {i})")
        unlearned.append(model.eval())
        steps_used.append(ctx.steps_used)

    retrain_mean = float(np.mean(oracles.train_seconds))
    unlearn_mean = float(np.mean(unlearn_seconds))
    return {
        "schema": RECORD_SCHEMA,
        "method": {"name": method.name, "params": method.get_params()},
        "task": {"name": task.name, "version": task.version, "params": task.get_params()},
        "forget_ids": forget_idx.tolist(),
        "n_models": n,
        "protocol": "independent",
        "seeds": {"base": spec.seed, **seeds},
        "steps_used": steps_used,
        "timings": {
            "unlearn_seconds_mean": unlearn_mean,
            "retrain_seconds_mean": retrain_mean,
            "original_train_seconds_mean": float(np.mean(originals.train_seconds)),
            "cost_relative_to_retrain": unlearn_mean / retrain_mean if retrain_mean > 0 else float("inf"),
        },
        "metrics": compare(task, data, unlearned, originals.models, oracles.models),
        "provenance": provenance(device),
    }
