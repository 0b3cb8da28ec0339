"""Influence estimators for the language tasks from maintained attribution libraries, as options beside ours.

Why: seed 000's influence (section 3.6.3) is computed here with a hand-written LiSSA
(``tasks.language.metrics.lissa_inverse_hvp``). The libraries give an independent implementation to check it
against, and EK-FAC (Grosse et al. 2023, which seed 000 cites) is a different, cheaper inverse-Hessian
approximation that only a library provides.

* ``dattri-lissa``: dattri 0.3's ``ihvp_lissa`` (same recursion as ours, h <- v + (1 - d) h - H h / s, result
  h / s), run full-batch and deterministically on the same embedding parameters. On dave-tiny-sized GPT-2s
  it agrees with ours to about 5e-7 relative (float32 rounding) but is 5-6x slower, because it rebuilds the
  first-order graph for every Hessian-vector product where ours reuses it: ours stays the default.
* ``ekfac``: kronfluence 1.0's EK-FAC on the transformer blocks' linear layers (attention and MLP, as in
  Grosse et al.). kronfluence supports ``nn.Linear`` and ``nn.Conv2d`` only, so GPT-2's ``Conv1D`` layers
  are converted to equivalent ``nn.Linear`` copies, and the embedding matrix, which ours uses, cannot be
  tracked: the score is over different parameters and approximates the Gauss-Newton / Fisher matrix, not the
  Hessian, so it is not a drop-in for ``lissa``.

Both libraries are optional: a missing one is a BenchError (exit 2) with the pip command.
"""
from __future__ import annotations

import copy
import tempfile
from typing import Callable

import torch
from torch import nn

from bench.errors import BenchError

DATTRI_HINT = "influence_estimator=dattri-lissa needs the dattri library: pip install dattri==0.3.0"
KRONFLUENCE_HINT = "influence_estimator=ekfac needs the kronfluence library: pip install kronfluence==1.0.1"

LossOf = Callable[[nn.Module], torch.Tensor]  # the scalar loss computed with the given module


def _require(module: str, hint: str):
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise BenchError(f"{hint} (import failed: {err})") from err


def require_library(estimator: str) -> None:
    """Import the library an estimator needs, or raise the BenchError with its install command."""
    if estimator == "dattri-lissa":
        _require("dattri.func.hessian", DATTRI_HINT)
    elif estimator == "ekfac":
        _require("kronfluence.analyzer", KRONFLUENCE_HINT)
    else:
        raise ValueError(f"{estimator!r} is not a library estimator; use dattri-lissa or ekfac")


class _WithParams(nn.Module):
    """``model`` with some parameters replaced by given tensors (torch.func.functional_call), as a module."""

    def __init__(self, model: nn.Module, params: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.model = model
        self.replaced = params

    def forward(self, *args, **kwargs):
        return torch.func.functional_call(self.model, self.replaced, args=args, kwargs=kwargs)


def functional_params(model: nn.Module, names: list[str], flat: torch.Tensor) -> dict[str, torch.Tensor]:
    """All of ``model``'s parameters for functional_call: ``names`` from ``flat``, every other one detached.

    Why detached: an ordinary grad-requiring parameter inside dattri's LiSSA loop makes each recursion step's
    HVP keep the autograd graph of the step before (measured on dave-tiny: 23 GB after 40 steps, 3x slower)."""
    named = dict(model.named_parameters())
    shapes = [named[n].shape for n in names]
    chunks = torch.split(flat, [named[n].numel() for n in names])
    frozen = {n: p.detach() for n, p in named.items() if n not in set(names)}
    return {**frozen, **{n: c.reshape(s) for n, c, s in zip(names, chunks, shapes)}}


def _flat_grad(loss: torch.Tensor, params: list[nn.Parameter]) -> torch.Tensor:
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)]).detach()


def dattri_influence(model: nn.Module, names: list[str], train_loss_of: LossOf, test_loss_of: LossOf,
                     hessian_loss_of: LossOf, *, damping: float = 0.01, scale: float = 25.0,
                     iterations: int = 50) -> float:
    """-grad L_train . (H + damping*scale*I)^-1 grad L_test with dattri's LiSSA, H of ``hessian_loss_of``,
    over the parameters ``names`` (as ``tasks.language.metrics.influence_score`` with estimator="lissa")."""
    hessian = _require("dattri.func.hessian", DATTRI_HINT)
    named = dict(model.named_parameters())
    missing = [n for n in names if n not in named]
    if missing:
        raise ValueError(f"unknown parameters {missing}")
    params = [named[n] for n in names]
    was_training = model.training
    model.eval()
    try:
        g_test = _flat_grad(test_loss_of(model), params)
        g_train = _flat_grad(train_loss_of(model), params)

        def loss_at(flat: torch.Tensor) -> torch.Tensor:  # the data are closed over: dattri differentiates inputs
            return hessian_loss_of(_WithParams(model, functional_params(model, names, flat)))

        ihvp = hessian.ihvp_lissa(loss_at, argnums=0, batch_size=1, num_repeat=1, recursion_depth=iterations,
                                  damping=damping, scaling=scale)
        flat = torch.cat([p.detach().reshape(-1) for p in params])
        h = ihvp((flat,), g_test, in_dims=(None,))[0]
    finally:
        model.train(was_training)
    if not torch.isfinite(h).all():
        raise FloatingPointError("dattri LiSSA diverged: increase scale (or damping)")
    return float(-(g_train @ h).item())


