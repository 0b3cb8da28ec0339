"""Reproductions of the source papers' figures: ``python -m bench reproduce NAME``."""
from __future__ import annotations

import importlib
from typing import Callable

# name -> module with a ``reproduce(out, log)`` function; imported only when run (they pull in plotting)
EXPERIMENTS = {"linear-convergence": "bench.experiments.linear_convergence"}


def get_experiment(name: str) -> Callable:
    return importlib.import_module(EXPERIMENTS[name]).reproduce
