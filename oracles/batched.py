"""Training many small models at once (torch.func vmap) and the plain one-model loop it must agree with.

Both paths draw the same mini-batch order from each model's seed and use SGD, whose update is
elementwise, so the two agree to float rounding. Not bit for bit on every CPU: the loop's matmuls and
vmap's batched ones round differently under MKL's AVX2 kernels (about 3e-8), so ClassifierTask.train_many
sends every chunk, even one model, through vmap; stacks of two or more models agree exactly.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from bench.seeding import torch_generator
from bench.task import Split, StepHook

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (outputs, labels) -> mean loss (a scalar)


@dataclass(frozen=True)
class SGDRecipe:
    """Mini-batch SGD with momentum and weight decay, the learning rate decayed linearly to zero."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4

    def as_dict(self) -> dict:
        return asdict(self)

    def total_steps(self, n: int) -> int:
        return self.epochs * -(-n // self.batch_size)


def batch_order(n: int, recipe: SGDRecipe, seed: int, subset: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
    """The index batches one model sees, epoch by epoch, from its own seed (drawn from ``subset`` if given)."""
    gen = torch_generator(seed)
    for _ in range(recipe.epochs):
        perm = torch.randperm(n if subset is None else len(subset), generator=gen)
        yield from (perm if subset is None else subset[perm]).split(recipe.batch_size)


def _optimizer(params: list[torch.Tensor], recipe: SGDRecipe, total: int):
    opt = torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                          foreach=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: max(0.0, 1.0 - step / total))
    return opt, sched


def _autocast(device: torch.device):
    """bfloat16 autocast on GPU (keeps fp32 master weights); nothing on CPU, where it only slows small nets."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def fit_loop(model: nn.Module, data: Split, seed: int, recipe: SGDRecipe, loss_fn: LossFn, *,
             max_steps: int | None = None, on_step: StepHook | None = None) -> nn.Module:
    """Train one model in place with a bare PyTorch loop."""
    device = next(model.parameters()).device
    total = recipe.total_steps(len(data))
    opt, sched = _optimizer(list(model.parameters()), recipe, total)
    autocast, on_cpu = _autocast(device), device.type == "cpu"  # hoisted: tiny models pay per-step overhead
    model.train()
    for step, idx in enumerate(batch_order(len(data), recipe, seed)):
        if max_steps is not None and step >= max_steps:
            break
        if not on_cpu:
            idx = idx.to(device)
        with autocast:
            loss = loss_fn(model(data.x[idx]), data.y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if on_step is not None:
            on_step(model)
    return model.eval()


def fit_stacked(models: list[nn.Module], data: Split, seeds: list[int], recipe: SGDRecipe,
                loss_fn: LossFn, subsets: list[torch.Tensor] | None = None) -> list[nn.Module]:
    """Train ``models`` (same architecture, different inits) together, each on its own batch order.

    With ``subsets`` (equal-sized index tensors, one per model), model i trains only on ``subsets[i]``:
    how datamodel ensembles of random half-datasets are trained in one batch.
    """
    if len(models) != len(seeds):
        raise ValueError("need one seed per model")
    device = next(models[0].parameters()).device
    params, buffers = stack_module_state(models)
    skeleton = copy.deepcopy(models[0]).to("meta")

    def one_model_loss(p: dict, b: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss_fn(functional_call(skeleton, (p, b), (x,)), y)

    batched_loss = vmap(one_model_loss)
    if subsets is not None and len({len(s) for s in subsets}) != 1:
        raise ValueError("batched subset training needs subsets of equal size")
    size = len(data) if subsets is None else len(subsets[0])
    total = recipe.total_steps(size)
    opt, sched = _optimizer(list(params.values()), recipe, total)
    orders = [batch_order(len(data), recipe, seed, None if subsets is None else subsets[i])
              for i, seed in enumerate(seeds)]
    for step_batches in zip(*orders):
        idx = torch.stack(step_batches).to(device)  # [models, batch]
        with _autocast(device):
            losses = batched_loss(params, buffers, data.x[idx], data.y[idx])
        opt.zero_grad(set_to_none=True)
        losses.sum().backward()  # model i's slice of the gradient is exactly its own loss's gradient
        opt.step()
        sched.step()
    for i, model in enumerate(models):
        state = {name: tensor[i].detach() for name, tensor in {**params, **buffers}.items()}
        model.load_state_dict(state)
        model.eval()
    return models
