"""Reproductions of the source papers' figures: ``python -m bench reproduce NAME``."""
from __future__ import annotations

from bench.experiments.linear_convergence import reproduce as _linear_convergence

EXPERIMENTS = {"linear-convergence": _linear_convergence}
