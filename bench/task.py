"""The ``Task`` extension point: data, forget-set selection, model, training recipe, per-example statistics."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np
import torch
from torch import nn

from bench.metrics.declared import ReportColumn, declare
from bench.params import Configurable

ACCURACY = declare("accuracy", "higher", "fraction of a split classified correctly, mean over models")
LOSS = declare("loss", "lower", "mean per-example loss on a split, mean over models")

StepHook = Callable[[nn.Module], None]


@dataclass(frozen=True)
class Split:
    """A labelled set of examples; ``ids`` are positions in the task's training (or validation) set."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, idx: np.ndarray | torch.Tensor) -> "Split":
        index = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        return Split(self.x[index], self.y[index])

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.x.to(device), self.y.to(device))


@dataclass(frozen=True)
class TaskData:
    """Train set D, validation set V and the forget set S (as sorted positions in D)."""

    train: Split
    val: Split
    forget_idx: np.ndarray

    @property
    def retain_idx(self) -> np.ndarray:
        mask = np.ones(len(self.train), dtype=bool)
        mask[self.forget_idx] = False
        return np.flatnonzero(mask)

    @property
    def forget(self) -> Split:
        return self.train.subset(self.forget_idx)

    @property
    def retain(self) -> Split:
        return self.train.subset(self.retain_idx)

    def splits(self) -> dict[str, Split]:
        """The evaluation splits, in report order."""
        return {"forget": self.forget, "retain": self.retain, "val": self.val}

    def to(self, device: torch.device | str) -> "TaskData":
        return TaskData(self.train.to(device), self.val.to(device), self.forget_idx)


