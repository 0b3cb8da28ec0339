"""scikit-learn's bundled 8x8 handwritten digits: real images, offline, small enough for big ensembles."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import torch
from torch import nn

from bench.bounds import Epochs, ForgetSize, Fraction, Momentum, NonNegative, Range, Seed, StepSize, TrainBatch
from bench.classification import ClassifierTask, skewed_forget_set
from bench.registry import register_task
from bench.seeding import seeded_init
from bench.task import Split


def make_mlp(width: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, 10))


def make_cnn(width: int) -> nn.Module:
    """Two 3x3 convolutions and a linear head; no batch norm, so ensembles can be trained with vmap."""
    return nn.Sequential(
        nn.Conv2d(1, width // 2, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width // 2, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(width * 16, 10),
    )


@register_task
@dataclass(kw_only=True)
class Digits(ClassifierTask):
    """Handwritten 8x8 digits (1,797 real images, bundled with scikit-learn) with a small MLP or CNN."""

    name = "digits"
    forget_params = ("forget_size", "selector", "skew_classes", "skew_fraction")  # they only choose the forget set
    version = "2"  # 2: a model trained alone goes through vmap too (bit-identical to any chunk size)
    default_lr = 0.01
    default_batch_size = 64
    num_classes = 10

    arch: Literal["mlp", "cnn"] = "mlp"
    width: Annotated[int, Range(2, 4096)] = 64  # the CNN's first layer has width // 2 channels
    val_fraction: Annotated[float, Range(0, 1, low_open=True, high_open=True)] = 0.2
    forget_size: ForgetSize = 36
    selector: Literal["random", "skewed"] = "random"
    skew_classes: Annotated[int, Range(1, 9)] = 2
    skew_fraction: Fraction = 0.8
    epochs: Epochs = 30
    batch_size: TrainBatch = 64
    lr: StepSize = 0.05
    momentum: Momentum = 0.9
    weight_decay: NonNegative = 5e-4
    batched: bool = True
    data_seed: Seed = 0

    def load(self) -> tuple[Split, Split]:
        from sklearn.datasets import load_digits  # deferred: importing scikit-learn costs ~1 s
        from sklearn.model_selection import train_test_split

        images, labels = load_digits(return_X_y=True)
        x = torch.tensor(images / 16.0, dtype=torch.float32).view(-1, 1, 8, 8)
        y = torch.tensor(labels, dtype=torch.long)
        train_idx, val_idx = train_test_split(np.arange(len(y)), test_size=self.val_fraction,
                                              random_state=self.data_seed, stratify=labels)
        train_idx, val_idx = np.sort(train_idx), np.sort(val_idx)
        return Split(x[train_idx], y[train_idx]), Split(x[val_idx], y[val_idx])

    def make_model(self, seed: int) -> nn.Module:
        with seeded_init(seed):
            return make_mlp(self.width) if self.arch == "mlp" else make_cnn(self.width)

    def select_forget(self, train: Split, rng: np.random.Generator) -> np.ndarray:
        """Random-k, or skewed: ``skew_fraction`` of the set drawn from ``skew_classes`` random classes.

        The skewed selector mirrors paper 002's non-IID forget set (identities chosen with a bias).
        """
        if self.selector == "random":
            return super().select_forget(train, rng)
        classes = rng.choice(self.num_classes, size=self.skew_classes, replace=False)
        return skewed_forget_set(train.y.numpy(), classes, self.forget_size, self.skew_fraction, rng)
