"""Unlearning guided by datamodels (paper 003): Datamodel-Direct and Datamodel-Matching."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bench.bounds import DatamodelModels, Steps, SubsetFraction
from bench.context import UnlearnContext
from bench.method import Method
from bench.optim import clone
from bench.registry import register_method
from methods.oracle_matching import OracleMatching


def predicted_removal_effect(ctx: UnlearnContext, alpha: float, rescale: bool) -> torch.Tensor:
    """Datamodel-predicted change of every target's outputs [train + val, out_dim] when the forget set leaves.

    Datamodels fit on alpha-subsets estimate each point's effect at training-set size alpha*n; an
    influence scales like 1/size for M-estimators, so the effect at full size is about alpha times it.
    """
    if ctx.datamodels is None:
        raise RuntimeError("this method needs datamodels; the runner builds them when asked")
    effect = ctx.datamodels.removal_effect(ctx.data.forget_idx)
    return effect * alpha if rescale else effect


class ShiftedOutputs(nn.Module):
    """The original model plus fixed output offsets for known inputs (matched row by row, exactly)."""

    def __init__(self, inner: nn.Module, keys: torch.Tensor, shifts: torch.Tensor) -> None:
        super().__init__()
        self.inner = inner
        self.shifts = shifts
        self.index = {row.numpy().tobytes(): i for i, row in enumerate(keys.detach().cpu())}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        rows = [self.index.get(r.numpy().tobytes(), -1) for r in x.detach().cpu()]
        known = torch.tensor([r >= 0 for r in rows], device=out.device)
        offsets = self.shifts[torch.tensor([max(r, 0) for r in rows])].to(out.device, out.dtype)
        return out + offsets.view_as(out) * known.view(-1, *([1] * (out.dim() - 1)))


def _model_inputs(task, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The tensor the task actually feeds the model for inputs ``x`` (after any task-side preprocessing)."""
    seen: list[torch.Tensor] = []
    handle = model.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    try:
        with torch.no_grad():
            task.outputs(model, x)
    finally:
        handle.remove()
    return seen[0]


@register_method
@dataclass(kw_only=True)
class DatamodelDirect(Method):
    """Predict unlearned outputs directly: original outputs minus the forget set's datamodel contributions."""

    name = "dm-direct"
    requires = frozenset({"datamodels"})
    output = "predictions"

    steps: Steps = 0  # no optimisation: the cost is the datamodels' one-off precomputation
    datamodel_models: DatamodelModels = 500
    alpha: SubsetFraction = 0.5
    rescale: bool = True

    def unlearn(self, model: nn.Module, ctx: UnlearnContext) -> nn.Module:
        effect = predicted_removal_effect(ctx, self.alpha, self.rescale)
        inputs = torch.cat([ctx.data.train.x, ctx.data.val.x])
        keys = _model_inputs(ctx.task, model, inputs)
        return ShiftedOutputs(clone(model), keys, effect).eval()


@register_method
@dataclass(kw_only=True)
class DatamodelMatching(OracleMatching):
    """Oracle Matching with datamodel-predicted targets instead of a retrained model's outputs (paper 003)."""

    name = "dm-matching"
    requires = frozenset({"datamodels"})

    datamodel_models: DatamodelModels = 500
    alpha: SubsetFraction = 0.5
    rescale: bool = True

    def target_outputs(self, model: nn.Module, ctx: UnlearnContext, ids: np.ndarray, x: torch.Tensor) -> torch.Tensor:
        effect = predicted_removal_effect(ctx, self.alpha, self.rescale)[torch.as_tensor(ids, dtype=torch.long)]
        with torch.no_grad():
            current = ctx.task.outputs(model, x)
        return current + effect.to(current.device, current.dtype).view_as(current)
