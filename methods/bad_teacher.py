"""Bad Teacher (Chundawat et al. 2023): distil from the original on retain and from a random model on forget."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.bounds import BatchSize, LearningRate, NonNegative, Positive, Steps
from bench.context import UnlearnContext
from bench.method import Method
from bench.optim import clone, descend
from bench.registry import register_method
from methods.toolkit import distill_kl


@register_method
@dataclass(kw_only=True)
class BadTeacher(Method):
    """Bad Teacher: the student matches the competent original on retain and an incompetent random model on forget."""

    name = "bad-teacher"
    probe = "digits"
    requires = frozenset({"classification"})

    # The paper distils with temperature 1 from a randomly initialised teacher on the forget set and the
    # trained model on a retain subset, one loss over mixed batches; here each step takes one batch of
    # each, the forget term weighted by forget_weight. Tuned on skewed digits (width 32, 60 forgotten,
    # original forget/retain accuracy 0.967/0.946): weight 1 gives 0.683/0.842, 0.5 gives 0.717/0.887,
    # 0.3 gives 0.783/0.911; we take 0.5 (tests/test_toolkit_methods.py).
    steps: Steps = 60
    lr: LearningRate = None
    batch_size: BatchSize = None
    temperature: Positive = 1.0
    forget_weight: NonNegative = 0.5

    def unlearn(self, model: nn.Module, ctx: UnlearnContext) -> nn.Module:
        task, size = ctx.task, ctx.batch_size(self.batch_size)
        competent, incompetent = clone(model).eval(), ctx.fresh_model().eval()
        forget, retain = ctx.batches(ctx.forget, size), ctx.batches(ctx.retain, size)

        def objective(student: nn.Module) -> torch.Tensor:
            f, r = next(forget), next(retain)
            with torch.no_grad():
                bad, good = task.outputs(incompetent, f.x), task.outputs(competent, r.x)
            return (self.forget_weight * distill_kl(task.outputs(student, f.x), bad, self.temperature)
                    + distill_kl(task.outputs(student, r.x), good, self.temperature))

        return descend(clone(model), objective, steps=self.steps, lr=ctx.lr(self.lr), ctx=ctx, label=self.name)
