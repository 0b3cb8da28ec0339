"""``easydub-cifar10``: any method against EasyDUB's 200 pretrain and 2,000 oracle CIFAR-10 ResNet-9s, training none.

Originals are their pretrain checkpoints, oracle statistics their margin files (``tasks.easydub.source``), the
images CIFAR-10 as torchvision stores it (``ROOT/data`` by default, where their scripts put it), normalised
with their mean and std. Only what a method trains is trained: retraining-based methods get their recipe
(``tasks.easydub.recipe``). The wall-clock reference for cost is their recipe's time per step, measured on a
few steps and scaled to a full retraining, so no reference model is trained either.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.bounds import Epochs, Momentum, NonNegative, Range, StepSize, TrainBatch, Width
from bench.classification import ClassifierTask
from bench.errors import BenchError
from bench.registry import register_task
from bench.seeding import seeded_init
from bench.task import Split, StepHook, TaskData
from tasks.easydub.layout import LAYOUTS, Layout
from tasks.easydub.reader import EasyDubReader, download
from tasks.easydub.recipe import EasyDubRecipe, fit
from tasks.easydub.resnet9 import easydub_resnet9

EVAL_CHUNK = 1024    # images per forward pass when no gradient is taken (50,000 at once would not fit)
TIMED_STEPS = 12     # recipe steps timed for the retraining reference (after 3 warm-up steps)


@dataclass(kw_only=True)
class EasyDubTask(ClassifierTask):
    """What every EasyDUB-layout dataset shares; a dataset is a ``layout_name`` and an image reader."""

    layout_name: ClassVar[str]
    forget_params = ("forget_set",)
    batched: ClassVar[bool] = False
    default_lr = 0.01
    default_batch_size = 256
    full_width: ClassVar[int] = 64
    extra_klom_conventions = ("easydub",)  # their published numbers' convention, beside the definition

    root: str = ""
    forget_set: Annotated[int, Range(1, 10_000)] = 2
    data_root: str = ""        # the images; default ROOT/data
    download: bool = False     # fetch missing dataset files (huggingface_hub) and images (torchvision)
    verify: bool = True        # md5 checks of the image files
    width: Width = 64          # their checkpoints are 64; smaller widths (same layer structure) are for tests
    epochs: Epochs = 24
    batch_size: TrainBatch = 256
    lr: StepSize = 0.4
    peak_epoch: Annotated[int, Range(0, 10_000)] = 5
    momentum: Momentum = 0.9
    weight_decay: NonNegative = 5e-4

    @property
    def layout(self) -> Layout:
        return LAYOUTS[self.layout_name]

    def reader(self) -> EasyDubReader:
        if not self.root:
            raise BenchError(f"task '{self.name}' needs the EasyDUB dataset folder: --task-arg root=DIR; "
                             f"{self.layout.download_hint('DIR')}")
        return EasyDubReader(Path(self.root).expanduser(), self.layout, self.forget_set)

    def images_root(self) -> str:
        return self.data_root or str(Path(self.root).expanduser() / self.layout.data_folder)

    def read_images(self, train: bool) -> tuple[np.ndarray, np.ndarray]:
        """uint8 images [N, H, W, 3] and int labels of the train or test split."""
        raise NotImplementedError

    def image_paths(self) -> list[Path]:
        return []

    # ---- data ------------------------------------------------------------------------------------------
    def load(self) -> tuple[Split, Split]:
        reader = self.reader()
        if self.download and not reader.path(reader.names.forget_set(self.forget_set)).is_file():
            download(reader)
        reader.require_root()
        x_train, y_train = self.read_images(True)
        x_val, y_val = self.read_images(False)
        as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # noqa: E731
        return (Split(as_tensor(x_train), torch.from_numpy(y_train)), Split(as_tensor(x_val), torch.from_numpy(y_val)))

    @property
    def forget_size(self) -> int:
        """The size of EasyDUB's forget set (the file decides; there is no forget_size parameter)."""
        return len(self.reader().forget_ids(self.layout.n_train))

    def select_forget(self, train: Split, rng: np.random.Generator) -> np.ndarray:
        return np.sort(self.reader().forget_ids(len(train)))

    def external_models(self):
        from tasks.easydub.source import EasyDubSource
        return EasyDubSource(self.reader(), self)

    # ---- model -----------------------------------------------------------------------------------------
    def make_model(self, seed: int) -> nn.Module:
        with seeded_init(seed):
            return easydub_resnet9(self.layout.num_classes, self.width)

    def model_inputs(self, x: torch.Tensor, device: torch.device) -> torch.Tensor:
        mean = torch.tensor(self.layout.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(self.layout.std, device=device).view(1, 3, 1, 1)
        return (x.to(device).float().div_(255) - mean) / std

    def outputs(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Logits; without autograd, in chunks (scoring 50,000 images in one pass would need ~50 GB)."""
        device = next(model.parameters()).device
        if torch.is_grad_enabled() or len(x) <= EVAL_CHUNK:
            return model(self.model_inputs(x, device))
        return torch.cat([model(self.model_inputs(part, device)) for part in x.split(EVAL_CHUNK)])

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = self.outputs(model, x)
        return F.cross_entropy(logits.float(), y.to(logits.device), reduction="none")

    # ---- training (only what methods ask for) ----------------------------------------------------------
    def recipe(self) -> EasyDubRecipe:
        return EasyDubRecipe(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, peak_epoch=self.peak_epoch,
                             momentum=self.momentum, weight_decay=self.weight_decay)

    def train(self, model: nn.Module, data: Split, seed: int, *, max_steps: int | None = None,
              on_step: StepHook | None = None) -> nn.Module:
        return fit(model, data, seed, self.recipe(), self.model_inputs, max_steps=max_steps, on_step=on_step)

    def training_recipe(self) -> dict:
        from bench.fingerprint import fingerprint
        reader = self.reader()
        checkpoints = reader.path(f"models/{self.layout.dataset}/pretrain")
        return {"optimizer": "sgd", "schedule": "one-cycle-linear", "augment": "none",
                "source": "EasyDUB train_models.py defaults", **self.recipe().as_dict(),
                "checkpoints": fingerprint([checkpoints]), "images": fingerprint(self.image_paths())}

    def retrain_reference(self, data: TaskData, seed: int, device: torch.device) -> dict:
        """Cost of retraining one model with their recipe: gradient evaluations exactly (epochs x retain
        points), wall-clock from ``TIMED_STEPS`` timed steps scaled to the full schedule."""
        recipe, retain = self.recipe(), data.retain
        total_steps = recipe.epochs * recipe.steps_per_epoch(len(retain))
        model = self.make_model(0).to(device)
        warm, timed = min(3, total_steps), min(TIMED_STEPS, max(0, total_steps - 3))
        self.train(model, retain, seed, max_steps=warm)
        start = time.perf_counter()
        if timed:
            self.train(self.make_model(0).to(device), retain, seed, max_steps=timed)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        per_step = (time.perf_counter() - start) / max(1, timed)
        return {"seconds": per_step * total_steps, "gradient_evals": recipe.epochs * len(retain), "loadavg": None,
                "remeasured": False, "estimated": f"{timed} steps timed, scaled to {total_steps}"}

    def config_label(self) -> str:
        if self.width != self.full_width:
            return (f"reduced configuration (width={self.width}): EasyDUB's checkpoints are width "
                    f"{self.full_width}; not comparable with full-scale results")
        return ""


@register_task
@dataclass(kw_only=True)
class EasyDubCifar10(EasyDubTask):
    """EasyDUB CIFAR-10: their pretrain ResNet-9s unlearned, scored against their oracle margins (no training)."""

    name = "easydub-cifar10"
    version = "1"
    layout_name: ClassVar[str] = "cifar10"
    num_classes = 10

    def read_images(self, train: bool) -> tuple[np.ndarray, np.ndarray]:
        from tasks.vision.cifar10 import read_cifar10
        return read_cifar10(self.images_root(), train, self.download, self.verify)

    def image_paths(self) -> list[Path]:
        from tasks.vision.cifar10 import CIFAR_FILES
        from tasks.vision.cifar_format import FOLDER
        return [Path(self.images_root()).expanduser() / FOLDER / name for name in CIFAR_FILES]
