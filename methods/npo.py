"""Negative preference optimisation (Zhang et al. 2024): a bounded alternative to gradient ascent."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.bounds import BatchSize, LearningRate, Momentum, NonNegative, Positive, Steps
from bench.context import UnlearnContext
from bench.method import Method
from bench.optim import clone, descend
from bench.registry import register_method


@register_method
@dataclass(kw_only=True)
class NegativePreference(Method):
    """NPO: push the forget set's likelihood below the original model's, with a loss that saturates.

    Defaults tuned so that, on skewed digits, it forgets without wrecking the model (measurements below).
    """

    name = "npo"
    # Tuning (skewed digits at the task's defaults: width 64, 30 epochs, forget set of 36, 80% from two classes;
    # originals of seeds 1-3, mean accuracies forget / retain / validation): the original is 1.00 / 0.996 /
    # 0.965, the oracle 0.935 / 0.995 / 0.966. Pure NPO (retain_weight 0) for 50 steps collapsed validation
    # accuracy to chance (0.10). NPO+RT (retain_weight 1, Zhang et al.) with the paper's beta 0.1 sits on a
    # cliff: 10 steps 0.84 / 0.965 / 0.937, 20 steps 0.14 / 0.70 / 0.65 (beta 0.1 behaves like gradient
    # ascent until the forget loss is ~10 nats above the reference). beta 1: 10 steps 0.92 / 0.98 / 0.955, 30
    # steps 0.41 / 0.89 / 0.86; beta 3, 30 steps: 0.77 / 0.957 / 0.93. beta 10 saturates once the forget loss
    # is a few tenths of a nat above the reference, so the result plateaus: 30 steps 0.935 / 0.993 / 0.965,
    # 60 steps 0.926 / 0.992 / 0.96, 100-200 steps 0.90 / 0.99 / 0.96. Defaults: beta 10, 50 steps. On
    # dave-tiny (one sentence) the same defaults raise the forget perplexity from 1.18 to 1.37 with retain
    # perplexity unchanged (1.155 -> 1.157); the old defaults took it to 2.5e5. NPO here is cautious.
    steps: Steps = 50
    lr: LearningRate = None
    batch_size: BatchSize = None
    momentum: Momentum = 0.9
    beta: Positive = 10.0
    retain_weight: NonNegative = 1.0  # > 0 adds the retain loss (NPO+RT); 0 is plain NPO

    def unlearn(self, model: nn.Module, ctx: UnlearnContext) -> nn.Module:
        task, size = ctx.task, ctx.batch_size(self.batch_size)
        reference = clone(model).eval()
        forget, retain = ctx.batches(ctx.forget, size), ctx.batches(ctx.retain, size)

        def objective(m: nn.Module) -> torch.Tensor:
            batch = next(forget)
            loss = task.loss(m, batch.x, batch.y)
            with torch.no_grad():
                reference_loss = task.loss(reference, batch.x, batch.y)
            # log(pi/pi_ref) = reference_loss - loss; NPO = -(2/beta) log sigmoid(-beta log(pi/pi_ref))
            objective = -(2.0 / self.beta) * F.logsigmoid(self.beta * (loss - reference_loss)).mean()
            if self.retain_weight > 0:
                r = next(retain)
                objective = objective + self.retain_weight * (task.loss(m, r.x, r.y).mean() + task.regularizer(m))
            return objective

        return descend(clone(model), objective, steps=self.steps, lr=ctx.lr(self.lr), ctx=ctx,
                       momentum=self.momentum, label=self.name)
