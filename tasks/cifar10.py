"""CIFAR-10 with ResNet-9 (paper 003's benchmark), read from ``--data-root`` by torchvision."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from bench.classification import skewed_forget_set
from bench.errors import BenchError
from bench.registry import register_task
from bench.task import Split
from bench.vision import VisionTask, resnet9

CIFAR_FILES = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
               "batches.meta"]


def read_cifar10(root: str, train: bool, download: bool, verify: bool) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, 32, 32, 3] and labels through torchvision's CIFAR10 (checksums unless verify=False)."""
    from torchvision.datasets import CIFAR10

    class Reader(CIFAR10):  # verify=False: torchvision checks only that each file exists (md5 None)
        if not verify:
            train_list = [[name, None] for name, _ in CIFAR10.train_list]
            test_list = [[name, None] for name, _ in CIFAR10.test_list]
            meta = {**CIFAR10.meta, "md5": None}

    folder = Path(root).expanduser()
    try:
        dataset = Reader(str(folder), train=train, download=download)
    except RuntimeError as err:
        raise BenchError(
            f"CIFAR-10 not found (or corrupted) under {folder}: expected {folder / 'cifar-10-batches-py'}/ with "
            f"{', '.join(CIFAR_FILES)}.\nPoint --task-arg data_root=... at the folder that contains it, or add "
            f"--task-arg download=true to fetch it ({err})") from None
    return dataset.data, np.asarray(dataset.targets, dtype=np.int64)


@register_task
@dataclass(kw_only=True)
class Cifar10(VisionTask):
    """CIFAR-10 (50,000 train / 10,000 test images) with a ResNet-9 and a fast one-cycle GPU recipe."""

    name = "cifar10"
    forget_params = ("forget_size", "selector", "skew_fraction")  # they only choose the forget set
    version = "1"
    default_lr = 0.01
    default_batch_size = 256
    num_classes = 10

    forget_size: int = 100
    selector: Literal["random", "skewed"] = "random"
    skew_fraction: float = 0.8
    epochs: int = 16
    batch_size: int = 512
    lr: float = 0.2
    label_smoothing: float = 0.2

    def load(self) -> tuple[Split, Split]:
        x_train, y_train = read_cifar10(self.data_root, True, self.download, self.verify)
        x_test, y_test = read_cifar10(self.data_root, False, self.download, self.verify)
        if self.subset:
            x_train, y_train = x_train[: self.subset], y_train[: self.subset]
        as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # noqa: E731
        return Split(as_tensor(x_train), torch.from_numpy(y_train)), Split(as_tensor(x_test), torch.from_numpy(y_test))

    def make_model(self, seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return resnet9(self.num_classes, self.width)

    def select_forget(self, train: Split, rng: np.random.Generator) -> np.ndarray:
        """Random-k, or skewed: ``skew_fraction`` of the set from one random class (non-IID)."""
        if self.selector == "random":
            return super().select_forget(train, rng)
        classes = rng.choice(self.num_classes, size=1, replace=False)
        return skewed_forget_set(train.y.numpy(), classes, self.forget_size, self.skew_fraction, rng)
