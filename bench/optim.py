"""The one gradient loop every gradient-based method shares: budget, divergence checks, observation."""
from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn

from bench.context import UnlearnContext
from bench.divergence import ObjectiveWatch
from bench.errors import DivergenceError


def clone(model: nn.Module) -> nn.Module:
    """An independent copy, so a method never mutates the model it was given."""
    return copy.deepcopy(model)


def weights_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def descend(model: nn.Module, objective: Callable[[nn.Module], torch.Tensor], *, steps: int, lr: float,
            ctx: UnlearnContext, momentum: float = 0.0, weight_decay: float = 0.0,
            label: str = "unlearning") -> nn.Module:
    """Run ``steps`` SGD steps on ``objective(model)`` in place; stop with a clear error on NaN/inf."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    model.train()
    watch = ObjectiveWatch(label)  # non-finite, or grown a million-fold: stop here, naming the iteration
    for step in range(1, steps + 1):
        optimizer.zero_grad(set_to_none=True)
        loss = objective(model)
        watch(step, float(loss.detach()))
        loss.backward()
        optimizer.step()
        ctx.step_done(model)
    if not weights_finite(model):
        raise DivergenceError(f"{label} diverged: weights are not finite after {steps} iterations")
    model.eval()
    return model
