"""Run a model once per input while a unit computes its statistics on one split.

Margins, losses, the challenge confidence and the task's utility are separate task methods, and each
calls the model on the same inputs: three or four forward passes per split where one suffices. Inside
``one_forward_per_input(model)`` a call with an input equal to the previous call's (same tensor, or same
shape, dtype, device and values) returns a copy of the stored output instead of running the model again.
Task methods stay as they are; the arrays are bit-identical because the stored output is exactly what the
model returned (an eval-mode forward is a function of its input).

Not memoised: models in train mode (dropout, batch-norm statistics), calls with extra arguments, non-tensor
inputs or outputs (language models return output objects), and compiled modules.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import nn

_MISSING = object()


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a is b:
        return True
    return a.shape == b.shape and a.dtype == b.dtype and a.device == b.device and bool(torch.equal(a, b))


@contextlib.contextmanager
def one_forward_per_input(model: nn.Module) -> Iterator[dict[str, int]]:
    """Within the block, repeated calls of ``model`` on an equal input reuse its output.

    Yields counters ``{"computed": ..., "reused": ...}`` so callers (and tests) can see what happened.
    """
    counts = {"computed": 0, "reused": 0}
    if model.training or hasattr(model, "_orig_mod"):  # train mode is stochastic; compiled modules wrap forward
        yield counts
        return
    previous = model.__dict__.get("forward", _MISSING)
    inner = model.forward
    last: list[tuple[torch.Tensor, torch.Tensor]] = []  # one entry: statistics go split by split

    def forward(*args: Any, **kwargs: Any) -> Any:
        x = args[0] if len(args) == 1 and not kwargs else None
        if not isinstance(x, torch.Tensor) or model.training:
            return inner(*args, **kwargs)
        if last and _same(last[0][0], x):
            counts["reused"] += 1
            return last[0][1].clone()  # a caller may change its copy in place
        out = inner(x)
        counts["computed"] += 1
        if isinstance(out, torch.Tensor) and not out.requires_grad:
            last[:] = [(x, out.clone())]
        else:
            last.clear()
        return out

    model.forward = forward
    try:
        yield counts
    finally:
        if previous is _MISSING:
            del model.forward
        else:
            model.forward = previous
