"""Gradients recorded during training (paper 000), and their cached replay for a run's forget set.

One concern in one module: ``GradientRecorder`` accumulates, per requested example and parameter, the gradient
summed over the first epoch and over all epochs (so stored-gradient methods can replay an example's
contribution); ``record_gradients`` produces those sums for a cached original. Originals are shared across
forget sets and trained in batches, so the recording is a replay of the same seeded training run with the
recording hook on; the replayed weights are compared with the cached original's and the difference is recorded
(zero on CPU, where training is deterministic).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch
from torch import nn

from bench.task import Task
from oracles.cache import ModelStore, cache_key

KINDS = ("first-epoch", "all-epochs")


class GradientRecorder:
    """Accumulates gradients of chosen training examples; only those examples pay the memory cost.

    ``observe`` is called by a task's training loop once per mini-batch with the per-example losses
    (before the optimiser step, graph still alive) and the batch's example ids.
    """

    def __init__(self, example_ids: Iterable[int], param_names: Iterable[str] | None = None) -> None:
        self.example_ids = sorted({int(i) for i in example_ids})
        self.param_names = None if param_names is None else set(param_names)
        self.sums: dict[str, dict[int, dict[str, torch.Tensor]]] = {kind: {} for kind in KINDS}
        self.observations = {i: 0 for i in self.example_ids}

    def _params(self, model: nn.Module) -> list[tuple[str, nn.Parameter]]:
        return [(name, p) for name, p in model.named_parameters()
                if p.requires_grad and (self.param_names is None or name in self.param_names)]

    def observe(self, model: nn.Module, example_losses: torch.Tensor, batch_ids: list[int], epoch: int) -> None:
        """Add the gradient of each requested example's loss (the loss's own, not the batch mean's)."""
        wanted = [(pos, i) for pos, i in enumerate(batch_ids) if i in self.observations]
        if not wanted:
            return
        named = self._params(model)
        for pos, example in wanted:
            grads = torch.autograd.grad(example_losses[pos], [p for _, p in named], retain_graph=True,
                                        allow_unused=True)
            self.observations[example] += 1
            for kind in KINDS:
                if kind == "first-epoch" and epoch > 0:
                    continue
                store = self.sums[kind].setdefault(example, {})
                for (name, param), grad in zip(named, grads):
                    grad = torch.zeros_like(param) if grad is None else grad.detach()
                    store[name] = store[name] + grad if name in store else grad.clone()

    def total(self, kind: str) -> dict[str, torch.Tensor]:
        """Gradients summed over every recorded example, for ``first-epoch`` or ``all-epochs``."""
        if kind not in KINDS:
            raise ValueError(f"unknown gradient kind {kind!r}; use one of {KINDS}")
        out: dict[str, torch.Tensor] = {}
        for per_param in self.sums[kind].values():
            for name, grad in per_param.items():
                out[name] = out[name] + grad if name in out else grad.clone()
        return out

    def flat_state(self) -> dict[str, torch.Tensor]:
        """Everything recorded as one flat tensor dict (``kind/example/param``), for the model store."""
        return {f"{kind}/{example}/{name}": grad for kind, per_example in self.sums.items()
                for example, per_param in per_example.items() for name, grad in per_param.items()}

    def memory_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.flat_state().values())


def totals_from_flat(flat: dict[str, torch.Tensor], kind: str) -> dict[str, torch.Tensor]:
    """Inverse of ``flat_state`` summed over examples: the per-parameter total for one kind."""
    out: dict[str, torch.Tensor] = {}
    for key, grad in flat.items():
        k, _example, name = key.split("/", 2)
        if k == kind:
            out[name] = out[name] + grad if name in out else grad.clone()
    return out


@dataclass
class RecordedGradients:
    flat: dict[str, torch.Tensor]
    bytes_by_group: dict[str, int]
    replay_weight_difference: float


def _bytes_by_group(task: Task, model: nn.Module, flat: dict[str, torch.Tensor]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for key, grad in flat.items():
        sizes[key.split("/", 2)[2]] = sizes.get(key.split("/", 2)[2], 0) + grad.numel() * grad.element_size()
    groups = {group: sum(sizes.get(n, 0) for n in names) for group, names in task.layer_groups(model).items()}
    return {"all": sum(sizes.values()), **groups}


def record_gradients(task: Task, forget_idx: np.ndarray, seed: int, original: nn.Module, original_spec: dict,
                     device: torch.device, store: ModelStore | None) -> RecordedGradients:
    """The forget set's recorded gradients for the original trained with ``seed`` (cached when possible)."""
    spec = {"kind": "recorded-gradients", "original": cache_key(original_spec),
            "forget_ids": [int(i) for i in forget_idx]}
    entry = (store.load(spec, meta={"bytes_by_group": dict, "replay_difference": (int, float)})
             if store is not None else None)
    if entry is not None:
        return RecordedGradients(entry.state_dict, entry.meta["bytes_by_group"], entry.meta["replay_difference"])
    train, _ = task.load()
    model = task.make_model(seed).to(device)
    recorder = GradientRecorder(forget_idx)
    task.train_recording(model, train.to(device), seed, recorder)
    difference = max(float((a.detach() - b.detach()).abs().max())
                     for a, b in zip(model.parameters(), original.parameters()))
    flat = {k: v.cpu() for k, v in recorder.flat_state().items()}
    by_group = _bytes_by_group(task, model, flat)
    if store is not None:
        store.save(spec, flat, {"bytes_by_group": by_group, "replay_difference": difference})
    return RecordedGradients(flat, by_group, difference)
