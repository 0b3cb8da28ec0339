"""EasyDUB's training recipe for one model (the defaults of their ``train_models.py``), for methods that retrain.

SGD (momentum 0.9, weight decay 5e-4) under torch's one-cycle schedule with linear annealing, peak learning
rate 0.4 reached after ``peak_epoch`` = 5 of 24 epochs, start and end at peak / 1e6 (and the schedule's default
momentum cycling, which their code keeps); batches of 256 reshuffled every epoch; no augmentation; bfloat16
autocast on GPU. Their script packs M models into one grouped network; one model here is that with M = 1.
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from bench.task import Split, StepHook


@dataclass(frozen=True)
class EasyDubRecipe:
    epochs: int = 24
    batch_size: int = 256
    lr: float = 0.4
    peak_epoch: int = 5
    momentum: float = 0.9
    weight_decay: float = 5e-4

    def as_dict(self) -> dict:
        return asdict(self)

    def steps_per_epoch(self, n: int) -> int:
        return -(-n // self.batch_size)


def fit(model: nn.Module, data: Split, seed: int, recipe: EasyDubRecipe,
        inputs: Callable[[torch.Tensor, torch.device], torch.Tensor], *, max_steps: int | None = None,
        on_step: StepHook | None = None) -> nn.Module:
    """Train ``model`` in place on ``data`` (uint8 images normalised by ``inputs``); returns it in eval mode."""
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    per_epoch = recipe.steps_per_epoch(len(data))
    total = recipe.epochs * per_epoch
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                          weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=recipe.lr, total_steps=total, pct_start=min(recipe.peak_epoch / recipe.epochs, 0.5),
        anneal_strategy="linear", div_factor=1e6, final_div_factor=1e6)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    images, labels = data.x.to(device), data.y.to(device)
    step = 0
    model.train()
    for _ in range(recipe.epochs):
        order = torch.randperm(len(data), generator=gen).to(device)
        for idx in order.split(recipe.batch_size):
            if max_steps is not None and step >= max_steps:
                return model.eval()
            x = inputs(images[idx], device)
            with amp:
                loss = F.cross_entropy(model(x).float(), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if on_step is not None:
                on_step(model)
    return model.eval()
