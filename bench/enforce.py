"""What the harness checks around every unlearning call, so the method contract is enforced, not trusted.

The runner and the contract suite both call ``unlearn_checked``. It refuses a method that raises,
returns nothing, returns its input or another architecture, or explodes the model (those through
``bench.method_guard``), that changes its input's weights or train/eval mode, or touches any data
split, and it counts steps itself instead of believing the method.

What counts as a step (the one definition): one optimiser update, i.e. one ``optimizer.step()`` on any
``torch.optim`` optimiser, or one ``ctx.step_done`` for a method that updates weights by hand.
The count is the larger of the two, so a method that runs its own optimiser loop without reporting is
still charged, and the budget (``steps``, an int) is enforced on the count as it happens. Not seen:
a method that updates weights by hand *and* never calls ``ctx.step_done``. The count is per process,
so units must not unlearn in parallel threads of one process (the executor uses processes).
"""
from __future__ import annotations

import hashlib
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch import nn

from bench.digests import array_digest, update_digest
from bench.errors import BudgetExceededError, MethodFailedError

if TYPE_CHECKING:
    from bench.context import UnlearnContext
    from bench.method import Method
    from bench.task import TaskData

__all__ = ["budget_of", "counted_steps", "data_fingerprint", "state_hash", "unlearn_checked"]


def budget_of(method: "Method") -> int | None:
    """The method's step budget; anything but a non-negative int is a broken method, not "no budget".

    ``None`` is accepted only from a method whose class declares ``unbounded_steps = True`` (retrain:
    the task's whole training recipe is its schedule).
    """
    steps = getattr(method, "steps", None)
    if steps is None and getattr(method, "unbounded_steps", False):
        return None
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise MethodFailedError(
            f"{type(method).__name__}.steps must be a non-negative int (the step budget), got {steps!r}; "
            "declare it as `steps: int = 100`"
        )
    return int(steps)


def state_hash(model: nn.Module) -> str:
    """sha256 of every state-dict tensor (name, dtype, shape, bytes) and every module's train flag."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}|".encode())
        update_digest(digest, tensor)
    digest.update(bytes(m.training for m in model.modules()))
    return digest.hexdigest()


def data_fingerprint(data: "TaskData") -> dict[str, str]:
    """One digest per split and the forget ids, so a violation names what was changed."""
    return {"train": array_digest(data.train.x, data.train.y), "val": array_digest(data.val.x, data.val.y),
            "forget ids": array_digest(np.asarray(data.forget_idx))}


class _StepCounter:
    def __init__(self, budget: int | None) -> None:
        self.count = 0
        self.budget = budget

    def __call__(self, optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
        self.count += 1
        if self.budget is not None and self.count > self.budget:
            raise BudgetExceededError(
                f"optimizer step {self.count} exceeds the budget of {self.budget} steps (counted by the harness)"
            )


@contextmanager
def counted_steps(budget: int | None) -> Iterator[_StepCounter]:
    """Count every torch optimiser step taken inside the block; raise as soon as the budget is passed."""
    counter = _StepCounter(budget)
    handle = register_optimizer_step_post_hook(counter)
    try:
        yield counter
    finally:
        handle.remove()


def unlearn_checked(method: "Method", model: nn.Module, ctx: "UnlearnContext", index: int = 0) -> nn.Module:
    """``method.unlearn(model, ctx)`` with the contract enforced; sets ``ctx.steps_used`` to the counted steps.

    ``bench.method_guard`` turns a raise, a missing or foreign return value and an exploded model into a
    message naming the method; this adds what the method must leave untouched and the step count.
    """
    from bench.method_guard import _origin, guarded_unlearn

    budget = budget_of(method)
    if ctx.max_steps is None:
        ctx.max_steps = budget
    weights_before = state_hash(model)
    data_before = data_fingerprint(ctx.data)
    with counted_steps(ctx.max_steps) as counter:
        out = guarded_unlearn(method, model, ctx, index)
    who = _origin(method)
    if state_hash(model) != weights_before:
        raise MethodFailedError(f"{who} changed its input model (weights, buffers or train/eval mode) while "
                                f"unlearning model {index}; work on a copy (bench.optim.clone)")
    changed = [split for split, digest in data_fingerprint(ctx.data).items() if data_before[split] != digest]
    if changed:
        raise MethodFailedError(f"{who} modified the task data ({', '.join(changed)}) while unlearning model "
                                f"{index}; copy a split before changing it")
    ctx.steps_used = max(ctx.steps_used, counter.count)
    return out
