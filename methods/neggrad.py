"""NegGrad+ (retain descent with weighted forget ascent) and l1-sparse fine-tuning for classifiers."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.bounds import BatchSize, Fraction, LearningRate, Momentum, NonNegative, Steps
from bench.context import UnlearnContext
from bench.method import Method
from bench.optim import clone, descend
from bench.registry import register_method


@register_method
@dataclass(kw_only=True)
class NegGradPlus(Method):
    """NegGrad+: minimise beta * CE(retain) - (1 - beta) * CE(forget) with SGD and momentum."""

    name = "neggrad-plus"
    probe = "digits"
    requires = frozenset({"classification"})

    # Kurmanji et al. 2023 ("Towards Unbounded Machine Unlearning"), their NegGrad+ baseline: one retain and
    # one forget batch per step, beta = 0.999, SGD with momentum 0.9.
    steps: Steps = 100
    lr: LearningRate = None
    batch_size: BatchSize = None
    momentum: Momentum = 0.9
    beta: Fraction = 0.999

    def unlearn(self, model: nn.Module, ctx: UnlearnContext) -> nn.Module:
        task, size = ctx.task, ctx.batch_size(self.batch_size)
        retain, forget = ctx.batches(ctx.retain, size), ctx.batches(ctx.forget, size)

        def objective(m: nn.Module) -> torch.Tensor:
            r, f = next(retain), next(forget)
            return self.beta * task.loss(m, r.x, r.y).mean() - (1.0 - self.beta) * task.loss(m, f.x, f.y).mean()

        return descend(clone(model), objective, steps=self.steps, lr=ctx.lr(self.lr), ctx=ctx,
                       momentum=self.momentum, label=self.name)


@register_method
@dataclass(kw_only=True)
class L1Sparse(Method):
    """l1-sparse: fine-tune on the retain set with an L1 penalty on all weights that decays linearly to 0."""

    name = "l1-sparse"
    probe = "digits"
    requires = frozenset({"classification"})

    # Jia et al. 2023 ("Model Sparsity Can Simplify Machine Unlearning"): retain cross-entropy plus
    # gamma_t * sum |w|, gamma_t = gamma * (1 - t / steps) (their linear decay), gamma = 5e-4, SGD momentum 0.9.
    steps: Steps = 100
    lr: LearningRate = None
    batch_size: BatchSize = None
    momentum: Momentum = 0.9
    gamma: NonNegative = 5e-4

    def penalty_weight(self, step: int) -> float:
        """The L1 weight at optimiser step ``step`` (0-based): gamma, decaying linearly towards 0."""
        return self.gamma * (1.0 - step / self.steps)

    def unlearn(self, model: nn.Module, ctx: UnlearnContext) -> nn.Module:
        task, retain = ctx.task, ctx.batches(ctx.retain, ctx.batch_size(self.batch_size))
        step = 0

        def objective(m: nn.Module) -> torch.Tensor:
            nonlocal step
            weight = self.penalty_weight(step)
            step += 1
            r = next(retain)
            penalty = torch.stack([p.abs().sum() for p in m.parameters()]).sum()
            return task.loss(m, r.x, r.y).mean() + weight * penalty

        return descend(clone(model), objective, steps=self.steps, lr=ctx.lr(self.lr), ctx=ctx,
                       momentum=self.momentum, label=self.name)
