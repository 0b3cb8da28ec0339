"""What a method may see while it unlearns: data, task, seed, device, budget and requested extras."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from bench.errors import BudgetExceededError, ParamError
from bench.seeding import derive_seed, torch_generator
from bench.task import Split, Task, TaskData

Observer = Callable[[int, nn.Module], None]


@dataclass
class UnlearnContext:
    """Per-model context handed to ``Method.unlearn``.

    Extras, present only for methods that require them: ``oracle_outputs`` maps inputs to the outputs of
    a model retrained on the retain set (never one of the oracles the scorer compares against);
    ``recorded_gradients(kind)`` returns the forget set's gradients summed over training ("first-epoch"
    or "all-epochs"), per parameter name, recorded while this model's original was trained.
    """

    task: Task
    data: TaskData
    seed: int
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    max_steps: int | None = None
    oracle_outputs: Callable[[torch.Tensor], torch.Tensor] | None = None
    recorded_gradients: Callable[[str], dict[str, torch.Tensor]] | None = None
    datamodels: object | None = None  # oracles.datamodels.Datamodels, for methods that require "datamodels"
    observer: Observer | None = None
    steps_used: int = 0

    def __post_init__(self) -> None:
        self.generator = torch_generator(self.seed)
        self.rng = np.random.default_rng(self.seed)

    @property
    def forget(self) -> Split:
        return self.data.forget

    @property
    def retain(self) -> Split:
        return self.data.retain

    def lr(self, value: float | None) -> float:
        """The method's learning rate, or the task's recommended one when it left it as None."""
        return self.task.default_lr if value is None else value

    def batch_size(self, value: int | None) -> int | None:
        return self.task.default_batch_size if value is None else value

    def fresh_model(self, index: int = 0) -> nn.Module:
        """A newly initialised model of the task's architecture on the run's device, seeded from this context."""
        return self.task.make_model(derive_seed(self.seed, "fresh", index)).to(self.device)

    def train(self, model: nn.Module, split: Split, max_steps: int | None = None) -> nn.Module:
        """Train ``model`` on ``split`` with the task's own recipe, every optimiser step charged to the budget."""
        return self.task.train(model, split, self.seed, max_steps=max_steps, on_step=self.step_done)

    def step_done(self, model: nn.Module) -> None:
        """Count one optimiser step against the budget and let an observer record the model."""
        self.steps_used += 1
        if self.max_steps is not None and self.steps_used > self.max_steps:
            raise BudgetExceededError(f"method took step {self.steps_used} with a budget of {self.max_steps}")
        if self.observer is not None:
            self.observer(self.steps_used, model)

    def batches(self, split: Split, batch_size: int | None) -> Iterator[Split]:
        """Endless reshuffled mini-batches of ``split`` (the whole split when batch_size is None or larger)."""
        n = len(split)
        if batch_size is not None and batch_size < 1:  # would yield nothing, forever
            raise ParamError(f"batch_size must be at least 1, got {batch_size}")
        if n == 0:
            raise ParamError("cannot draw mini-batches from an empty split")
        size = n if batch_size is None or batch_size >= n else batch_size
        while True:
            if size == n:
                yield split
                continue
            order = torch.randperm(n, generator=self.generator)
            for start in range(0, n - size + 1, size):
                yield split.subset(order[start:start + size].numpy())
