"""Deterministic cost: count per-example forward and gradient evaluations (paper 003 Fig. 2's x-axis).

Global module hooks see every outermost ``module(x)`` call while counting is on; the batch size of its
first tensor input (positional or keyword) is added to ``gradient_evals`` when autograd records the call (a backward pass will
follow) and to ``forward_evals`` otherwise. Counts depend only on what the method computes, never on
machine load, so they compare methods run on different, busy or quiet, hardware.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook


@dataclass
class EvalCount:
    gradient_evals: int = 0  # examples passed forward with autograd on (forward + backward)
    forward_evals: int = 0   # examples passed forward without autograd (inference only)
    paused: bool = False     # set while an observer measures the model: its passes are not the method's

    def as_dict(self) -> dict[str, int]:
        return {"gradient_evals": self.gradient_evals, "forward_evals": self.forward_evals}


def _batch_size(args: tuple[Any, ...]) -> int:
    for arg in args:
        if isinstance(arg, torch.Tensor):
            return int(arg.shape[0]) if arg.dim() > 0 else 1
    return 0


def _records_grad(module: nn.Module) -> bool:
    return torch.is_grad_enabled() and any(p.requires_grad for p in module.parameters())


@contextlib.contextmanager
def count_evaluations() -> Iterator[EvalCount]:
    """Count examples through outermost module calls inside the block (nested submodule calls are skipped).

    Counted when the outermost call returns, from its positional or keyword tensors: transformers models are
    called as ``model(input_ids=x)``, and a global pre-hook never sees keyword arguments (that made every
    language-model count 0).
    """
    count, depth = EvalCount(), [0]

    def before(module: nn.Module, args: tuple[Any, ...]) -> None:
        if not count.paused:
            depth[0] += 1

    def after(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        if count.paused:
            return
        depth[0] -= 1
        if depth[0] == 0:
            size = _batch_size(args) or _batch_size(tuple(kwargs.values()))
            if _records_grad(module):
                count.gradient_evals += size
            else:
                count.forward_evals += size

    pre = register_module_forward_pre_hook(before)
    post = register_module_forward_hook(after, with_kwargs=True)
    try:
        yield count
    finally:
        pre.remove()
        post.remove()
