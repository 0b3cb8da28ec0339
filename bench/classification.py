"""Shared recipe for small classifiers: cross-entropy, SGD, and batched ensemble training."""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from typing import ClassVar

from bench.task import Split, StepHook, Task
from oracles.batched import SGDRecipe, fit_loop, fit_stacked


def skewed_forget_set(labels: np.ndarray, classes: np.ndarray, size: int, fraction: float,
                      rng: np.random.Generator) -> np.ndarray:
    """A non-IID forget set: ``fraction`` of ``size`` points from ``classes``, the rest from the others
    (the class-level analogue of paper 002's identity-skewed forget set)."""
    in_classes = np.isin(labels, classes)
    inside, outside = np.flatnonzero(in_classes), np.flatnonzero(~in_classes)
    k_in = min(len(inside), int(round(fraction * size)))
    if size - k_in > len(outside):
        from bench.errors import ForgetSetError
        fits = [k for k in range(size, 0, -1) if k - min(len(inside), int(round(fraction * k))) <= len(outside)]
        raise ForgetSetError(
            f"the skewed selector cannot draw a forget set of {size} with skew_fraction={fraction}: it takes "
            f"{k_in} from the {len(inside)} points of the skewed classes and needs {size - k_in} of the "
            f"{len(outside)} others; use forget_size={fits[0] if fits else 1} or less, or a larger skew_fraction")
    chosen = np.concatenate([rng.choice(inside, k_in, replace=False), rng.choice(outside, size - k_in, replace=False)])
    return np.sort(chosen)


class ClassifierTask(Task):
    """A classification task trained with ``SGDRecipe``; subclasses declare the recipe's fields.

    Expected dataclass fields: ``epochs``, ``batch_size``, ``lr``, ``momentum``, ``weight_decay`` and
    ``batched`` (train an ensemble with vmap; False falls back to one model at a time).
    """

    num_classes: ClassVar[int]
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    batched: bool

    def recipe(self) -> SGDRecipe:
        return SGDRecipe(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, momentum=self.momentum,
                         weight_decay=self.weight_decay)

    def training_recipe(self) -> dict:
        return {"optimizer": "sgd", "schedule": "linear-decay", **self.recipe().as_dict()}

    @staticmethod
    def output_loss(outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs.float(), y, reduction="none")

    def loss_from_outputs(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.output_loss(outputs, y)

    @staticmethod
    def training_loss(outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy in one fused op: the training loop's loss (per-example losses cost ~10% there)."""
        return F.cross_entropy(outputs.float(), y)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.output_loss(model(x), y)

    def evaluate(self, model: nn.Module, split: Split) -> dict[str, float]:
        with torch.no_grad():
            logits = self.outputs(model, split.x)
            return {"accuracy": float((logits.argmax(1) == split.y).float().mean()),
                    "loss": float(self.output_loss(logits, split.y).mean())}

    def explosion_reason(self, model: nn.Module, reference: nn.Module | None, split: Split) -> str | None:
        """Exploded: validation cross-entropy over 100x that of guessing uniformly (ln C). Collapsed:
        accuracy within 5 points of chance although the reference model was at least twice chance."""
        chance_loss, chance_acc = math.log(self.num_classes), 1.0 / self.num_classes
        with torch.no_grad():
            logits = self.outputs(model, split.x).float()
            y = split.y.to(logits.device)
            loss = float(F.cross_entropy(logits, y))
            accuracy = float((logits.argmax(1) == y).float().mean())
            if loss > 100 * chance_loss:
                return (f"its validation loss {loss:.3g} is over 100x that of guessing uniformly "
                        f"({chance_loss:.3g})")
            if reference is None or accuracy > chance_acc + 0.05:
                return None
            ref_logits = self.outputs(reference, split.x).float()
            ref_accuracy = float((ref_logits.argmax(1) == y).float().mean())
        if ref_accuracy >= 2 * chance_acc:
            return (f"its validation accuracy collapsed to chance ({accuracy:.2f}; chance {chance_acc:.2f}, "
                    f"the original {ref_accuracy:.2f})")
        return None

    def train(self, model: nn.Module, data: Split, seed: int, *, max_steps: int | None = None,
              on_step: StepHook | None = None) -> nn.Module:
        return fit_loop(model, data, seed, self.recipe(), self.training_loss, max_steps=max_steps, on_step=on_step)

    def train_many(self, models: list[nn.Module], data: Split, seeds: list[int],
                   subsets: list[np.ndarray] | None = None) -> list[nn.Module]:
        if not self.batched:
            return super().train_many(models, data, seeds, subsets)
        # Every chunk goes through vmap, and a chunk of one is stacked with a throwaway twin: how many models
        # share a chunk depends on the executor's workers, the shard and the cache, and a model's weights must
        # not. The one-model loop (mm) and vmap (batched gemm) round differently on some CPUs (MLP: MKL's AVX2
        # kernels), and vmap over a single model falls back to unbatched convolutions (CNN); stacks of 2 and
        # more agree bit for bit (issue 12; tests/test_dask_backend.py pins it).
        alone = len(models) == 1
        if alone:
            models, seeds = models + [copy.deepcopy(models[0])], seeds * 2
            subsets = None if subsets is None else list(subsets) * 2
        index = None if subsets is None else [torch.as_tensor(s, dtype=torch.long) for s in subsets]
        trained = fit_stacked(models, data, seeds, self.recipe(), self.training_loss, index)
        return trained[:1] if alone else trained
