"""Unlearning guided by datamodels (paper 003): Datamodel-Direct and Datamodel-Matching.

The datamodels are subset-model regressions (``attribution="datamodels"``) or TRAK scores from a few
checkpoints (``attribution="trak"``, which predict only each target's margin); either may be fitted for a
sample of targets only (``targets``), see ``oracles.attribution``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import torch
from torch import nn

from bench.bounds import Count, DatamodelModels, Range, Steps, SubsetFraction
from bench.context import UnlearnContext
from bench.method import Method
from bench.optim import clone
from bench.registry import register_method
from methods.oracle_matching import OracleMatching
from oracles.datamodels import model_inputs


def predicted_removal_effect(ctx: UnlearnContext, alpha: float, rescale: bool) -> torch.Tensor:
    """Predicted change of every fitted target's datamodel output [targets, dm.out_dim] when the forget set
    leaves.

    Datamodels fit on alpha-subsets estimate each point's effect at training-set size alpha*n; an
    influence scales like 1/size for M-estimators, so the effect at full size is about alpha times it.
    TRAK scores are already full-data (one Newton step) effects and are never rescaled.
    """
    if ctx.datamodels is None:
        raise RuntimeError("this method needs datamodels; the runner builds them when asked")
    effect = ctx.datamodels.removal_effect(ctx.data.forget_idx)
    return effect * alpha if rescale and ctx.datamodels.kind == "datamodels" else effect


def output_shifts(dm, effect: torch.Tensor, labels: torch.Tensor, out_dim: int) -> torch.Tensor:
    """Offsets [targets, out_dim] of the model's outputs: the effect itself for output datamodels; for
    margin datamodels (TRAK) the margin change added to the label's logit, which moves the margin
    z_y - logsumexp_{k != y} z_k by exactly that amount (the prediction itself when out_dim is 1)."""
    if dm.output == "outputs" or out_dim == 1:
        return effect.reshape(len(effect), out_dim)
    shifts = torch.zeros(len(effect), out_dim, dtype=effect.dtype)
    shifts[torch.arange(len(effect)), labels.long().cpu()] = effect.reshape(-1)
    return shifts


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


@register_method
@dataclass(kw_only=True)
class DatamodelDirect(Method):
    """Predict unlearned outputs directly: original outputs minus the forget set's datamodel contributions
    (points without a fitted datamodel keep the original's outputs)."""

    name = "dm-direct"
    requires = frozenset({"datamodels"})
    output = "predictions"

    steps: Steps = 0  # no optimisation: the cost is the datamodels' one-off precomputation
    attribution: Literal["datamodels", "trak"] = "datamodels"
    datamodel_models: DatamodelModels = 500
    alpha: SubsetFraction = 0.5
    rescale: bool = True
    trak_checkpoints: Count = 5
    trak_proj_dim: Annotated[int, Range(1, 1_000_000)] = 512
    trak_lds_models: Annotated[int, Range(0, 100_000)] = 20  # held-out subset models that score TRAK's LDS (0: skip)
    targets: Literal["auto", "all", "sampled"] = "auto"  # "all", "sampled" (forget + retain and validation samples) or "auto"
    retain_targets: Annotated[int, Range(0, 10_000_000)] = 2000
    val_targets: Annotated[int, Range(0, 10_000_000)] = 1000

    def unlearn(self, model: nn.Module, ctx: UnlearnContext) -> nn.Module:
        dm = ctx.datamodels
        effect = predicted_removal_effect(ctx, self.alpha, self.rescale)
        ids = torch.as_tensor(dm.target_ids)
        inputs = torch.cat([ctx.data.train.x, ctx.data.val.x])[ids]
        labels = torch.cat([ctx.data.train.y, ctx.data.val.y])[ids]
        keys = model_inputs(ctx.task, model, inputs)
        with torch.no_grad():
            out_dim = int(np.prod(ctx.task.outputs(model, inputs[:1]).shape[1:]))
        return ShiftedOutputs(clone(model), keys, output_shifts(dm, effect, labels, out_dim)).eval()


@register_method
@dataclass(kw_only=True)
class DatamodelMatching(OracleMatching):
    """Oracle Matching with datamodel-predicted targets instead of a retrained model's outputs (paper 003)."""

    name = "dm-matching"
    requires = frozenset({"datamodels"})

    attribution: Literal["datamodels", "trak"] = "datamodels"
    datamodel_models: DatamodelModels = 500
    alpha: SubsetFraction = 0.5
    rescale: bool = True
    trak_checkpoints: Count = 5
    trak_proj_dim: Annotated[int, Range(1, 1_000_000)] = 512
    trak_lds_models: Annotated[int, Range(0, 100_000)] = 20  # held-out subset models that score TRAK's LDS (0: skip)
    targets: Literal["auto", "all", "sampled"] = "auto"  # "all", "sampled" (forget + the retain sample + validation sample) or "auto"
    val_targets: Annotated[int, Range(0, 10_000_000)] = 200  # validation targets are only scored for LDS; matching uses train points

    def matching_ids(self, ctx: UnlearnContext) -> np.ndarray:
        """The forget set plus a retain sample drawn from the retain points that have datamodels."""
        dm = ctx.datamodels
        if dm is None or len(dm.target_ids) == dm.n_train + dm.n_val:
            return super().matching_ids(ctx)
        fitted = np.intersect1d(ctx.data.retain_idx, dm.target_ids)
        chosen = np.sort(ctx.rng.choice(fitted, size=min(self.retain_sample, len(fitted)), replace=False))
        return np.concatenate([ctx.data.forget_idx, chosen])

    def target_outputs(self, model: nn.Module, ctx: UnlearnContext, ids: np.ndarray, x: torch.Tensor) -> torch.Tensor:
        dm = ctx.datamodels
        effect = predicted_removal_effect(ctx, self.alpha, self.rescale)[dm.rows(ids)]
        with torch.no_grad():
            current = ctx.task.outputs(model, x)
        shifts = output_shifts(dm, effect, ctx.data.train.y[torch.as_tensor(ids, dtype=torch.long)],
                               int(np.prod(current.shape[1:])))
        return current + shifts.to(current.device, current.dtype).view_as(current)
