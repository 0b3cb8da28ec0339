"""A miniature EasyDUB dataset in the exact layout: CIFAR-format images, ResNet-9 checkpoints, margins from them.

Images are the real CIFAR-10 python pickle batches (5 train batches + test batch + batches.meta, as
torchvision stores them under data/cifar-10-batches-py); checkpoints are state dicts of EasyDUB's ResNet-9
layout at a small width, saved with ``model.`` or ``module.`` prefixes; margins (and oracle logits) are
computed from those checkpoints with EasyDUB's normalisation, as float32.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from tasks.easydub.layout import CIFAR10
from tasks.easydub.resnet9 import easydub_resnet9

NAMES = CIFAR10.names
PER_BATCH = 8          # 40 train images, 8 test images
FORGET = np.array([17, 3, 29, 8, 36, 12], dtype=np.int64)  # deliberately unsorted: forget files follow this order


def write_cifar_batches(folder: Path, per_batch: int = PER_BATCH, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]:
        labels = rng.integers(0, 10, per_batch)
        data = (rng.integers(0, 60, (per_batch, 3072)) + labels[:, None] * 19).astype(np.uint8)
        with open(folder / name, "wb") as handle:
            pickle.dump({"batch_label": name, "labels": labels.tolist(), "data": data,
                         "filenames": [f"img_{i}.png" for i in range(per_batch)]}, handle)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)], "num_cases_per_batch": per_batch,
                     "num_vis": 3072}, handle)


def _images(folder: Path, names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for name in names:
        with open(folder / name, "rb") as handle:
            batch = pickle.load(handle)
        xs.append(batch["data"].reshape(-1, 3, 32, 32))
        ys.extend(batch["labels"])
    return torch.from_numpy(np.concatenate(xs)), torch.tensor(ys)


def normalise(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(CIFAR10.mean).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10.std).view(1, 3, 1, 1)
    return (x.float() / 255 - mean) / std


def margins_and_logits(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """EasyDUB's margin: correct logit minus logsumexp of the others, on the 0.2-scaled output."""
    with torch.no_grad():
        logits = model.eval()(normalise(x))
    correct = logits[torch.arange(len(y)), y]
    others = logits.clone()
    others[torch.arange(len(y)), y] = -torch.inf
    return (correct - others.logsumexp(1)).numpy().astype(np.float32), logits.numpy().astype(np.float32)


def make_model(seed: int, width: int, x: torch.Tensor) -> torch.nn.Module:
    """A seeded model whose batch-norm statistics saw the images once (so eval differs from init)."""
    torch.manual_seed(seed)
    model = easydub_resnet9(10, width)
    with torch.no_grad():
        model.train()(normalise(x))
    return model.eval()


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)


def write_miniature(root: Path, *, n_pretrain: int = 3, n_oracles: int = 6, width: int = 4, forget_set: int = 2,
                    oracle_models: int = 0) -> dict:
    """Write the layout under ``root``; return the arrays written (for direct computations in tests)."""
    batches = root / "data" / "cifar-10-batches-py"
    write_cifar_batches(batches)
    x_train, y_train = _images(batches, [f"data_batch_{i}" for i in range(1, 6)])
    x_val, y_val = _images(batches, ["test_batch"])
    _save(root / NAMES.forget_set(forget_set), FORGET)
    keep = np.ones(len(x_train), dtype=bool)
    keep[FORGET] = False
    retain = np.flatnonzero(keep)
    written = {"pretrain": {s: [] for s in ("retain", "forget", "val")},
               "oracle": {s: [] for s in ("retain", "forget", "val")}, "y_train": y_train.numpy(),
               "y_val": y_val.numpy(), "forget": FORGET, "retain": retain}
    for k in range(n_pretrain):
        model = make_model(k, width, x_train)
        prefix = "model." if k % 2 == 0 else "module."
        path = root / NAMES.model("pretrain", k)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({prefix + key: value for key, value in model.state_dict().items()}, path)
        for split, (x, y) in {"retain": (x_train, y_train), "forget": (x_train[FORGET], y_train[FORGET]),
                              "val": (x_val, y_val)}.items():
            margin, _ = margins_and_logits(model, x, y)
            _save(root / NAMES.margins("pretrain", split, k, forget_set), margin)
            written["pretrain"][split].append(margin)
    for k in range(n_oracles):
        model = make_model(1000 + k, width, x_train[retain])
        if k < oracle_models:
            path = root / NAMES.model("oracle", k, forget_set)
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), path)
        for split, (x, y) in {"retain": (x_train[retain], y_train[retain]),
                              "forget": (x_train[FORGET], y_train[FORGET]), "val": (x_val, y_val)}.items():
            margin, logits = margins_and_logits(model, x, y)
            _save(root / NAMES.margins("oracle", split, k, forget_set), margin)
            _save(root / NAMES.logits("oracle", split, k, forget_set), logits)
            written["oracle"][split].append(margin)
    return written
