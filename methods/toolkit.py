"""The toolkit for method authors: the pieces unlearning methods share, each with one job.

A method file builds on these (and on ``bench.optim.clone`` / ``descend``) rather than on another
method's private helpers. What counts as a step is defined once, in ``bench.enforce``.

- ``distill_kl``: Hinton's temperature-softened distillation loss (SCRUB, Bad Teacher).
- ``fisher_diagonal``: diagonal empirical Fisher of any split (Fisher forgetting, SSD).
- ``per_example_grads``: per-example gradients of the task loss, vectorised with ``torch.func``.
- ``random_wrong_labels``: relabelling with a uniformly drawn wrong class (random-label, SalUn).
- ``saliency_mask``: the weights most salient to a split's loss (SalUn).
"""
from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from bench.optim import clone
from bench.task import Split, Task

__all__ = ["distill_kl", "fisher_diagonal", "per_example_grads", "random_wrong_labels", "saliency_mask"]


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) of temperature-softened outputs, times T^2, averaged over the batch
    (Hinton et al.'s distillation loss, as in SCRUB's code)."""
    log_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    kl = F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True)
    return kl * temperature ** 2


def per_example_grads(model: nn.Module, task: Task, batch: Split) -> dict[str, torch.Tensor]:
    """Gradient of each example's task loss, per parameter name: tensors of shape [len(batch), *param.shape].

    Feeds the model ``task.model_inputs`` (vision normalisation included) and applies
    ``task.loss_from_outputs``, so it works for any task that defines it.
    """
    params = {name: p.detach() for name, p in model.named_parameters()}
    buffers = {name: b.detach() for name, b in model.named_buffers()}

    def example_loss(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        outputs = functional_call(model, (p, buffers), (x.unsqueeze(0),))
        return task.loss_from_outputs(outputs, y.unsqueeze(0)).sum()

    device = next(iter(params.values())).device
    # through the task's input path: vision tasks feed the network normalised floats, not raw uint8
    inputs = task.model_inputs(batch.x, device)
    return vmap(grad(example_loss), in_dims=(None, 0, 0))(params, inputs, batch.y.to(device))


def fisher_diagonal(model: nn.Module, task: Task, batches: Iterable[Split]) -> dict[str, torch.Tensor]:
    """Diagonal empirical Fisher: the mean over the examples of ``batches`` of the squared per-example
    gradient of the loss at the true label. The caller chooses the split, the batches and any step
    accounting (Fisher forgetting charges each retain batch as a step; SSD charges none)."""
    totals = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    seen = 0
    for batch in batches:
        for name, g in per_example_grads(model, task, batch).items():
            totals[name] += g.pow(2).sum(0)
        seen += len(batch)
    return {name: total / max(seen, 1) for name, total in totals.items()}


def random_wrong_labels(y: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """One label per example drawn uniformly from the ``num_classes - 1`` classes other than its own."""
    shift = torch.randint(1, num_classes, tuple(y.shape), generator=generator, device=generator.device)
    return (y + shift.to(y.device)) % num_classes


def saliency_mask(model: nn.Module, task: Task, split: Split, fraction: float,
                  batch_size: int | None) -> dict[str, torch.Tensor]:
    """Boolean masks marking the ``fraction`` of all weights with the largest |gradient| of ``split``'s loss.

    The gradient is that of the mean loss at the given weights, accumulated over the split in order (no
    optimiser step, so it does not count against a budget); the threshold is global, over every
    parameter tensor at once.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"mask_fraction must be in [0, 1], got {fraction}")
    forget = split
    probe = clone(model).eval()
    probe.zero_grad(set_to_none=True)
    n = len(forget)
    size = batch_size or n
    for start in range(0, n, size):
        x, y = forget.x[start:start + size], forget.y[start:start + size]
        (task.loss(probe, x, y).sum() / n).backward()
    named = [(name, p) for name, p in probe.named_parameters()]
    saliency = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).abs().flatten()
                          for _, p in named])
    keep = int(round(fraction * saliency.numel()))
    flat = torch.zeros(saliency.numel(), dtype=torch.bool, device=saliency.device)
    if keep > 0:
        flat[torch.topk(saliency, keep, sorted=False).indices] = True
    masks, offset = {}, 0
    for name, p in named:
        masks[name] = flat[offset:offset + p.numel()].view_as(p)
        offset += p.numel()
    return masks