# -- EK-FAC (kronfluence) -------------------------------------------------------------------------------------
def linear_copy(model: nn.Module) -> nn.Module:
    """A copy of a Hugging Face GPT-2 whose ``Conv1D`` layers are ``nn.Linear`` (same outputs; kronfluence
    tracks only Linear and Conv2d). Conv1D computes x W + b with W [in, out]; Linear computes x W'^T + b."""
    from transformers.pytorch_utils import Conv1D

    out = copy.deepcopy(model)
    for module in list(out.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, Conv1D):
                fan_in, fan_out = child.weight.shape
                linear = nn.Linear(fan_in, fan_out, device=child.weight.device, dtype=child.weight.dtype)
                with torch.no_grad():
                    linear.weight.copy_(child.weight.t())
                    linear.bias.copy_(child.bias)
                setattr(module, child_name, linear)
    return out.eval()


def block_linears(model: nn.Module) -> list[str]:
    """Names of the transformer blocks' linear layers (attention and MLP), the modules EK-FAC tracks."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and ".h." in f".{n}"]


def _sequence_loss(logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   sample: bool) -> torch.Tensor:
    """Sum over the batch of each sequence's mean next-token NLL (the task's loss), with labels sampled from
    the model when ``sample`` (kronfluence's true Fisher)."""
    logits = logits[:, :-1].float()
    targets = input_ids[:, 1:]
    predicted = attention_mask[:, 1:].bool()
    if sample:
        with torch.no_grad():
            targets = torch.distributions.Categorical(logits=logits).sample()
    nll = nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    nll = torch.where(predicted, nll, torch.zeros_like(nll))
    return (nll.sum(1) / predicted.sum(1).clamp(min=1)).sum()


class _Rows(torch.utils.data.Dataset):
    def __init__(self, ids: torch.Tensor, mask: torch.Tensor) -> None:
        self.ids, self.mask = ids, mask

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        return self.ids[i], self.mask[i]


def ekfac_pairwise(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor],
                   query: tuple[torch.Tensor, torch.Tensor], candidates: tuple[torch.Tensor, torch.Tensor], *,
                   damping: float = 0.25, seed: int = 0) -> torch.Tensor:
    """g_q^T (F + damping I)^-1 g_c for every query q and candidate c [n_query, n_candidates]: kronfluence's
    EK-FAC of the Fisher of the per-sequence loss over ``train``, on the blocks' linear layers."""
    analyzer_mod = _require("kronfluence.analyzer", KRONFLUENCE_HINT)
    from kronfluence.arguments import FactorArguments, ScoreArguments
    from kronfluence.task import Task as KronTask

    linear = linear_copy(model)
    tracked = block_linears(linear)

    class SequenceTask(KronTask):
        def compute_train_loss(self, batch, model, sample=False):
            ids, mask = batch
            return _sequence_loss(model(input_ids=ids, attention_mask=mask).logits, ids, mask, sample)

        def compute_measurement(self, batch, model):
            return self.compute_train_loss(batch, model, sample=False)

        def get_influence_tracked_modules(self):
            return tracked

        def get_attention_mask(self, batch):
            return batch[1]

    task = SequenceTask()
    prepared = analyzer_mod.prepare_model(linear, task)
    with tempfile.TemporaryDirectory(prefix="bench-ekfac-") as out, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the sampled labels of the true Fisher
        analyzer = analyzer_mod.Analyzer("influence", prepared, task, cpu=not torch.cuda.is_available(),
                                         disable_tqdm=True, output_dir=out)
        analyzer.fit_all_factors("ekfac", _Rows(*train), per_device_batch_size=len(train[0]),
                                 factor_args=FactorArguments(strategy="ekfac"))
        analyzer.compute_pairwise_scores("pairs", "ekfac", _Rows(*query), _Rows(*candidates),
                                         per_device_query_batch_size=len(query[0]),
                                         per_device_train_batch_size=len(candidates[0]),
                                         score_args=ScoreArguments(damping_factor=damping))
        scores = analyzer.load_pairwise_scores("pairs")["all_modules"]
    return scores.detach().cpu()


def ekfac_self_influence(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor],
                         forget: tuple[torch.Tensor, torch.Tensor], *, damping: float = 0.25) -> float:
    """-grad L_forget . (F + damping I)^-1 grad L_forget with L_forget the mean loss over the forget rows:
    the mean of the pairwise scores over forget x forget (the form is bilinear), negated like ours."""
    return float(-ekfac_pairwise(model, train, forget, forget, damping=damping).mean().item())
