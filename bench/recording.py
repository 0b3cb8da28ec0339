"""Gradient recording during training (paper 000): per requested example, per parameter, summed over
the first epoch and over all epochs, so stored-gradient methods can replay an example's contribution."""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

KINDS = ("first-epoch", "all-epochs")


class GradientRecorder:
    """Accumulates gradients of chosen training examples; only those examples pay the memory cost.

    ``observe`` is called by a task's training loop once per mini-batch with the per-example losses
    (before the optimiser step, graph still alive) and the batch's example ids.
    """

    def __init__(self, example_ids: Iterable[int], param_names: Iterable[str] | None = None) -> None:
        self.example_ids = sorted({int(i) for i in example_ids})
        self.param_names = None if param_names is None else set(param_names)
        self.sums: dict[str, dict[int, dict[str, torch.Tensor]]] = {kind: {} for kind in KINDS}
        self.observations = {i: 0 for i in self.example_ids}

    def _params(self, model: nn.Module) -> list[tuple[str, nn.Parameter]]:
        return [(name, p) for name, p in model.named_parameters()
                if p.requires_grad and (self.param_names is None or name in self.param_names)]

    def observe(self, model: nn.Module, example_losses: torch.Tensor, batch_ids: list[int], epoch: int) -> None:
        """Add the gradient of each requested example's loss (the loss's own, not the batch mean's)."""
        wanted = [(pos, i) for pos, i in enumerate(batch_ids) if i in self.observations]
        if not wanted:
            return
        named = self._params(model)
        for pos, example in wanted:
            grads = torch.autograd.grad(example_losses[pos], [p for _, p in named], retain_graph=True,
                                        allow_unused=True)
            self.observations[example] += 1
            for kind in KINDS:
                if kind == "first-epoch" and epoch > 0:
                    continue
                store = self.sums[kind].setdefault(example, {})
                for (name, param), grad in zip(named, grads):
                    grad = torch.zeros_like(param) if grad is None else grad.detach()
                    store[name] = store[name] + grad if name in store else grad.clone()

    def total(self, kind: str) -> dict[str, torch.Tensor]:
        """Gradients summed over every recorded example, for ``first-epoch`` or ``all-epochs``."""
        if kind not in KINDS:
            raise ValueError(f"unknown gradient kind {kind!r}; use one of {KINDS}")
        out: dict[str, torch.Tensor] = {}
        for per_param in self.sums[kind].values():
            for name, grad in per_param.items():
                out[name] = out[name] + grad if name in out else grad.clone()
        return out

    def flat_state(self) -> dict[str, torch.Tensor]:
        """Everything recorded as one flat tensor dict (``kind/example/param``), for the model store."""
        return {f"{kind}/{example}/{name}": grad for kind, per_example in self.sums.items()
                for example, per_param in per_example.items() for name, grad in per_param.items()}

    def memory_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.flat_state().values())


def totals_from_flat(flat: dict[str, torch.Tensor], kind: str) -> dict[str, torch.Tensor]:
    """Inverse of ``flat_state`` summed over examples: the per-parameter total for one kind."""
    out: dict[str, torch.Tensor] = {}
    for key, grad in flat.items():
        k, _example, name = key.split("/", 2)
        if k == kind:
            out[name] = out[name] + grad if name in out else grad.clone()
    return out
