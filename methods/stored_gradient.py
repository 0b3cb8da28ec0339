"""Stored-gradient ascent (paper 000): undo an example by adding back the gradients it contributed in training."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from bench.bounds import LearningRate, Steps
from bench.context import UnlearnContext
from bench.errors import DivergenceError, ParamError
from bench.method import Method
from bench.optim import clone, weights_finite
from bench.registry import register_method


def select_layers(groups: dict[str, list[str]], spec: str) -> list[str]:
    """Parameter names for a layer spec: ``all``, ``embedding``, ``last:K``, ``embedding+last:K``, or a comma
    list of group names / paper-000 indices (0 = embedding, i = transformer block i)."""
    blocks = [g for g in groups if g.startswith("block.")]
    chosen: list[str] = []
    for part in [p.strip() for p in spec.split("+") if p.strip()]:
        if part == "all":
            chosen += list(groups)
        elif part.startswith("last:"):
            k = int(part.split(":", 1)[1])
            if not 1 <= k <= len(blocks):
                raise ParamError(f"layers={spec!r}: last:K needs 1 <= K <= {len(blocks)} blocks")
            chosen += blocks[-k:]
        else:
            for item in [i.strip() for i in part.split(",") if i.strip()]:
                name = ("embedding" if item == "0" else f"block.{item}") if item.isdigit() else item
                if name not in groups:
                    raise ParamError(f"layers={spec!r}: unknown layer {item!r}; known: {', '.join(groups)} "
                                     f"(or indices 0..{len(blocks)}, all, last:K, embedding+last:K)")
                chosen.append(name)
    if not chosen:
        raise ParamError(f"layers={spec!r} selects nothing")
    return [param for group in dict.fromkeys(chosen) for param in groups[group]]


@register_method
@dataclass(kw_only=True)
class StoredGradientAscent(Method):
    """Paper 000: step along the forget set's gradients recorded during training (first epoch or all epochs)."""

    name = "stored-ga"
    probe = "dave-tiny"
    requires = frozenset({"recorded_gradients"})

    steps: Steps = 10
    lr: LearningRate = None  # step size per iteration; None: the task's
    gradients: Literal["first-epoch", "all-epochs"] = "all-epochs"
    layers: str = "all"
    iterative: bool = False  # re-evaluate after each iteration; stop once the forget loss reaches validation's

    def unlearn(self, model: nn.Module, ctx: UnlearnContext) -> nn.Module:
        if ctx.recorded_gradients is None:
            raise RuntimeError("stored-ga needs recorded gradients; the runner provides them when asked")
        stored = ctx.recorded_gradients(self.gradients)
        model = clone(model)
        names = select_layers(ctx.task.layer_groups(model), self.layers)
        params = dict(model.named_parameters())
        direction = {n: stored[n].to(params[n].device) for n in names if n in stored}
        lr = ctx.lr(self.lr)
        stop_at = self._validation_loss(model, ctx) if self.iterative else None
        for iteration in range(1, self.steps + 1):
            with torch.no_grad():
                for name, grad in direction.items():
                    params[name].add_(grad * lr)  # an overflowing step becomes inf, caught below
            if not weights_finite(model):
                raise DivergenceError(f"stored-ga diverged at iteration {iteration}: weights are not finite")
            ctx.step_done(model)
            if stop_at is not None and self._forget_loss(model, ctx) >= stop_at:
                break
        return model.eval()

    @staticmethod
    @torch.no_grad()
    def _forget_loss(model: nn.Module, ctx: UnlearnContext) -> float:
        return float(ctx.task.loss(model, ctx.forget.x, ctx.forget.y).mean())

    @staticmethod
    @torch.no_grad()
    def _validation_loss(model: nn.Module, ctx: UnlearnContext) -> float:
        return float(ctx.task.loss(model, ctx.data.val.x, ctx.data.val.y).mean())
