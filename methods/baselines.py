"""The floor and the ceiling every method is judged between."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from bench.bounds import OptionalSteps, Steps
from bench.context import UnlearnContext
from bench.method import Method
from bench.optim import clone
from bench.registry import register_method


@register_method
@dataclass(kw_only=True)
class NoOp(Method):
    """Return the original model unchanged: the floor any method must beat."""

    name = "noop"
    changes_model = False
    steps: Steps = 0

    def unlearn(self, model: nn.Module, ctx: UnlearnContext) -> nn.Module:
        return clone(model)


@register_method
@dataclass(kw_only=True)
class Retrain(Method):
    """Train a fresh model on the retain set with the task's recipe: the ceiling, at full cost."""

    name = "retrain"
    unbounded_steps = True  # steps=None is its full recipe, not a missing budget (bench.enforce.budget_of)
    steps: OptionalSteps = None  # None: the task's full recipe; an int caps its optimiser steps

    def unlearn(self, model: nn.Module, ctx: UnlearnContext) -> nn.Module:
        fresh = ctx.task.make_model(ctx.seed).to(ctx.device)
        trained = ctx.task.train(fresh, ctx.retain, ctx.seed, max_steps=self.steps, on_step=ctx.step_done)
        return trained.eval()
