"""Plain gradient methods: descent on the retain set, ascent on the forget set, and both at once."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.bounds import BatchSize, LearningRate, Momentum, NonNegative, Steps
from bench.context import UnlearnContext
from bench.method import Method
from bench.optim import clone, descend
from bench.registry import register_method


@dataclass(kw_only=True)
class _GradientMethod(Method):
    """Shared hyperparameters: a step budget, SGD learning rate (None: the task's) and batch size."""

    steps: Steps = 100
    lr: LearningRate = None
    batch_size: BatchSize = None
    momentum: Momentum = 0.0


@register_method
@dataclass(kw_only=True)
class Finetune(_GradientMethod):
    """Gradient descent on the retain set's training objective (catastrophic forgetting)."""

    name = "finetune"

    def unlearn(self, model: nn.Module, ctx: UnlearnContext) -> nn.Module:
        task, retain = ctx.task, ctx.batches(ctx.retain, ctx.batch_size(self.batch_size))

        def objective(m: nn.Module) -> torch.Tensor:
            batch = next(retain)
            return task.loss(m, batch.x, batch.y).mean() + task.regularizer(m)

        return descend(clone(model), objective, steps=self.steps, lr=ctx.lr(self.lr), ctx=ctx,
                       momentum=self.momentum, label=self.name)


@register_method
@dataclass(kw_only=True)
class GradientAscent(_GradientMethod):
    """Gradient ascent on the forget set's loss (unbounded: it needs few steps or a small step size)."""

    name = "ga"
    steps: Steps = 10

    def unlearn(self, model: nn.Module, ctx: UnlearnContext) -> nn.Module:
        task, forget = ctx.task, ctx.batches(ctx.forget, ctx.batch_size(self.batch_size))

        def objective(m: nn.Module) -> torch.Tensor:
            batch = next(forget)
            return -task.loss(m, batch.x, batch.y).mean()

        return descend(clone(model), objective, steps=self.steps, lr=ctx.lr(self.lr), ctx=ctx,
                       momentum=self.momentum, label=self.name)


@register_method
@dataclass(kw_only=True)
class DescentAscent(_GradientMethod):
    """Descent on the retain objective plus ascent on the forget loss, weighted by forget_weight."""

    name = "gdga"
    forget_weight: NonNegative = 0.01  # small, as in NegGrad+: the ascent term is unbounded below

    def unlearn(self, model: nn.Module, ctx: UnlearnContext) -> nn.Module:
        task, size = ctx.task, ctx.batch_size(self.batch_size)
        retain, forget = ctx.batches(ctx.retain, size), ctx.batches(ctx.forget, size)

        def objective(m: nn.Module) -> torch.Tensor:
            r, f = next(retain), next(forget)
            descent = task.loss(m, r.x, r.y).mean() + task.regularizer(m)
            return descent - self.forget_weight * task.loss(m, f.x, f.y).mean()

        return descend(clone(model), objective, steps=self.steps, lr=ctx.lr(self.lr), ctx=ctx,
                       momentum=self.momentum, label=self.name)
