"""Is a model usable at all? Non-finite outputs, exploded losses and utility collapsed to chance are not
results: scoring them would write a finite-looking record for a model that no longer works.

The bounds are the task's (``Task.explosion_reason``); this module applies them to a model and turns a
verdict into a ``DivergenceError`` that names the model and the step.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from bench.errors import DivergenceError
from bench.task import Split, Task

#: validation points a check evaluates (enough to see chance-level accuracy, cheap next to training)
CHECK_POINTS = 512
#: an objective this many times larger in magnitude than its first value (floored at 1) has exploded
OBJECTIVE_GROWTH = 1e6


def probe_split(split: Split, limit: int = CHECK_POINTS) -> Split:
    """The first ``limit`` points (deterministic, so the same check sees the same data every time)."""
    return split if len(split) <= limit else split.subset(torch.arange(limit))


@torch.no_grad()
def explosion_reason(task: Task, model: nn.Module, reference: nn.Module | None, split: Split) -> str | None:
    """Why ``model`` is broken on ``split`` (None when it is fine): non-finite outputs, or the task's verdict."""
    probe = probe_split(split)
    outputs = task.outputs(model, probe.x)
    if not bool(torch.isfinite(outputs.float()).all()):
        return "its outputs are not finite (NaN or infinity) on validation points"
    return task.explosion_reason(model, reference, probe)


def check_trained(task: Task, models: list[nn.Module], split: Split, role: str, fix: str) -> None:
    """Refuse ensembles whose training diverged (e.g. a task learning rate far too large)."""
    for i, model in enumerate(models):
        reason = explosion_reason(task, model, None, split)
        if reason:
            raise DivergenceError(f"training the {role} diverged: {role} model {i} is unusable ({reason}); {fix}")


def check_unlearned(task: Task, method_name: str, model: nn.Module, original: nn.Module, split: Split,
                    index: int, steps: int) -> None:
    """Refuse an unlearned model that exploded or collapsed, naming the method, the model and its last step."""
    reason = explosion_reason(task, model, original, split)
    if reason:
        raise DivergenceError(f"{method_name} diverged on model {index} (after step {steps}): {reason}. "
                              "Lower its lr (--method-arg lr=...) or its steps")


class ObjectiveWatch:
    """Per-step check inside a gradient loop: a non-finite or exploding objective stops it at that step."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.scale: float | None = None

    def __call__(self, step: int, value: float) -> None:
        if not math.isfinite(value):
            raise DivergenceError(f"{self.label} diverged at iteration {step}: the objective is {value}")
        if self.scale is None:
            self.scale = max(1.0, abs(value))
        elif abs(value) > OBJECTIVE_GROWTH * self.scale:
            raise DivergenceError(f"{self.label} diverged at iteration {step}: the objective grew from "
                                  f"{self.scale:.3g} to {value:.3g}; lower the lr (--method-arg lr=...)")
