"""Oracle Matching (paper 003): regress the model's outputs onto a retrained model's outputs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar

import numpy as np
import torch
from torch import nn

from bench.bounds import MAX_BATCH, BatchSize, LearningRate, Momentum, Range, Steps
from bench.context import UnlearnContext
from bench.method import Method
from bench.optim import clone, descend
from bench.registry import register_method
from bench.task import Split


@register_method
@dataclass(kw_only=True)
class OracleMatching(Method):
    """Fit outputs on the forget set plus a retain sample to an oracle's outputs (squared error)."""

    name = "oracle-matching"
    requires = frozenset({"oracle_outputs"})
    include_forget: ClassVar[bool] = True

    steps: Steps = 100
    lr: LearningRate = None
    batch_size: BatchSize = None
    momentum: Momentum = 0.9  # without it, matching logits on digits oscillates at the task's step size
    retain_sample: Annotated[int, Range(0, MAX_BATCH)] = 1000  # retain points drawn once (capped at the retain size)

    def matching_ids(self, ctx: UnlearnContext) -> np.ndarray:
        """Training ids whose outputs are matched: a fixed random retain sample, plus the forget set."""
        retain_idx = ctx.data.retain_idx
        take = min(self.retain_sample, len(retain_idx))
        chosen = np.sort(ctx.rng.choice(retain_idx, size=take, replace=False))
        if self.include_forget:
            chosen = np.concatenate([ctx.data.forget_idx, chosen])
        return chosen

    def matching_set(self, ctx: UnlearnContext) -> Split:
        return ctx.data.train.subset(self.matching_ids(ctx))

    def target_outputs(self, model: nn.Module, ctx: UnlearnContext, ids: np.ndarray, x: torch.Tensor) -> torch.Tensor:
        """What the outputs should become: the oracle's (subclasses predict them instead)."""
        if ctx.oracle_outputs is None:
            raise RuntimeError(f"{self.name} needs oracle outputs; the runner provides them when asked")
        return ctx.oracle_outputs(x)

    def unlearn(self, model: nn.Module, ctx: UnlearnContext) -> nn.Module:
        ids = self.matching_ids(ctx)
        points = ctx.data.train.subset(ids)
        with torch.no_grad():
            targets = Split(points.x, self.target_outputs(model, ctx, ids, points.x))
        batches = ctx.batches(targets, ctx.batch_size(self.batch_size))
        task = ctx.task

        def objective(m: nn.Module) -> torch.Tensor:
            batch = next(batches)
            diff = task.outputs(m, batch.x) - batch.y
            # mean over output dimensions: the curvature, hence a safe step size, does not grow with classes
            return 0.5 * diff.pow(2).flatten(1).mean(1).mean()

        return descend(clone(model), objective, steps=self.steps, lr=ctx.lr(self.lr), ctx=ctx,
                       momentum=self.momentum, label=self.name)


@register_method
@dataclass(kw_only=True)
class OracleMatchingRetain(OracleMatching):
    """Oracle Matching on retain points only: the ablation showing forget points are what make OM work."""

    name = "oracle-matching-retain"
    include_forget: ClassVar[bool] = False
