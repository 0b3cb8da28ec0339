"""Reproductions of the source papers' figures: ``python -m bench reproduce NAME``."""
from __future__ import annotations

import importlib
from typing import Callable

# name -> "module" (its ``reproduce(out, log)``) or "module:function"; imported only when run (they pull in plotting)
EXPERIMENTS = {
    "linear-convergence": "bench.experiments.linear_convergence",
    "dave-layers": "bench.experiments.dave:reproduce_layers",
    "dave-epochs": "bench.experiments.dave:reproduce_epochs",
    "dave-layers-scratch": "bench.experiments.dave:reproduce_layers_scratch",
    "dave-epochs-scratch": "bench.experiments.dave:reproduce_epochs_scratch",
    "dm-pareto": "bench.experiments.dm_pareto",
    "easydub-pretrain": "tasks.easydub.reproduce",  # EasyDUB's README table, from their dataset folder
}


def get_experiment(name: str) -> Callable:
    module, _, function = EXPERIMENTS[name].partition(":")
    return getattr(importlib.import_module(module), function or "reproduce")
