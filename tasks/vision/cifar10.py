"""CIFAR-10 with ResNet-9 (paper 003's benchmark), read from ``--data-root`` by torchvision."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from bench.bounds import Epochs, ForgetSize, Fraction, Smoothing, StepSize, TrainBatch
from bench.classification import skewed_forget_set
from bench.errors import BenchError
from bench.registry import register_task
from bench.seeding import seeded_init
from bench.task import Split
from tasks.vision.recipe import VisionTask, resnet9
from tasks.vision.cifar_format import FOLDER, META_FILE, TEST_FILES, TRAIN_FILES, md5, read_batch

CIFAR_FILES = [*TRAIN_FILES, *TEST_FILES, META_FILE]


def read_cifar10(root: str, train: bool, download: bool, verify: bool) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, 32, 32, 3] and labels from the python batches (md5 checks unless verify=False).

    The batches are read with a restricted unpickler (``tasks.vision.cifar_format``), never by torchvision's plain
    ``pickle.load``: with verify=False, whatever lies in data_root is read, so it must not be able to run code.
    """
    from torchvision.datasets import CIFAR10

    folder = Path(root).expanduser()
    base = folder / FOLDER
    files = TRAIN_FILES if train else TEST_FILES
    if download and not all((base / name).is_file() for name in [*files, META_FILE]):
        from torchvision.datasets.utils import download_and_extract_archive
        download_and_extract_archive(CIFAR10.url, str(folder), filename=CIFAR10.filename, md5=CIFAR10.tgz_md5)
    fix = (f"Point --task-arg data_root=... at the folder that contains it, or add --task-arg download=true to "
           "fetch it")
    missing = [name for name in [*files, META_FILE] if not (base / name).is_file()]
    if missing:
        raise BenchError(f"CIFAR-10 not found (or corrupted) under {folder}: expected {base}/ with "
                         f"{', '.join(CIFAR_FILES)} (missing: {', '.join(missing)}).\n{fix}")
    if verify:
        expected = dict(CIFAR10.train_list + CIFAR10.test_list)
        changed = [name for name in files if md5(base / name) != expected[name]]
        if changed:
            raise BenchError(f"CIFAR-10 not found (or corrupted) under {folder}: the md5 checksums of "
                             f"{', '.join(changed)} differ from the official files.\n{fix} (or "
                             "--task-arg verify=false to read a modified copy, checked for format only)")
    parts = [read_batch(base / name) for name in files]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@register_task
@dataclass(kw_only=True)
class Cifar10(VisionTask):
    """CIFAR-10 (50,000 train / 10,000 test images) with a ResNet-9 and a fast one-cycle GPU recipe."""

    name = "cifar10"
    arch_label = "resnet9"  # the folder name in EasyDUB-layout margin exports
    forget_params = ("forget_size", "selector", "skew_fraction")  # they only choose the forget set
    version = "1"
    default_lr = 0.01
    default_batch_size = 256
    num_classes = 10

    forget_size: ForgetSize = 100
    selector: Literal["random", "skewed"] = "random"
    skew_fraction: Fraction = 0.8
    epochs: Epochs = 16
    batch_size: TrainBatch = 512
    lr: StepSize = 0.2
    label_smoothing: Smoothing = 0.2

    def load(self) -> tuple[Split, Split]:
        x_train, y_train = read_cifar10(self.data_root, True, self.download, self.verify)
        x_test, y_test = read_cifar10(self.data_root, False, self.download, self.verify)
        if self.subset:
            x_train, y_train = x_train[: self.subset], y_train[: self.subset]
        as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # noqa: E731
        return Split(as_tensor(x_train), torch.from_numpy(y_train)), Split(as_tensor(x_test), torch.from_numpy(y_test))

    def data_paths(self) -> list[Path]:
        base = Path(self.data_root).expanduser() / FOLDER
        return [base / name for name in CIFAR_FILES]

    def make_model(self, seed: int) -> nn.Module:
        with seeded_init(seed):
            return resnet9(self.num_classes, self.width)

    def select_forget(self, train: Split, rng: np.random.Generator) -> np.ndarray:
        """Random-k, or skewed: ``skew_fraction`` of the set from one random class (non-IID)."""
        if self.selector == "random":
            return super().select_forget(train, rng)
        classes = rng.choice(self.num_classes, size=1, replace=False)
        return skewed_forget_set(train.y.numpy(), classes, self.forget_size, self.skew_fraction, rng)
