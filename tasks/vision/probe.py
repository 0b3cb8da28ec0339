"""The contract's vision probe: a tiny image task so methods are checked on the vision input path in seconds."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.seeding import seeded_init
from bench.task import Split, Task
from tasks.vision.recipe import VisionTask, resnet9


def tiny_vision_task() -> Task:
    """A vision probe: random uint8 images through a narrow ResNet-9, so a method that skips the task's input
    path (normalisation inside ``outputs``/``model_inputs``) fails here, not on CIFAR-10."""
    @dataclass(kw_only=True)
    class ProbeImages(VisionTask):
        name = "probe-images"
        version = "1"
        num_classes = 3
        default_batch_size = 8
        full_width = 4
        forget_size: int = 4
        epochs: int = 1
        batch_size: int = 8
        lr: float = 0.05
        label_smoothing: float = 0.0
        width: int = 4

        def load(self) -> tuple[Split, Split]:
            gen = torch.Generator().manual_seed(0)
            x = torch.randint(0, 256, (40, 3, 32, 32), generator=gen, dtype=torch.uint8)
            y = torch.randint(0, self.num_classes, (40,), generator=gen)
            return Split(x[:32], y[:32]), Split(x[32:], y[32:])

        def make_model(self, seed: int) -> nn.Module:
            with seeded_init(seed):
                return resnet9(self.num_classes, self.width)

    return ProbeImages()
