"""Image classifiers and their fast training recipe (CIFAR-10 ResNet-9, CelebA ResNet-18).

The recipe keeps the whole uint8 dataset on the device, augments there (random crop and flip),
trains in channels_last with bfloat16 autocast on GPU, and follows a one-cycle learning rate:
the habits that make a ResNet-9 reach 92%+ on CIFAR-10 in seconds on a modern GPU.
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from bench.bounds import MAX_BATCH, Momentum, NonNegative, Range, Width
from bench.classification import ClassifierTask
from bench.task import Split, StepHook


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Scale(nn.Module):
    """Multiplies logits by a constant (ResNet-9's 0.125 output scale keeps early training stable)."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def resnet9(num_classes: int = 10, width: int = 64) -> nn.Module:
    """The DAWNBench ResNet-9 (prep, three stages, two residual blocks), channels scaled by ``width``."""
    w = width
    return nn.Sequential(
        conv_bn(3, w),
        conv_bn(w, 2 * w), nn.MaxPool2d(2), Residual(2 * w),
        conv_bn(2 * w, 4 * w), nn.MaxPool2d(2),
        conv_bn(4 * w, 8 * w), nn.MaxPool2d(2), Residual(8 * w),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(8 * w, num_classes, bias=False), Scale(0.125),
    )


def resnet18(num_classes: int = 2, width: int = 64) -> nn.Module:
    """torchvision's ResNet-18 with its four stages scaled to ``width`` (64: the standard network), a
    3x3 stem and no initial max-pool, suited to small (32-64 px) images."""
    from torchvision.models.resnet import BasicBlock, ResNet

    class ScaledResNet18(ResNet):
        def _make_layer(self, block, planes, blocks, stride=1, dilate=False):  # noqa: ANN001
            return super()._make_layer(block, planes * width // 64, blocks, stride, dilate)

    model = ScaledResNet18(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
    model.conv1 = nn.Conv2d(3, 64, 3, padding=1, bias=False)
    model.maxpool = nn.Identity()
    model.fc = nn.Linear(8 * width, num_classes)
    return model


@dataclass(frozen=True)
class VisionRecipe:
    """Nesterov SGD with a one-cycle schedule, label smoothing, crop+flip augmentation, optional compile."""

    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.2
    warmup_fraction: float = 0.25
    crop_padding: int = 4
    compile: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 NCHW -> float, standardised per channel; done on the device, per batch."""
    x = images.float().div_(255)
    return (x - MEAN.to(x.device)) / STD.to(x.device)


def augment(images: torch.Tensor, padding: int, gen: torch.Generator) -> torch.Tensor:
    """Random crop (reflect padding) and horizontal flip, on the images' device, from a seeded generator."""
    n, _, h, w = images.shape
    flips = torch.rand(n, generator=gen) < 0.5
    out = torch.where(flips.view(-1, 1, 1, 1).to(images.device), images.flip(3), images)
    if padding:
        padded = F.pad(out.float(), (padding,) * 4, mode="reflect")
        dx, dy = torch.randint(0, 2 * padding + 1, (2,), generator=gen).tolist()
        out = padded[:, :, dy:dy + h, dx:dx + w]
    return out


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def fit_vision(model: nn.Module, data: Split, seed: int, recipe: VisionRecipe, loss_fn, *,
               max_steps: int | None = None, on_step: StepHook | None = None) -> nn.Module:
    """Train ``model`` in place; ``data.x`` holds uint8 images (kept on the model's device)."""
    device = next(model.parameters()).device
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if recipe.compile else model
    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = -(-len(data) // recipe.batch_size)
    total = recipe.epochs * steps_per_epoch
    warmup = max(1, int(recipe.warmup_fraction * total))
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum, nesterov=True,
                          weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total - s) / max(1, total - warmup)))
    images, labels = data.x.to(device), data.y.to(device)
    step = 0
    model.train()
    for _ in range(recipe.epochs):
        order = torch.randperm(len(data), generator=gen).to(device)
        for idx in order.split(recipe.batch_size):
            if max_steps is not None and step >= max_steps:
                return model.eval()
            x = normalise(augment(images[idx], recipe.crop_padding, gen))
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(device):
                loss = loss_fn(step_model(x), labels[idx], recipe.label_smoothing).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if on_step is not None:
                on_step(model)
    return model.eval()


@dataclass(kw_only=True)
class VisionTask(ClassifierTask):
    """What CIFAR-10 and CelebA share: data from ``data_root`` (torchvision layout), uint8 images on the
    device normalised inside ``outputs``, the fast recipe, one model at a time (batch norm rules out vmap
    ensembles), and a label that marks reduced CPU configurations in every result."""

    full_width: ClassVar[int] = 64
    batched: ClassVar[bool] = False

    data_root: str = "~/data"
    download: bool = False
    verify: bool = True  # torchvision's md5 checks of the dataset files
    subset: Annotated[int, Range(0, MAX_BATCH)] = 0  # train on the first N training images (0: all); for CPU runs
    width: Width = 64
    momentum: Momentum = 0.9
    weight_decay: NonNegative = 5e-4
    compile: bool = False

    def model_inputs(self, x: torch.Tensor, device: torch.device) -> torch.Tensor:
        return normalise(x.to(device))

    def recipe(self) -> VisionRecipe:
        return VisionRecipe(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, momentum=self.momentum,
                            weight_decay=self.weight_decay, label_smoothing=self.label_smoothing,
                            compile=self.compile)

    def data_paths(self) -> list[Path]:
        """The dataset files or folders whose content determines the data (fingerprinted into cache keys)."""
        return []

    def training_recipe(self) -> dict:
        from bench.fingerprint import fingerprint
        return {"optimizer": "sgd-nesterov", "schedule": "one-cycle", "augment": "crop+flip",
                **self.recipe().as_dict(), "data": fingerprint(self.data_paths())}

    def train(self, model: nn.Module, data: Split, seed: int, *, max_steps: int | None = None,
              on_step: StepHook | None = None) -> nn.Module:
        return fit_vision(model, data, seed, self.recipe(), self.smoothed_loss, max_steps=max_steps,
                          on_step=on_step)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.smoothed_loss(self.outputs(model, x), y.to(next(model.parameters()).device), 0.0)

    def smoothed_loss(self, logits: torch.Tensor, y: torch.Tensor, smoothing: float) -> torch.Tensor:
        return F.cross_entropy(logits.float(), y, weight=self.class_weights(logits.device), reduction="none",
                               label_smoothing=smoothing)

    def class_weights(self, device: torch.device) -> torch.Tensor | None:
        return None

    def config_label(self) -> str:
        reduced = []
        if self.subset:
            reduced.append(f"subset={self.subset}")
        if self.width != self.full_width:
            reduced.append(f"width={self.width}")
        if not reduced:
            return ""
        return f"reduced configuration ({', '.join(reduced)}): not comparable with full-scale results"
