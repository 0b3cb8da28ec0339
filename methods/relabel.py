"""Random-label fine-tuning and SalUn (saliency-masked random labels) for classifiers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from bench.bounds import BatchSize, Fraction, LearningRate, Momentum, Steps
from bench.context import UnlearnContext
from bench.method import Method
from bench.optim import clone, descend
from bench.registry import register_method
from bench.task import Split
from methods.toolkit import random_wrong_labels, saliency_mask


def random_label_objective(ctx: UnlearnContext, batch_size: int | None) -> Callable[[nn.Module], torch.Tensor]:
    """The shared objective: cross-entropy on a forget batch relabelled with random wrong classes, plus
    cross-entropy on a retain batch. Each forget example keeps the one wrong label drawn for it here."""
    task, size = ctx.task, ctx.batch_size(batch_size)
    relabelled = Split(ctx.forget.x, random_wrong_labels(ctx.forget.y, task.num_classes, ctx.generator))
    forget, retain = ctx.batches(relabelled, size), ctx.batches(ctx.retain, size)

    def objective(m: nn.Module) -> torch.Tensor:
        f, r = next(forget), next(retain)
        return task.loss(m, f.x, f.y).mean() + task.loss(m, r.x, r.y).mean()

    return objective


@register_method
@dataclass(kw_only=True)
class RandomLabel(Method):
    """Random labels: fine-tune on the forget set relabelled with random wrong classes, plus retain CE."""

    name = "random-label"
    probe = "digits"
    requires = frozenset({"classification"})

    # The random-label baseline of Golatkar et al. 2020 / Graves et al. 2021 ("Amnesiac Machine Learning"), as
    # run in SalUn (Fan et al. 2024): SGD, momentum 0.9, forget data with random labels trained together with
    # retain data. Each step takes one forget and one retain batch at equal weight; each forget example
    # keeps one wrong label, drawn once from ctx.generator (SalUn's code relabels the forget set once too).
    steps: Steps = 100
    lr: LearningRate = None
    batch_size: BatchSize = None
    momentum: Momentum = 0.9

    def unlearn(self, model: nn.Module, ctx: UnlearnContext) -> nn.Module:
        return descend(clone(model), random_label_objective(ctx, self.batch_size), steps=self.steps,
                       lr=ctx.lr(self.lr), ctx=ctx, momentum=self.momentum, label=self.name)


@register_method
@dataclass(kw_only=True)
class SalUn(Method):
    """SalUn: random-label unlearning that updates only the weights most salient to the forget loss."""

    name = "salun"
    probe = "digits"
    requires = frozenset({"classification"})

    # Fan et al. 2024 ("SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency"):
    # mask threshold at the median (top 50% of |grad|), random-label objective, SGD momentum 0.9.
    steps: Steps = 100
    lr: LearningRate = None
    batch_size: BatchSize = None
    momentum: Momentum = 0.9
    mask_fraction: Fraction = 0.5

    def unlearn(self, model: nn.Module, ctx: UnlearnContext) -> nn.Module:
        masks = saliency_mask(model, ctx.task, ctx.forget, self.mask_fraction, ctx.batch_size(self.batch_size))
        student = clone(model)
        # zero the gradient of unmasked weights before it reaches the optimiser: with no weight decay their
        # momentum stays zero too, so they come back bitwise unchanged
        handles = [p.register_hook(lambda g, keep=masks[name]: torch.where(keep, g, torch.zeros_like(g)))
                   for name, p in student.named_parameters()]
        try:
            return descend(student, random_label_objective(ctx, self.batch_size), steps=self.steps,
                           lr=ctx.lr(self.lr), ctx=ctx, momentum=self.momentum, label=self.name)
        finally:
            for handle in handles:
                handle.remove()