class Task(Configurable, ABC):
    """A benchmark task. Hyperparameters are keyword-only ``__init__`` arguments, as for methods.

    Subclasses set ``name``, ``version`` (bump it whenever data, model or recipe change: it enters every
    cache key and result) and the learning-rate/batch-size defaults that methods use unless told otherwise.
    """

    name: ClassVar[str]
    kind_name: ClassVar[str] = "task"
    version: ClassVar[str]
    default_lr: ClassVar[float] = 0.01
    default_batch_size: ClassVar[int | None] = 64
    #: True when training has one optimum (convex objective), so distance in weight space is meaningful.
    unique_optimum: ClassVar[bool] = False
    #: outputs have a fixed size per example, so datamodels can predict them
    supports_datamodels: ClassVar[bool] = True
    forget_size: int
    #: parameters that only choose the forget set; they stay out of trained models' cache keys, so originals
    #: (trained on the full train set) are shared by every forget set and oracles are keyed by excluded ids
    forget_params: ClassVar[tuple[str, ...]] = ("forget_size",)

    def model_params(self) -> dict:
        """The parameters that can change a trained model (everything except ``forget_params``)."""
        return {k: v for k, v in self.get_params().items() if k not in self.forget_params}

    @abstractmethod
    def load(self) -> tuple[Split, Split]:
        """The training and validation sets; deterministic given the task's parameters."""

    @abstractmethod
    def make_model(self, seed: int) -> nn.Module:
        """A freshly initialised model."""

    @abstractmethod
    def train(self, model: nn.Module, data: Split, seed: int, *, max_steps: int | None = None,
              on_step: StepHook | None = None) -> nn.Module:
        """The task's training recipe applied in place to ``model``; returns it.

        ``max_steps`` caps optimiser steps (None: the full recipe); ``on_step`` is called after each one.
        """

    def train_many(self, models: list[nn.Module], data: Split, seeds: list[int],
                   subsets: list[np.ndarray] | None = None) -> list[nn.Module]:
        """Train several models, one seed each (model i on ``data.subset(subsets[i])`` when given);
        tasks with small models override this to batch them."""
        if subsets is None:
            return [self.train(model, data, seed) for model, seed in zip(models, seeds)]
        return [self.train(model, data.subset(idx), seed) for model, idx, seed in zip(models, subsets, seeds)]

    #: record ``curve_point`` every this many unlearning steps of model 0 (0: no curves)
    curve_every: ClassVar[int] = 0

    def curve_point(self, model: nn.Module, data: TaskData) -> dict[str, float]:
        """Cheap metrics tracked during unlearning (tasks with ``curve_every`` > 0 define them)."""
        return {}

    def report(self, initial: nn.Module, original: nn.Module, unlearned: nn.Module, data: TaskData,
               recorded: dict[str, torch.Tensor] | None) -> dict:
        """Task-specific results for the record (language tasks: perplexity, ROUGE, influence, texts)."""
        return {}

    def train_recording(self, model: nn.Module, data: Split, seed: int, recorder) -> nn.Module:
        """Train like ``train`` while ``recorder`` (a oracles.recorded.GradientRecorder) stores gradients."""
        from bench.errors import BenchError
        raise BenchError(f"task '{self.name}' cannot record gradients during training; methods that need "
                         "them (stored-ga) run on dave and dave-tiny")

    def layer_groups(self, model: nn.Module) -> dict[str, list[str]]:
        """Parameter names grouped into layers, in input-to-output order (for layer-selective methods)."""
        groups: dict[str, list[str]] = {}
        for name, _ in model.named_parameters():
            groups.setdefault(name.split(".")[0], []).append(name)
        return groups

    def training_recipe(self) -> dict:
        """The training recipe's hyperparameters, for result records and cache keys."""
        return {}

    @abstractmethod
    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-example training loss, shape [batch]."""

    def loss_from_outputs(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-example loss from model outputs (for torch.func transforms and distillation-style methods)."""
        raise NotImplementedError(f"task {self.name!r} does not define loss_from_outputs; "
                                  "methods that need per-example gradients cannot run on it")

    def regularizer(self, model: nn.Module) -> torch.Tensor:
        """Penalty added to the mean loss in the training objective (ridge, for instance)."""
        return torch.zeros((), device=next(model.parameters()).device)

    def model_inputs(self, x: torch.Tensor, device: torch.device) -> torch.Tensor:
        """What the model itself is fed for task inputs ``x`` (vision tasks normalise uint8 images here).
        Methods that call a model functionally (per-example gradients) must go through this, as ``outputs`` does."""
        return x

    def outputs(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Raw model outputs (logits, predictions): what oracle matching matches."""
        return model(self.model_inputs(x, next(model.parameters(), x).device))

    def margin(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-example scalar statistic compared across models: correct logit minus logsumexp of the rest."""
        return self.margin_from_outputs(self.outputs(model, x), y)

    def margin_from_outputs(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The margin computed from outputs (also from outputs a datamodel predicts)."""
        logits = outputs.float()
        y = y.to(logits.device)
        correct = logits.gather(1, y.view(-1, 1)).squeeze(1)
        others = logits.scatter(1, y.view(-1, 1), float("-inf"))
        return correct - torch.logsumexp(others, dim=1)

    def challenge_statistic(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        """Per-example statistic of the NeurIPS 2023 challenge: log p_y - log sum_{k != y} p_k."""
        from bench.metrics import confidence_statistic
        logits = self.outputs(model, x).float().cpu().numpy()
        return confidence_statistic(logits, y.cpu().numpy())

    def evaluate(self, model: nn.Module, split: Split) -> dict[str, float]:
        """Utility metrics of one model on one split (accuracy and mean loss by default)."""
        with torch.no_grad():
            logits = self.outputs(model, split.x)
            return {
                "accuracy": float((logits.argmax(1) == split.y).float().mean()),
                "loss": float(self.loss(model, split.x, split.y).mean()),
            }

    def identical_models_reason(self) -> str | None:
        """Why every model this task trains is the same whatever the seed (a deterministic closed-form
        trainer), or None. Ensemble scores are then degenerate, and records say so."""
        return None

    def explosion_reason(self, model: nn.Module, reference: nn.Module | None, split: Split) -> str | None:
        """Why ``model`` counts as exploded or collapsed on ``split`` (None: usable). ``reference`` is the
        model it came from (the original, for an unlearned model), or None for a freshly trained one.
        Tasks declare their bound here (a loss far beyond a trivial predictor's, accuracy at chance)."""
        return None

    def select_forget(self, train: Split, rng: np.random.Generator) -> np.ndarray:
        """The forget set: ``forget_size`` distinct training positions chosen uniformly at random."""
        return np.sort(rng.choice(len(train), size=self.forget_size, replace=False))

    #: KLoM conventions scored besides the definition (``bench.metrics.klom``), e.g. ("easydub",)
    extra_klom_conventions: ClassVar[tuple[str, ...]] = ()

    #: leaderboard columns this task adds from what ``report`` returns (records' ``task_report``); the report
    #: reads these instead of knowing tasks by name (``bench.metrics.declared.ReportColumn``)
    report_columns: ClassVar[tuple[ReportColumn, ...]] = ()

    def external_models(self) -> object | None:
        """Models and statistics this task reads from files instead of training (a third-party release such
        as EasyDUB's), or None. Otherwise an object with ``check(plan)`` (returns itself), ``stats(role, i)``
        for oracle and floor, ``supplies(role, i)``, ``model(role, i, device)`` and ``describe()``, used as
        ``UnitPlan.imported`` exactly as exported margins are (``bench.margins_io.ImportedMargins``)."""
        return None

    def retrain_reference(self, data: TaskData, seed: int, device: torch.device) -> dict | None:
        """The cost of retraining one model, when the task knows it without training one (None: measure it)."""
        return None

    def config_label(self) -> str:
        """A warning shown with every result of this configuration (e.g. a reduced CPU setting), or ''."""
        return ""

    @classmethod
    def description(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
