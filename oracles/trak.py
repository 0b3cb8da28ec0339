"""TRAK attribution (Park et al. 2023) as a datamodel, computed with MadryLab's ``traker`` library.

A handful of models trained on the full training set ("checkpoints") replace thousands of subset models:
each checkpoint's per-example gradients of the margin are randomly projected, and the score of train point
i for target t is phi_t (Phi^T Phi + lambda I)^-1 phi_i Q_i with Q_i = -dloss/dmargin, averaged over
checkpoints. That is one Newton step of the effect of including i, so the scores are in margin units and
``removal_effect`` predicts margin changes directly (no alpha rescaling: they are full-data effects).

Why traker rather than dattri: traker is the TRAK authors' own code (the group of paper 003), needs only
torch, numpy and tqdm, and takes the model output and its Q term as a small class, so the margin and
Q match the task's definitions exactly; dattri 0.3 pulls in an unrelated MIDI package (pretty_midi,
mido), builds TRAK's kernel from loss gradients rather than output gradients, and mutates its module-level
projector defaults on every construction.
"""
from __future__ import annotations

import copy
import logging
import tempfile
import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from bench.errors import BenchError
from bench.executor import Executor
from bench.seeding import derive_seed
from bench.task import Task
from oracles.compute import training_gradient_evaluations
from oracles.datamodels import (Datamodels, lds_from_margins, model_inputs, subset_masks,
                                train_subset_models)
from oracles.ensemble import build_ensemble
from oracles.cache import ModelStore

PROJECTION_BYTES = 4e8  # the projection matrix is generated in blocks of at most this size

INSTALL_HINT = "TRAK attribution needs MadryLab's traker library: pip install traker==0.3.2"


def import_traker():
    """The ``trak`` package, or a BenchError (exit 2) that says how to install it."""
    try:
        import trak
        from trak.modelout_functions import AbstractModelOutput  # noqa: F401
    except ImportError as err:
        raise BenchError(f"{INSTALL_HINT} (import failed: {err})") from err
    return trak


