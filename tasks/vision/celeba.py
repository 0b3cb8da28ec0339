"""CelebA faces with ResNet-18 (paper 002's setting): predict an attribute, forget 2% of the identities,
chosen non-IID with a bias towards identities with the "Young" attribute."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
from torch import nn

from bench.bounds import Epochs, NonNegative, Range, Smoothing, StepSize, TrainBatch
from bench.errors import BenchError
from bench.registry import register_task
from bench.seeding import seeded_init
from bench.task import Split
from tasks.vision.recipe import VisionTask, resnet18

CELEBA_FILES = ["list_attr_celeba.txt", "identity_CelebA.txt", "list_eval_partition.txt", "list_bbox_celeba.txt",
                "list_landmarks_align_celeba.txt"]


def open_celeba(root: str, split: str, download: bool, verify: bool):
    """torchvision's CelebA (attributes and identities) for one split, with a clear error when missing."""
    from torchvision.datasets import CelebA

    class Reader(CelebA):  # verify=False: torchvision checks only that each file exists (md5 None)
        if not verify:
            file_list = [(file_id, None, name) for file_id, _, name in CelebA.file_list]

    folder = Path(root).expanduser()
    try:
        return Reader(str(folder), split=split, target_type=["attr", "identity"], download=download)
    except RuntimeError as err:
        raise BenchError(
            f"CelebA not found (or corrupted) under {folder}: expected {folder / 'celeba'}/ with img_align_celeba/ "
            f"and {', '.join(CELEBA_FILES)}.\nPoint --task-arg data_root=... at the folder that contains it, or add "
            f"--task-arg download=true ({err})") from None


def load_images(dataset, image_size: int, limit: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decode, resize and stack images once (uint8), with attribute rows and identity ids."""
    from torchvision.transforms.functional import pil_to_tensor, resize
    n = len(dataset) if not limit else min(limit, len(dataset))
    images = torch.empty((n, 3, image_size, image_size), dtype=torch.uint8)
    for i in range(n):
        image, _ = dataset[i]
        images[i] = resize(pil_to_tensor(image), [image_size, image_size], antialias=True)
    return images, dataset.attr[:n].long(), dataset.identity[:n].view(-1).long()


@register_task
@dataclass(kw_only=True)
class CelebAFaces(VisionTask):
    """CelebA with ResNet-18: predict an attribute, forget all images of 2% of identities (non-IID)."""

    name = "celeba"
    forget_params = ("identity_fraction", "skew_attribute", "skew")  # they only choose the forget set
    version = "1"
    default_lr = 0.01
    default_batch_size = 256
    num_classes = 2

    target: str = "Young"  # the attribute to predict; paper 002 predicts age
    identity_fraction: Annotated[float, Range(0, 1, low_open=True, high_open=True)] = 0.02
    skew_attribute: str = "Young"
    skew: NonNegative = 4.0  # identities with the attribute are (1 + skew) times as likely to be forgotten
    image_size: Annotated[int, Range(8, 1024)] = 64
    epochs: Epochs = 30  # as in paper 002
    batch_size: TrainBatch = 256
    lr: StepSize = 0.1
    label_smoothing: Smoothing = 0.0

    @property
    def forget_size(self) -> int:  # set by the identity selector, not a parameter
        return 1

    @cached_property
    def _data(self) -> dict:
        train = open_celeba(self.data_root, "train", self.download, self.verify)
        names = list(train.attr_names)
        for attribute in (self.target, self.skew_attribute):
            if attribute not in names:
                import difflib
                close = difflib.get_close_matches(attribute, names, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise BenchError(f"CelebA has no attribute {attribute!r}.{hint} Known: {', '.join(names)}")
        x, attr, identity = load_images(train, self.image_size, self.subset)
        val = open_celeba(self.data_root, "valid", False, self.verify)
        vx, vattr, _ = load_images(val, self.image_size, self.subset // 8 if self.subset else 0)
        column, skew_column = names.index(self.target), names.index(self.skew_attribute)
        return {"train": Split(x, attr[:, column]), "val": Split(vx, vattr[:, column]),
                "identity": identity.numpy(), "skew": attr[:, skew_column].numpy()}

    def load(self) -> tuple[Split, Split]:
        return self._data["train"], self._data["val"]

    def class_weights(self, device: torch.device) -> torch.Tensor:
        """Inverse class frequencies of the target attribute (normalised to mean 1): it is imbalanced."""
        counts = torch.bincount(self._data["train"].y, minlength=2).clamp_min(1).float()
        weights = counts.sum() / (2 * counts)
        return weights.to(device)

    def data_paths(self) -> list[Path]:
        return [Path(self.data_root).expanduser() / "celeba"]

    def make_model(self, seed: int) -> nn.Module:
        with seeded_init(seed):
            return resnet18(self.num_classes, self.width)

    def select_forget(self, train: Split, rng: np.random.Generator) -> np.ndarray:
        """Every image of ``identity_fraction`` of the identities, drawn with weight 1 + skew * (share of the
        identity's images with ``skew_attribute``): mostly young people, as in paper 002."""
        identity, skewed = self._data["identity"], self._data["skew"]
        ids = np.unique(identity)
        share = np.array([skewed[identity == i].mean() for i in ids])
        weights = 1.0 + self.skew * share
        k = max(1, int(round(self.identity_fraction * len(ids))))
        chosen = rng.choice(ids, size=k, replace=False, p=weights / weights.sum())
        forget = np.flatnonzero(np.isin(identity, chosen))
        if len(forget) >= len(identity):
            raise BenchError("the identity selector chose every training image; lower identity_fraction")
        return forget
