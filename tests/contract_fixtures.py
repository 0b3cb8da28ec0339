"""Deliberately broken methods: each breaks one rule of the contract (importable, for the fresh-process check)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from bench.bounds import Steps, StepSize
from bench.method import Method
from bench.optim import clone, descend


def _descend(model, ctx, steps):
    task = ctx.task
    return descend(clone(model), lambda m: task.loss(m, ctx.retain.x, ctx.retain.y).mean(), steps=steps,
                   lr=ctx.lr(None), ctx=ctx)


@dataclass(kw_only=True)
class Honest(Method):
    """A correct method the broken ones are variants of."""
    name = "honest"
    steps: Steps = 3

    def unlearn(self, model, ctx):
        return _descend(model, ctx, self.steps)


@dataclass(kw_only=True)
class OwnLoopNoStepDone(Method):
    """Runs 500 optimiser steps of its own and never reports them."""
    name = "own-loop"
    steps: Steps = 3

    def unlearn(self, model, ctx):
        out = clone(model)
        opt = torch.optim.SGD(out.parameters(), lr=1e-3)
        for _ in range(500):
            opt.zero_grad()
            ctx.task.loss(out, ctx.retain.x, ctx.retain.y).mean().backward()
            opt.step()
        return out


@dataclass(kw_only=True)
class FloatSteps(Method):
    """Declares its budget as a float, which used to switch the budget off."""
    name = "float-steps"
    steps: float = 3.0

    def unlearn(self, model, ctx):
        return _descend(model, ctx, 3)


@dataclass(kw_only=True)
class MutatesValidation(Method):
    """Scales the validation inputs in place."""
    name = "mutates-val"
    steps: Steps = 3

    def unlearn(self, model, ctx):
        ctx.data.val.x.mul_(1.0001)
        return _descend(model, ctx, self.steps)


@dataclass(kw_only=True)
class LeavesTrainMode(Method):
    """Puts its input model into train mode and leaves it there."""
    name = "train-mode"
    steps: Steps = 3

    def unlearn(self, model, ctx):
        model.train()
        return _descend(model, ctx, self.steps)


@dataclass(kw_only=True)
class ProcessDependent(Method):
    """Deterministic within a process, different in another one (noise seeded by the process id)."""
    name = "process-dependent"
    steps: Steps = 3

    def unlearn(self, model, ctx):
        out = _descend(model, ctx, self.steps)
        gen = torch.Generator().manual_seed(os.getpid())
        with torch.no_grad():
            for p in out.parameters():
                p.add_(1e-3 * torch.randn(p.shape, generator=gen))
        return out


@dataclass(kw_only=True)
class ChangesNothing(Method):
    """Returns an untouched copy: passes the other rules vacuously."""
    name = "changes-nothing"
    steps: Steps = 3

    def unlearn(self, model, ctx):
        return clone(model)


@dataclass(kw_only=True)
class MutatesInput(Method):
    """Zeroes the model it was given and returns a copy."""
    name = "mutates-input"
    steps: Steps = 3

    def unlearn(self, model, ctx):
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
        return clone(model)


@dataclass(kw_only=True)
class ReturnsInput(Method):
    """Returns the very model it was given."""
    name = "returns-input"
    steps: Steps = 3

    def unlearn(self, model, ctx):
        return model


@dataclass(kw_only=True)
class ReturnsNone(Method):
    """Forgets to return."""
    name = "returns-none"
    steps: Steps = 3

    def unlearn(self, model, ctx):
        _descend(model, ctx, self.steps)


@dataclass(kw_only=True)
class WrongArchitecture(Method):
    """Returns a model of another architecture."""
    name = "wrong-architecture"
    steps: Steps = 3

    def unlearn(self, model, ctx):
        return nn.Linear(1, 1)


@dataclass(kw_only=True)
class ReportsTooManySteps(Method):
    """Reports more steps than its budget."""
    name = "too-many-steps"
    steps: Steps = 3

    def unlearn(self, model, ctx):
        for _ in range(self.steps + 1):
            ctx.step_done(model)
        return clone(model)


@dataclass(kw_only=True)
class NoDefault(Method):
    """A hyperparameter without a default."""
    name = "no-default"
    steps: Steps
    lr: StepSize = 0.1

    def unlearn(self, model, ctx):
        return _descend(model, ctx, self.steps)


@dataclass(kw_only=True)
class NoRoundTrip(Method):
    """Rewrites a hyperparameter in __post_init__, so get_params does not round-trip."""
    name = "no-round-trip"
    steps: Steps = 3
    lr: StepSize = 0.1

    def __post_init__(self):
        self.lr = self.lr * 2

    def unlearn(self, model, ctx):
        return _descend(model, ctx, self.steps)
