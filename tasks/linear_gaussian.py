"""Ridge regression on isotropic Gaussian data: the toy of paper 003 (section 2.1, Figure 3)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import torch
from torch import nn

from bench.bounds import ForgetSize, NonNegative, Range, Seed, Steps, TrainBatch
from bench.registry import register_task
from bench.seeding import torch_generator
from bench.metrics.declared import declare
from bench.task import Split, StepHook, Task

MSE = declare("mse", "lower", "mean squared error of the prediction on a split, mean over models")

DTYPE = torch.float64  # float64 so convergence to 1e-6 of the closed form is measurable


def ridge_solution(x: torch.Tensor, y: torch.Tensor, ridge: float) -> torch.Tensor:
    """argmin_w (1/2m)||Xw - y||^2 + (ridge/2)||w||^2, i.e. (X^T X + m*ridge*I)^-1 X^T y."""
    m, d = x.shape
    gram = x.T @ x + m * ridge * torch.eye(d, dtype=x.dtype, device=x.device)
    return torch.linalg.solve(gram, x.T @ y)


@register_task
@dataclass(kw_only=True)
class LinearGaussian(Task):
    """Ridge regression on n Gaussian points in d dims labelled by a noisy linear function (exact oracle)."""

    name = "linear-gaussian"
    version = "2"
    default_lr = 0.1  # below 2/L: the largest curvature of the retain objective is about (sqrt(d)+sqrt(n))^2/n
    default_batch_size = None  # full-batch gradient descent, as in the paper's analysis
    unique_optimum = True

    n: Annotated[int, Range(2, 1_000_000)] = 100
    d: Annotated[int, Range(1, 100_000)] = 400
    n_val: Annotated[int, Range(1, 1_000_000)] = 100
    noise: NonNegative = 0.1
    ridge: NonNegative = 1e-3
    forget_size: ForgetSize = 5
    trainer: Literal["exact", "gd", "sgd"] = "exact"  # sgd: mini-batches of sgd_batch, so models vary by seed
    train_steps: Steps = 500
    init_scale: NonNegative = 0.0
    sgd_batch: TrainBatch = 10
    data_seed: Seed = 0

    def load(self) -> tuple[Split, Split]:
        gen = torch_generator(self.data_seed)
        w_star = torch.randn(self.d, generator=gen, dtype=DTYPE) / np.sqrt(self.d)
        x = torch.randn(self.n + self.n_val, self.d, generator=gen, dtype=DTYPE)
        y = x @ w_star + self.noise * torch.randn(self.n + self.n_val, generator=gen, dtype=DTYPE)
        return Split(x[: self.n], y[: self.n]), Split(x[self.n:], y[self.n:])

    def make_model(self, seed: int) -> nn.Module:
        model = nn.Linear(self.d, 1, bias=False, dtype=DTYPE)
        with torch.no_grad():
            init = torch.randn(1, self.d, generator=torch_generator(seed), dtype=DTYPE)
            model.weight.copy_(init * self.init_scale / np.sqrt(self.d))
        return model

    def train(self, model: nn.Module, data: Split, seed: int, *, max_steps: int | None = None,
              on_step: StepHook | None = None) -> nn.Module:
        if self.trainer == "exact" and max_steps is None:
            with torch.no_grad():
                model.weight.copy_(ridge_solution(data.x, data.y, self.ridge).view(1, -1))
            return model
        steps = self.train_steps if max_steps is None else min(max_steps, self.train_steps)
        optimizer = torch.optim.SGD(model.parameters(), lr=self.train_lr())
        gen = torch_generator(seed)
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            batch = (torch.randint(len(data), (self.sgd_batch,), generator=gen) if self.trainer == "sgd"
                     else slice(None))
            objective = self.loss(model, data.x[batch], data.y[batch]).mean() + self.regularizer(model)
            objective.backward()
            optimizer.step()
            if on_step is not None:
                on_step(model)
        return model

    def train_lr(self) -> float:
        """The task's step size, capped for mini-batches at b / (sqrt(d) + sqrt(b))^2: half the stability
        limit 2/L, with L the largest curvature of a b-point Gaussian batch (Marchenko-Pastur edge)."""
        if self.trainer != "sgd":
            return self.default_lr
        b = min(self.sgd_batch, self.n)
        return min(self.default_lr, b / (np.sqrt(self.d) + np.sqrt(b)) ** 2)

    def training_recipe(self) -> dict:
        if self.trainer == "exact":
            return {"trainer": "closed-form ridge"}
        batch = self.sgd_batch if self.trainer == "sgd" else "full"
        return {"trainer": self.trainer, "batch": batch, "lr": self.train_lr(), "steps": self.train_steps}

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss_from_outputs(model(x), y)

    def loss_from_outputs(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 0.5 * (outputs.squeeze(-1) - y) ** 2

    def regularizer(self, model: nn.Module) -> torch.Tensor:
        return 0.5 * self.ridge * model.weight.pow(2).sum()

    def margin(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """For regression the per-example statistic is the prediction itself."""
        return model(x).squeeze(-1)

    def margin_from_outputs(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return outputs.squeeze(-1)

    def challenge_statistic(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        """Regression has no class probabilities; the attack statistic is the prediction itself."""
        return self.margin(model, x, y).detach().cpu().numpy()

    def evaluate(self, model: nn.Module, split: Split) -> dict[str, float]:
        with torch.no_grad():
            return {"mse": float((model(split.x).squeeze(-1) - split.y).pow(2).mean())}

    def identical_models_reason(self) -> str | None:
        if self.trainer == "exact":
            return "trainer=exact (the closed-form ridge solution) ignores the seed (--task-arg trainer=sgd varies it)"
        if self.trainer == "gd" and self.init_scale == 0:
            return "trainer=gd from a zero init ignores the seed (--task-arg trainer=sgd or init_scale=1 varies it)"
        return None

    def explosion_reason(self, model: nn.Module, reference: nn.Module | None, split: Split) -> str | None:
        """Exploded: validation MSE over 100x that of predicting 0 (about Var y); such a model is no regressor."""
        with torch.no_grad():
            mse = float((model(split.x).squeeze(-1) - split.y).pow(2).mean())
            trivial = float(split.y.pow(2).mean())
        if mse > 100 * trivial:
            return f"its validation MSE {mse:.3g} is over 100x that of predicting 0 ({trivial:.3g})"
        return None