def margin_of(outputs: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """The task margin of one example's outputs [1, k]: the prediction when k == 1, else
    z_y - logsumexp_{k != y} z_k (written without in-place ops so torch.func can vmap it)."""
    if outputs.shape[-1] == 1:
        return outputs.reshape(())
    onehot = (torch.arange(outputs.shape[-1], device=outputs.device) == label.long()).reshape(1, -1)
    correct = torch.where(onehot, outputs, torch.zeros_like(outputs)).sum()
    others = outputs.masked_fill(onehot, float("-inf")).logsumexp(-1).sum()
    return correct - others


def _model_output_class():
    from trak.modelout_functions import AbstractModelOutput

    class MarginOutput(AbstractModelOutput):
        """TRAK's model output f = the task margin; Q = -dloss/dmargin: 1 - p_y for cross-entropy
        (loss = softplus(-margin)), y - f for squared error."""

        def __init__(self) -> None:
            super().__init__()

        def get_output(self, model, weights, buffers, x, y) -> torch.Tensor:
            out = torch.func.functional_call(model, (weights, buffers), x.unsqueeze(0))
            return margin_of(out.reshape(1, -1), y)

        def get_out_to_loss_grad(self, model, weights, buffers, batch) -> torch.Tensor:
            x, y = batch
            with torch.no_grad():
                out = torch.func.functional_call(model, (weights, buffers), x).reshape(len(x), -1)
                if out.shape[-1] == 1:
                    return (y.to(out.dtype) - out[:, 0]).unsqueeze(-1)
                margins = torch.stack([margin_of(o.unsqueeze(0), t) for o, t in zip(out, y)])
                return torch.sigmoid(-margins).unsqueeze(-1)

    return MarginOutput


def _score_computer_class():
    from trak.score_computers import BasicScoreComputer

    class CalibratedScoreComputer(BasicScoreComputer):
        """traker's BasicScoreComputer without dividing (X^T X)^-1 by its mean absolute entry (a float16
        safeguard that discards the scores' units); in float32 the scores stay margin changes."""

        def get_x_xtx_inv(self, grads: torch.Tensor, xtx: torch.Tensor) -> torch.Tensor:
            reg = xtx.double() + self.lambda_reg * torch.eye(len(xtx), dtype=torch.float64, device=xtx.device)
            return (grads.double() @ torch.linalg.inv(reg)).to(self.dtype)

    return CalibratedScoreComputer


def trak_scores(task: Task, checkpoints: list[nn.Module], x_train: torch.Tensor, y_train: torch.Tensor,
                x_target: torch.Tensor, y_target: torch.Tensor, *, proj_dim: int, seed: int, device: torch.device,
                lambda_reg: float = 1e-6, batch_size: int = 128) -> tuple[torch.Tensor, int]:
    """[n_train, n_targets] TRAK scores (float32) and the projection dimension used (capped at the
    number of parameters, beyond which the projected kernel is singular)."""
    trak = import_traker()
    # a private copy: traker loads every checkpoint into this module in turn, and the state dicts below must
    # not alias its parameters (Module.float() is in place and Tensor.float() of float32 returns itself)
    model = copy.deepcopy(checkpoints[0]).float().to(device).eval()
    n_params = sum(p.numel() for p in model.parameters())
    dim = int(min(proj_dim, n_params))
    dev = "cpu" if device.type == "cpu" else str(device)
    projector = trak.projectors.BasicProjector(grad_dim=n_params, proj_dim=dim, seed=seed,
                                                proj_type=trak.projectors.ProjectionType.normal,
                                                device=dev, dtype=torch.float32,
                                                block_size=max(1, min(dim, int(PROJECTION_BYTES / (4 * n_params)))))
    x_train, x_target = x_train.float(), x_target.float()
    # a fresh directory with load_from_save_dir=True: traker 0.3.2 only creates experiments.json that way
    with tempfile.TemporaryDirectory(prefix="trak-") as save_dir:
        traker = trak.TRAKer(model=model, task=_model_output_class()(), train_set_size=len(x_train),
                             save_dir=save_dir, load_from_save_dir=True, device=dev, projector=projector,
                             score_computer=_score_computer_class(), use_half_precision=False,
                             logging_level=logging.ERROR, lambda_reg=lambda_reg)
        states = [{k: v.detach().float().clone() for k, v in m.state_dict().items()} for m in checkpoints]
        for model_id, state in enumerate(states):
            traker.load_checkpoint(state, model_id=model_id)
            for lo in range(0, len(x_train), batch_size):
                batch = (x_train[lo:lo + batch_size].to(device), y_train[lo:lo + batch_size].to(device))
                traker.featurize(batch=batch, num_samples=len(batch[0]))
        traker.finalize_features()
        # traker 0.3.2 frees a single-block BasicProjector's matrix in finalize_features and regenerates it
        # only when the model id changes, so scoring the last-featurized checkpoint would fail; force it
        projector.model_id = -1
        for model_id, state in enumerate(states):
            traker.start_scoring_checkpoint(exp_name="targets", checkpoint=state, model_id=model_id,
                                            num_targets=len(x_target))
            for lo in range(0, len(x_target), batch_size):
                batch = (x_target[lo:lo + batch_size].to(device), y_target[lo:lo + batch_size].to(device))
                traker.score(batch=batch, num_samples=len(batch[0]))
        scores = torch.as_tensor(np.array(traker.finalize_scores(exp_name="targets")), dtype=torch.float32)
    return scores, dim


def lds_of_scores(task: Task, scores: torch.Tensor, target_inputs: torch.Tensor, target_labels: torch.Tensor, *,
                  n_models: int, seed: int, device: torch.device, store: ModelStore | None, executor: Executor,
                  progress: bool = False, log: Callable[[str], None] = lambda _m: None,
                  alpha: float = 0.5) -> dict:
    """LDS of margin scores on ``n_models`` held-out alpha-subset models (their own seed stream, cached)."""
    train, _ = task.load()
    masks = subset_masks(len(train), n_models, alpha, derive_seed(seed, "lds"))
    seeds = [derive_seed(seed, "lds", 1 + i) for i in range(n_models)]
    models, _ = train_subset_models(task, masks, seeds, device=device, store=store, executor=executor,
                                    progress=progress, log=log)
    with torch.no_grad():
        true = np.stack([task.margin(m, target_inputs.to(device), target_labels.to(device)).float().cpu().numpy()
                         for m in models])
    predicted = masks.astype(np.float32) @ scores.float().numpy()
    return lds_from_margins(predicted, true)


def build_trak(task: Task, *, n_checkpoints: int, proj_dim: int, seed: int, device: torch.device,
               store: ModelStore | None, executor: Executor, targets: np.ndarray | None = None,
               lds_models: int = 20, progress: bool = True,
               log: Callable[[str], None] = lambda _m: None) -> Datamodels:
    """TRAK scores for the targets (ids into train + validation; None: all) from ``n_checkpoints`` models
    trained on the full training set, as margin datamodels with their cost and (if lds_models >= 3) LDS."""
    if n_checkpoints < 1:
        raise BenchError(f"TRAK needs at least one checkpoint, got {n_checkpoints}")
    import_traker()
    train, val = task.load()
    n_all = len(train) + len(val)
    target_ids = np.arange(n_all) if targets is None else np.unique(np.asarray(targets, dtype=np.int64))
    log(f"TRAK for {task.name}: {n_checkpoints} checkpoints, {len(train)} train points x {len(target_ids)} "
        f"targets; scores {4 * len(train) * len(target_ids) / 1e9:.3g} GB as float32")
    none = np.array([], dtype=np.int64)
    # the run's originals are models trained on the full set too: the same seeds make them cache hits
    seeds = [derive_seed(seed, "original", i) for i in range(n_checkpoints)]
    ensemble = build_ensemble(task, none, seeds, device=device, store=store, executor=executor,
                              label="TRAK checkpoints", progress=progress, log=log)
    x_all = torch.cat([train.x, val.x])[torch.as_tensor(target_ids)]
    y_all = torch.cat([train.y, val.y])[torch.as_tensor(target_ids)]
    inputs_train = model_inputs(task, ensemble.models[0], train.x.to(device))
    inputs_target = model_inputs(task, ensemble.models[0], x_all.to(device))
    start = time.perf_counter()
    scores, dim = trak_scores(task, ensemble.models, inputs_train, train.y, inputs_target, y_all, proj_dim=proj_dim,
                              seed=derive_seed(seed, "attribution", 1_000_000), device=device)
    attribution_seconds = time.perf_counter() - start
    lds = (lds_of_scores(task, scores, x_all, y_all, n_models=lds_models, seed=seed, device=device, store=store,
                         executor=executor, progress=progress, log=log)
           if lds_models >= 3 else {})
    training = training_gradient_evaluations(task, len(train))
    cost = {"checkpoints": n_checkpoints, "projection_dim": dim,
            "gradient_evaluations": n_checkpoints * (training + len(train) + len(target_ids)),
            "training_gradient_evaluations": n_checkpoints * training,
            "attribution_gradient_evaluations": n_checkpoints * (len(train) + len(target_ids)),
            "wall_seconds": float(np.nansum(ensemble.train_seconds)) + attribution_seconds,
            "attribution_seconds": attribution_seconds}
    return Datamodels(scores, torch.zeros(scores.shape[1]), len(train), len(val), 1, lds,
                      cost["wall_seconds"], target_ids=target_ids, output="margin", kind="trak", cost=cost)
